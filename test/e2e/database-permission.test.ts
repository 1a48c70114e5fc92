// A data directory of another user's (nobody's) whose delegate.db root owns, 0600 (as after `sudo delegate serve`),
// read by that user's administrator commands, real processes. Found in review (s25faults): `grants list` and `audit`
// said "The database … could not be used: unable to open database file" (SQLite's SQLITE_CANTOPEN, when the -wal is
// there) or "… cannot be written (EACCES …)" (when it is not, though the command only reads), where `serve-calendar`
// said "EACCES: permission denied". Now: permission denied, whose the file is, and what to do, exit 1. Root only (as
// CI runs): nobody plays the user.
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { chmod, chown } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAccount, runCliAs, serveInNewHome, stopServeAndRemove } from './run.js';

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
let home: string;

beforeAll(async () => {
  if (!asRoot) return;
  const started = await serveInNewHome('delegate-db-permission-');
  home = started.home;
  expect((await addAccount(home, 'bob', 'a long and secret password')).code).toBe(0);
  started.serve.child.kill('SIGTERM');
  await started.serve.done;
  // The directory is nobody's (and reachable); the database in it stays root's, 0600.
  await chmod(join(home, '..'), 0o755);
  await chown(home, NOBODY, NOBODY);
}, 60_000);

afterAll(() => stopServeAndRemove(undefined, home));

const refusal = () =>
  `delegate: The database ${join(home, 'delegate.db')} cannot be read: permission denied (uid 0 owns it, mode 600; this is uid ${NOBODY}). ` +
  `Run delegate as uid 0, or give the file to the owner of ${home}.\n`;

describe.runIf(asRoot)('a database another user owns, read by the data directory’s user', () => {
  it.each([[['grants', 'list']], [['audit']], [['audit', '--verify']]])('delegate %j, no -wal beside it: permission denied, exit 1', { timeout: 30_000 }, async (args) => {
    const run = await runCliAs(NOBODY, args, { HOME: home, DELEGATE_HOME: home });
    expect([run.code, run.stderr, run.stdout]).toEqual([1, refusal(), '']);
  });

  it.each([[['grants', 'list']], [['audit']], [['audit', '--verify']]])('delegate %j, its -wal and -shm there (root has it open): permission denied, exit 1', { timeout: 30_000 }, async (args) => {
    const held = new Database(join(home, 'delegate.db'), { readonly: true });
    try {
      held.prepare('SELECT count(*) FROM users').get();
      expect(existsSync(join(home, 'delegate.db-wal')) && existsSync(join(home, 'delegate.db-shm'))).toBe(true);
      const run = await runCliAs(NOBODY, args, { HOME: home, DELEGATE_HOME: home });
      expect([run.code, run.stderr, run.stdout]).toEqual([1, refusal(), '']);
    } finally {
      held.close();
    }
  });
});
