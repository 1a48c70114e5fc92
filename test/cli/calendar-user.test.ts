// `delegate calendar add|list|remove --user ACCOUNT` in-process: the
// administrator manages a named account's calendars (server mode), which the
// account cannot add itself. Found in review (s33team): there was no --user,
// `calendar add` always added to the owner, so a named account could never
// have a calendar. The account is found as `grants list --user` finds it (by
// name, by id, but for case); an unknown or removed account is refused in one
// line, writing nothing; the owner's calendars and the account's stay apart;
// each change is on the audit log for that account. Its find_slot, end to
// end: test/resource/named-account-calendar.test.ts.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { resolvePaths } from '../../src/config.js';
import { openStore, type Store, type UserRecord } from '../../src/store/index.js';
import { fakeIo, type FakeIo } from './fake-io.js';

// Accounts added here hash a password: scrypt at N=2^12 (test/support/cheap-scrypt.ts).
vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

const PASSWORD = 'a long and secret password';
const NOW = Date.UTC(2026, 11, 1, 8);
const EVENT = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//t//EN', 'BEGIN:VEVENT', 'UID:1', 'DTSTART:20261202T100000Z', 'DURATION:PT1H', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');

let dir: string;
let env: Record<string, string>;
let ownerFile: string;
let bobFile: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-calendar-user-'));
  env = { DELEGATE_HOME: join(dir, 'home'), TZ: 'Europe/Berlin' };
  ownerFile = join(dir, 'owner.ics');
  bobFile = join(dir, 'bob.ics');
  await writeFile(ownerFile, EVENT);
  await writeFile(bobFile, EVENT);
  return () => rm(dir, { recursive: true, force: true });
});

async function run(args: string[], stdin = ''): Promise<FakeIo & { code: number; readPipe: boolean }> {
  const io = Object.assign(fakeIo(env, () => NOW), { readPipe: false });
  io.readAll = async () => ((io.readPipe = true), stdin);
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

/** The owner (with its calendar "work", as `calendar add` creates it) and the named account `name`. */
async function ownerAnd(name: string): Promise<{ owner: UserRecord; account: UserRecord }> {
  expect((await run(['calendar', 'add', 'work', ownerFile])).code).toBe(0);
  expect((await run(['users', 'add', name], `${PASSWORD}\n`)).code).toBe(0);
  return withDb(async (s) => ({ owner: (await s.ownerUser())!, account: (await s.userByName(name))! }));
}

const sources = (store: Store, userId: string) => store.listCalendars(userId).then((list) => list.map((c) => [c.name, c.source]));
const listed = async (...args: string[]) => {
  const list = await run(['calendar', 'list', '--json', ...args]);
  expect(list.code, list.err).toBe(0);
  return (JSON.parse(list.out) as Array<{ name: string; source: string }>).map((c) => [c.name, c.source]);
};
const calendarRecords = () => withDb((s) => s.listAudit()).then((records) => records.filter((r) => r.event.startsWith('calendar_')).map((r) => [r.event, r.user, r.detail]));

describe('calendar --user', () => {
  it('adds, lists and removes a named account’s calendar, apart from the owner’s, each change on the log for that account', async () => {
    const { owner, account: bob } = await ownerAnd('bob');
    const added = await run(['calendar', 'add', 'work', bobFile, '--user', 'bob']);
    expect([added.code, added.out]).toEqual([0, '']);
    expect(added.err).toContain(`Added calendar "work" for bob (file ${bobFile}).`);
    // The same name, each account its own calendar: the owner's untouched, bob's his alone.
    expect(await withDb((s) => sources(s, bob.id))).toEqual([['work', bobFile]]);
    expect(await withDb((s) => sources(s, owner.id))).toEqual([['work', ownerFile]]);
    expect(await listed()).toEqual([['work', ownerFile]]);
    expect(await listed('--user', 'bob')).toEqual([['work', bobFile]]);
    // Found as grants list --user finds an account: by its id, or its name but for case.
    expect(await listed('--user', bob.id)).toEqual([['work', bobFile]]);
    expect(await listed('--user', 'BOB')).toEqual([['work', bobFile]]);
    // The owner by name is the owner.
    expect(await listed('--user', owner.name)).toEqual([['work', ownerFile]]);
    const text = await run(['calendar', 'list', '--user', 'bob']);
    expect([text.code, text.out]).toEqual([0, `work  file ${bobFile}\n`]);

    // A second calendar of that name for bob: refused, the advice naming his.
    const again = await run(['calendar', 'add', 'work', bobFile, '--user', 'bob']);
    expect(again.code).toBe(1);
    expect(again.err).toBe('delegate: There is already a calendar named "work" of bob. To add this one in its place, remove it first (`delegate calendar remove work --user bob`), or give this one another name.\n');

    const removed = await run(['calendar', 'remove', 'work', '--user', 'bob']);
    expect([removed.code, removed.err]).toEqual([0, 'Removed calendar "work" of bob.\n']);
    expect(await withDb((s) => sources(s, bob.id))).toEqual([]);
    expect(await withDb((s) => sources(s, owner.id))).toEqual([['work', ownerFile]]);
    const gone = await run(['calendar', 'remove', 'work', '--user', 'bob']);
    expect([gone.code, gone.err]).toEqual([1, 'delegate: No calendar named "work" of bob; the calendars of bob are none.\n']);
    const none = await run(['calendar', 'list', '--user', 'bob']);
    expect([none.code, none.out]).toEqual([0, '']);
    expect(none.err).toBe('No calendars for bob: searches have nothing to check. Add one with: delegate calendar add NAME FILE --user bob, or delegate calendar add NAME --user bob for a feed (it asks for its address)\n');

    expect(await calendarRecords()).toEqual([
      ['calendar_added', owner.id, { by: 'cli', name: 'work', kind: 'file', source: ownerFile }],
      ['calendar_added', bob.id, { by: 'cli', name: 'work', kind: 'file', source: bobFile }],
      ['calendar_removed', bob.id, { by: 'cli', name: 'work' }],
    ]);
    expect((await run(['audit', '--verify'])).code).toBe(0);
  });

  it('adds a feed for the account, its address read from stdin, the record naming the feed without its path', async () => {
    const { account: bob } = await ownerAnd('bob');
    // Unread (--no-check): no feed server here; what matters is whose calendar it becomes.
    const added = await run(['calendar', 'add', 'diary', '--no-check', '--user', 'bob'], 'https://calendar.example/private-s3cret/basic.ics\n');
    expect(added.code, added.err).toBe(0);
    expect(added.readPipe).toBe(true);
    expect(await withDb((s) => sources(s, bob.id))).toEqual([['diary', 'https://calendar.example/private-s3cret/basic.ics']]);
    expect(await listed()).toEqual([['work', ownerFile]]);
    expect((await calendarRecords()).at(-1)).toEqual(['calendar_added', bob.id, { by: 'cli', name: 'diary', kind: 'url', source: 'https://calendar.example/…' }]);
  });

  it('refuses an account no one has, and a removed one, in one line, before a feed address is read, and writes nothing', async () => {
    // No database yet: nothing to name, and nothing is set up by the refusal.
    const early = await run(['calendar', 'add', 'work', bobFile, '--user', 'bob']);
    expect([early.code, early.err]).toEqual([1, 'delegate: --user: there is no account named bob, nor with that id.\n']);
    expect((await run(['calendar', 'remove', 'work', '--user', 'bob'])).code).toBe(1);
    expect(existsSync(resolvePaths(env).db)).toBe(false);

    const { account: carol } = await ownerAnd('carol');
    expect((await run(['users', 'remove', 'carol', '--yes'])).code).toBe(0);
    const before = await calendarRecords();
    for (const user of ['nobody', 'usr_nobody']) {
      for (const args of [['add', 'work', bobFile], ['add', 'feed', '-'], ['list'], ['remove', 'work']]) {
        const refused = await run(['calendar', ...args, '--user', user], 'https://calendar.example/feed.ics\n');
        expect([refused.code, refused.out, refused.err, refused.readPipe], args.join(' ')).toEqual([1, '', `delegate: --user: there is no account named ${user}, nor with that id.\n`, false]);
      }
    }
    for (const user of ['carol', carol.id]) {
      for (const args of [['add', 'work', bobFile], ['add', 'feed', '-'], ['list'], ['remove', 'work']]) {
        const refused = await run(['calendar', ...args, '--user', user], 'https://calendar.example/feed.ics\n');
        expect([refused.code, refused.out, refused.err, refused.readPipe], args.join(' ')).toEqual([
          1,
          '',
          `delegate: --user ${user}: the account carol (${carol.id}) was removed, and its calendars with it; a removed account has none.\n`,
          false,
        ]);
      }
    }
    const empty = await run(['calendar', 'list', '--user', ' ']);
    expect([empty.code, empty.err]).toEqual([2, 'delegate: --user takes an account’s name or a user id (usr_…).\n']);
    expect(await calendarRecords()).toEqual(before);
  });

  it('an account’s calendars go with it when it is removed', async () => {
    const { account: bob } = await ownerAnd('bob');
    expect((await run(['calendar', 'add', 'work', bobFile, '--user', 'bob'])).code).toBe(0);
    expect((await run(['users', 'remove', 'bob', '--yes'])).code).toBe(0);
    expect(await withDb((s) => sources(s, bob.id))).toEqual([]);
    expect(await listed()).toEqual([['work', ownerFile]]);
  });
});
