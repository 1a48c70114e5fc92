// A new user's first commands with the servers in the CLI's own process (no
// `delegate serve`), on whatever Node.js runs the tests (CI: 20, then 22 and
// 24): `find-slot` signs in (approved in "the browser"), answers with a slot,
// and a second run asks nothing. Found in review (s26node): on Node 24.19 and
// later, better-sqlite3 12 aborted such a process with a native assertion
// when a garbage collection collected one of its objects (exit 134, nothing
// printed), in 15 of 19 first commands on Node 24.21. The store now loads
// better-sqlite3 13 (Node-API, installed by npm as an optional dependency on
// Node 22 and later) where it is there (src/store/sqlite.ts, sqliteDriver).
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SQLITE_DRIVER } from '../../src/store/sqlite.js';
import { freePort } from '../support/ports.js';
import { repoRoot } from './built.js';
import { approveInBrowser, killLeftovers, runCli, startCli } from './run.js';

const homes: string[] = [];
afterAll(async () => {
  killLeftovers();
  for (const home of homes) await rm(home, { recursive: true, force: true });
});

const major = Number(process.versions.node.split('.')[0]);

describe('the servers in the CLI’s own process', () => {
  it('run the store on the SQLite driver for this Node.js: better-sqlite3 13 on Node 22 and later where npm installed it, else 12', () => {
    const installed = existsSync(join(repoRoot, 'node_modules', 'better-sqlite3-node22', 'package.json'));
    expect(SQLITE_DRIVER).toBe(major >= 22 && installed ? 'better-sqlite3-node22' : 'better-sqlite3');
  });

  it('three new users in a row: each first find-slot signs in and answers, and the second asks nothing; none aborted', { timeout: 180_000 }, async () => {
    for (let user = 0; user < 3; user++) {
      const home = await mkdtemp(join(tmpdir(), 'delegate-in-process-'));
      homes.push(home);
      const args = ['find-slot', '--duration', '30m', '--json', '--no-browser', '--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
      const first = startCli(args, home);
      await approveInBrowser(await first.loginUrl);
      const signedIn = await first.done;
      expect([user, signedIn.code, signedIn.signal, signedIn.stderr.includes('Assertion failed')]).toEqual([user, 0, null, false]);
      expect(JSON.parse(signedIn.stdout)).toMatchObject({ start: expect.any(String), end: expect.any(String) });
      const again = await runCli(args, home);
      expect([user, again.code, again.signal, again.stderr]).toEqual([user, 0, null, '']);
      expect(JSON.parse(again.stdout)).toMatchObject({ start: expect.any(String), end: expect.any(String) });
    }
  });
});
