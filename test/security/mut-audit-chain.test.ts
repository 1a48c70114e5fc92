// Mutation review s32 (M3): the audit log's hash chain must cover every column of a record, and a record
// deleted with the hashes after it recomputed (numbers kept) must still show. Each test edits the database
// straight through a second connection, as someone who can write delegate.db would, and asks the store's
// verifier (what `delegate audit --verify` runs). Kills: a record's `resource` (or any one field) left out of
// the hashed content (src/store/audit-chain.ts prepareContent), and the seq check after a good hash skipped.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import { recordHash } from '../../src/store/audit-chain.js';

let dir: string;
let store: Store;
let db: Database.Database;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'delegate-mut-audit-'));
  store = openStore(join(dir, 'delegate.db'));
  for (let i = 1; i <= 5; i++) {
    await store.appendAudit(
      { event: 'tool_call', user: 'usr_1', client: 'cli_1', grant: 'grt_1', resource: 'http://127.0.0.1:8412/mcp', actors: ['calendar-agent', 'cli_1'], detail: { tool: 'find_slot', n: i } },
      1_000 + i,
    );
  }
  db = new Database(join(dir, 'delegate.db'));
});

afterEach(() => {
  db.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('every field of a record is under the chain (mutation review s32 M3)', () => {
  it.each([
    ['resource', `UPDATE audit_log SET resource = 'http://127.0.0.1:9999/other' WHERE seq = 3`],
    ['user', `UPDATE audit_log SET user_id = 'usr_2' WHERE seq = 3`],
    ['client', `UPDATE audit_log SET client_id = 'cli_2' WHERE seq = 3`],
    ['grant', `UPDATE audit_log SET grant_id = 'grt_2' WHERE seq = 3`],
    ['event', `UPDATE audit_log SET event = 'consent' WHERE seq = 3`],
    ['time', `UPDATE audit_log SET at = 999999 WHERE seq = 3`],
    ['detail', `UPDATE audit_log SET detail = '{"n":3,"tool":"other"}' WHERE seq = 3`],
  ])('an edited %s is caught and named', async (_field, sql) => {
    expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 5 });
    db.prepare(sql).run();
    expect(await store.verifyAudit()).toMatchObject({ ok: false, seq: 3, problem: 'edited' });
  });

  it('a record deleted and every later hash recomputed, numbers kept, is caught as missing', async () => {
    const records = await store.listAudit();
    db.prepare('DELETE FROM audit_log WHERE seq = 3').run();
    let prev = records[1]!.hash;
    for (const r of records.slice(3)) {
      const hash = recordHash(prev, r);
      db.prepare('UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?').run(prev, hash, r.seq);
      prev = hash;
    }
    expect(await store.verifyAudit()).toMatchObject({ ok: false, seq: 3, problem: 'deleted' });
  });
});
