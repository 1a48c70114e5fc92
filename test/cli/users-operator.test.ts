// Small operator-facing fixes in `users` and `grants list --user`, found in review (s33team), run in-process on a
// data directory of their own: `users add NAME --replace` for a name no account has (a typo) is refused, not added;
// `grants list --user ''` is bad usage, as `audit --user ''` is; `users list` shows the local owner's zone in effect
// (config.json's timeZone); a password holding a line break or another control character is refused; `users
// set-time-zone` finds an account but for case, as `users remove` does; and a new password says how many
// delegations of the account stand, which it does not end.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { verifyPassword } from '../../src/authz/password.js';
import { runCli } from '../../src/cli/program.js';
import { resolvePaths } from '../../src/config.js';
import { openStore, type AuditRecord, type Store, type UserRecord } from '../../src/store/index.js';
import { addCaseTwin } from '../support/case-twin.js';
import { fakeIo, type FakeIo } from './fake-io.js';

// Several accounts a test (each users add hashes a password): scrypt at N=2^12 here (test/support/cheap-scrypt.ts).
vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

const PASSWORD = 'a long and secret password';
const NOW = Date.UTC(2026, 11, 1, 8);
const EVENT = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//t//EN', 'BEGIN:VEVENT', 'UID:1', 'DTSTART:20261202T100000Z', 'DURATION:PT1H', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');

let dir: string;
let env: Record<string, string>;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-users-operator-'));
  env = { DELEGATE_HOME: join(dir, 'home'), TZ: 'Europe/Berlin' };
  return () => rm(dir, { recursive: true, force: true });
});

/** The command run in-process; `stdin` is what is piped, and `read` says whether the command read it. */
async function run(args: string[], stdin = ''): Promise<FakeIo & { code: number; read: boolean }> {
  const io = fakeIo(env, () => NOW);
  let read = false;
  io.readAll = async () => {
    read = true;
    return stdin;
  };
  const code = await runCli(args, io);
  return Object.assign(io, { code, read });
}

async function withDb<T>(use: (store: Store) => Promise<T>): Promise<T> {
  const store = openStore(resolvePaths(env).db);
  try {
    return await use(store);
  } finally {
    store.close();
  }
}

const userNamed = (name: string) => withDb((s) => s.userByName(name));
const records = (): Promise<AuditRecord[]> => withDb((s) => s.listAudit());
const namedAccounts = async () => (await withDb((s) => s.listUsers())).filter((u) => !u.isOwner).map((u) => u.name);

async function addAccount(name: string): Promise<UserRecord> {
  const added = await run(['users', 'add', name], `${PASSWORD}\n`);
  expect([added.code, added.err]).toEqual([0, `Added ${name}.\n`]);
  return (await userNamed(name))!;
}

/** The local owner, created as `calendar add` creates it (its stored zone: this computer's, TZ). */
async function addOwner(): Promise<UserRecord> {
  await writeFile(join(dir, 'work.ics'), EVENT);
  expect((await run(['calendar', 'add', 'work', join(dir, 'work.ics')])).code).toBe(0);
  return (await withDb((s) => s.ownerUser()))!;
}

/** `n` live grants of `user` (and one expired and one revoked, which do not stand). */
async function giveGrants(user: UserRecord, n: number): Promise<void> {
  await withDb(async (s) => {
    await s.createClient({ clientId: 'cli_test', clientName: 'test app', kind: 'public', secretHash: null, redirectUris: ['http://127.0.0.1/cb'], grantTypes: ['authorization_code'], tokenEndpointAuthMethod: 'none', jwks: null, resource: null, metadata: {}, createdAt: NOW });
    const base = { userId: user.id, clientId: 'cli_test', resource: 'http://127.0.0.1:8412/mcp', scope: 'slots:find', authorizationDetails: [], maxDepth: 1, createdAt: NOW - 1000, revokedAt: null };
    for (let i = 0; i < n; i++) await s.createGrant({ ...base, id: `grt_${user.name}_${i}`, expiresAt: NOW + 86_400_000 });
    await s.createGrant({ ...base, id: `grt_${user.name}_expired`, expiresAt: NOW - 1 });
    await s.createGrant({ ...base, id: `grt_${user.name}_revoked`, expiresAt: NOW + 86_400_000, revokedAt: NOW - 1 });
  });
}

describe('users add NAME --replace for a name no account has', () => {
  it('is refused before any password is read: exit 1, one line naming the name, nothing added or recorded', async () => {
    await addAccount('carol');
    const before = await records();
    for (const args of [['carol2', '--replace'], ['carol2', '--replace', '--time-zone', 'Asia/Tokyo']]) {
      const refused = await run(['users', 'add', ...args], `${PASSWORD}\n`);
      expect([refused.code, refused.out, refused.read]).toEqual([1, '', false]);
      expect(refused.err).toBe('delegate: There is no account named carol2, so --replace has no password to set. To add a new account, leave out --replace: `delegate users add carol2`.\n');
    }
    expect(await namedAccounts()).toEqual(['carol']);
    expect(await records()).toEqual(before);
  });

  it('on a data directory with no database yet: the same, and no database is made', async () => {
    const refused = await run(['users', 'add', 'carol2', '--replace'], `${PASSWORD}\n`);
    expect([refused.code, refused.read]).toEqual([1, false]);
    expect(refused.err).toMatch(/^delegate: There is no account named carol2, so --replace has no password to set\. .*\n$/);
    const { existsSync } = await import('node:fs');
    expect(existsSync(resolvePaths(env).db)).toBe(false);
  });

  it('names an account that users remove retired with that name (in any case): a new one inherits none of it', async () => {
    await addAccount('Dora');
    expect((await run(['users', 'remove', 'Dora', '--yes'])).code).toBe(0);
    const refused = await run(['users', 'add', 'dora', '--replace'], `${PASSWORD}\n`);
    expect([refused.code, refused.read]).toEqual([1, false]);
    expect(refused.err).toBe(
      `delegate: There is no account named dora (an account named Dora was removed at ${new Date(NOW).toISOString()}), so --replace has no password to set. To add a new account, leave out --replace: \`delegate users add dora\`.\n`,
    );
    expect(await namedAccounts()).toEqual([]);
    expect((await records()).filter((r) => r.event === 'user_added')).toHaveLength(1);
  });

  it('the controls: an account there, or there but for case, is answered as before', async () => {
    await addAccount('erin');
    const replaced = await run(['users', 'add', 'erin', '--replace'], 'another long secret password\n');
    expect([replaced.code, replaced.err]).toEqual([0, 'Set the password of erin.\n']);
    const taken = await run(['users', 'add', 'ERIN', '--replace'], 'another long secret password\n');
    expect([taken.code, taken.read, taken.err]).toEqual([1, false, 'delegate: There is already an account named erin. To set its password, add --replace: `delegate users add erin --replace`.\n']);
  });
});

describe('grants list --user with an empty or blank value', () => {
  it('is bad usage, exit 2, the one line audit --user gives (also with --json); the owner’s grants are not listed', async () => {
    const owner = await addOwner();
    await giveGrants(owner, 1);
    for (const value of ['', '   ']) {
      const audit = await run(['audit', '--user', value]);
      expect(audit.code).toBe(2);
      for (const extra of [[], ['--json'], ['--all']]) {
        const listed = await run(['grants', 'list', '--user', value, ...extra]);
        expect([listed.code, listed.out, listed.err]).toEqual([2, '', 'delegate: --user takes an account’s name or a user id (usr_…).\n']);
        expect(listed.err).toBe(audit.err);
      }
    }
    // The control: without --user, the owner's grants.
    const mine = await run(['grants', 'list', '--json']);
    expect([mine.code, JSON.parse(mine.out).map((g: { id: string }) => g.id)]).toEqual([0, [`grt_${owner.name}_0`]]);
  });
});

describe('users list: the local owner’s time zone', () => {
  it('is the one in effect, config.json’s timeZone, not the stored one (text and --json); named accounts keep theirs', async () => {
    const owner = await addOwner();
    expect(owner.timeZone).toBe('Europe/Berlin');
    await addAccount('frank');
    await writeFile(resolvePaths(env).config, JSON.stringify({ timeZone: 'America/New_York' }));
    const json = await run(['users', 'list', '--json']);
    expect([json.code, json.err]).toEqual([0, '']);
    expect(Object.fromEntries(JSON.parse(json.out).map((a: { name: string; time_zone: string }) => [a.name, a.time_zone]))).toEqual({ [owner.name]: 'America/New_York', frank: 'Europe/Berlin' });
    const text = await run(['users', 'list']);
    expect(text.code).toBe(0);
    const lines = text.out.trimEnd().split('\n').map((line) => line.split('\t').slice(0, 2));
    expect(Object.fromEntries(lines)).toEqual({ [`${owner.name} (local owner)`]: 'America/New_York', frank: 'Europe/Berlin' });
    // The stored zone is untouched: config.json is where it is set.
    expect((await withDb((s) => s.ownerUser()))?.timeZone).toBe('Europe/Berlin');
  });

  it('is the stored one when config.json names none, and, with a config.json that cannot be used, one line says so', async () => {
    const owner = await addOwner();
    await writeFile(resolvePaths(env).config, JSON.stringify({ tentative: 'free' }));
    const plain = await run(['users', 'list', '--json']);
    expect([plain.code, plain.err, JSON.parse(plain.out)[0].time_zone]).toEqual([0, '', owner.timeZone]);
    await writeFile(resolvePaths(env).config, JSON.stringify({ timeZone: 'Mars/Olympus' }));
    const broken = await run(['users', 'list', '--json']);
    expect([broken.code, JSON.parse(broken.out)[0].time_zone]).toEqual([0, owner.timeZone]);
    expect(broken.err).toBe(`delegate: ${resolvePaths(env).config}: "timeZone" must be an IANA time zone such as Europe/Berlin. Searches fail until it is fixed.\n`);
  });
});

describe('users add with a password holding a line break or another control character', () => {
  const refusal = (rest: string) => `delegate: A password may not hold a line break, a tab or another control character, which the sign-in page cannot type (piped, only one final line break is dropped): ${rest}.\n`;

  it.each([
    ['two final line breaks', 'gracepass1\n\n'],
    ['a final CR LF after a line break', 'gracepass1\n\r\n'],
    ['a line break inside', 'grace\npass1\n'],
    ['a lone CR', 'grace\rpass1'],
    ['a tab', 'grace\tpass1'],
    ['an escape', 'grace\u001bpass1'],
    ['DEL', 'gracepass1\u007f'],
    ['a C1 control', 'gracepass1\u0085'],
    ['NUL', 'gracepass1\u0000'],
  ])('%s: exit 1, one line, nothing added or recorded', async (_what, piped) => {
    const refused = await run(['users', 'add', 'grace2'], piped);
    expect([refused.code, refused.out, refused.err]).toEqual([1, '', refusal('grace2 was not added')]);
    expect(await namedAccounts()).toEqual([]);
    expect(await records()).toEqual([]);
  });

  it('with --replace: the same, and the password stays', async () => {
    await addAccount('grace2');
    const refused = await run(['users', 'add', 'grace2', '--replace'], 'a new password\n\n');
    expect([refused.code, refused.err]).toEqual([1, refusal('the password of grace2 is unchanged')]);
    expect(await verifyPassword(PASSWORD, (await userNamed('grace2'))?.passwordHash)).toBe(true);
    expect((await records()).map((r) => r.event)).toEqual(['user_added']);
  });

  it('the controls: one final LF or CR LF is dropped, spaces stay; an obviously weak one is said as such', async () => {
    for (const [name, piped, password] of [
      ['h1', 'gracepass1\n', 'gracepass1'],
      ['h2', 'gracepass1\r\n', 'gracepass1'],
      ['h3', 'grace pass 1', 'grace pass 1'],
    ] as const) {
      expect((await run(['users', 'add', name], piped)).code).toBe(0);
      expect(await verifyPassword(password, (await userNamed(name))?.passwordHash)).toBe(true);
    }
    const weak = await run(['users', 'add', 'h4'], '\t\t\t\t\t\t\t\t\n');
    expect([weak.code, weak.err]).toEqual([1, 'delegate: A password may not be only spaces or other blank characters.\n']);
  });

  it('typed at a terminal: the same refusal', async () => {
    const io = fakeIo(env, () => NOW);
    Object.assign(io, { stdin: { isTTY: true }, readHiddenLine: async () => 'grace\u001bpass1' });
    const code = await runCli(['users', 'add', 'grace2'], io);
    expect([code, io.err]).toEqual([1, `\n\n${refusal('grace2 was not added')}`]);
    expect(await withDb(async (s) => (await s.listUsers()).length)).toBe(0);
  });
});

describe('users set-time-zone finds an account but for case, as users remove does', () => {
  it('ALICE is alice: changed, said and recorded under the name as it is spelled', async () => {
    const alice = await addAccount('alice');
    const changed = await run(['users', 'set-time-zone', 'ALICE', 'Europe/Paris']);
    expect([changed.code, changed.err]).toEqual([0, 'The time zone of alice is now Europe/Paris (was Europe/Berlin).\n']);
    expect((await userNamed('alice'))?.timeZone).toBe('Europe/Paris');
    expect((await records()).filter((r) => r.event === 'time_zone_set').map((r) => [r.user, r.detail])).toEqual([
      [alice.id, { by: 'cli', name: 'alice', timeZone: 'Europe/Paris', previousTimeZone: 'Europe/Berlin' }],
    ]);
    const again = await run(['users', 'set-time-zone', 'Alice', 'Europe/Paris']);
    expect([again.code, again.err]).toEqual([0, 'The time zone of alice is Europe/Paris already; nothing changed.\n']);
  });

  it('no account in any case is exit 1 as before; the owner but for case is refused as the owner; two case twins, neither named exactly, are bad usage', async () => {
    const owner = await addOwner();
    const none = await run(['users', 'set-time-zone', 'nobody', 'Europe/Paris']);
    expect([none.code, none.err]).toEqual([1, 'delegate: There is no account named nobody.\n']);
    const ownerLike = await run(['users', 'set-time-zone', owner.name.toUpperCase(), 'Europe/Paris']);
    expect(ownerLike.code).toBe(1);
    expect(ownerLike.err).toMatch(new RegExp(`^delegate: ${owner.name} is the local owner, whose time zone is set by 'timeZone' in its config file `));
    await addAccount('bob');
    // Two names differing only in case, kept from before names were unique ignoring case (as admin-audit.test.ts makes them).
    addCaseTwin(resolvePaths(env).db, 'Bob', NOW + 1);
    const twins = await run(['users', 'set-time-zone', 'BOB', 'Europe/Paris']);
    expect([twins.code, twins.err]).toEqual([2, 'delegate: BOB names bob and Bob but for case: give the name of the one to change exactly as it is spelled.\n']);
    const exact = await run(['users', 'set-time-zone', 'Bob', 'Europe/Paris']);
    expect([exact.code, exact.err]).toEqual([0, 'The time zone of Bob is now Europe/Paris (was UTC).\n']);
    expect((await userNamed('bob'))?.timeZone).toBe('Europe/Berlin');
  });
});

describe('users add NAME --replace: the delegations that stand', () => {
  it('says how many active delegations the account has, which a new password does not end, and how to list and end them', async () => {
    const ivy = await addAccount('ivy');
    await giveGrants(ivy, 2);
    const replaced = await run(['users', 'add', 'ivy', '--replace'], 'another long secret password\n');
    expect(replaced.code).toBe(0);
    expect(replaced.err).toBe(
      'Set the password of ivy.\n' +
        'ivy has 2 active delegations, which a new password does not end: `delegate grants list --user ivy` lists them, `delegate grants revoke GRANT_ID` ends one.\n',
    );
    // They do stand: the new password ended none of them.
    expect((await withDb((s) => s.listGrants(ivy.id))).filter((g) => g.revokedAt === null && g.expiresAt > NOW)).toHaveLength(2);

    await run(['grants', 'revoke', 'grt_ivy_0']);
    const once = await run(['users', 'add', 'ivy', '--replace', '--time-zone', 'Asia/Tokyo'], 'a third long secret password\n');
    expect(once.err).toBe(
      'Set the password of ivy; its time zone is now Asia/Tokyo (was Europe/Berlin).\n' +
        'ivy has 1 active delegation, which a new password does not end: `delegate grants list --user ivy` lists it, `delegate grants revoke GRANT_ID` ends one.\n',
    );
  });

  it('says nothing more when none stand (the control)', async () => {
    const jay = await addAccount('jay');
    await giveGrants(jay, 0);
    const replaced = await run(['users', 'add', 'jay', '--replace'], 'another long secret password\n');
    expect([replaced.code, replaced.err]).toEqual([0, 'Set the password of jay.\n']);
  });
});
