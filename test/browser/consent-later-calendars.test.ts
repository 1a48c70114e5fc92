// "Calendars added later" on the consent page, in headless Chromium against
// the three servers built as the CLI builds them. Found in review (s23deleg):
// with every listed calendar ticked, Approve stored a grant with no calendar
// limit, so a calendar added afterwards (`delegate calendar add medical …`)
// was read under tokens issued before, though the page never said so. Now the
// page has a box of its own for it: unticked, the grant, its tokens and the
// backend know the ticked calendars alone, and `calendar add` says which
// delegations will not see the new one; ticked (the first consent's preset),
// a later calendar is read, as the page says.
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../src/authz/index.js';
import { runCli } from '../../src/cli/program.js';
import { rawRequest } from '../agent/http.js';
import { fakeIo } from '../cli/fake-io.js';
import { ownerLink } from '../support/authz.js';
import { authorizeUrl, pkcePair, postForm, registerPublicClient } from '../support/oauth-flow.js';
import { exchangeAsAgent, startStack, type Stack } from '../security/stack.js';
import { launchChromium, listenCallback } from './chromium.js';

const DAY = 86_400_000;
let stack: Stack;
let browser: Browser;
let callback: Server;
let callbackUri: string;
let dir: string;
let received: URL[] = [];

/** A calendar with one event tomorrow, 10:00-11:00 UTC. */
async function calendarFile(name: string): Promise<string> {
  const day = new Date(Date.now() + DAY).toISOString().slice(0, 10).replaceAll('-', '');
  const text = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate tests//EN', 'BEGIN:VEVENT', `UID:${name}@test`, 'DTSTAMP:20261101T000000Z', `DTSTART:${day}T100000Z`, `DTEND:${day}T110000Z`, 'END:VEVENT', 'END:VCALENDAR', ''];
  const path = join(dir, `${name}.ics`);
  await writeFile(path, text.join('\r\n'));
  return path;
}

/** `delegate calendar add NAME FILE` in-process, on the stack's data directory; its exit code and stderr. */
async function calendarAdd(name: string): Promise<{ code: number; err: string }> {
  const io = fakeIo({ DELEGATE_HOME: stack.home, TZ: 'UTC' }, Date.now);
  const code = await runCli(['calendar', 'add', name, await calendarFile(name)], io);
  return { code, err: io.err };
}

beforeAll(async () => {
  stack = await startStack();
  dir = await mkdtemp(join(tmpdir(), 'delegate-later-'));
  browser = await launchChromium();
  ({ server: callback, uri: callbackUri, received } = await listenCallback());
  // The owner has two calendars when they first consent: the demo one and work.
  expect((await calendarAdd('work')).code).toBe(0);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  callback?.close();
  await stack?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * A new client's first consent in Chromium: the box "Calendars added later" is checked as the page presets it,
 * then set to `later`, and Approve clicked; the code is redeemed and the access token exchanged as CalendarAgent.
 */
async function consent(later: boolean) {
  const clientId = await registerPublicClient(stack.issuer, [callbackUri]);
  const { verifier, challenge } = pkcePair();
  const href = authorizeUrl(stack.issuer, { clientId, redirectUri: callbackUri, resource: stack.agentUrl, scope: 'slots:find', state: 'later-state', challenge });
  const page = await browser.newPage();
  await page.goto(await ownerLink(stack, href.slice(stack.issuer.length)));
  const box = page.getByRole('checkbox', { name: 'Calendars added later' });
  const preset = await box.isChecked({ timeout: 5_000 });
  const listed = await Promise.all(['demo', 'work'].map((name) => page.getByRole('checkbox', { name, exact: true }).isChecked()));
  mkdirSync('test-artifacts', { recursive: true });
  await page.screenshot({ path: 'test-artifacts/consent-later-calendars.png', fullPage: true });
  await box.setChecked(later);
  await Promise.all([page.waitForURL(/\/callback\?/), page.getByRole('button', { name: 'Approve', exact: true }).click()]);
  await page.close();
  const code = received.at(-1)!.searchParams.get('code')!;
  const token = await postForm(`${stack.issuer}/token`, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: callbackUri, client_id: clientId, resource: stack.agentUrl });
  expect(token.status, JSON.stringify(token.body)).toBe(200);
  const accessToken = String(token.body.access_token);
  const exchanged = await exchangeAsAgent(stack, accessToken);
  expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
  const grantId = String(decodeJwt(accessToken).grant_id);
  return { preset, listed, grantId, grant: (await stack.store.grantById(grantId))!, accessToken, calendarToken: String(exchanged.body.access_token) };
}

function freebusy(token: string, calendar: string) {
  const from = encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString());
  const to = encodeURIComponent(new Date(Date.now() + 2 * DAY).toISOString());
  return rawRequest({ port: stack.ports.calendar, path: `/freebusy?from=${from}&to=${to}&calendar=${calendar}`, headers: { authorization: `Bearer ${token}` } });
}

const grantIds: Record<'names' | 'later', string> = { names: '', later: '' };

describe('"Calendars added later" on the consent page, in Chromium', () => {
  it('unticked: the grant and its tokens name the calendars ticked; one added afterwards is refused at the backend, and `calendar add` says so', async () => {
    const approved = await consent(false);
    grantIds.names = approved.grantId;
    // A first consent for a request naming no calendars presets every box, "later" included.
    expect(approved.preset).toBe(true);
    expect(approved.listed).toEqual([true, true]);
    expect(approved.grant.authorizationDetails).toEqual([expect.objectContaining({ calendars: ['demo', 'work'] })]);
    expect(decodeJwt(approved.accessToken).authorization_details).toEqual([expect.objectContaining({ calendars: ['demo', 'work'] })]);
    expect(decodeJwt(approved.calendarToken).authorization_details).toEqual([expect.objectContaining({ calendars: ['demo', 'work'] })]);

    const added = await calendarAdd('medical');
    expect(added.code).toBe(0);
    expect(added.err).toContain(
      `Not seen by CalendarAgent via test client (${approved.grantId}: only demo, work). To let one see "medical", end it (\`delegate grants revoke ${approved.grantId}\`) and sign in again (\`delegate login\`, or from its app): the consent page asks again.\n`,
    );
    const refused = await freebusy(approved.calendarToken, 'medical');
    expect(refused.status, refused.text).toBe(403);
    expect((refused.json() as { error: string }).error).toBe('insufficient_scope');
    expect((await freebusy(approved.calendarToken, 'work')).status).toBe(200);
  });

  it('ticked: the grant names no calendars (all, now and later), and one added afterwards is read under the tokens issued before', async () => {
    const approved = await consent(true);
    grantIds.later = approved.grantId;
    expect(approved.preset).toBe(true);
    expect(approved.grant.authorizationDetails[0]).not.toHaveProperty('calendars');
    expect(decodeJwt(approved.calendarToken).authorization_details).toEqual([expect.not.objectContaining({ calendars: expect.anything() })]);

    const added = await calendarAdd('dentist');
    expect(added.code).toBe(0);
    // The delegation above (ticked) sees it; the first test's (unticked) does not, and is the only one named.
    expect(added.err).not.toContain(approved.grantId);
    const read = await freebusy(approved.calendarToken, 'dentist');
    expect(read.status, read.text).toBe(200);
    expect((read.json() as { busy: unknown[] }).busy).toHaveLength(1);
  });

  it('`grants list`, `grants show` and the /grants page say "all calendars, including ones added later", or the names', async () => {
    const io = fakeIo({ DELEGATE_HOME: stack.home, TZ: 'UTC' }, Date.now);
    expect(await runCli(['grants', 'list'], io)).toBe(0);
    const line = (id: string) => io.out.split('\n').find((l) => l.startsWith(id));
    expect(line(grantIds.names)).toContain('\tcalendars demo,work, 30 days ahead\t');
    expect(line(grantIds.later)).toContain('\tall calendars, including ones added later, 30 days ahead\t');
    const show = fakeIo({ DELEGATE_HOME: stack.home, TZ: 'UTC' }, Date.now);
    expect(await runCli(['grants', 'show', grantIds.later], show)).toBe(0);
    expect(show.out).toContain('  limits:      all calendars, including ones added later, 30 days ahead\n');

    // The /grants page is a named account's (the owner's sign-in link leads to consent pages only): the same two
    // delegations, held by one, read there in Chromium after a password sign-in.
    const hal = await addUser(stack.store, { name: 'hal', password: 'hal has a long password', timeZone: 'UTC' }, Date.now());
    for (const id of [grantIds.names, grantIds.later]) await stack.store.createGrant({ ...(await stack.store.grantById(id))!, id: `${id}hal`, userId: hal.id });
    const page = await browser.newPage();
    await page.goto(`${stack.issuer}/grants`);
    await page.getByLabel('Name').fill('hal');
    await page.getByLabel('Password').fill('hal has a long password');
    await Promise.all([page.waitForURL(/\/grants\?signin=/), page.getByRole('button', { name: 'Sign in' }).click()]);
    const row = (id: string) => page.locator('div.who').filter({ hasText: `${id}hal` }).innerText();
    expect(await row(grantIds.names)).toContain('Calendars: demo, work, up to 30 days ahead, busy times only');
    expect(await row(grantIds.later)).toContain('All calendars, including ones added later, up to 30 days ahead, busy times only');
    await page.close();
  });
});
