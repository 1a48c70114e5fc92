// A step-up consent in headless Chromium for an agent that reads two calendar
// services on one origin (http://127.0.0.1:10/team-a and /team-b, as
// `agents register --calendar-url … --calendar-url …` sets up), by a named
// account with no calendar yet whose grant allows `demo` alone. Found in review
// (s25new): the client asking one more scope, with no authorization_details,
// and Approve clicked as the page presets it, the grant became "all calendars,
// including ones added later" at both places, on a page that said it started
// from what was allowed before; and the page and the grants page named both
// places "(at 127.0.0.1:10)".
import type { Server } from 'node:http';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../src/authz/index.js';
import { registerTestAgent, type TestAuthz } from '../support/authz.js';
import { authorizeUrl, pkcePair, registerPublicClient } from '../support/oauth-flow.js';
import { startStack, type Stack } from '../security/stack.js';
import { launchChromium, listenCallback } from './chromium.js';

const DAY = 86_400_000;
const TEAM_A = 'http://127.0.0.1:10/team-a';
const TEAM_B = 'http://127.0.0.1:10/team-b';
const AGENT = 'http://127.0.0.1:9/helper/mcp';
const PASSWORD = 'gina has a long password';

let stack: Stack;
let browser: Browser;
let callback: Server;
let callbackUri: string;
let received: URL[] = [];

/** The calendar entry of a grant for one place. */
const entry = (location: string, limits: { calendars?: string[]; lookahead_days: number }) => ({ type: 'calendar', locations: [location], actions: ['freebusy:read'], datatypes: ['freebusy'], ...limits });

beforeAll(async () => {
  stack = await startStack();
  browser = await launchChromium();
  ({ server: callback, uri: callbackUri, received } = await listenCallback());
  for (const url of [TEAM_A, TEAM_B]) await stack.store.upsertResource({ url, name: url, scopes: ['freebusy:read'], agentClientId: null, downstream: [], createdAt: Date.now() });
  await registerTestAgent(stack as unknown as TestAuthz, 'helper', AGENT);
  const registered = (await stack.store.resourceByUrl(AGENT))!;
  const reach = (resource: string) => ({ type: 'calendar', resource, scopes: ['freebusy:read'] });
  await stack.store.upsertResource({ ...registered, scopes: ['slots:find', 'helper:use'], downstream: [reach(TEAM_A), reach(TEAM_B)] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  callback?.close();
  await stack?.close();
});

/** A named account with no calendar, and its grant to a new client: `slots:find` with the entries given, depth 1, a day left. */
async function ginaWithGrant(name: string, entries: Record<string, unknown>[]) {
  const user = await addUser(stack.store, { name, password: PASSWORD, timeZone: 'UTC' }, Date.now());
  const clientId = await registerPublicClient(stack.issuer, [callbackUri]);
  const expiresAt = Date.now() + DAY;
  await stack.store.createGrant({ id: `grt_${name}`, userId: user.id, clientId, resource: AGENT, scope: 'slots:find', authorizationDetails: entries, maxDepth: 1, createdAt: Date.now(), expiresAt, revokedAt: null });
  return { clientId, grantId: `grt_${name}`, expiresAt };
}

/** Signs `name` in with their password in a new page, for `next` (a path on the issuer); the page it leads to. */
async function signIn(name: string, next: string): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${stack.issuer}/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Password').fill(PASSWORD);
  await Promise.all([page.waitForURL((url) => !url.pathname.startsWith('/login')), page.getByRole('button', { name: 'Sign in' }).click()]);
  return page;
}

/** The client asks for one more scope, `helper:use`, with no authorization_details: the step-up consent page, as `name` sees it. */
function stepUp(name: string, clientId: string): Promise<Page> {
  const href = authorizeUrl(stack.issuer, { clientId, redirectUri: callbackUri, resource: AGENT, scope: 'slots:find helper:use', state: 'places-state', challenge: pkcePair().challenge });
  return signIn(name, href.slice(stack.issuer.length));
}

async function approveAsPreset(page: Page): Promise<void> {
  await Promise.all([page.waitForURL(/\/callback\?/), page.getByRole('button', { name: 'Approve', exact: true }).click()]);
  await page.close();
  expect(received.at(-1)!.searchParams.get('code')).toBeTruthy();
}

describe('a step-up consent for one more scope, approved as the page presets it', () => {
  it('keeps the calendars the grant allows (demo), at every place, where the user has no calendar to tick; and its lookahead, depth and end', async () => {
    const { clientId, grantId, expiresAt } = await ginaWithGrant('gina', [entry(TEAM_A, { calendars: ['demo'], lookahead_days: 7 }), entry(TEAM_B, { calendars: ['demo'], lookahead_days: 7 })]);
    const page = await stepUp('gina', clientId);
    const text = await page.locator('body').innerText();
    expect(text).toContain('Today it may look at the calendar demo, 7 days ahead, with no helper agent but helper');
    // What an Approve allows, in words: the page has no box to tick.
    expect(text).toContain('You have no calendars yet; it may look at the ones added later named demo.');
    expect(text).not.toContain('every calendar added later');
    await approveAsPreset(page);
    const grant = (await stack.store.grantById(grantId))!;
    expect(grant.scope).toBe('slots:find helper:use');
    expect(grant.authorizationDetails).toEqual([
      expect.objectContaining({ locations: [TEAM_A], calendars: ['demo'], lookahead_days: 7 }),
      expect.objectContaining({ locations: [TEAM_B], calendars: ['demo'], lookahead_days: 7 }),
    ]);
    expect(grant.maxDepth).toBe(1);
    expect(grant.expiresAt).toBe(expiresAt);
  });

  it('under entries that differ (all calendars at team-a, demo at team-b): the narrowest, demo, 7 days, at both; each place named by its path on the page', async () => {
    const { clientId, grantId } = await ginaWithGrant('hana', [entry(TEAM_A, { lookahead_days: 30 }), entry(TEAM_B, { calendars: ['demo'], lookahead_days: 7 })]);
    const page = await stepUp('hana', clientId);
    const text = await page.locator('body').innerText();
    // Two places on one host: each by origin and path, no longer "(at 127.0.0.1:10)" twice.
    expect(text).toContain(`look at all your calendars, including ones added later, 30 days ahead (at ${TEAM_A}) and the calendar demo, 7 days ahead (at ${TEAM_B})`);
    expect(text).not.toContain('(at 127.0.0.1:10)');
    expect(text).toContain('You have no calendars yet; it may look at the ones added later named demo.');
    await approveAsPreset(page);
    const grant = (await stack.store.grantById(grantId))!;
    expect(grant.authorizationDetails).toEqual([
      expect.objectContaining({ locations: [TEAM_A], calendars: ['demo'], lookahead_days: 7 }),
      expect.objectContaining({ locations: [TEAM_B], calendars: ['demo'], lookahead_days: 7 }),
    ]);
  });
});

describe('a step-up asking only for calendars the grant does not allow, with none to tick', () => {
  it('says approving cannot add them, and its Approve is refused, the grant unchanged', async () => {
    const entries = [entry(TEAM_A, { calendars: ['demo'], lookahead_days: 7 }), entry(TEAM_B, { calendars: ['demo'], lookahead_days: 7 })];
    const { clientId, grantId } = await ginaWithGrant('kai', entries);
    const asked = [TEAM_A, TEAM_B].map((location) => entry(location, { calendars: ['work'], lookahead_days: 7 }));
    const href = authorizeUrl(stack.issuer, { clientId, redirectUri: callbackUri, resource: AGENT, scope: 'slots:find helper:use', state: 'places-state', challenge: pkcePair().challenge, extra: { authorization_details: JSON.stringify(asked) } });
    const page = await signIn('kai', href.slice(stack.issuer.length));
    expect(await page.locator('body').innerText()).toContain('It asks only for calendars you did not allow it before (work; today: demo), and none of yours is here to choose: approving cannot add them.');
    const [answer] = await Promise.all([page.waitForResponse((r) => r.url() === `${stack.issuer}/consent`), page.getByRole('button', { name: 'Approve', exact: true }).click()]);
    expect(answer.status()).toBe(400);
    expect(await page.locator('body').innerText()).toContain('revoke this permission and sign in again');
    await page.close();
    const grant = (await stack.store.grantById(grantId))!;
    expect(grant.scope).toBe('slots:find');
    expect(grant.authorizationDetails).toEqual(entries);
  });
});

describe('two places on one host', () => {
  it('the grants page names each entry by origin and path', async () => {
    await ginaWithGrant('ida', [entry(TEAM_A, { lookahead_days: 30 }), entry(TEAM_B, { calendars: ['demo'], lookahead_days: 7 })]);
    const page = await signIn('ida', '/grants');
    const text = await page.locator('div.who').innerText();
    expect(text).toContain(`All calendars, including ones added later, up to 30 days ahead, busy times only (at ${TEAM_A})`);
    expect(text).toContain(`Calendars: demo, up to 7 days ahead, busy times only (at ${TEAM_B})`);
    expect(text).not.toContain('(at 127.0.0.1:10)');
    await page.close();
  });

  it('a first consent names each place the agent reads by origin and path', async () => {
    await addUser(stack.store, { name: 'jo', password: PASSWORD, timeZone: 'UTC' }, Date.now());
    const clientId = await registerPublicClient(stack.issuer, [callbackUri]);
    const href = authorizeUrl(stack.issuer, { clientId, redirectUri: callbackUri, resource: AGENT, scope: 'slots:find', state: 'places-state', challenge: pkcePair().challenge });
    const page = await signIn('jo', href.slice(stack.issuer.length));
    const text = await page.locator('body').innerText();
    expect(text).toContain(`from the calendar service at ${TEAM_A})`);
    expect(text).toContain(`from the calendar service at ${TEAM_B})`);
    await page.close();
  });
});
