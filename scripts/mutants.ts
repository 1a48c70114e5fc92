// `npm run mutants`: proves that the security checks have tests that fail when
// the check breaks. Each mutant (test/mutants/*.ts) is one small change to one
// check in src/ that lets an attack through: a refusal dropped, a comparison
// weakened, a header removed. For each, this applies the change to a scratch
// copy of the project, runs the test files that must catch it, and restores
// the file: a mutant is killed when a test fails, survived when all pass.
// The working tree is never touched: the copy is `git ls-files` into a
// temporary directory with this node_modules linked in, so an interrupted run
// leaves nothing behind here.
//   npm run mutants                       every mutant (about 35 minutes on 2 cores)
//   npm run mutants -- --only A01,R07     those
//   npm run mutants -- --area authz       one file of test/mutants/
//   npm run mutants -- --list             the list, nothing run
// Exit 0 when every mutant was killed; 1 when one survived, or its `from` text
// is no longer in its file exactly once (the check moved: update the mutant),
// or, where its tests need the build, the mutated source does not build.
// The copy is built once, unchanged, for the tests that read dist/; a mutant
// whose tests run the built CLI or import from dist/ is built into it, and the
// copy built again unchanged after it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALL_MUTANTS, type Mutant } from '../test/mutants/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const option = (name: string) => {
  const i = args.indexOf(name);
  return i === -1 ? undefined : args[i + 1];
};
const only = option('--only')?.split(',');
const area = option('--area');
const chosen = ALL_MUTANTS.filter((m) => (!only || only.includes(m.id)) && (!area || m.area === area));
if (chosen.length === 0) {
  console.error(`mutants: none chosen (areas: ${[...new Set(ALL_MUTANTS.map((m) => m.area))].join(', ')})`);
  process.exit(2);
}
if (args.includes('--list')) {
  for (const m of chosen) console.log(`${m.id}\t${m.file}\t${m.attack}\t${m.tests.join(' ')}`);
  process.exit(0);
}

/** Whether a test file (or any file of a test directory) runs the built CLI or imports from dist/. */
function runsBuild(path: string): boolean {
  const full = join(root, path);
  if (!full.endsWith('.ts')) return readdirSync(full, { recursive: true }).some((f) => String(f).endsWith('.test.ts') && runsBuild(join(path, String(f))));
  return /^test\/(e2e|cli|browser|interop)\//.test(path) || /dist\/|e2e\/built|e2e\/run/.test(readFileSync(full, 'utf8'));
}
const usesBuild = (m: Mutant) => m.tests.some(runsBuild);

/** A scratch copy of the tracked files, with this node_modules linked in. */
function scratchCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'delegate-mutants-'));
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const file of files) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    cpSync(join(root, file), join(dir, file), { verbatimSymlinks: true });
  }
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

type Outcome = 'killed' | 'SURVIVED' | 'STALE' | 'NO BUILD';

let running: ChildProcess | undefined;

/** Runs a command in `dir` to its end: its exit status and its output. */
function command(dir: string, file: string, argv: string[]): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    // A process group of its own, so that an interruption ends vitest and its workers too, not only npx.
    const child = spawn(file, argv, { cwd: dir, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    running = child;
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('close', (status) => {
      running = undefined;
      resolve({ status, out });
    });
  });
}

async function run(dir: string, m: Mutant): Promise<{ outcome: Outcome; detail: string }> {
  const path = join(dir, m.file);
  const original = readFileSync(path, 'utf8');
  const found = original.split(m.from).length - 1;
  if (found !== 1) return { outcome: 'STALE', detail: `its text is in ${m.file} ${found} times, not once` };
  const built = usesBuild(m);
  writeFileSync(path, original.replace(m.from, () => m.to));
  try {
    // A mutant that does not build proves nothing of the tests (found at stop 32: one counted as killed that way).
    if (built && (await command(dir, 'npm', ['run', 'build'])).status !== 0) return { outcome: 'NO BUILD', detail: 'the mutated source does not build: make it a change that compiles' };
    const tests = await command(dir, 'npx', ['vitest', 'run', ...m.tests]);
    // eslint-disable-next-line no-control-regex
    const out = tests.out.replace(/\x1b\[[0-9;]*m/g, '');
    const summary = /^\s*Tests\s+(\d.*)$/m.exec(out)?.[1]?.trim() ?? 'no summary';
    return tests.status === 0 ? { outcome: 'SURVIVED', detail: summary } : { outcome: 'killed', detail: summary };
  } finally {
    writeFileSync(path, original);
    if (built) await build(dir);
  }
}

async function build(dir: string): Promise<void> {
  const { status, out } = await command(dir, 'npm', ['run', 'build']);
  if (status !== 0) throw new Error(`npm run build failed in the scratch copy:\n${out}`);
}

const dir = scratchCopy();
// Interrupted: the scratch copy goes too (the working tree was never touched).
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (running?.pid !== undefined) {
      try {
        process.kill(-running.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
    process.exit(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const)[signal]);
  });
}
let bad = 0;
const started = Date.now();
try {
  await build(dir);
  for (const [i, m] of chosen.entries()) {
    const { outcome, detail } = await run(dir, m);
    if (outcome !== 'killed') bad++;
    console.log(`${String(i + 1).padStart(3)}/${chosen.length} ${outcome.padEnd(8)} ${m.id.padEnd(5)} ${m.file}: ${m.attack} (${detail})`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const killed = chosen.length - bad;
console.log(`\n${killed} of ${chosen.length} mutants killed${bad ? `; ${bad} not (SURVIVED: no test caught it; STALE, NO BUILD: update the mutant)` : ''}, in ${Math.round((Date.now() - started) / 1000)} s`);
process.exit(bad ? 1 : 0);
