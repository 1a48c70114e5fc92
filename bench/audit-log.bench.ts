// `delegate audit` over a long log: peak RSS and wall time of `--json`, of
// `--json --event tool_call` and of `--verify`, each a process of the built
// CLI (bin/delegate, run `npm run build` first) under /usr/bin/time, over a
// scratch delegate.db of 200,000 and 1,000,000 records written with correct
// hashes (test/support/audit-log.ts). `tsx bench/audit-log.bench.ts 20000`
// measures other sizes; `--bin=<path>` another build. The database is made in
// a temporary directory and removed after.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeScratchAuditLog } from '../test/support/audit-log.js';
import { formatMs, report, timeAsync } from './support/measure.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const sizes = process.argv.slice(2).map(Number).filter((n) => Number.isSafeInteger(n) && n > 0);
/** `--bin=<path>` (repeatable): other builds' launchers to measure over the same databases, one after another (a copy of an earlier dist/ and bin/, to compare). */
const given = process.argv.filter((a) => a.startsWith('--bin=')).map((a) => a.slice('--bin='.length));
const bins = given.length > 0 ? given : [join(root, 'bin/delegate')];

/** Runs the CLI with `args` over `home`, its stdout to `out`; its exit code, peak RSS (MB) and wall time (ms). */
function measured(bin: string, home: string, args: string[], out: string): { code: number; rssMb: number; ms: number; bytes: number; err: string } {
  const fd = openSync(out, 'w');
  try {
    const run = spawnSync('/usr/bin/time', ['-f', 'TIME %M %e', process.execPath, bin, 'audit', ...args], {
      cwd: root,
      env: { ...process.env, DELEGATE_HOME: home },
      stdio: ['ignore', fd, 'pipe'],
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    const m = /TIME (\d+) ([\d.]+)\s*$/.exec(run.stderr);
    return { code: run.status ?? -1, rssMb: m ? Number(m[1]) / 1024 : NaN, ms: m ? Number(m[2]) * 1000 : NaN, bytes: statSync(out).size, err: run.status === 0 ? '' : run.stderr.replace(/TIME [\d. ]+\s*$/, '').trim().slice(0, 200) };
  } finally {
    closeSync(fd);
  }
}

for (const size of sizes.length > 0 ? sizes : [200_000, 1_000_000]) {
  const home = mkdtempSync(join(tmpdir(), 'delegate-audit-bench-'));
  try {
    const made = await timeAsync(() => writeScratchAuditLog(join(home, 'delegate.db'), size));
    console.log(`\n${size.toLocaleString('en')} records (written in ${formatMs(made.ms)}, ${(statSync(join(home, 'delegate.db')).size / 1e6).toFixed(0)} MB)`);
    const rows: Array<[string, string, string?]> = [];
    for (const args of [['--json'], ['--json', '--event', 'tool_call'], ['--verify']]) {
      for (const bin of bins) {
        const r = measured(bin, home, args, join(home, 'out'));
        rows.push([`${bins.length > 1 ? `${bin}: ` : ''}audit ${args.join(' ')}`, `${r.rssMb.toFixed(0)} MB peak RSS, ${formatMs(r.ms)}`, `exit ${r.code}, ${(r.bytes / 1e6).toFixed(1)} MB out${r.err ? `; ${r.err}` : ''}`]);
      }
    }
    report(rows);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
