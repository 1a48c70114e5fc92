// A data directory whose database was emptied (0 bytes: truncated, or a copy that failed) after the installation
// had run, real processes. Found in review (s22store): it was taken for a new installation: `grants list` said
// "No active grants." (exit 0), `audit --verify` "intact: 0 records", the file was given a fresh schema (what was
// left of it overwritten), and `serve` started with a new owner and key without a word. Now every command refuses
// it in one line naming the file and what to do (exit 1) and leaves it as it is; an empty file alone (a first start
// stopped before its first write) is still no installation, and a command that only reads leaves it empty.
import { existsSync, statSync, truncateSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAccount, runCli, startCli, stopServeAndRemove, serveInNewHome } from './run.js';
import { freePort } from '../support/ports.js';

let home: string;

beforeAll(async () => {
  const started = await serveInNewHome('delegate-emptied-');
  home = started.home;
  expect((await addAccount(home, 'bob', 'a long and secret password')).code).toBe(0);
  started.serve.child.kill('SIGTERM');
  await started.serve.done;
  truncateSync(join(home, 'delegate.db'), 0);
}, 60_000);

afterAll(() => stopServeAndRemove(undefined, home));

const db = () => join(home, 'delegate.db');
const refusal = () =>
  `delegate: The database ${db()} is empty, yet its data directory was set up before (agent-key.json is there): its accounts, grants and audit log are not in it. Restore it from a backup, or move the directory ${home} away to start over.\n`;

describe('an emptied database in a data directory that was set up', () => {
  it.each([[['grants', 'list']], [['audit', '--verify']], [['agents', 'list']], [['grants', 'revoke', 'grt_x']]])(
    'delegate %j: exit 1, one line naming the file and what to do; the file left empty',
    { timeout: 30_000 },
    async (args) => {
      const run = await runCli(args, home);
      expect([run.code, run.stderr, run.stdout]).toEqual([1, refusal(), '']);
      expect(statSync(db()).size).toBe(0);
    },
  );

  it('delegate serve does not start on it: exit 1, the same line; no new owner or key', { timeout: 30_000 }, async () => {
    const ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
    const serve = startCli(['serve', ...ports], home);
    const stop = setTimeout(() => serve.child.kill('SIGTERM'), 15_000); // before the fix, it ran on
    const run = await serve.done.finally(() => clearTimeout(stop));
    expect([run.code, run.stderr]).toEqual([1, refusal()]);
    expect(statSync(db()).size).toBe(0);
  });
});

describe('an empty database file with nothing else (a first start stopped before its first write)', () => {
  it('grants list reads it as no installation and leaves it empty; users add sets it up', { timeout: 30_000 }, async () => {
    const fresh = join(await mkdtemp(join(tmpdir(), 'delegate-empty-first-')), 'home');
    try {
      await mkdir(fresh, { mode: 0o700 });
      await writeFile(join(fresh, 'delegate.db'), '', { mode: 0o600 });
      const run = await runCli(['grants', 'list'], fresh);
      expect(run.code, run.stderr).toBe(0);
      expect(statSync(join(fresh, 'delegate.db')).size).toBe(0);
      const added = await addAccount(fresh, 'bob', 'a long and secret password');
      expect(added.code, added.stderr).toBe(0);
      expect(statSync(join(fresh, 'delegate.db')).size).toBeGreaterThan(0);
      expect(existsSync(join(fresh, 'agent-key.json'))).toBe(false);
    } finally {
      await rm(join(fresh, '..'), { recursive: true, force: true });
    }
  });
});
