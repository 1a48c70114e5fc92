// `delegate users list` and `delegate users remove`, run in-process on a data
// directory of their own. Before these, an administrator could neither see the
// accounts nor remove one, and an `alice`/`Alice` pair kept from before names
// were unique ignoring case could only be resolved by editing SQLite by hand.
// Removing revokes every live grant (listed for the resource servers), ends the
// account's sessions, removes its calendars securely and retires it in one
// transaction with its `user_removed` record; the name is then free for a new
// account that inherits none of it. The same against a running server, end to
// end: test/e2e/users-remove.test.ts.
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { resolvePaths } from '../../src/config.js';
import { openStore, type Store, type UserRecord } from '../../src/store/index.js';
import { addCaseTwin } from '../support/case-twin.js';
import { fakeIo, type FakeIo } from './fake-io.js';
import { failAuditRecords } from '../support/fail-audit.js';

// Accounts added by the dozen (each users add hashes a password): scrypt at N=2^12 here (test/support/cheap-scrypt.ts).
vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

const PASSWORD = 'a long and secret password';
const NOW = Date.UTC(2026, 11, 1, 8);
const ADDED = NOW + 1000;
const FEED_SECRET = 'private-9c1fQ2secretPath';
const FEED_COPY = 'CachedCopyOfAlicesDiary';
const EVENT = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//t//EN', 'BEGIN:VEVENT', 'UID:1', 'DTSTART:20261202T100000Z', 'DURATION:PT1H', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');

let dir: string;
let env: Record<string, string>;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-users-remove-'));
  env = { DELEGATE_HOME: join(dir, 'home'), TZ: 'Europe/Berlin' };
  return () => rm(dir, { recursive: true, force: true });
});

async function run(args: string[], options: { stdin?: string; typed?: string; at?: number } = {}): Promise<FakeIo & { code: number }> {
  const io = fakeIo(env, () => options.at ?? NOW);
  io.readAll = async () => options.stdin ?? '';
  if (options.typed !== undefined) {
    // A person at a terminal, who types `typed` at the prompt.
    Object.assign(io, { stdin: { isTTY: true }, stderr: { write: (text: string) => void (io.err += text), isTTY: true }, readLine: async () => options.typed });
  }
  const code = await runCli(args, io);
  return Object.assign(io, { code });
}

async function withDb<T>(use: (store: Store) => Promise<T>): Promise<T> {
  const store = openStore(resolvePaths(env).db);
  try {
    return await use(store);
  } finally {
    store.close();
  }
}

/** A named account, added a second after the owner (so listed after it). */
const addAccount = async (name: string) => expect((await run(['users', 'add', name], { stdin: `${PASSWORD}\n`, at: ADDED })).code).toBe(0);

/** The local owner, created as `calendar add` creates it. */
async function addOwner(): Promise<UserRecord> {
  await writeFile(join(dir, 'work.ics'), EVENT);
  expect((await run(['calendar', 'add', 'work', join(dir, 'work.ics')])).code).toBe(0);
  return (await withDb((s) => s.ownerUser()))!;
}

/**
 * What a signed-in account has: a client, a live grant with a token (and an expired grant), a browser session, a
 * pending authorization request, and two calendars, one a feed whose secret URL and cached copy are stored.
 */
async function giveHoldings(user: UserRecord): Promise<{ grant: string; jti: string }> {
  const grant = `grt_${user.name}`;
  const jti = `jti_${user.name}`;
  await withDb(async (s) => {
    if (!(await s.clientById('cli_test'))) {
      await s.createClient({ clientId: 'cli_test', clientName: 'test app', kind: 'public', secretHash: null, redirectUris: ['http://127.0.0.1/cb'], grantTypes: ['authorization_code'], tokenEndpointAuthMethod: 'none', jwks: null, resource: null, metadata: {}, createdAt: NOW });
    }
    const base = { userId: user.id, clientId: 'cli_test', resource: 'http://127.0.0.1:8412/mcp', scope: 'slots:find', authorizationDetails: [], maxDepth: 1, createdAt: NOW - 1000, revokedAt: null };
    await s.createGrant({ ...base, id: grant, expiresAt: NOW + 86_400_000 });
    await s.createGrant({ ...base, id: `${grant}_old`, expiresAt: NOW - 1 });
    await s.recordIssuedToken({ jti, grantId: grant, familyId: null, parentJti: null, clientId: 'cli_test', audience: base.resource, scope: 'slots:find', createdAt: NOW - 1000, expiresAt: NOW + 600_000, revokedAt: null });
    await s.createSession({ idHash: `session_${user.name}`, userId: user.id, createdAt: NOW - 1000, expiresAt: NOW + 600_000, boundRequestHash: 'x', signedInBy: 'password' });
    await s.createAuthRequest({ id: `req_${user.name}`, sessionHash: `session_${user.name}`, userId: user.id, clientId: 'cli_test', redirectUri: 'http://127.0.0.1/cb', scope: 'slots:find', resource: base.resource, state: null, codeChallenge: 'c', authorizationDetails: [], calendarsShown: [], csrfHash: 'h', createdAt: NOW, expiresAt: NOW + 600_000 });
    const feedId = `cal_${user.name}_feed`;
    await s.addCalendar({ id: feedId, userId: user.id, name: 'diary', kind: 'url', source: `https://calendar.example/${FEED_SECRET}/basic.ics`, createdAt: NOW });
    await s.saveCalendarFeed({ calendarId: feedId, url: `https://calendar.example/${FEED_SECRET}/basic.ics`, body: `BEGIN:VCALENDAR\r\nX-MARK:${FEED_COPY}\r\nEND:VCALENDAR\r\n`, etag: null, lastModified: null, fetchedAt: NOW, changedAt: NOW, checkedAt: NOW, error: null, errorAt: null });
    await s.addCalendar({ id: `cal_${user.name}_file`, userId: user.id, name: 'work', kind: 'file', source: join(dir, 'work.ics'), createdAt: NOW });
  });
  return { grant, jti };
}

const userNamed = (name: string) => withDb((s) => s.userByName(name));

function tableCounts(userId: string): Record<string, number> {
  const db = new Database(resolvePaths(env).db, { readonly: true });
  try {
    const count = (sql: string) => (db.prepare(sql).get(userId) as { n: number }).n;
    return {
      sessions: count('SELECT count(*) AS n FROM sessions WHERE user_id = ?'),
      auth_requests: count('SELECT count(*) AS n FROM auth_requests WHERE user_id = ?'),
      calendars: count('SELECT count(*) AS n FROM calendars WHERE user_id = ?'),
      live_grants: count('SELECT count(*) AS n FROM grants WHERE user_id = ? AND revoked_at IS NULL'),
    };
  } finally {
    db.close();
  }
}

/** Which of `needles` the database file or its -wal holds. */
function leftInDatabase(needles: string[]): string[] {
  const files = ['delegate.db', 'delegate.db-wal'].map((name) => join(env.DELEGATE_HOME!, name)).filter(existsSync).map((file) => readFileSync(file).toString('latin1'));
  return needles.filter((needle) => files.some((text) => text.includes(needle)));
}

describe('users list', () => {
  it('lists every account with its owner mark, zone, active grants, added and last sign-in; --json is stable and holds no password hash', async () => {
    const owner = await addOwner();
    await addAccount('alice');
    const alice = (await userNamed('alice'))!;
    await giveHoldings(alice);
    await withDb((s) => s.appendAudit({ event: 'sign_in', user: alice.id, detail: { method: 'password' } }, NOW - 5000));
    await withDb((s) => s.appendAudit({ event: 'sign_in', user: alice.id, detail: { method: 'password' } }, NOW - 2000));

    const json = await run(['users', 'list', '--json']);
    expect([json.code, json.err]).toEqual([0, '']);
    expect(JSON.parse(json.out)).toEqual([
      { id: owner.id, name: owner.name, owner: true, time_zone: owner.timeZone, active_grants: 0, created_at: new Date(owner.createdAt).toISOString(), last_sign_in_at: null },
      { id: alice.id, name: 'alice', owner: false, time_zone: 'Europe/Berlin', active_grants: 1, created_at: new Date(ADDED).toISOString(), last_sign_in_at: new Date(NOW - 2000).toISOString() },
    ]);
    expect(json.out).not.toMatch(/scrypt|password/i);

    const text = await run(['users', 'list']);
    expect(text.code).toBe(0);
    expect(text.out.split('\n')).toEqual([
      `${owner.name} (local owner)\t${owner.timeZone}\t0 active grants\tadded ${new Date(owner.createdAt).toISOString()}\tnever signed in`,
      `alice\tEurope/Berlin\t1 active grant\tadded ${new Date(ADDED).toISOString()}\tlast sign-in ${new Date(NOW - 2000).toISOString()}`,
      '',
    ]);
    expect(text.out).not.toMatch(/scrypt/);
  });

  // Found in review (s26): an account `users remove` retired was seen only through the audit log and grants.
  it('--all also lists the removed accounts, as "alice (removed)" with when; --json gives them user_removed_at; without it, as before', async () => {
    const owner = await addOwner();
    await addAccount('alice');
    const old = (await userNamed('alice'))!;
    await withDb((s) => s.appendAudit({ event: 'sign_in', user: old.id, detail: { method: 'password' } }, NOW - 3000));
    const removedAt = NOW + 5000;
    expect((await run(['users', 'remove', 'alice', '--yes'], { at: removedAt })).code).toBe(0);
    await addAccount('alice');
    const fresh = (await userNamed('alice'))!;
    const ownerLine = `${owner.name} (local owner)\t${owner.timeZone}\t0 active grants\tadded ${new Date(owner.createdAt).toISOString()}\tnever signed in`;
    const freshLine = `alice\tEurope/Berlin\t0 active grants\tadded ${new Date(ADDED).toISOString()}\tnever signed in`;

    const live = await run(['users', 'list']);
    expect([live.code, live.out]).toEqual([0, `${ownerLine}\n${freshLine}\n`]);
    expect((JSON.parse((await run(['users', 'list', '--json'])).out) as Array<{ id: string }>).map((u) => u.id)).toEqual([owner.id, fresh.id]);

    const all = await run(['users', 'list', '--all']);
    expect([all.code, all.err]).toEqual([0, '']);
    // Both alices were added the same second (their order between them is the store's): both are there, the removed
    // one marked, with its last sign-in and, last, when it was removed.
    const removedLine = `alice (removed)\tEurope/Berlin\t0 active grants\tadded ${new Date(ADDED).toISOString()}\tlast sign-in ${new Date(NOW - 3000).toISOString()}\tremoved ${new Date(removedAt).toISOString()}`;
    expect(all.out.split('\n').sort()).toEqual(['', ownerLine, freshLine, removedLine].sort());
    const json = JSON.parse((await run(['users', 'list', '--all', '--json'])).out) as Array<Record<string, unknown>>;
    const byId = new Map(json.map((u) => [u.id, u]));
    expect(json).toHaveLength(3);
    expect(byId.get(old.id)).toEqual({
      id: old.id,
      name: 'alice',
      owner: false,
      time_zone: 'Europe/Berlin',
      active_grants: 0,
      created_at: new Date(ADDED).toISOString(),
      last_sign_in_at: new Date(NOW - 3000).toISOString(),
      user_removed_at: new Date(removedAt).toISOString(),
    });
    expect(byId.get(fresh.id)).not.toHaveProperty('user_removed_at');
    expect(byId.get(owner.id)).not.toHaveProperty('user_removed_at');
    expect(JSON.stringify(json)).not.toMatch(/scrypt|removed:/);
  });

  it('with nothing set up: no accounts, [] for --json, and no database created', async () => {
    const json = await run(['users', 'list', '--json']);
    expect([json.code, json.out]).toEqual([0, '[]\n']);
    const text = await run(['users', 'list']);
    expect([text.code, text.out]).toEqual([0, '']);
    expect(text.err).toContain('No accounts yet');
    expect(existsSync(resolvePaths(env).db)).toBe(false);
  });
});

describe('users remove', () => {
  it('revokes every live grant (listed for the resource servers), ends sessions, removes calendars securely, retires the account and records it, in one go', async () => {
    await addOwner();
    await addAccount('alice');
    await addAccount('bob');
    const alice = (await userNamed('alice'))!;
    const bob = (await userNamed('bob'))!;
    const { grant, jti } = await giveHoldings(alice);
    const bobs = await giveHoldings(bob);
    expect(leftInDatabase([FEED_SECRET, FEED_COPY])).toEqual([FEED_SECRET, FEED_COPY]);

    const removed = await run(['users', 'remove', 'alice', '--yes']);
    expect([removed.code, removed.out]).toEqual([0, '']);
    expect(removed.err).toBe(
      'Removed alice: 1 delegation revoked (their tokens are refused from now on, by the resource servers once their revocation list hears of it, normally within a second), 1 browser session ended, 2 calendars removed. The name is free: an account added with it later starts with none of these.\n',
    );

    expect(tableCounts(alice.id)).toEqual({ sessions: 0, auth_requests: 0, calendars: 0, live_grants: 1 }); // the expired grant is left as it was
    await withDb(async (s) => {
      expect(await s.userByName('alice')).toBeUndefined();
      expect(await s.userById(alice.id)).toBeUndefined();
      expect((await s.listUsers()).map((u) => u.name)).not.toContain('alice');
      expect((await s.grantById(grant))?.revokedAt).toBe(NOW);
      expect(await s.tokenStanding(jti, NOW)).toBe('revoked');
      expect((await s.revocationsSince(0, NOW)).grants).toEqual([grant]);
      // bob keeps everything.
      expect(await s.tokenStanding(bobs.jti, NOW)).toBe('active');
    });
    expect(tableCounts(bob.id)).toEqual({ sessions: 1, auth_requests: 1, calendars: 2, live_grants: 2 });
    // alice's feed went securely; bob's (the same address, as it happens) is still there.
    await run(['users', 'remove', 'bob', '--yes']);
    expect(leftInDatabase([FEED_SECRET, FEED_COPY])).toEqual([]);

    const log = await withDb((s) => s.listAudit({ user: alice.id }));
    expect(log.filter((r) => r.event !== 'user_added').map((r) => [r.event, r.grant, r.detail])).toEqual([
      ['grant_revoked', grant, { by: 'cli', via: 'user removed' }],
      ['user_removed', null, { by: 'cli', name: 'alice', grants_revoked: 1, sessions_ended: 1, calendars_removed: 2 }],
    ]);
    const verify = await run(['audit', '--verify']);
    expect(verify.code).toBe(0);
    expect((await run(['audit', '--event', 'user_removed'])).out).toMatch(/user_removed {2}for alice \(removed\) {2}by cli\n/);
  });

  it('the name added again is a new account that inherits nothing: no grant, session, calendar, and the old token stays refused', async () => {
    await addOwner();
    await addAccount('alice');
    const old = (await userNamed('alice'))!;
    const { jti } = await giveHoldings(old);
    expect((await run(['users', 'remove', 'alice', '--yes'])).code).toBe(0);
    await addAccount('alice');
    const fresh = (await userNamed('alice'))!;
    expect(fresh.id).not.toBe(old.id);
    expect(tableCounts(fresh.id)).toEqual({ sessions: 0, auth_requests: 0, calendars: 0, live_grants: 0 });
    const listed = JSON.parse((await run(['grants', 'list', '--all', '--user', 'alice', '--json'])).out);
    expect(listed).toEqual([]);
    await withDb(async (s) => {
      expect(await s.listCalendars(fresh.id)).toEqual([]);
      expect(await s.tokenStanding(jti, NOW)).toBe('revoked');
    });
    expect(JSON.parse((await run(['users', 'list', '--json'])).out).find((u: { name: string }) => u.name === 'alice')).toMatchObject({ id: fresh.id, active_grants: 0, last_sign_in_at: null });
  });

  it('nothing can be attached to a removed account afterwards (a server that read it just before): grant, session, request and calendar refused', async () => {
    await addOwner();
    await addAccount('alice');
    const alice = (await userNamed('alice'))!;
    expect((await run(['users', 'remove', 'alice', '--yes'])).code).toBe(0);
    // What a server that had read the account before the removal would write next.
    await expect(giveHoldings(alice)).rejects.toThrow(/the account was removed/);
    expect(tableCounts(alice.id)).toEqual({ sessions: 0, auth_requests: 0, calendars: 0, live_grants: 0 });
  });

  it('refuses the local owner: one line, exit 1, nothing changed', async () => {
    const owner = await addOwner();
    const refused = await run(['users', 'remove', owner.name, '--yes']);
    expect([refused.code, refused.out]).toEqual([1, '']);
    expect(refused.err).toBe(`delegate: ${owner.name} is the local owner, the account of this installation itself, which cannot be removed (\`delegate grants revoke\` ends its delegations).\n`);
    expect(await withDb((s) => s.ownerUser())).toEqual(owner);
    expect((await withDb((s) => s.listAudit())).map((r) => r.event)).toEqual(['user_added', 'calendar_added']);
  });

  it('a name that matches nothing: one line, exit 1, nothing changed (and no database created where there was none)', async () => {
    const none = await run(['users', 'remove', 'nobody', '--yes']);
    expect([none.code, none.out, none.err]).toEqual([1, '', 'delegate: There is no account named nobody.\n']);
    expect(existsSync(resolvePaths(env).db)).toBe(false);
    await addAccount('alice');
    const refused = await run(['users', 'remove', 'alicia', '--yes']);
    expect([refused.code, refused.err]).toEqual([1, 'delegate: There is no account named alicia.\n']);
    expect(await userNamed('alice')).toBeDefined();
    // A name no account could have is bad usage, said before anything is opened.
    expect((await run(['users', 'remove', 'no/such', '--yes'])).code).toBe(2);
  });

  it('alice and Alice both stored (from before names were unique ignoring case): the exact name picks one; a name matching both but neither exactly is refused, naming both', async () => {
    await addAccount('alice');
    // As the migration that made names unique ignoring case left such a pair (test/store/name-case-migration.test.ts).
    addCaseTwin(resolvePaths(env).db, 'Alice', ADDED + 1);
    const ambiguous = await run(['users', 'remove', 'ALICE', '--yes']);
    expect([ambiguous.code, ambiguous.err]).toEqual([2, 'delegate: ALICE names alice and Alice but for case: give the name of the one to remove exactly as it is spelled.\n']);
    expect((await withDb((s) => s.listUsers())).map((u) => u.name)).toEqual(['alice', 'Alice']);

    // The one that held the name in the case-blind index goes; the other takes its place there, so no third spelling can be added.
    const removed = await run(['users', 'remove', 'alice', '--yes']);
    expect(removed.code, removed.err).toBe(0);
    expect((await withDb((s) => s.listUsers())).map((u) => u.name)).toEqual(['Alice']);
    const third = await run(['users', 'add', 'ALICE'], { stdin: `${PASSWORD}\n` });
    expect([third.code, third.err]).toEqual([1, 'delegate: There is already an account named Alice. To set its password, add --replace: `delegate users add Alice --replace`.\n']);
    // Now one account alone matches ignoring case: that one is meant.
    expect((await run(['users', 'remove', 'ALICE', '--yes'])).code).toBe(0);
    expect(await withDb((s) => s.listUsers())).toEqual([]);
  });

  it('asks at a terminal: anything but y keeps the account (exit 1); y removes it', async () => {
    await addAccount('alice');
    const alice = (await userNamed('alice'))!;
    await giveHoldings(alice);
    const kept = await run(['users', 'remove', 'alice'], { typed: 'n' });
    expect(kept.code).toBe(1);
    expect(kept.err).toBe(
      'Remove the account alice? Its 1 active delegation will be revoked, its sign-ins ended and its 2 calendars removed; this cannot be undone. [y/N] delegate: Nothing was removed: alice stays as it was.\n',
    );
    expect(await userNamed('alice')).toBeDefined();
    expect((await run(['users', 'remove', 'alice'], { typed: '' })).code).toBe(1);
    expect(await userNamed('alice')).toBeDefined();
    const yes = await run(['users', 'remove', 'alice'], { typed: 'y' });
    expect(yes.code, yes.err).toBe(0);
    expect(await userNamed('alice')).toBeUndefined();
  });

  it('without a terminal and without --yes: refused as bad usage (exit 2), naming --yes; nothing changed', async () => {
    await addAccount('alice');
    const refused = await run(['users', 'remove', 'alice']);
    expect([refused.code, refused.out, refused.err]).toEqual([2, '', 'delegate: users remove asks before it removes an account, and there is no terminal here to ask: add --yes to remove alice without being asked.\n']);
    expect(await userNamed('alice')).toBeDefined();
  });

  it('whose user_removed record cannot be written: exit 1, nothing changed; the retry removes and records', async () => {
    await addAccount('alice');
    const alice = (await userNamed('alice'))!;
    const { jti } = await giveHoldings(alice);
    const restore = failAuditRecords(env.DELEGATE_HOME!, 'user_removed');
    try {
      expect((await run(['users', 'remove', 'alice', '--yes'])).code).toBe(1);
    } finally {
      restore();
    }
    expect(await userNamed('alice')).toBeDefined();
    expect(tableCounts(alice.id)).toEqual({ sessions: 1, auth_requests: 1, calendars: 2, live_grants: 2 });
    expect(await withDb((s) => s.tokenStanding(jti, NOW))).toBe('active');
    expect((await run(['users', 'remove', 'alice', '--yes'])).code).toBe(0);
    expect((await withDb((s) => s.listAudit({ events: ['user_removed'] }))).length).toBe(1);
  });
});

// Found in review (s25new): after `users remove alice`, `audit --user` and `grants list --user` refused her old id
// ("there is no account named usr_…, nor with that id"), plain `audit` named her `for usr_…` and --json gave
// user_name null, while README says the audit log keeps her records. A removed account is now found by its id (and by
// the name it had while no account has that name), named `alice (removed)`, and in --json by its name with user_removed_at.
describe('a removed account’s records and grants', () => {
  const REMOVED_AT = NOW + 5000;
  const removeAlice = async (at = REMOVED_AT) => expect((await run(['users', 'remove', 'alice', '--yes'], { at })).code).toBe(0);
  /** The records `audit …args` lists, as event and the account each is for; exit code and stderr beside them. */
  async function listed(...args: string[]): Promise<{ code: number; err: string; lines: string[] }> {
    const io = await run(['audit', ...args]);
    const lines = io.out.split('\n').filter((l) => l !== '').map((l) => l.split('  ').slice(2, 4).join('  '));
    return { code: io.code, err: io.err, lines };
  }

  it('audit --user and grants list --user take its id; lines name it "alice (removed)"; --json its name and user_removed_at', async () => {
    await addOwner();
    await addAccount('alice');
    await addAccount('bob');
    const alice = (await userNamed('alice'))!;
    const { grant } = await giveHoldings(alice);
    await removeAlice();
    const hers = ['user_added  for alice (removed)', 'grant_revoked  for alice (removed)', 'user_removed  for alice (removed)'];

    expect(await listed('--user', alice.id)).toEqual({ code: 0, err: '', lines: hers });
    // Her name, which no account has now, and which one removed account had: hers.
    expect(await listed('--user', 'alice')).toEqual({ code: 0, err: '', lines: hers });
    // The whole log names her as well, never by her id alone.
    const all = await run(['audit']);
    expect(all.out).toContain('user_removed  for alice (removed)  by cli\n');
    expect(all.out).not.toMatch(/for usr_/);

    const json = await run(['audit', '--json', '--user', alice.id]);
    const records = JSON.parse(json.out) as Array<Record<string, unknown>>;
    expect(records.map((r) => [r.event, r.user, r.user_name, r.user_removed_at])).toEqual([
      ['user_added', alice.id, 'alice', new Date(REMOVED_AT).toISOString()],
      ['grant_revoked', alice.id, 'alice', new Date(REMOVED_AT).toISOString()],
      ['user_removed', alice.id, 'alice', new Date(REMOVED_AT).toISOString()],
    ]);
    // A live account's records have no such field.
    const bobs = JSON.parse((await run(['audit', '--json', '--user', 'bob'])).out) as Array<Record<string, unknown>>;
    expect(bobs.map((r) => [r.user_name, 'user_removed_at' in r])).toEqual([['bob', false]]);

    const grants = await run(['grants', 'list', '--all', '--json', '--user', alice.id]);
    expect([grants.code, grants.err]).toEqual([0, '']);
    expect((JSON.parse(grants.out) as Array<Record<string, unknown>>).map((g) => [g.id, g.user, g.user_removed_at, g.status])).toEqual([
      [grant, 'alice', new Date(REMOVED_AT).toISOString(), 'revoked'],
      [`${grant}_old`, 'alice', new Date(REMOVED_AT).toISOString(), 'expired'],
    ]);
    const byName = await run(['grants', 'list', '--all', '--user', 'alice']);
    expect([byName.code, byName.out.split('\n').length - 1]).toEqual([0, 2]);
    expect((await run(['grants', 'show', grant])).out).toContain('  user:        alice (removed)\n');
  });

  it('the name added again: --user alice is the new account, and a line names the removed one’s id for its records', async () => {
    await addAccount('alice');
    const old = (await userNamed('alice'))!;
    await giveHoldings(old);
    await removeAlice();
    await addAccount('alice');
    const fresh = (await userNamed('alice'))!;

    const now = await listed('--user', 'alice');
    expect(now).toEqual({
      code: 0,
      err: `delegate: alice is the account named so now (${fresh.id}); an account removed earlier had that name too: --user ${old.id} for its records.\n`,
      lines: ['user_added  for alice'],
    });
    expect((await listed('--user', old.id)).lines).toEqual(['user_added  for alice (removed)', 'grant_revoked  for alice (removed)', 'user_removed  for alice (removed)']);
    const grants = await run(['grants', 'list', '--all', '--json', '--user', 'alice']);
    expect([grants.code, grants.out]).toEqual([0, '[]\n']);
    expect(grants.err).toBe(`delegate: alice is the account named so now (${fresh.id}); an account removed earlier had that name too: --user ${old.id} for its grants.\n`);
    expect(JSON.parse((await run(['grants', 'list', '--all', '--json', '--user', old.id])).out)).toHaveLength(2);
  });

  it('a name that two removed accounts had and none has now: refused in one line naming both ids; each id lists its own', async () => {
    await addAccount('alice');
    const first = (await userNamed('alice'))!;
    await removeAlice(REMOVED_AT);
    await addAccount('alice');
    const second = (await userNamed('alice'))!;
    await removeAlice(REMOVED_AT + 1000);
    const line = `delegate: No account is named alice now, and 2 removed accounts were: ${first.id} (removed ${new Date(REMOVED_AT).toISOString()}), ${second.id} (removed ${new Date(REMOVED_AT + 1000).toISOString()}); --user takes the id of the one whose`;

    const audit = await run(['audit', '--user', 'alice']);
    expect([audit.code, audit.out, audit.err]).toEqual([2, '', `${line} records you mean.\n`]);
    const grants = await run(['grants', 'list', '--user', 'alice']);
    expect([grants.code, grants.out, grants.err]).toEqual([1, '', `${line} grants you mean.\n`]);
    for (const account of [first, second]) {
      const records = JSON.parse((await run(['audit', '--json', '--user', account.id])).out) as Array<{ user: string; user_name: string }>;
      expect(records.map((r) => [r.user, r.user_name])).toEqual([
        [account.id, 'alice'],
        [account.id, 'alice'],
      ]);
    }
    // Neither a name nor an id any account had: refused as before.
    expect((await run(['audit', '--user', 'usr_nobody'])).err).toBe('delegate: --user: there is no account named usr_nobody, nor with that id.\n');
  });

  // Found in review (s25new2): `users add usr_<a removed account's id>` was taken, and from then on `--user <that id>`
  // listed the new account's records alone, with no word of the removed one's.
  it('a new account may not be named as an account id (usr_…): bad usage, before the password is read; nothing added', async () => {
    await addAccount('alice');
    const old = (await userNamed('alice'))!;
    await removeAlice();
    for (const name of [old.id, 'USR_other']) {
      const added = await run(['users', 'add', name], { stdin: 'a long and secret password\n' });
      expect([added.code, added.err]).toEqual([2, `delegate: A new account's name may not start with usr_, as account ids do (${name} would read as one).\n`]);
      expect(await userNamed(name)).toBeUndefined();
    }
    expect((await listed('--user', old.id)).lines).toEqual(['user_added  for alice (removed)', 'user_removed  for alice (removed)']);
  });
});

// Found in review (s26): `users remove ALICE` removes alice, but `audit --user ALICE` and `grants list --user ALICE`
// found no account. Both now pick as users remove does: the exact name first, then the one account named so but for
// case; one matching several but for case, none exactly, is bad usage (exit 2) naming them.
describe('--user but for case, in audit and grants list', () => {
  it('ALICE is alice, for audit and grants list alike; the exact spelling is unchanged', async () => {
    await addAccount('alice');
    const alice = (await userNamed('alice'))!;
    const { grant } = await giveHoldings(alice);
    for (const given of ['alice', 'ALICE', 'Alice']) {
      const audit = await run(['audit', '--json', '--user', given]);
      expect([audit.code, audit.err], given).toEqual([0, '']);
      expect((JSON.parse(audit.out) as Array<{ user: string; event: string }>).map((r) => [r.event, r.user])).toEqual([['user_added', alice.id]]);
      const grants = await run(['grants', 'list', '--json', '--user', given]);
      expect([grants.code, grants.err], given).toEqual([0, '']);
      expect((JSON.parse(grants.out) as Array<{ id: string }>).map((g) => g.id)).toEqual([grant]);
    }
    // A name no account has in any case: refused as before.
    expect((await run(['audit', '--user', 'alicia'])).code).toBe(2);
    expect((await run(['grants', 'list', '--user', 'alicia'])).code).toBe(1);
  });

  it('a removed account by its old name in another case; a live one named so but for case comes first', async () => {
    await addAccount('alice');
    const old = (await userNamed('alice'))!;
    expect((await run(['users', 'remove', 'alice', '--yes'], { at: NOW + 5000 })).code).toBe(0);
    const audit = await run(['audit', '--json', '--user', 'ALICE']);
    expect([audit.code, audit.err]).toEqual([0, '']);
    expect(new Set((JSON.parse(audit.out) as Array<{ user: string }>).map((r) => r.user))).toEqual(new Set([old.id]));
    await addAccount('Alice');
    const fresh = (await userNamed('Alice'))!;
    const now = await run(['audit', '--json', '--user', 'ALICE']);
    expect(now.code).toBe(0);
    expect(now.err).toBe(`delegate: Alice is the account named so now (${fresh.id}); an account removed earlier had that name too: --user ${old.id} for its records.\n`);
    expect((JSON.parse(now.out) as Array<{ user: string }>).map((r) => r.user)).toEqual([fresh.id]);
    // The removed account's own spelling too (found in review, s26new: it read the removed alice's records, while
    // `users remove alice` acts on Alice, the account that took the name).
    for (const args of [['audit', '--json'], ['grants', 'list', '--json']]) {
      const exact = await run([...args, '--user', 'alice']);
      expect([exact.code, exact.err], args.join(' ')).toEqual([0, `delegate: Alice is the account named so now (${fresh.id}); an account removed earlier had that name too: --user ${old.id} for its ${args[0] === 'audit' ? 'records' : 'grants'}.\n`]);
    }
    expect((JSON.parse((await run(['audit', '--json', '--user', 'alice'])).out) as Array<{ user: string }>).map((r) => r.user)).toEqual([fresh.id]);
  });

  it('alice and Alice both stored: the exact name picks one; ALICE is refused as bad usage (exit 2), naming both, for audit and grants list', async () => {
    await addAccount('alice');
    const lower = (await userNamed('alice'))!;
    // As the migration that made names unique ignoring case left such a pair (test/store/name-case-migration.test.ts).
    addCaseTwin(resolvePaths(env).db, 'Alice', ADDED + 1);
    await withDb((s) => s.appendAudit({ event: 'sign_in', user: 'usr_upper', detail: { method: 'password' } }, NOW));
    const line = `delegate: --user ALICE names 2 accounts but for case: alice (${lower.id}), Alice (usr_upper); give the name exactly as it is spelled, or the id.\n`;
    for (const args of [['audit'], ['audit', '--json'], ['grants', 'list'], ['grants', 'list', '--json']]) {
      const refused = await run([...args, '--user', 'ALICE']);
      expect([refused.code, refused.out, refused.err], args.join(' ')).toEqual([2, '', line]);
    }
    const exact = await run(['audit', '--json', '--user', 'Alice']);
    expect([exact.code, exact.err]).toEqual([0, '']);
    expect((JSON.parse(exact.out) as Array<{ user: string }>).map((r) => r.user)).toEqual(['usr_upper']);
    expect((await run(['grants', 'list', '--json', '--user', 'alice'])).code).toBe(0);
  });
});
