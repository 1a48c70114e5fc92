// Results are identical whatever the process's TZ: tz-probe.test.ts is run in
// child processes under zones far apart (and either side of the date line)
// and must print exactly what it computes here.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { probe } from './support/tz-probe.js';

const run = promisify(execFile);

async function probeUnder(tz: string): Promise<string> {
  // `env` passes this process's environment on, with TZ set and vitest's own markers removed.
  const { stdout } = await run(
    'env',
    ['-u', 'VITEST', '-u', 'VITEST_WORKER_ID', '-u', 'VITEST_POOL_ID', '-u', 'NODE_OPTIONS', `TZ=${tz}`, 'npx', 'vitest', 'run', 'test/calendar/tz-probe.test.ts', '--reporter=default'],
    { cwd: new URL('../..', import.meta.url), maxBuffer: 16 * 1024 * 1024, timeout: 60_000 },
  );
  const line = stdout.split('\n').find((l) => l.includes('TZPROBE:'));
  if (!line) throw new Error(`no probe output under TZ=${tz}:\n${stdout.slice(-2000)}`);
  return line.slice(line.indexOf('TZPROBE:') + 'TZPROBE:'.length).trim();
}

it('gives the same busy time, slots and formatting under any process TZ', async () => {
  const here = JSON.stringify(probe());
  const zones = ['Pacific/Kiritimati', 'America/Los_Angeles'];
  const outputs = await Promise.all(zones.map(probeUnder));
  for (const [i, output] of outputs.entries()) expect([zones[i], output]).toEqual([zones[i], here]);
}, 120_000);
