// A named account's calendar, end to end on the servers as the CLI builds them
// from a data directory (src/cli/servers.ts), on loopback ports: bob (server
// mode, `users add`) signs in with his password and asks CalendarAgent's
// find_slot; with no calendar, the answer names the administrator's command
// with `--user bob`; once `calendar add … --user bob` has run (in-process, on
// the same database), his find_slot answers from his calendar. The owner's
// token never reads it: the owner's search ignores bob's busy day, and naming
// bob's calendar is refused. Found in review (s33team): `calendar add` always
// added to the owner, so bob's search said "add one with `delegate calendar
// add NAME FILE`" for ever.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { noCalendarsOf } from '../../src/calendar/server.js';
import { runCli } from '../../src/cli/program.js';
import type { Paths } from '../../src/config.js';
import { loadOrCreateOwnerKey } from '../../src/client/owner-login.js';
import type { Store } from '../../src/store/index.js';
import { Browser, authorizeUrl, callbackParams, csrfOf, parseConsentForm, pkcePair, postForm, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';
import { startCliServers, type CliServers } from '../support/cli-servers.js';
import { fakeIo } from '../cli/fake-io.js';

// bob's account and sign-in hash a password: scrypt at N=2^12 here (test/support/cheap-scrypt.ts).
vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

const REDIRECT = 'http://127.0.0.1:43124/callback';
const PASSWORD = 'bob has a long password';
const DAY_MS = 86_400_000;
let servers: CliServers;
let home: string;
let paths: Paths;
let store: Store;
let urls: CliServers['urls'];

beforeAll(async () => {
  servers = await startCliServers('delegate-named-calendar-');
  ({ home, paths, store, urls } = servers);
});

afterAll(async () => {
  await servers?.close();
});

/** `delegate …args` in-process on the servers' data directory, as an administrator would run it beside them. */
async function cli(args: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  const io = fakeIo({ DELEGATE_HOME: home, TZ: 'UTC' }, () => Date.now());
  io.readAll = async () => stdin;
  const code = await runCli(args, io);
  return { code, out: io.out, err: io.err };
}

/** Approves the consent page `page` as it is preset and redeems the code for an access token to CalendarAgent. */
async function approve(browser: Browser, page: { status: number; html: string }, clientId: string, verifier: string): Promise<string> {
  expect(page.status, page.html.slice(0, 300)).toBe(200);
  const decision = await browser.post(`${urls.issuer}/consent`, { ...parseConsentForm(page.html), decision: 'approve' });
  const code = callbackParams(decision.location!).get('code')!;
  const res = await postForm(`${urls.issuer}/token`, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId, resource: urls.agentUrl });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return String(res.body.access_token);
}

/** bob signs in with his password for a new public client, and approves. */
async function bobToken(): Promise<string> {
  const clientId = await registerPublicClient(urls.issuer, [REDIRECT]);
  const { verifier, challenge } = pkcePair();
  const next = authorizeUrl(urls.issuer, { clientId, redirectUri: REDIRECT, resource: urls.agentUrl, scope: 'slots:find', state: 's', challenge }).slice(urls.issuer.length);
  const browser = new Browser();
  const form = await browser.get(`${urls.issuer}/login?next=${encodeURIComponent(next)}`);
  const signedIn = await browser.post(`${urls.issuer}/login`, { csrf: csrfOf(form.html), next, username: 'bob', password: PASSWORD });
  expect(signedIn.status).toBe(303);
  return approve(browser, await browser.get(new URL(signedIn.location!, urls.issuer).href), clientId, verifier);
}

/** The owner signs in through their link, and approves. */
async function ownerToken(): Promise<string> {
  const clientId = await registerPublicClient(urls.issuer, [REDIRECT]);
  const { verifier, challenge } = pkcePair();
  const browser = new Browser();
  const href = authorizeUrl(urls.issuer, { clientId, redirectUri: REDIRECT, resource: urls.agentUrl, scope: 'slots:find', state: 's', challenge });
  return approve(browser, await signInAndOpenConsent(browser, urls.issuer, await loadOrCreateOwnerKey(paths.ownerKey), href), clientId, verifier);
}

async function findSlot(token: string, args: Record<string, unknown>): Promise<CallToolResult> {
  const client = new Client({ name: 'named-account-calendar', version: '0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(urls.agentUrl), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  try {
    return (await client.callTool({ name: 'find_slot', arguments: args })) as CallToolResult;
  } finally {
    await client.close();
  }
}

const text = (result: CallToolResult) => result.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
const ics = (start: number, end: number) =>
  ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//t//EN', 'BEGIN:VEVENT', 'UID:busy-day', `DTSTART:${stamp(start)}`, `DTEND:${stamp(end)}`, 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

describe('a named account’s calendar, added by the administrator with --user', () => {
  it('bob’s find_slot names `calendar add … --user bob` until one is added, then answers from his calendar; the owner’s token never reads it', async () => {
    // A day, three days on, that bob's calendar fills; the owner's has nothing then.
    const day = Math.floor(Date.now() / DAY_MS) * DAY_MS + 3 * DAY_MS;
    await writeFile(join(home, 'bob.ics'), ics(day, day + DAY_MS));
    await writeFile(join(home, 'owner.ics'), ics(day - 20 * DAY_MS, day - 20 * DAY_MS + 3_600_000));
    const search = { duration: '30m', from: new Date(day).toISOString(), to: new Date(day + 2 * DAY_MS).toISOString(), timeZone: 'UTC', workingHours: 'daily 09:00-17:00' };
    // The owner's own calendar in place of the demo (whose meetings would fall anywhere).
    expect((await cli(['calendar', 'add', 'mine', join(home, 'owner.ics')])).code).toBe(0);
    expect((await cli(['calendar', 'remove', 'demo'])).code).toBe(0);
    const added = await cli(['users', 'add', 'bob', '--time-zone', 'UTC'], `${PASSWORD}\n`);
    expect(added.code, added.err).toBe(0);

    const bob = await bobToken();
    const before = await findSlot(bob, search);
    expect(before.isError).toBe(true);
    expect(text(before)).toContain(noCalendarsOf('bob', String(decodeJwt(bob).sub)));
    expect(text(before)).toContain('`delegate calendar add NAME FILE --user bob`');

    const add = await cli(['calendar', 'add', 'bobs-work', join(home, 'bob.ics'), '--user', 'bob']);
    expect(add.code, add.err).toBe(0);
    // The owner's listing does not show it.
    expect((await cli(['calendar', 'list'])).out).not.toContain('bobs-work');

    const after = await findSlot(bob, search);
    expect(after.isError, text(after)).toBeFalsy();
    // His day is busy: the first slot is the next day's first.
    expect(Date.parse(String(after.structuredContent?.start))).toBe(day + DAY_MS + 9 * 3_600_000);
    // And his token reads his calendars alone: the owner's is not among them.
    const ownersByBob = await findSlot(bob, { ...search, calendars: ['mine'] });
    expect([ownersByBob.isError, text(ownersByBob)]).toEqual([true, expect.stringContaining("No calendar named 'mine'; the calendars are 'bobs-work'.")]);

    const owner = await ownerToken();
    const owners = await findSlot(owner, search);
    expect(owners.isError, text(owners)).toBeFalsy();
    expect(Date.parse(String(owners.structuredContent?.start))).toBe(day + 9 * 3_600_000);
    const named = await findSlot(owner, { ...search, calendars: ['bobs-work'] });
    expect(named.isError).toBe(true);
    // bob's calendar is not the owner's, whatever its name: only the owner's are named.
    expect(text(named)).toContain("No calendar named 'bobs-work'; the calendars are 'mine'.");
    // Every free/busy read under the owner's token was of the owner's calendars alone.
    const ownerSub = String(decodeJwt(owner).sub);
    const reads = (await store.listAudit()).filter((r) => r.event === 'freebusy_read' && r.user === ownerSub && r.detail.outcome === 'ok');
    expect(reads.length).toBeGreaterThan(0);
    for (const read of reads) expect(read.detail.calendars).toEqual(['mine']);
    const bobsReads = (await store.listAudit()).filter((r) => r.event === 'freebusy_read' && r.user === String(decodeJwt(bob).sub) && r.detail.outcome === 'ok');
    expect(bobsReads.map((r) => r.detail.calendars)).toEqual([['bobs-work']]);
  });

  it('names the account by its id when its name could not stand in a command line as it is', () => {
    expect(noCalendarsOf('bob', 'usr_x')).toContain('--user bob`');
    expect(noCalendarsOf('bób', 'usr_x')).toContain('--user usr_x`');
    expect(noCalendarsOf('bob smith', 'usr_x')).toContain('--user usr_x`');
  });
});
