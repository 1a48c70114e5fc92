// A database whose file opens but one of whose tables is damaged (its pages overwritten: a disk fault, a bad copy),
// read by the administrator's commands, real processes. Found in review (s25faults): `audit`, `audit --verify`,
// `calendar list` and `agents list` printed SQLite's bare "delegate: database disk image is malformed", naming no
// file and saying nothing of what to do, while a database damaged where opening reads it was named. The store's
// reads (one row, all rows, and the audit log's paged and record-by-record reads) now go through the guard its
// writes went through: one line naming the file and what to do, exit 1 (README: an error), as at the open.
import Database from 'better-sqlite3';
import { closeSync, cpSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAccount, runCli, serveInNewHome, stopServeAndRemove } from './run.js';

let home: string;
let copies = 0;

beforeAll(async () => {
  const started = await serveInNewHome('delegate-damaged-table-');
  home = started.home;
  // Rows in users, clients, calendars and the audit log; a clean stop leaves no -wal, so the copy is the file alone.
  expect((await addAccount(home, 'bob', 'a long and secret password')).code).toBe(0);
  expect((await runCli(['calendar', 'add', 'work', join(home, 'work.ics'), '--no-check'], home)).code).toBe(0);
  started.serve.child.kill('SIGTERM');
  await started.serve.done;
}, 60_000);

afterAll(() => stopServeAndRemove(undefined, home));

/**
 * A copy of the data directory with the first 64 bytes of every b-tree root of `table` (the table's and its indexes')
 * overwritten, as the review did for audit_log: the schema and every other table read as before.
 */
function damagedCopy(table: string): string {
  const copy = join(home, '..', `copy-${++copies}`);
  cpSync(home, copy, { recursive: true });
  const path = join(copy, 'delegate.db');
  const db = new Database(path, { readonly: true });
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const roots = db.prepare('SELECT rootpage FROM sqlite_master WHERE tbl_name = ? AND rootpage > 0').pluck().all(table) as number[];
  db.close();
  expect(roots.length).toBeGreaterThan(0);
  const fd = openSync(path, 'r+');
  for (const root of roots) writeSync(fd, Buffer.alloc(64, 0xff), 0, 64, (root - 1) * pageSize);
  closeSync(fd);
  return copy;
}

describe('a table of the database damaged, read by the administrator’s commands', () => {
  it.each([
    ['audit_log', ['audit']],
    // Found in review (s26): "[" on stdout before the error.
    ['audit_log', ['audit', '--json']],
    ['audit_log', ['audit', '--verify']],
    ['grants', ['grants', 'list']],
    ['calendars', ['calendar', 'list']],
    ['users', ['users', 'list']],
    ['clients', ['agents', 'list']],
  ])('%s damaged, delegate %j: exit 1, one line naming the file and what to do', { timeout: 30_000 }, async (table, args) => {
    const copy = damagedCopy(table);
    const run = await runCli(args, copy);
    const line = `delegate: The database ${join(copy, 'delegate.db')} is damaged or is not a delegate database. Restore it from a backup, or move the directory ${copy} away to start over.\n`;
    expect([run.code, run.stderr, run.stdout]).toEqual([1, line, '']);
  });
});
