// `npm run bench`: runs every bench/*.bench.ts, each in its own Node process
// (through tsx) so that one benchmark's heap and JIT state do not colour the
// next, one after another, and prints what each prints. Names on the command
// line (`npm run bench -- calendar`) pick benchmarks by file name. SIGTERM or
// SIGINT is passed on to the benchmark running, which cleans up and exits;
// then this exits too (128 + the signal's number), running no other.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const wanted = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.includes(w)))
  .sort();
if (files.length === 0) {
  console.error(`No benchmark matches ${wanted.join(', ') || '*.bench.ts'} in bench/.`);
  process.exit(2);
}

let failed = 0;
let stoppedBy: NodeJS.Signals | undefined;
let running: ReturnType<typeof spawn> | undefined;
const stop = (signal: NodeJS.Signals) => {
  stoppedBy ??= signal;
  running?.kill(signal);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
for (const file of files) {
  if (stoppedBy) break;
  console.log(`\n## ${file}`);
  running = spawn(process.execPath, ['--import', 'tsx', `${dir}${file}`], { stdio: 'inherit', cwd: fileURLToPath(new URL('..', import.meta.url)) });
  const [code, signal] = (await once(running, 'exit')) as [number | null, NodeJS.Signals | null];
  running = undefined;
  if (code !== 0 && !stoppedBy) {
    failed++;
    console.error(`${file} failed (${code ?? signal}).`);
  }
}
if (stoppedBy) process.exit(128 + constants.signals[stoppedBy]);
process.exit(failed === 0 ? 0 : 1);
