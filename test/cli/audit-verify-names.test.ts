// `delegate audit --verify` names the record(s) a break is really at. Found in review (s33audit, low): both cases
// below were caught (exit 1) but named wrongly. (a) A record put in before the chain's start (seq 0 or -5, following
// the start, its own hash right) was reported as "Record 1 is missing." while record 1 was there, intact. (b) Record
// 37 forged with its hash made anew and record 38's link changed to it was reported as "Record 38 was changed after it
// was written", though the forgery is in 37: the chain cannot tell the two apart, and now says so. Each case tampers
// with a copy of a database a store wrote, straight in SQLite, and runs the command in-process on the copy.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { GENESIS_HASH, recordHash, type AuditContent } from '../../src/store/audit-chain.js';
import { openStore } from '../../src/store/index.js';
import { fakeIo } from './fake-io.js';

let original: string;
let copy: string;

beforeAll(async () => {
  original = mkdtempSync(join(tmpdir(), 'delegate-verify-names-'));
  const store = openStore(join(original, 'delegate.db'));
  for (let i = 1; i <= 40; i++) await store.appendAudit({ event: 'tool_call', user: 'usr_1', actors: ['calendar-agent', 'cli_1'], detail: { tool: 'find_slot', n: i } }, 1_000 + i);
  store.close(); // checkpointed: the file alone holds the log
});
afterAll(() => rmSync(original, { recursive: true, force: true }));

beforeEach(() => {
  copy = mkdtempSync(join(tmpdir(), 'delegate-verify-names-copy-'));
  copyFileSync(join(original, 'delegate.db'), join(copy, 'delegate.db'));
  return () => rmSync(copy, { recursive: true, force: true });
});

/** Runs `fn` on the copy's database through a second connection, as someone who can write delegate.db would. */
function tamper(fn: (db: Database.Database) => void): void {
  const db = new Database(join(copy, 'delegate.db'));
  try {
    fn(db);
  } finally {
    db.close();
  }
}

async function verify(): Promise<{ code: number; err: string }> {
  const io = fakeIo({ DELEGATE_HOME: copy });
  const code = await runCli(['audit', '--verify'], io);
  return { code, err: io.err };
}

const TAMPERED = 'delegate: The audit log has been tampered with. ';

const content = (seq: number, detail: Record<string, unknown>): AuditContent => ({ seq, at: 500, event: 'consent', user: 'usr_1', client: null, grant: null, resource: null, actors: [], detail });

/** Puts in a record at `seq` following `prevHash`, hashed right for that place unless `hash` is given. */
function insertAt(db: Database.Database, seq: number, prevHash: string, hash?: string): void {
  const c = content(seq, { decision: 'approved', scope: 'busy:read' });
  db.prepare(`INSERT INTO audit_log (seq, at, event, user_id, actors, detail, prev_hash, hash) VALUES (?, 500, 'consent', 'usr_1', '[]', ?, ?, ?)`).run(seq, JSON.stringify(c.detail), prevHash, hash ?? recordHash(prevHash, c));
}

describe('a record put in before the chain’s start (a)', () => {
  it.each([0, -5])('at seq %i, following the start, its hash right: named as inserted, not record 1 as missing', async (seq) => {
    tamper((db) => insertAt(db, seq, GENESIS_HASH));
    expect(await verify()).toEqual({ code: 1, err: `${TAMPERED}Record ${seq} was inserted: the chain starts at record 1, and delegate writes no record below it.\n` });
  });

  it('at seq 0 linked elsewhere, its hash right for that link: still named as inserted', async () => {
    tamper((db) => insertAt(db, 0, 'e'.repeat(64)));
    expect(await verify()).toEqual({ code: 1, err: `${TAMPERED}Record 0 was inserted: the chain starts at record 1, and delegate writes no record below it.\n` });
  });

  it('at seq 0 with a hash that is not its own: named as inserted or changed (record 1 renumbered would look the same)', async () => {
    tamper((db) => insertAt(db, 0, GENESIS_HASH, 'f'.repeat(64)));
    expect(await verify()).toEqual({ code: 1, err: `${TAMPERED}Record 0 was inserted, or changed: the chain starts at record 1, and delegate writes no record below it.\n` });
  });
});

describe('a record replaced with its hash made anew (b)', () => {
  /** Record 37 as the review forged it: its detail changed and its hash recomputed after record 36. */
  const forge37 = (db: Database.Database): string => {
    const r = db.prepare('SELECT * FROM audit_log WHERE seq = 37').get() as Record<string, string | number | null>;
    const c: AuditContent = { seq: 37, at: Number(r.at), event: String(r.event), user: r.user_id as string | null, client: null, grant: null, resource: null, actors: JSON.parse(String(r.actors)) as string[], detail: { tool: 'nothing_to_see' } };
    const hash = recordHash(String(r.prev_hash), c);
    db.prepare('UPDATE audit_log SET detail = ?, hash = ? WHERE seq = 37').run(JSON.stringify(c.detail), hash);
    return hash;
  };

  it('and the next record relinked to it: names both, record 38 changed or record 37 replaced with the link', async () => {
    tamper((db) => {
      const hash = forge37(db);
      db.prepare('UPDATE audit_log SET prev_hash = ? WHERE seq = 38').run(hash);
    });
    expect(await verify()).toEqual({
      code: 1,
      err: `${TAMPERED}Record 38 was changed after it was written, or record 37 was replaced (its hash made anew) together with record 38's link to it: the chain cannot tell which.\n`,
    });
  });

  it('and the next record left as it was: names record 37 as replaced (record 38, its hash right, followed another)', async () => {
    tamper((db) => void forge37(db));
    expect(await verify()).toEqual({ code: 1, err: `${TAMPERED}Record 37 was replaced (its hash made anew): record 38, as written, follows another record 37.\n` });
  });

  it('record 38 alone with its link changed: named as changed, not record 37 (it was: "Record 37 was changed")', async () => {
    tamper((db) => db.prepare('UPDATE audit_log SET prev_hash = ? WHERE seq = 38').run('d'.repeat(64)));
    expect(await verify()).toEqual({ code: 1, err: `${TAMPERED}Record 38 was changed after it was written, and does not follow from record 37: its link was changed, or record 37 was replaced as well.\n` });
  });

  it('record 1 with its link changed: named as not following the start (it has no record before it to blame)', async () => {
    tamper((db) => db.prepare('UPDATE audit_log SET prev_hash = ? WHERE seq = 1').run('d'.repeat(64)));
    expect(await verify()).toEqual({ code: 1, err: `${TAMPERED}Record 1 was changed: it does not follow from the chain's start.\n` });
  });

  it('record 1 edited in place: changed after it was written, with no other record to name', async () => {
    tamper((db) => db.prepare(`UPDATE audit_log SET detail = '{"tool":"x"}' WHERE seq = 1`).run());
    expect(await verify()).toEqual({ code: 1, err: `${TAMPERED}Record 1 was changed after it was written.\n` });
  });
});
