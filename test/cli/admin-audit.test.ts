// The administrator's changes are on the audit log: `users add` (and
// `--replace`, a password change), `agents register`, `calendar add|remove`
// each append one record, by cli, holding no secret, and the chain still
// verifies (found in review: each of them succeeded and appended nothing, so
// an agent could be registered, act in actor chains and report to /audit
// with no record of how it came to be there).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { verifyPassword } from '../../src/authz/password.js';
import { hashWithCost } from '../authz/password-hashes.js';
import { runCli } from '../../src/cli/program.js';
import { resolvePaths } from '../../src/config.js';
import { openStore, type AuditRecord } from '../../src/store/index.js';
import { addCaseTwin } from '../support/case-twin.js';
import { fakeIo, type FakeIo } from './fake-io.js';
import { failAuditRecords } from '../support/fail-audit.js';

// Accounts added by the dozen (each users add hashes a password): scrypt at N=2^12 here (test/support/cheap-scrypt.ts).
vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

const PASSWORD = 'a long and secret password';
const EVENT = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//t//EN', 'BEGIN:VEVENT', 'UID:1', 'DTSTART:20261202T100000Z', 'DURATION:PT1H', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');

let dir: string;
let env: Record<string, string>;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-admin-audit-'));
  env = { DELEGATE_HOME: join(dir, 'home'), TZ: 'Europe/Berlin' };
  return () => rm(dir, { recursive: true, force: true });
});

/** Where the refusals of the local owner's zone and password say its zone is set: the config file, by its path. */
function ownerZoneSetting(): string {
  return `'timeZone' in its config file ${join(dir, 'home', 'config.json')} (a JSON object such as {"timeZone": "Europe/Berlin"}; create it if it is not there)`;
}

async function run(args: string[], stdin = ''): Promise<FakeIo & { code: number }> {
  const io = fakeIo(env);
  io.readAll = async () => stdin;
  const code = await runCli(args, io);
  return Object.assign(io, { code });
}

async function records(): Promise<AuditRecord[]> {
  const store = openStore(resolvePaths(env).db);
  try {
    return await store.listAudit();
  } finally {
    store.close();
  }
}

async function storedZone(name: string): Promise<string | undefined> {
  return (await storedUser(name))?.timeZone;
}

async function storedUser(name: string) {
  const store = openStore(resolvePaths(env).db);
  try {
    return await store.userByName(name);
  } finally {
    store.close();
  }
}

/** The local owner, created as `calendar add` creates it. */
async function addOwner() {
  await writeFile(join(dir, 'work.ics'), EVENT);
  expect((await run(['calendar', 'add', 'work', join(dir, 'work.ics')])).code).toBe(0);
  const store = openStore(resolvePaths(env).db);
  const owner = await store.ownerUser().finally(() => store.close());
  if (!owner) throw new Error('no owner was created');
  return owner;
}

async function expectIntact(count: number): Promise<void> {
  const verify = await run(['audit', '--verify']);
  expect(verify.code).toBe(0);
  expect(verify.out).toMatch(new RegExp(`^The audit log is intact: ${count} records, head [0-9a-f]{64}\\.\\n$`));
}

describe('admin changes on the audit log', () => {
  it('users add, then --replace: user_added, then password_set, without the password', async () => {
    expect((await run(['users', 'add', 'hana'], `${PASSWORD}\n`)).code).toBe(0);
    expect((await run(['users', 'add', 'hana', '--replace'], `${PASSWORD} changed\n`)).code).toBe(0);
    const log = await records();
    expect(log.map((r) => [r.event, r.detail])).toEqual([
      ['user_added', { by: 'cli', name: 'hana' }],
      ['password_set', { by: 'cli', name: 'hana' }],
    ]);
    expect(log[0]!.user).toMatch(/^usr_/);
    expect(log[1]!.user).toBe(log[0]!.user);
    expect(JSON.stringify(log)).not.toContain('secret password');
    await expectIntact(2);
    const listing = await run(['audit']);
    expect(listing.out).toMatch(/#1 {2}user_added {2}for hana {2}by cli\n/);
  });

  it('users add --replace --time-zone sets the stored zone too, says so, and records it (found in review s15rest: it said it succeeded and left the zone)', async () => {
    expect((await run(['users', 'add', 'bob', '--time-zone', 'Europe/Berlin'], `${PASSWORD}\n`)).code).toBe(0);
    const moved = await run(['users', 'add', 'bob', '--replace', '--time-zone', 'America/New_York'], `${PASSWORD} changed\n`);
    expect([moved.code, moved.err]).toEqual([0, 'Set the password of bob; its time zone is now America/New_York (was Europe/Berlin).\n']);
    expect(await storedZone('bob')).toBe('America/New_York');
    // The same zone again: nothing to change, and said so.
    const same = await run(['users', 'add', 'bob', '--replace', '--time-zone', 'America/New_York'], `${PASSWORD} again\n`);
    expect([same.code, same.err]).toEqual([0, 'Set the password of bob; its time zone stays America/New_York.\n']);
    // No --time-zone: the zone is kept (not this computer's, TZ=Europe/Berlin here).
    const kept = await run(['users', 'add', 'bob', '--replace'], `${PASSWORD} once more\n`);
    expect([kept.code, kept.err]).toEqual([0, 'Set the password of bob.\n']);
    expect(await storedZone('bob')).toBe('America/New_York');
    // A zone this computer does not know is bad usage, as for a new account; nothing changes.
    const unknown = await run(['users', 'add', 'bob', '--replace', '--time-zone', 'Mars/Olympus'], `${PASSWORD} and more\n`);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('--time-zone');
    expect(await storedZone('bob')).toBe('America/New_York');
    expect((await records()).map((r) => [r.event, r.detail])).toEqual([
      ['user_added', { by: 'cli', name: 'bob' }],
      ['password_set', { by: 'cli', name: 'bob', timeZone: 'America/New_York', previousTimeZone: 'Europe/Berlin' }],
      ['password_set', { by: 'cli', name: 'bob' }],
      ['password_set', { by: 'cli', name: 'bob' }],
    ]);
    await expectIntact(4);
  });

  it('users set-time-zone changes the zone and nothing else: the password still works, and time_zone_set is recorded', async () => {
    expect((await run(['users', 'add', 'bob', '--time-zone', 'Europe/Berlin'], `${PASSWORD}\n`)).code).toBe(0);
    const hash = (await storedUser('bob'))?.passwordHash;
    // Spelled as users add --time-zone spells it; no password is read (stdin would be refused as one: too short).
    const moved = await run(['users', 'set-time-zone', 'bob', 'america/new_york'], 'x');
    expect([moved.code, moved.out, moved.err]).toEqual([0, '', 'The time zone of bob is now America/New_York (was Europe/Berlin).\n']);
    const bob = await storedUser('bob');
    expect(bob?.timeZone).toBe('America/New_York');
    expect(bob?.passwordHash).toBe(hash);
    expect(await verifyPassword(PASSWORD, bob?.passwordHash)).toBe(true);
    // The zone it has: nothing changes, nothing is recorded.
    const same = await run(['users', 'set-time-zone', 'bob', 'America/New_York']);
    expect([same.code, same.err]).toEqual([0, 'The time zone of bob is America/New_York already; nothing changed.\n']);
    const log = await records();
    expect(log.map((r) => [r.event, r.detail])).toEqual([
      ['user_added', { by: 'cli', name: 'bob' }],
      ['time_zone_set', { by: 'cli', name: 'bob', timeZone: 'America/New_York', previousTimeZone: 'Europe/Berlin' }],
    ]);
    expect(log[1]!.user).toBe(bob?.id);
    await expectIntact(2);
    expect((await run(['audit', '--event', 'time_zone_set'])).out).toMatch(/#2 {2}time_zone_set {2}for bob {2}by cli {2}time zone America\/New_York\n/);
  });

  // Found at stop 25: with accounts named as the computer's user and as its `-owner` fallback (any case) added before
  // the first start, the owner's creation failed on SQLite's "UNIQUE constraint failed: users.name", exit 1, and so
  // did every `serve` and `calendar add` after it.
  it('the local owner takes the first free name when the OS user name and its -owner fallback are both accounts', async () => {
    const me = userInfo().username;
    expect((await run(['users', 'add', me.toUpperCase()], `${PASSWORD}\n`)).code).toBe(0);
    expect((await run(['users', 'add', `${me}-OWNER`], `${PASSWORD}\n`)).code).toBe(0);
    const owner = await addOwner();
    expect(owner.name).toBe(`${me}-owner-2`);
    expect((await storedUser(me.toUpperCase()))?.isOwner).toBe(false);
    expect((await storedUser(`${me}-OWNER`))?.isOwner).toBe(false);
  });

  // Found in review (regress17): the change and its record were two writes; with the record failing, the zone
  // (or password) changed off the log, and a retry found nothing to change and recorded nothing.
  it('users set-time-zone and users add --replace whose record cannot be written: exit 1, nothing changed; the retry changes and records', async () => {
    expect((await run(['users', 'add', 'bob', '--time-zone', 'Europe/Berlin'], `${PASSWORD}\n`)).code).toBe(0);
    const hash = (await storedUser('bob'))?.passwordHash;
    for (const event of ['time_zone_set', 'password_set']) {
      const restore = failAuditRecords(env.DELEGATE_HOME!, event);
      try {
        const failed = event === 'time_zone_set' ? await run(['users', 'set-time-zone', 'bob', 'Asia/Tokyo']) : await run(['users', 'add', 'bob', '--replace', '--time-zone', 'Asia/Tokyo'], 'another long secret password\n');
        expect(failed.code, failed.err).toBe(1);
        expect(await storedUser('bob')).toMatchObject({ timeZone: 'Europe/Berlin', passwordHash: hash });
      } finally {
        restore();
      }
    }
    expect((await run(['users', 'set-time-zone', 'bob', 'Asia/Tokyo'])).code).toBe(0);
    expect((await records()).map((r) => r.event)).toEqual(['user_added', 'time_zone_set']);
    await expectIntact(2);
  });

  it('users set-time-zone for an account that does not exist: exit 1, nothing added or recorded', async () => {
    expect((await run(['users', 'add', 'bob'], `${PASSWORD}\n`)).code).toBe(0);
    const missing = await run(['users', 'set-time-zone', 'nobody', 'UTC']);
    expect([missing.code, missing.err]).toEqual([1, 'delegate: There is no account named nobody.\n']);
    expect(await storedUser('nobody')).toBeUndefined();
    expect((await records()).map((r) => r.event)).toEqual(['user_added']);
  });

  // Found in review (s25docs): the refusals sent a new owner to `calendar list` for the config file's path, which it
  // names only when the file is there and cannot be used; now they name the path.
  it('users set-time-zone refuses the local owner, whose zone config.json sets, naming that file (exit 1)', async () => {
    const owner = await addOwner();
    const refused = await run(['users', 'set-time-zone', owner.name, 'Asia/Tokyo']);
    expect(refused.code).toBe(1);
    expect(refused.err).toBe(`delegate: ${owner.name} is the local owner, whose time zone is set by ${ownerZoneSetting()}.\n`);
    expect((await storedUser(owner.name))?.timeZone).toBe(owner.timeZone);
  });

  // Found in review (s23accounts): `users add <owner> --replace [--time-zone Z]` gave the owner a password and said its
  // zone changed, which the backend ignores for config.json's; set-time-zone refused it. Refused alike, before the
  // password is read (stdin here would be a good one), nothing changed or recorded.
  it('users add --replace refuses the local owner, which signs in by delegate login and whose zone config.json sets (exit 1)', async () => {
    const owner = await addOwner();
    const before = (await records()).length;
    for (const args of [['--replace'], ['--replace', '--time-zone', 'Asia/Tokyo']]) {
      const refused = await run(['users', 'add', owner.name, ...args], `${PASSWORD}\n`);
      expect([refused.code, refused.out]).toEqual([1, '']);
      expect(refused.err).toBe(
        `delegate: ${owner.name} is the local owner, which signs in with \`delegate login\` and has no password; ` +
          `its time zone is set by ${ownerZoneSetting()}.\n`,
      );
      expect(await storedUser(owner.name)).toEqual(owner);
    }
    // Without --replace: taken, with no advice to add --replace (which would be refused).
    const taken = await run(['users', 'add', owner.name], `${PASSWORD}\n`);
    expect([taken.code, taken.err]).toEqual([1, `delegate: There is already an account named ${owner.name}.\n`]);
    expect((await records()).length).toBe(before);
  });

  // Found in review (s24accounts): an owner given a password by `users add <owner> --replace` before that was refused
  // kept it, a second way in. The next command that opens the store takes it away, and says so on the log.
  it('a local owner given a password before that was refused loses it when the store next opens, recorded as password_cleared', async () => {
    const owner = await addOwner();
    const db = new Database(resolvePaths(env).db);
    try {
      db.prepare('UPDATE users SET password_hash = ? WHERE id = ?').run(hashWithCost(PASSWORD, 1 << 10), owner.id);
    } finally {
      db.close();
    }
    const shown = await run(['audit']);
    expect(shown.code).toBe(0);
    expect(shown.out).toMatch(new RegExp(`#\\d+  password_cleared  for ${owner.name}  by upgrade\n$`));
    expect(await storedUser(owner.name)).toEqual(owner);
    expect((await records()).filter((r) => r.event === 'password_cleared').map((r) => [r.user, r.detail])).toEqual([[owner.id, { by: 'upgrade', name: owner.name }]]);
    await expectIntact((await records()).length);
  });

  // Before s33team, this added carl ("Added carl."): a typo in the name of the account to reset made a new one.
  // test/cli/users-operator.test.ts has the rest.
  it('users add --replace for an account that does not exist is refused: exit 1, nothing added or recorded', async () => {
    const refused = await run(['users', 'add', 'carl', '--replace', '--time-zone', 'Asia/Tokyo'], `${PASSWORD}\n`);
    expect([refused.code, refused.err]).toEqual([1, 'delegate: There is no account named carl, so --replace has no password to set. To add a new account, leave out --replace: `delegate users add carl`.\n']);
    expect(await storedZone('carl')).toBeUndefined();
  });

  // Found in review (s23accounts): alice and Alice could both be added, while the sign-in rate limit counts failures
  // per name lower-cased (login.ts), so guesses against one locked the other out. A name taken but for case is
  // taken, said in the same line naming the account that has it, with or without --replace.
  it('users add refuses a name that differs from an account\'s only in case, naming that account (exit 1)', async () => {
    expect((await run(['users', 'add', 'alice'], `${PASSWORD}\n`)).code).toBe(0);
    const hash = (await storedUser('alice'))?.passwordHash;
    const taken = 'delegate: There is already an account named alice. To set its password, add --replace: `delegate users add alice --replace`.\n';
    for (const args of [['Alice'], ['ALICE'], ['Alice', '--replace'], ['aLiCe', '--replace', '--time-zone', 'Asia/Tokyo']]) {
      const refused = await run(['users', 'add', ...args], `${PASSWORD}\n`);
      expect([refused.code, refused.out, refused.err]).toEqual([1, '', taken]);
    }
    expect(await storedUser('Alice')).toBeUndefined();
    expect((await storedUser('alice'))?.passwordHash).toBe(hash);
    expect((await records()).map((r) => r.event)).toEqual(['user_added']);
  });

  it('a database that already holds two names differing only in case keeps both: each is replaced by its own name', async () => {
    expect((await run(['users', 'add', 'alice'], `${PASSWORD}\n`)).code).toBe(0);
    // Added before names were unique ignoring case: as the migration that made them so left it (case_duplicate, left
    // out of the index; test/store/name-case-migration.test.ts migrates such a database).
    addCaseTwin(resolvePaths(env).db, 'Alice', Date.UTC(2026, 11, 1, 9));
    const replaced = await run(['users', 'add', 'Alice', '--replace'], 'another long secret password\n');
    expect([replaced.code, replaced.err]).toEqual([0, 'Set the password of Alice.\n']);
    expect(await verifyPassword('another long secret password', (await storedUser('Alice'))?.passwordHash)).toBe(true);
    expect(await verifyPassword(PASSWORD, (await storedUser('alice'))?.passwordHash)).toBe(true);
  });

  it('a refused users add appends nothing', async () => {
    expect((await run(['users', 'add', 'hana'], `${PASSWORD}\n`)).code).toBe(0);
    expect((await run(['users', 'add', 'hana'], `${PASSWORD}\n`)).code).not.toBe(0);
    expect((await records()).map((r) => r.event)).toEqual(['user_added']);
  });

  it('agents register: agent_registered with the key thumbprint, never the key', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    const keyFile = join(dir, 'helper-key.json');
    await writeFile(keyFile, JSON.stringify(jwk));
    const register = (name: string) =>
      run(['agents', 'register', 'helper', '--url', 'http://127.0.0.1:9000/mcp', '--key', keyFile, '--name', name, '--operator', 'Ops', '--contact', 'ops@example.com', '--description', 'Drafts agendas', '--scope', 'agenda:write']);
    expect((await register('Helper')).code).toBe(0);
    expect((await register('Helper 2')).code).toBe(0);
    const log = await records();
    const thumbprint = await calculateJwkThumbprint({ kty: jwk.kty!, crv: jwk.crv!, x: jwk.x!, y: jwk.y! });
    const detail = { by: 'cli', scopes: ['agenda:write'], downstream: [], key_thumbprints: [thumbprint] };
    // The first registration on a new data directory made the authorization server's first signing key (it signs the
    // agent's identity statement): recorded by its id.
    const store = openStore(resolvePaths(env).db);
    const [signingKey] = await store.signingKeys().finally(() => store.close());
    expect(log.map((r) => [r.event, r.client, r.resource, r.detail])).toEqual([
      ['signing_key_created', null, null, { by: 'setup', kid: signingKey!.kid }],
      ['agent_registered', 'helper', 'http://127.0.0.1:9000/mcp', { ...detail, name: 'Helper', replaced: false }],
      ['agent_registered', 'helper', 'http://127.0.0.1:9000/mcp', { ...detail, name: 'Helper 2', replaced: true }],
    ]);
    expect(JSON.stringify(log)).not.toContain(jwk.d!);
    expect(JSON.stringify(log)).not.toContain(jwk.x!);
    expect(JSON.stringify(log)).not.toContain(String((signingKey!.privateJwk as { d: string }).d));
    await expectIntact(3);
    // Said to be the CLI's doing, not the agent's.
    const printed = (await run(['audit'])).out;
    expect(printed).toMatch(new RegExp(`#1 {2}signing_key_created {2}by setup {2}key ${signingKey!.kid}\\n`));
    expect(printed).toMatch(/#2 {2}agent_registered {2}by cli {2}http:\/\/127\.0\.0\.1:9000\/mcp {2}helper Helper\n/);
  });

  it('calendar add and remove: calendar_added (a feed without its path) and calendar_removed', async () => {
    const file = join(dir, 'work.ics');
    await writeFile(file, EVENT);
    expect((await run(['calendar', 'add', 'work', file])).code).toBe(0);
    expect((await run(['calendar', 'add', 'private', '-', '--no-check'], 'https://calendar.example/private-s3cret/basic.ics\n')).code).toBe(0);
    expect((await run(['calendar', 'remove', 'work'])).code).toBe(0);
    const log = await records();
    expect(log.map((r) => [r.event, r.detail])).toEqual([
      // The owner, set up by the first of them (ensureOwner), on the log as the servers' first start records it.
      ['user_added', { by: 'setup', name: expect.any(String), owner: true }],
      ['calendar_added', { by: 'cli', name: 'work', kind: 'file', source: file }],
      ['calendar_added', { by: 'cli', name: 'private', kind: 'url', source: 'https://calendar.example/…' }],
      ['calendar_removed', { by: 'cli', name: 'work' }],
    ]);
    expect(new Set(log.map((r) => r.user)).size).toBe(1);
    expect(JSON.stringify(log)).not.toContain('s3cret');
    await expectIntact(4);
  });

  // Found in review (s22store): users add, calendar add and calendar remove wrote the change and its record in two
  // transactions, so a kill (or a record that could not be written) between them left the change off the log.
  it.each([
    ['user_added', ['users', 'add', 'bob'], { users: ['bob'], calendars: ['home'] }],
    ['calendar_added', ['calendar', 'add', 'work', 'WORK'], { users: [], calendars: ['home', 'work'] }],
    ['calendar_removed', ['calendar', 'remove', 'home'], { users: [], calendars: [] }],
  ])('%s whose record cannot be written: exit 1, nothing changed; the retry changes and records', async (event, args, after) => {
    const file = join(dir, 'work.ics');
    await writeFile(file, EVENT);
    expect((await run(['calendar', 'add', 'home', file])).code).toBe(0); // creates the database and the owner
    const state = async () => {
      const store = openStore(resolvePaths(env).db);
      try {
        const owner = await store.ownerUser();
        const users = (await store.listUsers()).filter((u) => !u.isOwner).map((u) => u.name);
        return { users, calendars: (await store.listCalendars(owner!.id)).map((c) => c.name) };
      } finally {
        store.close();
      }
    };
    const before = await state();
    const attempt = () => run(args.map((a) => (a === 'WORK' ? file : a)), `${PASSWORD}\n`);
    const restore = failAuditRecords(env.DELEGATE_HOME!, event);
    try {
      const failed = await attempt();
      expect(failed.code, failed.err).toBe(1);
      expect(await state()).toEqual(before);
    } finally {
      restore();
    }
    expect((await attempt()).code).toBe(0);
    expect(await state()).toEqual(after);
    expect((await records()).map((r) => r.event)).toEqual(['user_added', 'calendar_added', event]);
    await expectIntact(3);
  });

  it('a calendar that cannot be read is not added, and not recorded', async () => {
    expect((await run(['calendar', 'add', 'missing', join(dir, 'nope.ics')])).code).not.toBe(0);
    // The owner was set up before the calendar was read (its time zone is the check's), and that is recorded.
    expect((await records()).map((r) => [r.event, r.detail.by])).toEqual([['user_added', 'setup']]);
  });
});

describe('a resource server’s record on `delegate audit`', () => {
  // Found in review (s23audit): a reported tool_call carrying by, name and timeZone printed
  // "… find_slot … ok time zone Europe/Paris", words only the AS writes, on the records it writes.
  it('shows no by, name or time zone from a tool_call or freebusy_read detail', async () => {
    const store = openStore(resolvePaths(env).db);
    try {
      const forged = { by: 'cli', name: 'root', timeZone: 'Europe/Paris' };
      await store.appendAudit({ event: 'tool_call', user: 'usr_1', client: 'cli_1', actors: ['cli_1', 'usr_1'], detail: { tool: 'find_slot', outcome: 'ok', ...forged } }, 1_000);
      await store.appendAudit({ event: 'freebusy_read', user: 'usr_1', client: 'calendar-agent', actors: ['calendar-agent', 'cli_1', 'usr_1'], detail: { outcome: 'ok', ...forged } }, 2_000);
    } finally {
      store.close();
    }
    const lines = (await run(['audit'])).out.trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line).not.toMatch(/time zone|Europe\/Paris|by cli\b|root/);
    }
    expect(lines[0]).toMatch(/tool_call {2}for usr_1 {2}by cli_1 {2}find_slot ok$/);
  });

  // Found at stop 25: only the grant's first calendar entries were compared, so a step-up that narrowed only the
  // second place's entry read "narrowed (1 token revoked)" with no word of what it took back.
  it('says what a consent changed at each place of a grant with several calendar entries, and as before with one', async () => {
    const agent = 'http://127.0.0.1:8412/mcp';
    const calendar = 'http://127.0.0.1:8411';
    const entry = (place: string, calendars: string[] | undefined, days: number) => ({ type: 'calendar', locations: [place], actions: ['find_slot'], ...(calendars ? { calendars } : {}), lookahead_days: days });
    const consent = (previous: unknown[], current: unknown[]) => ({
      decision: 'approved',
      scope: 'slots:find',
      previous_scope: 'slots:find',
      previous_authorization_details: previous,
      authorization_details: current,
      narrowed: true,
      tokens_revoked: 1,
    });
    const store = openStore(resolvePaths(env).db);
    try {
      await store.appendAudit({ event: 'consent', user: 'usr_1', client: 'cli_1', actors: ['usr_1'], detail: consent([entry(agent, undefined, 30), entry(calendar, ['work'], 30)], [entry(agent, undefined, 30), entry(calendar, ['work'], 7)]) }, 1_000);
      await store.appendAudit({ event: 'consent', user: 'usr_1', client: 'cli_1', actors: ['usr_1'], detail: consent([entry(agent, undefined, 30), entry(calendar, ['work'], 30)], [entry(agent, ['demo'], 30)]) }, 2_000);
      await store.appendAudit({ event: 'consent', user: 'usr_1', client: 'cli_1', actors: ['usr_1'], detail: consent([entry(agent, undefined, 30)], [entry(agent, undefined, 7)]) }, 3_000);
      // An older grant stored with a place named twice (`[A, A]`), narrowed there: the same place, not one removed and one added.
      const twice = { ...entry(agent, undefined, 30), locations: [agent, agent] };
      await store.appendAudit({ event: 'consent', user: 'usr_1', client: 'cli_1', actors: ['usr_1'], detail: consent([twice, entry(calendar, ['work'], 30)], [entry(agent, undefined, 7), entry(calendar, ['work'], 30)]) }, 4_000);
    } finally {
      store.close();
    }
    const lines = (await run(['audit'])).out.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(new RegExp(`  narrowed \\(lookahead at ${calendar} 30 → 7 days, 1 token revoked\\)$`));
    expect(lines[1]).toMatch(new RegExp(`  narrowed \\(calendars at ${agent} all → demo, ${calendar} removed, 1 token revoked\\)$`));
    expect(lines[2]).toMatch(/ {2}narrowed \(lookahead 30 → 7 days, 1 token revoked\)$/);
    expect(lines[3]).toMatch(new RegExp(`  narrowed \\(lookahead at ${agent} 30 → 7 days, 1 token revoked\\)$`));
  });
});

