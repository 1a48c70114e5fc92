// What the CLI can judge by itself is judged before it signs in, starts a
// server or sends a request: a bad value is bad usage (exit 2), said in one
// line on stderr naming the option, and nothing is written to the data
// directory.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseInstant } from '../../src/cli/args.js';
import { parseSince } from '../../src/cli/commands/admin-store.js';
import { runCli } from '../../src/cli/program.js';
import { freePort } from '../support/ports.js';
import { fakeIo } from './fake-io.js';

let home: string;
let ports: string[];

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-usage-'));
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

async function refused(argv: string[], option: string): Promise<void> {
  const io = fakeIo({ DELEGATE_HOME: home });
  expect(await runCli(argv, io)).toBe(2);
  expect(io.out).toBe('');
  expect(io.err.trim().split('\n')).toHaveLength(1);
  expect(io.err).toContain(option);
  expect(await readdir(home)).toEqual([]); // no database, no keys, no server started
}

describe('impossible calendar dates', () => {
  it.each([
    ['audit --since 30 February', () => ['audit', '--since', '2026-02-30'], '--since'],
    ['audit --since 29 February of a common year, with a time', () => ['audit', '--since', '2026-02-29T10:00'], '--since'],
    ['audit --since 31 April with an offset', () => ['audit', '--since', '2026-04-31T09:00:00Z'], '--since'],
    ['find-slot --from 30 February', () => ['find-slot', '--duration', '30m', '--from', '2026-02-30', ...ports], '--from'],
    ['find-slot --to 31 April', () => ['find-slot', '--duration', '30m', '--to', '2026-04-31T09:00', ...ports], '--to'],
    ['busy --from 30 February', () => ['busy', '--from', '2026-02-30', ...ports], '--from'],
    ['busy --to 31 June', () => ['busy', '--to', '2026-06-31', ...ports], '--to'],
  ])('refuses %s with exit code 2', async (_what, argv, option) => {
    await refused(argv(), option);
  });

  it('still takes real dates, 29 February of a leap year among them', () => {
    expect(parseInstant('2028-02-29')).toBe('2028-02-29');
    expect(parseInstant('2026-12-01T09:00:00+01:00')).toBe('2026-12-01T09:00:00+01:00');
    expect(parseSince('2028-02-29T00:00:00Z', 0)).toBe(Date.UTC(2028, 1, 29));
    expect(parseSince('2026-02-30', 0)).toBeUndefined();
    expect(parseSince('2h', Date.UTC(2026, 0, 1, 12))).toBe(Date.UTC(2026, 0, 1, 10));
  });
});
