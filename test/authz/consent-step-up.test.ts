// Asking again for one more permission (step-up) shows the consent page again.
// Its limits must start from what the user chose before: a page that started
// from the defaults (every calendar, 30 days ahead, 30 days, then a helper agent)
// let one click on Approve undo every narrowing the user had made, on a page
// that said only "it asks to also be able to list the times you are busy".
// A first consent preselects no helper agent (least privilege).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, authorizeUrl, callbackParams, parseConsentForm, pkcePair, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';
import { REDIRECT } from './helpers.js';

let authz: TestAuthz;
const { challenge } = pkcePair();

beforeAll(async () => {
  authz = await startTestAuthz();
  await authz.store.addCalendar({ id: 'cal_work', userId: authz.ownerId, name: 'work', kind: 'file', source: '/dev/null', createdAt: Date.now() });
});
afterAll(async () => authz.close());

async function consentPage(clientId: string, scope: string, extra?: Record<string, string>) {
  const browser = new Browser();
  // A new request each time, as an app makes one (its own challenge): a request is decided once (authorize.ts).
  const href = authorizeUrl(authz.issuer, { clientId, redirectUri: REDIRECT, resource: authz.agentUrl, state: 's', challenge: pkcePair().challenge, scope, ...(extra ? { extra } : {}) });
  const page = await signInAndOpenConsent(browser, authz.issuer, authz.ownerJwk, href);
  expect(page.status, page.html.slice(0, 300)).toBe(200);
  return { browser, page };
}

async function approve(browser: Browser, form: Record<string, string | string[]>) {
  const res = await browser.post(`${authz.issuer}/consent`, { ...form, decision: 'approve' });
  expect(res.status).toBe(303);
  expect(callbackParams(res.location!).get('code')).toBeTruthy();
}

describe('a consent page for calendars the user does not have', () => {
  // Found in review (consent-ui): it said "You have no calendars yet" to a user who has calendars.
  it('says it asks only for calendars the user does not have, and names the user\u2019s own', async () => {
    const client = await registerPublicClient(authz.issuer);
    const asked = JSON.stringify([{ type: 'calendar', locations: [authz.calendarUrl], actions: ['freebusy:read'], datatypes: ['freebusy'], calendars: ['Holidays'] }]);
    const { page } = await consentPage(client, 'slots:find', { authorization_details: asked });
    expect(page.html).not.toContain('You have no calendars yet');
    expect(page.html).toContain('It asks only for calendars you do not have (Holidays): it will see none of yours (demo, work)');
  });
});

// Found in review (s23deleg): every listed calendar ticked stored "all", calendars added later included, though only a
// step-up page ever said so. It is a box of its own now, preset only where nothing narrower was asked or allowed.
describe('"Calendars added later" on the consent page', () => {
  const LATER_BOX = /<label class="apart"><input type="checkbox" name="calendars_later" value="yes"( checked)?> Calendars added later<\/label>/;

  it('a first consent for a request naming no calendars offers it, ticked', async () => {
    const client = await registerPublicClient(authz.issuer);
    const { page } = await consentPage(client, 'slots:find');
    expect(LATER_BOX.exec(page.html)?.[1]).toBe(' checked');
    expect(parseConsentForm(page.html)).toMatchObject({ calendars: ['demo', 'work'], calendars_later: ['yes'] });
  });

  it('a request that names its calendars is not offered it', async () => {
    const client = await registerPublicClient(authz.issuer);
    const asked = JSON.stringify([{ type: 'calendar', locations: [authz.calendarUrl], actions: ['freebusy:read'], datatypes: ['freebusy'], calendars: ['work'] }]);
    const { browser, page } = await consentPage(client, 'slots:find', { authorization_details: asked });
    expect(page.html).not.toContain('calendars_later');
    // Nor does a crafted form get it.
    const res = await browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(page.html), calendars_later: 'yes', decision: 'approve' });
    expect(res.status).toBe(400);
    expect(res.html).toContain('Calendars added later were not offered.');
    expect(await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now())).toBeUndefined();
  });

  it('a step-up keeps it ticked under a grant with no calendar limit, and says so in today\u2019s limits', async () => {
    const client = await registerPublicClient(authz.issuer);
    const first = await consentPage(client, 'slots:find');
    await approve(first.browser, parseConsentForm(first.page.html));
    expect((await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now()))!.authorizationDetails[0]).not.toHaveProperty('calendars');
    const again = await consentPage(client, 'slots:find busy:read');
    expect(LATER_BOX.exec(again.page.html)?.[1]).toBe(' checked');
    expect(again.page.html).toContain('Today it may look at all your calendars, including ones added later,');
  });

  it('a step-up leaves it unticked under a grant that names its calendars, even with all of them ticked', async () => {
    const client = await registerPublicClient(authz.issuer);
    const first = await consentPage(client, 'slots:find');
    const { calendars_later: _preset, ...withoutLater } = parseConsentForm(first.page.html);
    await approve(first.browser, withoutLater);
    expect((await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now()))!.authorizationDetails[0]).toMatchObject({ calendars: ['demo', 'work'] });
    const again = await consentPage(client, 'slots:find busy:read');
    expect(LATER_BOX.exec(again.page.html)?.[1]).toBeUndefined();
    expect(again.page.html).toContain('Today it may look at the calendars demo, work,');
    await approve(again.browser, parseConsentForm(again.page.html));
    expect((await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now()))!.authorizationDetails[0]).toMatchObject({ calendars: ['demo', 'work'] });
  });
});

describe('a consent page for a user with no calendar yet', () => {
  it('says in words that the agent may look at every calendar added later', async () => {
    const bare = await startTestAuthz();
    try {
      await bare.store.removeCalendar(bare.ownerId, 'demo');
      const client = await registerPublicClient(bare.issuer);
      const href = authorizeUrl(bare.issuer, { clientId: client, redirectUri: REDIRECT, resource: bare.agentUrl, state: 's', challenge, scope: 'slots:find' });
      const page = await signInAndOpenConsent(new Browser(), bare.issuer, bare.ownerJwk, href);
      expect(page.html).toContain('You have no calendars yet; it may look at every calendar added later.');
    } finally {
      await bare.close();
    }
  });
});

describe('a step-up consent page', () => {
  it('starts from the limits chosen before, so approving it unchanged keeps them', async () => {
    const client = await registerPublicClient(authz.issuer);
    const first = await consentPage(client, 'slots:find');
    const firstForm = parseConsentForm(first.page.html);
    expect(firstForm.calendars).toEqual(['demo', 'work']);
    await approve(first.browser, { ...firstForm, calendars: ['work'], lookahead_days: '7', expires_days: '1', max_depth: '1' });
    const narrowed = (await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now()))!;

    const again = await consentPage(client, 'slots:find busy:read');
    expect(again.page.html).toContain('It asks to also be able to');
    const form = parseConsentForm(again.page.html);
    expect(form.calendars).toEqual(['work']);
    expect(form.lookahead_days).toBe('7');
    expect(form.expires_days).toBe('keep');
    expect(form.max_depth).toBe('1');
    // The page says what the limits are today.
    expect(again.page.html).toContain('They start from what you allowed before. Today it may look at the calendar work, 7 days ahead, with no helper agent but');
    await approve(again.browser, form);

    const grant = (await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now()))!;
    expect(grant.id).toBe(narrowed.id);
    expect(grant.scope).toBe('slots:find busy:read');
    expect(grant.authorizationDetails).toEqual(narrowed.authorizationDetails);
    expect(grant.maxDepth).toBe(1);
    expect(grant.expiresAt).toBe(narrowed.expiresAt);
    const consent = (await authz.store.listAudit()).filter((r) => r.event === 'consent' && r.grant === grant.id).at(-1)!;
    expect(consent.detail).toMatchObject({ previous_scope: 'slots:find', previous_authorization_details: narrowed.authorizationDetails, previous_max_depth: 1 });
  });

  it('still lets the user widen a limit on purpose, and the audit record says what it was', async () => {
    const client = await registerPublicClient(authz.issuer);
    const first = await consentPage(client, 'slots:find');
    await approve(first.browser, { ...parseConsentForm(first.page.html), calendars: ['work'], lookahead_days: '7' });
    const again = await consentPage(client, 'slots:find busy:read');
    // All calendars, now and later, is its own box, left unticked on a page that starts from a calendar limit.
    expect(parseConsentForm(again.page.html)).not.toHaveProperty('calendars_later');
    await approve(again.browser, { ...parseConsentForm(again.page.html), calendars: ['demo', 'work'], calendars_later: 'yes', lookahead_days: '30', expires_days: '90' });
    const grant = (await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now()))!;
    expect(grant.authorizationDetails[0]).toMatchObject({ lookahead_days: 30 });
    expect(grant.authorizationDetails[0]).not.toHaveProperty('calendars');
    expect(grant.expiresAt).toBeGreaterThan(Date.now() + 89 * 86_400_000);
    const consent = (await authz.store.listAudit()).filter((r) => r.event === 'consent' && r.grant === grant.id).at(-1)!;
    expect((consent.detail.previous_authorization_details as Array<Record<string, unknown>>)[0]).toMatchObject({ calendars: ['work'], lookahead_days: 7 });
  });

  it('keeps the delegation’s end unless the user picks a new length: 5 days left of 7 stay 5, not 7 again', async () => {
    const client = await registerPublicClient(authz.issuer);
    const first = await consentPage(client, 'slots:find');
    await approve(first.browser, { ...parseConsentForm(first.page.html), expires_days: '7' });
    const grant = (await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now()))!;
    const fiveDaysLeft = Date.now() + 5 * 86_400_000;
    await authz.store.updateGrant({ ...grant, expiresAt: fiveDaysLeft });

    const again = await consentPage(client, 'slots:find busy:read');
    expect(parseConsentForm(again.page.html).expires_days).toBe('keep');
    await approve(again.browser, parseConsentForm(again.page.html));
    expect((await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now()))!.expiresAt).toBe(fiveDaysLeft);
  });

  it('refuses "keep" where there is no grant to keep the end of', async () => {
    const client = await registerPublicClient(authz.issuer);
    const { browser, page } = await consentPage(client, 'slots:find');
    const res = await browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(page.html), expires_days: 'keep', decision: 'approve' });
    expect(res.status).toBe(400);
    expect(await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now())).toBeUndefined();
  });

  it('asking again with the same scope but wider limits says which limits it asks for (found in review: "It asks to also be able to" was an empty list)', async () => {
    const client = await registerPublicClient(authz.issuer);
    const first = await consentPage(client, 'slots:find');
    await approve(first.browser, { ...parseConsentForm(first.page.html), calendars: ['work'], lookahead_days: '7', max_depth: '1' });
    const before = (await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now()))!;
    const wider = JSON.stringify([{ type: 'calendar', locations: [authz.calendarUrl], actions: ['freebusy:read'], datatypes: ['freebusy'], lookahead_days: 366 }]);
    const again = await consentPage(client, 'slots:find', { authorization_details: wider });
    const asks = /<h2>It asks to also be able to<\/h2>\s*<ul>([\s\S]*?)<\/ul>/.exec(again.page.html)?.[1];
    expect(asks, again.page.html).toBeDefined();
    expect(asks).toContain('<li>Look at all your calendars (today: work)</li>');
    expect(asks).toContain('<li>Look up to 366 days ahead (today: 7 days)</li>');
    // Showing the page changed nothing; an untouched Approve keeps today's limits (the widgets start from them).
    expect(await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now())).toEqual(before);
    await approve(again.browser, parseConsentForm(again.page.html));
    expect((await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now()))!.authorizationDetails).toEqual(before.authorizationDetails);
  });

  it('a first consent still starts from the defaults', async () => {
    const client = await registerPublicClient(authz.issuer);
    const { page } = await consentPage(client, 'slots:find');
    const form = parseConsentForm(page.html);
    expect(form).toMatchObject({ calendars: ['demo', 'work'], lookahead_days: '30', expires_days: '30', max_depth: '1' });
    expect(page.html).not.toContain('They start from what you allowed before');
  });
});

// Least privilege (found in review): a first consent preselected "Yes — one helper agent", the deepest hand-off
// offered, so an Approve alone let CalendarAgent hand the delegation on. A helper is now the person's choice.
describe('whether the agent may ask another agent to help', () => {
  it('a first consent preselects "No — only CalendarAgent itself", and an Approve alone gives a grant of depth 1 (also a form without the choice)', async () => {
    for (const post of [(form: Record<string, string | string[]>) => form, ({ max_depth: _left, ...form }: Record<string, string | string[]>) => form]) {
      const client = await registerPublicClient(authz.issuer);
      const { browser, page } = await consentPage(client, 'slots:find');
      expect(page.html).toMatch(/<option value="1" selected>No — only CalendarAgent itself<\/option><option value="2">Yes — one helper agent/);
      await approve(browser, post(parseConsentForm(page.html)));
      expect((await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now()))!.maxDepth).toBe(1);
    }
  });

  it('a step-up keeps a helper agent chosen before (preselected, and for a form without the choice)', async () => {
    const client = await registerPublicClient(authz.issuer);
    const first = await consentPage(client, 'slots:find');
    await approve(first.browser, { ...parseConsentForm(first.page.html), max_depth: '2' });
    const again = await consentPage(client, 'slots:find busy:read');
    const { max_depth: preselected, ...withoutChoice } = parseConsentForm(again.page.html);
    expect(preselected).toBe('2');
    await approve(again.browser, withoutChoice);
    expect((await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now()))!.maxDepth).toBe(2);
  });
});
