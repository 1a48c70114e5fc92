// The audit log's hash chain against tampering done straight in the database:
// an edited, a deleted and a reordered record are each caught and named.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
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

  it('writes records appended at once together (group commit), each resolved with its own place in the chain', async () => {
    // Each commit appends the pages it changed, and a commit frame, to the write-ahead log: 40 commits would add far more.
    db.pragma('wal_checkpoint(TRUNCATE)');
    const walFrames = () => Math.round(statSync(join(dir, 'delegate.db-wal')).size / (4096 + 24));
    expect(walFrames()).toBe(0);
    const appended = await Promise.all(
      Array.from({ length: 40 }, (_, i) => store.appendAudit({ event: 'tool_call', user: 'usr_1', actors: ['calendar-agent'], detail: { n: 100 + i } }, 2_000 + i)),
    );
    expect(appended.map((r) => r.seq)).toEqual(Array.from({ length: 40 }, (_, i) => 7 + i));
    expect(appended.map((r) => r.detail.n)).toEqual(Array.from({ length: 40 }, (_, i) => 100 + i));
    expect(walFrames()).toBeLessThan(20); // one transaction (about 7 frames here); one commit per record would be 40 or more
    expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 46 });
  });

  it('rejects every record of a group that could not be written, and writes none of them', async () => {
    db.exec("CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END");
    const results = await Promise.allSettled([1, 2, 3].map((n) => store.appendAudit({ event: 'tool_call', detail: { n } }, 3_000 + n)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    db.exec('DROP TRIGGER audit_down');
    expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 6 });
  });

  it('writes the other records of a group when one of them cannot be serialized (found in review: a report nested 10,000 deep took its whole group down)', async () => {
    const deep = JSON.parse(`${'['.repeat(20_000)}${']'.repeat(20_000)}`) as unknown;
    const results = await Promise.allSettled([
      store.appendAudit({ event: 'grant_revoked', grant: 'grt_1', detail: { by: 'client' } }, 3_001),
      store.appendAudit({ event: 'tool_call', detail: { arguments: deep } }, 3_002),
      store.appendAudit({ event: 'consent', grant: 'grt_2', detail: { decision: 'approved' } }, 3_003),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await store.listAudit()).slice(6).map((r) => r.event)).toEqual(['grant_revoked', 'consent']);
    expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 8 });
  });

  it('verifies a record nested 8,000 deep (found in review: one 3,143 deep made every --verify overflow the stack)', async () => {
    const nested = `${'['.repeat(8_000)}${']'.repeat(8_000)}`;
    const last = (await store.listAudit()).at(-1)!;
    // The hash as docs/internals.md defines it, written out by hand: SHA-256(prev_hash ‖ "\n" ‖ canonical JSON).
    const canonical = `{"actors":[],"at":5000,"client":null,"detail":{"arguments":${nested}},"event":"tool_call","grant":null,"resource":null,"seq":7,"user":null}`;
    const hash = createHash('sha256').update(`${last.hash}\n${canonical}`).digest('hex');
    db.prepare(`INSERT INTO audit_log (seq, at, event, actors, detail, prev_hash, hash) VALUES (7, 5000, 'tool_call', '[]', ?, ?, ?)`).run(`{"arguments":${nested}}`, last.hash, hash);
    expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 7, head: hash });
  });

  it('names a record it cannot verify and checks on past it', async () => {
    db.prepare(`UPDATE audit_log SET detail = 'not JSON' WHERE seq = 3`).run();
    const verdict = await store.verifyAudit();
    expect(verdict).toMatchObject({ ok: false, seq: 3, problem: 'unverifiable', message: expect.stringMatching(/^Record 3 cannot be verified: its content cannot be read/) });
    // A break after it is still found, and the unverifiable record still named.
    db.prepare(`UPDATE audit_log SET actors = '["someone-else"]' WHERE seq = 5`).run();
    expect(await store.verifyAudit()).toMatchObject({ ok: false, seq: 5, problem: 'edited', message: expect.stringContaining('Also: Record 3 cannot be verified') });
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
