// `delegate audit` over an audit log that cannot be read (its pages damaged: a disk fault, a bad copy), in-process over
// a real database. Found in review (s26): `audit --json` wrote "[" before it read a record, so a damaged log left a
// script "[" on stdout beside the error. Now stdout carries nothing before the first page is read; a read failing
// after output began still ends with the one line and exit 1 (README's exit codes: an error), the array unclosed.
import { mkdtemp, rm } from 'node:fs/promises';
import { closeSync, openSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../src/config.js';
import { runCli } from '../../src/cli/program.js';
import { openStore } from '../../src/store/index.js';
import { fakeIo } from './fake-io.js';

let home: string;
let paths: Paths;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-cli-audit-damaged-'));
  paths = resolvePaths({ DELEGATE_HOME: home });
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

/** A log of `count` records, closed cleanly (no -wal left), so that the file alone is what the command reads. */
async function logOf(count: number): Promise<void> {
  const store = openStore(paths.db);
  for (let i = 1; i <= count; i++) await store.appendAudit({ event: 'tool_call', user: 'usr_1', actors: ['calendar-agent', 'usr_1'], detail: { tool: 'find_slot', n: i } }, 1_000 + i);
  store.close();
  const db = new Database(paths.db);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

/** Overwrites the first 64 bytes of the pages `pick` chooses among audit_log's table pages (dbstat: in b-tree order). */
function damage(pick: (pages: Array<{ pageno: number; pagetype: string }>) => number[]): void {
  const db = new Database(paths.db, { readonly: true });
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const pages = db.prepare("SELECT pageno, pagetype FROM dbstat WHERE name = 'audit_log' ORDER BY path").all() as Array<{ pageno: number; pagetype: string }>;
  db.close();
  const chosen = pick(pages);
  expect(chosen.length).toBeGreaterThan(0);
  const fd = openSync(paths.db, 'r+');
  for (const page of chosen) writeSync(fd, Buffer.alloc(64, 0xff), 0, 64, (page - 1) * pageSize);
  closeSync(fd);
}

const damagedLine = () => `delegate: The database ${paths.db} is damaged or is not a delegate database. Restore it from a backup, or move the directory ${home} away to start over.\n`;

describe('delegate audit on an audit log that cannot be read', () => {
  it('--json with its first page unreadable: nothing on stdout, one line, exit 1', async () => {
    await logOf(4);
    damage((pages) => [pages[0]!.pageno]); // the root: no record can be read
    for (const args of [['audit', '--json'], ['audit']]) {
      const io = fakeIo({ DELEGATE_HOME: home });
      const code = await runCli(args, io);
      expect([code, io.out, io.err], args.join(' ')).toEqual([1, '', damagedLine()]);
    }
  });

  it('--json failing after a page was written: one line, exit 1, and stdout no whole JSON document', async () => {
    await logOf(2_500); // more than one page (1,000 records) before the damage
    // A leaf past the first page's records but before the last: the listing reads the head of the log (its last
    // leaf) before anything else, so a damaged last leaf is met before any output, as the first test's root is.
    damage((pages) => {
      const leaves = pages.filter((p) => p.pagetype === 'leaf');
      return [leaves[Math.floor(leaves.length * 0.7)]!.pageno];
    });
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['audit', '--json'], io)).toBe(1);
    expect(io.err).toBe(damagedLine());
    expect(io.out.startsWith('[{')).toBe(true);
    expect(() => JSON.parse(io.out)).toThrow();
  });

  it('the control: an empty log is [] and a readable one the whole array, exit 0', async () => {
    const empty = fakeIo({ DELEGATE_HOME: home });
    await logOf(0);
    expect(await runCli(['audit', '--json'], empty)).toBe(0);
    expect(empty.out).toBe('[]\n');
    await logOf(1_001);
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['audit', '--json'], io), io.err).toBe(0);
    expect((JSON.parse(io.out) as Array<{ seq: number }>).map((r) => r.seq)).toEqual(Array.from({ length: 1_001 }, (_, i) => i + 1));
  });
});
