// The audit log's hash chain against tampering done straight in the database:
// an edited, a deleted and a reordered record are each caught and named.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';

let dir: string;
let store: Store;
let db: Database.Database;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'delegate-audit-'));
  store = openStore(join(dir, 'delegate.db'));
  for (let i = 1; i <= 6; i++) {
    await store.appendAudit({ event: 'tool_call', user: 'usr_1', grant: 'grt_1', actors: ['calendar-agent', 'cli_1'], detail: { tool: 'find_slot', n: i } }, 1_000 + i);
  }
  db = new Database(join(dir, 'delegate.db'));
});

afterEach(() => {
  db.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the audit chain', () => {
  it('verifies when untouched, and reports its length and head', async () => {
    const verdict = await store.verifyAudit();
    expect(verdict).toMatchObject({ ok: true, count: 6 });
    const records = await store.listAudit();
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(records[1]!.prevHash).toBe(records[0]!.hash);
  });

  it('catches an edited record', async () => {
    db.prepare(`UPDATE audit_log SET actors = '["someone-else"]' WHERE seq = 3`).run();
    expect(await store.verifyAudit()).toMatchObject({ ok: false, seq: 3, problem: 'edited' });
  });

  it('catches an edited record whose hash was recomputed by the editor', async () => {
    const { recordHash } = await import('../../src/store/audit-chain.js');
    const r = (await store.listAudit())[2]!;
    const forged = { ...r, detail: { tool: 'find_slot', n: 999 } };
    db.prepare('UPDATE audit_log SET detail = ?, hash = ? WHERE seq = 3').run(JSON.stringify(forged.detail), recordHash(r.prevHash, forged));
    expect(await store.verifyAudit()).toMatchObject({ ok: false, seq: 3, problem: 'edited' });
  });

  it('catches a deleted record', async () => {
    db.prepare('DELETE FROM audit_log WHERE seq = 4').run();
    expect(await store.verifyAudit()).toMatchObject({ ok: false, seq: 4, problem: 'deleted' });
  });

  it('catches reordered records', async () => {
    db.transaction(() => {
      db.prepare('UPDATE audit_log SET seq = 100 WHERE seq = 2').run();
      db.prepare('UPDATE audit_log SET seq = 2 WHERE seq = 5').run();
      db.prepare('UPDATE audit_log SET seq = 5 WHERE seq = 100').run();
    })();
    const verdict = await store.verifyAudit();
    expect(verdict).toMatchObject({ ok: false, problem: 'reordered' });
  });

  it('keeps appending after a restart, on the same chain', async () => {
    store.close();
    store = openStore(join(dir, 'delegate.db'));
    await store.appendAudit({ event: 'sign_in', user: 'usr_1' }, 2_000);
    expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 7 });
  });
});
