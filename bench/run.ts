// `npm run bench`: runs every bench/*.bench.ts, each in its own Node process
// (through tsx) so that one benchmark's heap and JIT state do not colour the
// next, one after another, and prints what each prints. Names on the command
// line (`npm run bench -- calendar`) pick benchmarks by file name.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
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
for (const file of files) {
  console.log(`\n## ${file}`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', `${dir}${file}`], { stdio: 'inherit', cwd: fileURLToPath(new URL('..', import.meta.url)) });
  if (result.status !== 0) {
    failed++;
    console.error(`${file} failed (${result.status ?? result.signal}).`);
  }
}
process.exit(failed === 0 ? 0 : 1);
