// `delegate audit`, as found in review (s33audit) on real servers:
// - `--since`/`--until` without an offset were read in the process's own zone for a date-time and in UTC for a date
//   (Date.parse), while every line prints UTC: under TZ=Asia/Tokyo `--until 2026-12-08T00:00` listed none of the
//   records `--until 2026-12-08T00:00Z` listed. Both are UTC now, and a date as --until is the end of that day, as
//   find-slot's --to reads it.
// - `--since ''` was dropped (the whole log, exit 0) while `--until ''` was bad usage.
// - `--verify`'s hint named no data directory: typed in another shell, it checked the default one's log, and, with no
//   database there, said the log had been tampered with.
// - a hand-off (`token_exchanged` with `handed_to`) and a refresh within the grace window showed only in --json.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseSince } from '../../src/cli/commands/admin-store.js';
import { runCli } from '../../src/cli/program.js';
import { resolvePaths, type Paths } from '../../src/config.js';
import { openStore } from '../../src/store/index.js';
import { registerTestAgent, type TestAuthz } from '../support/authz.js';
import { ONE_HELPER_AGENT } from '../support/owner-flow.js';
import { exchangeAsAgent, startStack, userTokens, type Stack } from '../security/stack.js';
import { clientAssertion } from '../authz/helpers.js';
import { postForm } from '../support/oauth-flow.js';
import { fakeIo, type FakeIo } from './fake-io.js';

let home: string;
let paths: Paths;
const made: string[] = [];

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

beforeEach(async () => {
  home = await tempDir('delegate-audit-s33-');
  paths = resolvePaths({ DELEGATE_HOME: home });
});

afterEach(async () => {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function cli(env: Record<string, string | undefined>, ...args: string[]): Promise<FakeIo & { code: number }> {
  const io = fakeIo(env, () => Date.UTC(2026, 11, 10));
  const code = await runCli(['audit', ...args], io);
  return Object.assign(io, { code });
}

const audit = (...args: string[]) => cli({ DELEGATE_HOME: home }, ...args);

/** The seq of each line `audit` printed. */
const seqs = (out: string): number[] => out.split('\n').filter((l) => l !== '').map((l) => Number(/ #(\d+) /.exec(l)?.[1]));

describe('--since and --until without an offset are UTC, as the lines print (found in review, s33audit)', () => {
  // Around midnight UTC of 8 December 2026: 9:00 in Tokyo, 19:00 the day before in New York.
  const AT = [
    Date.UTC(2026, 11, 7, 14, 59, 59), // #1
    Date.UTC(2026, 11, 7, 23, 59, 59, 999), // #2
    Date.UTC(2026, 11, 8, 0, 0), // #3
    Date.UTC(2026, 11, 8, 9, 0), // #4
    Date.UTC(2026, 11, 8, 23, 59, 59, 999), // #5
    Date.UTC(2026, 11, 9, 0, 0), // #6
  ];
  const zoneBefore = process.env.TZ;

  beforeEach(async () => {
    const store = openStore(paths.db);
    for (const at of AT) await store.appendAudit({ event: 'sign_in_failed', detail: { method: 'password', source: '127.0.0.1' } }, at);
    store.close();
  });
  afterEach(() => {
    if (zoneBefore === undefined) delete process.env.TZ;
    else process.env.TZ = zoneBefore;
  });

  it.each(['Asia/Tokyo', 'America/New_York', 'UTC'])('TZ=%s: a time without an offset lists what the same time with Z lists', async (zone) => {
    process.env.TZ = zone; // Node reads TZ anew when it is set: Date.parse would read an offset-less time in it
    for (const [flag, wall, expected] of [
      ['--until', '2026-12-08T00:00', [1, 2, 3]],
      ['--until', '2026-12-08T00:00:00', [1, 2, 3]],
      ['--since', '2026-12-08T00:00', [3, 4, 5, 6]],
      ['--since', '2026-12-07T23:59:59', [2, 3, 4, 5, 6]],
    ] as const) {
      const offsetLess = await audit(flag, wall);
      const utc = await audit(flag, `${wall}Z`);
      expect([offsetLess.code, utc.code], `${flag} ${wall}`).toEqual([0, 0]);
      expect(seqs(offsetLess.out), `${flag} ${wall}`).toEqual(expected);
      expect(seqs(utc.out), `${flag} ${wall}Z`).toEqual(expected);
      expect(offsetLess.out).toBe(utc.out);
    }
    // A time with an offset is that instant: 09:00 in Tokyo is midnight UTC.
    expect(seqs((await audit('--until', '2026-12-08T09:00+09:00')).out)).toEqual([1, 2, 3]);
  });

  it.each(['Asia/Tokyo', 'America/New_York'])('TZ=%s: a date is a UTC day: from its start as --since, to its end as --until (as find-slot --to)', async (zone) => {
    process.env.TZ = zone;
    expect(seqs((await audit('--since', '2026-12-08', '--until', '2026-12-08')).out)).toEqual([3, 4, 5]);
    expect(seqs((await audit('--until', '2026-12-07')).out)).toEqual([1, 2]);
    expect(seqs((await audit('--since', '2026-12-07', '--until', '2026-12-08')).out)).toEqual([1, 2, 3, 4, 5]);
    expect(seqs((await audit('--since', '2026-12-09')).out)).toEqual([6]);
    // A date as --since after the same date as --until is still refused.
    const refused = await audit('--since', '2026-12-09', '--until', '2026-12-08');
    expect([refused.code, refused.out]).toEqual([2, '']);
    expect(refused.err).toBe('delegate: --since (2026-12-09T00:00:00.000Z) is after --until (2026-12-08T23:59:59.999Z).\n');
  });

  it('parseSince: UTC without an offset, a date as an end its last millisecond, and years before 100 as written', () => {
    process.env.TZ = 'Asia/Tokyo';
    expect(parseSince('2026-12-08T00:00', 0)).toBe(Date.UTC(2026, 11, 8));
    expect(parseSince('2026-12-08', 0)).toBe(Date.UTC(2026, 11, 8));
    expect(parseSince('2026-12-08', 0, true)).toBe(Date.UTC(2026, 11, 9) - 1);
    expect(parseSince('2026-12-08T10:00', 0, true)).toBe(Date.UTC(2026, 11, 8, 10));
    expect(parseSince('0050-01-01', 0)).toBe(Date.parse('0050-01-01T00:00:00Z'));
    expect(parseSince('2026-02-30', 0)).toBeUndefined();
    expect(parseSince('2026-12-08T24:00', 0)).toBeUndefined();
  });

  // Found in review (s33audit): spans took m, h, d and w only, while --login-timeout takes seconds.
  it('parseSince: a span of seconds, as of minutes and the rest', () => {
    const now = Date.UTC(2026, 11, 8, 12);
    expect(parseSince('90s', now)).toBe(now - 90_000);
    expect(parseSince('30m', now)).toBe(now - 1_800_000);
    expect(parseSince('1w', now)).toBe(now - 604_800_000);
    expect(parseSince('5y', now)).toBeUndefined();
  });
});

describe('an empty --since is bad usage, as an empty --until is (found in review, s33audit: it listed the whole log)', () => {
  beforeEach(async () => {
    const store = openStore(paths.db);
    await store.appendAudit({ event: 'sign_in', user: 'usr_1', detail: { method: 'password' } }, 1_000);
    store.close();
  });

  it.each([['--since'], ['--until']])('%s "": one line, exit 2, nothing listed', async (flag) => {
    const refused = await audit(flag, '');
    expect([refused.code, refused.out]).toEqual([2, '']);
    expect(refused.err).toMatch(new RegExp(`^delegate: ${flag} takes an ISO 8601 time [^\\n]*\\n$`));
  });
});

describe('--verify: the head to keep, and a data directory with no database (found in review, s33audit)', () => {
  beforeEach(async () => {
    const store = openStore(paths.db);
    for (let i = 1; i <= 3; i++) await store.appendAudit({ event: 'tool_call', user: 'usr_1', actors: ['calendar-agent', 'usr_1'], detail: { tool: 'find_slot' } }, 1_000 + i);
    store.close();
  });

  /** The command line the hint prints, split into the settings before it and its words after `delegate`. */
  function hintCommand(err: string): { settings: Record<string, string>; words: string[] } {
    const line = /`([^`]*)` then also shows/.exec(err)?.[1];
    expect(line, err).toBeDefined();
    const words = line!.split(' ').map((w) => w.replace(/^'(.*)'$/, '$1'));
    const settings: Record<string, string> = {};
    while (/^[A-Z_]+=/.test(words[0]!)) {
      const [name, ...value] = words.shift()!.split('=');
      settings[name!] = value.join('=').replace(/^'(.*)'$/, '$1');
    }
    expect(words.shift()).toBe('delegate');
    return { settings, words };
  }

  // Found in review (s33audit): a filter beside --verify was dropped in silence, and the whole log said intact.
  it.each([
    [['--user', 'usr_1'], '--user'],
    [['--event', 'tool_call', '--since', '1d'], '--event or --since'],
    [['--grant', 'grt_1', '--client', 'cli_1', '--until', '2026-12-09'], '--grant or --client or --until'],
  ])('--verify with %j is bad usage (exit 2), one line naming the filters, nothing printed', async (filters, named) => {
    const refused = await audit('--verify', ...filters);
    expect([refused.code, refused.out]).toEqual([2, '']);
    expect(refused.err).toBe(`delegate: --verify checks the whole hash chain, so it takes no ${named}: run \`delegate audit --verify\` alone.\n`);
    // The control: alone, it checks and says intact.
    expect((await audit('--verify')).code).toBe(0);
  });

  it('the hint pins this data directory: typed in a shell without DELEGATE_HOME, it checks this log and holds the head', async () => {
    const verified = await audit('--verify');
    expect(verified.code).toBe(0);
    const head = /head ([0-9a-f]{64})\./.exec(verified.out)![1]!;
    expect(verified.err).toContain(`DELEGATE_HOME=${home} delegate audit --verify --head ${head}`);
    // Another shell: no DELEGATE_HOME, a home of its own (whose default data directory has no database).
    const { settings, words } = hintCommand(verified.err);
    expect(settings).toEqual({ DELEGATE_HOME: home });
    const elsewhere = await tempDir('delegate-audit-s33-shell-');
    const io = fakeIo({ HOME: elsewhere, ...settings });
    expect(await runCli(words, io)).toBe(0);
    expect(io.out).toBe(`The audit log is intact: 3 records, head ${head}; it holds the head you kept (${head}).\n`);
    expect(io.err).toBe('');
  });

  it('--verify --head where there is no database says so (exit 1), not that the log was tampered with, and creates none', async () => {
    const head = /head ([0-9a-f]{64})\./.exec((await audit('--verify')).out)![1]!;
    const empty = await tempDir('delegate-audit-s33-empty-');
    const checked = await cli({ DELEGATE_HOME: empty }, '--verify', '--head', head);
    expect([checked.code, checked.out]).toEqual([1, '']);
    expect(checked.err).toBe(
      `delegate: There is no audit log in ${empty}: no database there (${join(empty, 'delegate.db')}). The head you kept (${head}) is from another data directory, or this one's database was moved or removed.\n`,
    );
    expect(checked.err).not.toContain('tampered');
    const json = await cli({ DELEGATE_HOME: empty }, '--verify', '--head', head, '--json');
    expect(json.code).toBe(1);
    expect(JSON.parse(json.out)).toMatchObject({ ok: false, problem: 'no_database' });
    expect(existsSync(join(empty, 'delegate.db'))).toBe(false);
  });

  it('--verify where there is no database: nothing to verify (exit 0), and no head to keep', async () => {
    const empty = await tempDir('delegate-audit-s33-empty-');
    const verified = await cli({ DELEGATE_HOME: empty }, '--verify');
    expect([verified.code, verified.err]).toEqual([0, '']);
    expect(verified.out).toBe(`There is no audit log in ${empty}: no database there (${join(empty, 'delegate.db')}). Nothing to verify.\n`);
    // --json: the verdict of an empty chain, as it was.
    const json = await cli({ DELEGATE_HOME: empty }, '--verify', '--json');
    expect(json.code).toBe(0);
    const store = openStore(':memory:');
    expect(JSON.parse(json.out)).toEqual(await store.verifyAudit());
    store.close();
    expect(existsSync(join(empty, 'delegate.db'))).toBe(false);
  });
});

describe('the lines of a hand-off and of a refresh within the grace window (found in review, s33audit: only --json showed them)', () => {
  it('say "handed to <agent> for <resource>" and "within grace"; a resource server’s record saying so shows neither; stored text escaped', async () => {
    const store = openStore(paths.db);
    const handed = { scope: 'freebusy:read', jti: 'j2', parent_jti: 'j1', handed_to: 'helper-agent', target: 'http://127.0.0.1:8411' };
    await store.appendAudit({ event: 'token_exchanged', user: 'usr_1', client: 'calendar-agent', grant: 'grt_1', resource: 'http://127.0.0.1:8410', actors: ['calendar-agent', 'cli_1', 'usr_1'], detail: handed }, 1_001);
    await store.appendAudit({ event: 'token_exchanged', user: 'usr_1', client: 'calendar-agent', grant: 'grt_1', resource: 'http://127.0.0.1:8411', actors: ['calendar-agent', 'cli_1', 'usr_1'], detail: { scope: 'freebusy:read', jti: 'j3', parent_jti: 'j1' } }, 1_002);
    await store.appendAudit({ event: 'token_refreshed', user: 'usr_1', client: 'cli_1', grant: 'grt_1', resource: 'http://127.0.0.1:8412/mcp', actors: ['cli_1', 'usr_1'], detail: { scope: 'slots:find', jti: 'j4', within_grace: true } }, 1_003);
    await store.appendAudit({ event: 'token_refreshed', user: 'usr_1', client: 'cli_1', grant: 'grt_1', resource: 'http://127.0.0.1:8412/mcp', actors: ['cli_1', 'usr_1'], detail: { scope: 'slots:find', jti: 'j5' } }, 1_004);
    // A resource server's report (POST /audit) carrying the same words: its own, not the AS's.
    await store.appendAudit({ event: 'tool_call', user: 'usr_1', client: 'cli_1', actors: ['calendar-agent', 'cli_1', 'usr_1'], detail: { tool: 'find_slot', outcome: 'ok', handed_to: 'x', within_grace: true } }, 1_005);
    // Stored text with a newline in it: printed escaped, on its one line.
    await store.appendAudit({ event: 'token_exchanged', user: 'usr_1', client: 'calendar-agent', grant: 'grt_1', actors: ['calendar-agent', 'usr_1'], detail: { scope: 'freebusy:read', handed_to: 'evil\n1970-01-01T00:00:09.000Z  #9  grant_revoked', target: 'http://127.0.0.1:8411' } }, 1_006);
    store.close();
    const listed = await audit();
    expect([listed.code, listed.err]).toEqual([0, '']);
    const lines = listed.out.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(6);
    expect(lines[0]).toBe('1970-01-01T00:00:01.001Z  #1  token_exchanged  for usr_1  by calendar-agent ← cli_1  grt_1  http://127.0.0.1:8410  freebusy:read handed to helper-agent for http://127.0.0.1:8411');
    expect(lines[1]).toBe('1970-01-01T00:00:01.002Z  #2  token_exchanged  for usr_1  by calendar-agent ← cli_1  grt_1  http://127.0.0.1:8411  freebusy:read');
    expect(lines[2]).toBe('1970-01-01T00:00:01.003Z  #3  token_refreshed  for usr_1  by cli_1  grt_1  http://127.0.0.1:8412/mcp  slots:find within grace');
    expect(lines[3]).toBe('1970-01-01T00:00:01.004Z  #4  token_refreshed  for usr_1  by cli_1  grt_1  http://127.0.0.1:8412/mcp  slots:find');
    expect(lines[4]).not.toMatch(/handed|grace/);
    expect(lines[5]).toBe('1970-01-01T00:00:01.006Z  #6  token_exchanged  for usr_1  by calendar-agent  grt_1  freebusy:read handed to evil\\n1970-01-01T00:00:09.000Z  #9  grant_revoked for http://127.0.0.1:8411');
  });

  describe('over a real hand-off', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack();
    }, 60_000);
    afterAll(async () => stack?.close());

    it('CalendarAgent’s token handed to a registered sub-agent reads "handed to <it> for <the calendar>"', async () => {
      const user = await userTokens(stack, { choices: ONE_HELPER_AGENT }); // a second hop needs a helper agent allowed
      const helper = await registerTestAgent(stack as unknown as TestAuthz, 'audit-helper', 'http://127.0.0.1:9/audit-helper');
      const hop1 = await exchangeAsAgent(stack, user.accessToken, { may_act: helper.clientId });
      expect(hop1.status, JSON.stringify(hop1.body)).toBe(200);
      const io = fakeIo({ DELEGATE_HOME: stack.home }, () => Date.now());
      expect(await runCli(['audit', '--event', 'token_exchanged'], io)).toBe(0);
      const lines = io.out.split('\n').filter((l) => l !== '');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`  ${stack.issuer}  freebusy:read handed to audit-helper for ${stack.calendarUrl}`);
      // Found in review (s33deleg): `--client audit-helper` showed neither the hand-off nor, once CalendarAgent gave the
      // handed token up (RFC 7009), its revocation; both are found by the agent it was handed to, and name it.
      const revoked = await postForm(`${stack.issuer}/revoke`, {
        token: String(hop1.body.access_token),
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await clientAssertion(stack.agent.privateJwk, stack.agent.clientId, stack.issuer),
      });
      expect(revoked.status).toBe(200);
      const byHelper = fakeIo({ DELEGATE_HOME: stack.home }, () => Date.now());
      expect(await runCli(['audit', '--client', helper.clientId, '--json'], byHelper)).toBe(0);
      const records = JSON.parse(byHelper.out) as Array<{ event: string; client: string; detail: Record<string, unknown> }>;
      expect(records.map((r) => [r.event, r.client, r.detail.handed_to])).toEqual([
        ['token_exchanged', 'calendar-agent', 'audit-helper'],
        ['token_revoked', 'calendar-agent', 'audit-helper'],
      ]);
      // Only its own and those handed to it: the user's client's records (its sign-in, its token) are not the helper's.
      const mine = fakeIo({ DELEGATE_HOME: stack.home }, () => Date.now());
      expect(await runCli(['audit', '--json'], mine)).toBe(0);
      const everything = JSON.parse(mine.out) as Array<{ client: string | null }>;
      expect(everything.filter((r) => r.client !== 'calendar-agent' && r.client !== helper.clientId).length).toBeGreaterThan(0);
    });
  });
});
