// Approve reads the calendar boxes against the list the consent page showed, kept with its pending request, not
// against the calendars the user has by the time of Approve. Found in review (s23new): the page listed demo and work
// with "Calendars added later" preset; the person unticked work, then removed it (`delegate calendar remove work`)
// before Approve; the form's calendars=demo&calendars_later=yes then ticked every calendar left, and the grant named
// no calendars (all, later ones too), so a `work` added back was read.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, authorizeUrl, callbackParams, parseConsentForm, pkcePair, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';
import { REDIRECT } from './helpers.js';

let authz: TestAuthz;
const work = () => ({ id: 'cal_work', userId: authz.ownerId, name: 'work', kind: 'file' as const, source: '/dev/null', createdAt: Date.now() });
beforeAll(async () => {
  authz = await startTestAuthz();
  await authz.store.addCalendar(work());
});
afterAll(async () => authz.close());

async function consentPage() {
  const client = await registerPublicClient(authz.issuer);
  const browser = new Browser();
  const href = authorizeUrl(authz.issuer, { clientId: client, redirectUri: REDIRECT, resource: authz.agentUrl, state: 's', challenge: pkcePair().challenge, scope: 'slots:find' });
  const page = await signInAndOpenConsent(browser, authz.issuer, authz.ownerJwk, href);
  expect(page.status, page.html.slice(0, 300)).toBe(200);
  return { client, browser, form: parseConsentForm(page.html) };
}

const grantCalendars = async (client: string) => (await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now()))?.authorizationDetails[0]?.calendars;

it('a calendar unticked, then removed before Approve, with "later" left ticked: the grant names the ticked one, not all', async () => {
  const { client, browser, form } = await consentPage();
  expect(form).toMatchObject({ calendars: ['demo', 'work'], calendars_later: ['yes'] });
  await authz.store.removeCalendar(authz.ownerId, 'work');
  try {
    const res = await browser.post(`${authz.issuer}/consent`, { ...form, calendars: ['demo'], decision: 'approve' });
    expect(res.status).toBe(303);
    expect(callbackParams(res.location!).get('code')).toBeTruthy();
    expect(await grantCalendars(client)).toEqual(['demo']);
  } finally {
    await authz.store.addCalendar(work());
  }
});

it('a calendar added after the page was shown is not "all" with every listed box ticked, and cannot be posted', async () => {
  const first = await consentPage();
  const second = await consentPage();
  await authz.store.addCalendar({ ...work(), id: 'cal_medical', name: 'medical' });
  try {
    const crafted = await second.browser.post(`${authz.issuer}/consent`, { ...second.form, calendars: ['demo', 'work', 'medical'], decision: 'approve' });
    expect(crafted.status).toBe(400);
    expect(crafted.html).toContain('One of the calendars chosen was not offered.');
    expect(await grantCalendars(second.client)).toBeUndefined();

    const res = await first.browser.post(`${authz.issuer}/consent`, { ...first.form, decision: 'approve' });
    expect(res.status).toBe(303);
    expect(await grantCalendars(first.client)).toEqual(['demo', 'work']);
  } finally {
    await authz.store.removeCalendar(authz.ownerId, 'medical');
  }
});

it('the same calendars at Approve as on the page, every box and "later" ticked: all, now and later', async () => {
  const { client, browser, form } = await consentPage();
  const res = await browser.post(`${authz.issuer}/consent`, { ...form, decision: 'approve' });
  expect(res.status).toBe(303);
  const grant = await authz.store.activeGrant(authz.ownerId, client, authz.agentUrl, Date.now());
  expect(grant!.authorizationDetails[0]).not.toHaveProperty('calendars');
});
