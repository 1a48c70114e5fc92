// A trigger on the audit log, added by someone who can write delegate.db, against a change and its record committing
// together. Found in review (s33audit, medium): with `BEFORE INSERT … RAISE(IGNORE)` for grant_revoked records, or
// `AFTER INSERT … DELETE` of the new row, a grant was revoked with no record (the next record taking its seq, the
// chain intact), and verifyAudit said intact. Each trigger here is added through a second connection to a real
// database; the revocation must fail as a whole (grant active, log as it was), and verifyAudit must name the trigger.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, type GrantRecord, type Store } from '../../src/store/index.js';

const NOW = 1_800_000_000_000;
let dir: string;
let store: Store;
let db: Database.Database;

const grant = (id: string): GrantRecord => ({
  id,
  userId: 'usr_1',
  clientId: 'cli_a',
  resource: 'http://127.0.0.1:1/mcp',
  scope: 'slots:find',
  authorizationDetails: [],
  maxDepth: 1,
  createdAt: NOW - 1_000,
  expiresAt: NOW + 3_600_000,
  revokedAt: null,
});
const revokedRecord = (id: string) => ({ event: 'grant_revoked', user: 'usr_1', client: 'cli_a', grant: id, resource: 'http://127.0.0.1:1/mcp', detail: { by: 'owner', via: 'cli' } });

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'delegate-audit-trigger-'));
  store = openStore(join(dir, 'delegate.db'));
  await store.createUser({ id: 'usr_1', name: 'alice', passwordHash: null, isOwner: false, timeZone: 'UTC', createdAt: 1 });
  await store.createClient({ clientId: 'cli_a', clientName: null, kind: 'public', secretHash: null, redirectUris: [], grantTypes: [], tokenEndpointAuthMethod: 'none', jwks: null, resource: null, metadata: {}, createdAt: 1 });
  await store.createGrant(grant('grt_1'), { event: 'consent', user: 'usr_1', client: 'cli_a', grant: 'grt_1', detail: { decision: 'approved' } });
  await store.createGrant(grant('grt_2'));
  db = new Database(join(dir, 'delegate.db'));
});

afterEach(() => {
  db.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const logState = () => db.prepare('SELECT count(*) AS n, max(seq) AS last, (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1) AS head FROM audit_log').get();

describe('a trigger that drops or changes an audit record as it is written', () => {
  it.each([
    ['BEFORE INSERT … RAISE(IGNORE) (the review’s first)', "CREATE TRIGGER t BEFORE INSERT ON audit_log WHEN NEW.event = 'grant_revoked' BEGIN SELECT RAISE(IGNORE); END"],
    ['AFTER INSERT … DELETE the new row (the review’s second: its seq reused)', 'CREATE TRIGGER t AFTER INSERT ON audit_log BEGIN DELETE FROM audit_log WHERE seq = NEW.seq; END'],
    ['AFTER INSERT … UPDATE the new row’s detail', `CREATE TRIGGER t AFTER INSERT ON audit_log BEGIN UPDATE audit_log SET detail = '{}' WHERE seq = NEW.seq; END`],
    [
      'a trigger on another table, set off through it, that deletes the new row',
      'CREATE TABLE relay (n INTEGER); CREATE TRIGGER r AFTER INSERT ON audit_log BEGIN INSERT INTO relay VALUES (NEW.seq); END; CREATE TRIGGER t AFTER INSERT ON relay BEGIN DELETE FROM audit_log WHERE seq = NEW.n; END',
      ['r', 't'],
    ],
  ])('%s: the revocation fails, the grant stays active, the log is as it was; verifyAudit names the trigger', async (_name, sql, named = ['t']) => {
    const before = logState();
    db.exec(sql);
    // The store's revocation, as `delegate grants revoke` calls it: record and change in one transaction.
    await expect(store.revokeGrant('grt_1', NOW, 'revoked from the command line', revokedRecord('grt_1'))).rejects.toMatchObject({
      name: 'StoreError',
      code: 'STORE_CORRUPT',
      message: expect.stringMatching(/did not keep the audit record it was given \(record \d+, grant_revoked\)/),
    });
    expect((await store.grantById('grt_1'))!.revokedAt).toBeNull();
    expect(logState()).toEqual(before);
    const verdict = await store.verifyAudit();
    expect(verdict).toMatchObject({ ok: false, problem: 'trigger', triggers: named, chain: { ok: true } });
    expect(verdict.ok || verdict.message).toMatch(/acting on the audit log, which delegate never makes: .*\bt \(CREATE TRIGGER t .*\)\. .*DROP TRIGGER "t";/);
    // Dropped, the revocation goes through with its record, and the chain verifies.
    for (const name of named) db.exec(`DROP TRIGGER ${name}`);
    expect(await store.revokeGrant('grt_1', NOW, 'revoked from the command line', revokedRecord('grt_1'))).toBe(true);
    expect((await store.listAudit({ grant: 'grt_1' })).map((r) => r.event)).toEqual(['consent', 'grant_revoked']);
    expect(await store.verifyAudit()).toMatchObject({ ok: true });
  });

  it('records written together (one group commit): one taken out when the next is written fails the whole group', async () => {
    db.exec(`CREATE TRIGGER t AFTER INSERT ON audit_log WHEN NEW.detail LIKE '%second%' BEGIN DELETE FROM audit_log WHERE seq = NEW.seq - 1; END`);
    const before = logState();
    const results = await Promise.allSettled([
      store.appendAudit({ event: 'tool_call', detail: { n: 'first' } }, NOW),
      store.appendAudit({ event: 'tool_call', detail: { n: 'second' } }, NOW),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(logState()).toEqual(before);
  });

  it('a record that stays as written is taken (a trigger that only looks, e.g. to count, changes nothing of it)', async () => {
    db.exec('CREATE TABLE seen (n INTEGER); CREATE TRIGGER t AFTER INSERT ON audit_log BEGIN INSERT INTO seen VALUES (NEW.seq); END');
    expect(await store.revokeGrant('grt_2', NOW, 'test', revokedRecord('grt_2'))).toBe(true);
    expect((await store.listAudit({ grant: 'grt_2' })).map((r) => r.event)).toEqual(['grant_revoked']);
    // It still acts on the log, and --verify says so.
    expect(await store.verifyAudit()).toMatchObject({ ok: false, problem: 'trigger', triggers: ['t'], chain: { ok: true } });
  });

  it('verifyAudit names every trigger that names the log, in any quoting, and none of delegate’s own', async () => {
    expect(await store.verifyAudit()).toMatchObject({ ok: true });
    db.exec(`CREATE TRIGGER "b" AFTER INSERT ON "AUDIT_LOG" BEGIN SELECT 1; END`);
    db.exec('CREATE TRIGGER a AFTER UPDATE ON grants BEGIN DELETE FROM [audit_log] WHERE grant_id = NEW.id; END');
    db.exec("CREATE TRIGGER c AFTER INSERT ON users BEGIN SELECT 'nothing to do with the log'; END");
    const verdict = await store.verifyAudit();
    expect(verdict).toMatchObject({ ok: false, problem: 'trigger', triggers: ['a', 'b'] });
    expect(verdict.ok || verdict.message).toMatch(/^The database holds 2 triggers acting on the audit log/);
  });

  it('a trigger’s name and statement reach the message escaped (text from whoever added it)', async () => {
    db.exec(`CREATE TRIGGER "t\u001b[2K" BEFORE INSERT ON audit_log BEGIN SELECT RAISE(IGNORE); END`);
    const verdict = await store.verifyAudit();
    expect(verdict.ok).toBe(false);
    expect(verdict.ok || verdict.message).not.toMatch(/\u001b/);
    expect(verdict.ok || verdict.message).toContain('t\\e[2K');
  });
});
