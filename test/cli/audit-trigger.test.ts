// `delegate grants revoke` and `delegate audit --verify --head` in-process over a real database that holds a trigger
// on audit_log, as the review added it (s33audit, medium): the revocation exited 0 with no record, and --verify
// against the head kept before said intact. Now the revocation fails (exit 1, grant active, log as it was), and
// --verify exits 1 naming the trigger.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../src/config.js';
import { runCli } from '../../src/cli/program.js';
import { openStore } from '../../src/store/index.js';
import { fakeIo, type FakeIo } from './fake-io.js';

let home: string;
let paths: Paths;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-cli-audit-trigger-'));
  paths = resolvePaths({ DELEGATE_HOME: home });
  const store = openStore(paths.db);
  await store.createUser({ id: 'usr_1', name: 'alice', passwordHash: null, isOwner: false, timeZone: 'UTC', createdAt: 1 });
  await store.createClient({ clientId: 'cli_a', clientName: null, kind: 'public', secretHash: null, redirectUris: [], grantTypes: [], tokenEndpointAuthMethod: 'none', jwks: null, resource: null, metadata: {}, createdAt: 1 });
  const now = Date.UTC(2026, 11, 1, 7);
  const grant = { id: 'grt_1', userId: 'usr_1', clientId: 'cli_a', resource: 'http://127.0.0.1:1/mcp', scope: 'slots:find', authorizationDetails: [], maxDepth: 1, createdAt: now, expiresAt: now + 86_400_000, revokedAt: null };
  await store.createGrant(grant, { event: 'consent', user: 'usr_1', client: 'cli_a', grant: 'grt_1', detail: { decision: 'approved' } });
  store.close();
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

const cli = async (...args: string[]): Promise<FakeIo & { code: number }> => {
  const io = fakeIo({ DELEGATE_HOME: home });
  const code = await runCli(args, io);
  return Object.assign(io, { code });
};

describe('a trigger on audit_log added to delegate.db (review s33audit)', () => {
  it.each([
    ['BEFORE INSERT … RAISE(IGNORE) for grant_revoked', "CREATE TRIGGER t BEFORE INSERT ON audit_log WHEN NEW.event='grant_revoked' BEGIN SELECT RAISE(IGNORE); END"],
    ['AFTER INSERT … DELETE the new row', 'CREATE TRIGGER t AFTER INSERT ON audit_log BEGIN DELETE FROM audit_log WHERE seq=NEW.seq; END'],
  ])('%s: grants revoke fails and changes nothing; audit --verify --head names the trigger (exit 1)', async (_name, sql) => {
    const kept = await cli('audit', '--verify', '--json');
    expect(kept.code).toBe(0);
    const head = String((JSON.parse(kept.out) as { head: string }).head);
    const db = new Database(paths.db);
    try {
      db.exec(sql);
      const revoked = await cli('grants', 'revoke', 'grt_1');
      expect([revoked.code, revoked.out]).toEqual([1, '']);
      expect(revoked.err).toMatch(/^delegate: The database .* did not keep the audit record it was given \(record 2, grant_revoked\).*`delegate audit --verify` names such a trigger\.\n$/);
      expect(db.prepare('SELECT revoked_at FROM grants WHERE id = ?').get('grt_1')).toEqual({ revoked_at: null });
      expect(db.prepare('SELECT count(*) AS n FROM audit_log').get()).toEqual({ n: 1 });

      const verified = await cli('audit', '--verify', '--head', head);
      expect([verified.code, verified.out]).toEqual([1, '']);
      expect(verified.err).toMatch(/^delegate: The audit log has been tampered with\. The database holds a trigger acting on the audit log, which delegate never makes: t \(CREATE TRIGGER t .*DROP TRIGGER "t";\)\. The chain itself is intact \(1 record, head [0-9a-f]{64}\), which does not show records kept off it\.\n$/);
      const json = await cli('audit', '--verify', '--head', head, '--json');
      expect(json.code).toBe(1);
      expect(JSON.parse(json.out)).toMatchObject({ ok: false, problem: 'trigger', triggers: ['t'], chain: { ok: true, count: 1, head } });
    } finally {
      db.close();
    }
  });
});
