// HEAD on the GET routes whose handler acts: the owner's one-time sign-in
// link, the device's /device/done, /authorize (which may issue a code or store
// a request), the device code page (which counts typed codes) and the calendar's
// /freebusy (which records a read). Link scanners and prefetchers send HEAD; a
// safe method must not spend a one-time link (RFC 9110 §9.2.1, §9.3.2). Each
// answers 405 with Allow naming GET, and nothing in the database changes; the
// same link then works with GET. A page that only shows something keeps HEAD.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenExchanger } from '../../src/agent/exchange.js';
import { loadOrCreateAgentKey } from '../../src/agent/identity.js';
import { loadOrCreateOwnerKey, signOwnerAssertion } from '../../src/client/owner-login.js';
import { postForm, registerDeviceClient } from '../support/oauth-flow.js';
import { runAuthorizationFlow, startTestStack, type TestStack } from '../support/stack.js';
import { stateChangedBy } from './stack.js';

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ sweep: false });
}, 30_000);

afterAll(async () => {
  await stack?.close();
});

async function head(url: string, headers: Record<string, string> = {}) {
  return stateChangedBy(stack, () => fetch(url, { method: 'HEAD', headers, redirect: 'manual' }));
}

function expectRefusedHead(res: Response, changed: string[]): void {
  expect(res.status).toBe(405);
  expect(res.headers.get('allow')?.split(', ')).toContain('GET');
  expect(res.headers.getSetCookie()).toEqual([]);
  expect(changed).toEqual([]);
}

describe('HEAD on a GET route that acts (found in review s35fuzz: HEAD /login/owner with a fresh link signed in and spent the link)', () => {
  it('the owner’s sign-in link: 405, no session, nothing written; the link then signs in with GET', async () => {
    const { issuer } = stack.urls;
    const next = '/device?user_code=BCDF-GHJK';
    const assertion = await signOwnerAssertion({ key: await loadOrCreateOwnerKey(stack.paths.ownerKey), issuer, now: Date.now, next });
    const link = `${issuer}/login/owner?${new URLSearchParams({ assertion, next })}`;
    const { result, changed } = await head(link);
    expectRefusedHead(result, changed);
    const get = await fetch(link, { redirect: 'manual' });
    expect(get.status).toBe(303);
    expect(get.headers.getSetCookie().length).toBeGreaterThan(0);
  });

  it('/device/done with a pending device’s state: 405, the device not settled', async () => {
    const { issuer, agentUrl } = stack.urls;
    const clientId = await registerDeviceClient(issuer);
    const started = await postForm(`${issuer}/device_authorization`, { client_id: clientId, resource: agentUrl });
    const record = await stack.store.deviceAuthorizationByUserCode(String(started.body.user_code), Date.now());
    const { result, changed } = await head(`${issuer}/device/done?${new URLSearchParams({ state: record!.state, iss: issuer, error: 'access_denied' })}`);
    expectRefusedHead(result, changed);
    expect((await stack.store.deviceAuthorizationByUserCode(String(started.body.user_code), Date.now()))?.status).toBe('pending');
  });

  it('/authorize for a client the owner approved already (GET would issue a code): 405, no code', async () => {
    const flow = await runAuthorizationFlow(stack);
    const { issuer, agentUrl } = stack.urls;
    const params = new URLSearchParams({ response_type: 'code', client_id: flow.clientId, redirect_uri: flow.redirectUri, resource: agentUrl, scope: 'slots:find', state: 's', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' });
    const { result, changed } = await head(`${issuer}/authorize?${params}`, { cookie: flow.cookieHeader });
    expectRefusedHead(result, changed);
  });

  it('the device code page with a code typed: 405, nothing counted', async () => {
    const { result, changed } = await head(`${stack.urls.issuer}/device?user_code=BCDF-GHJK`);
    expectRefusedHead(result, changed);
  });

  it('the calendar’s /freebusy with a valid token: 405, no freebusy_read recorded', async () => {
    const flow = await runAuthorizationFlow(stack);
    const identity = await loadOrCreateAgentKey(stack.paths.agentKey);
    const exchanger = createTokenExchanger({ issuer: stack.urls.issuer, clientId: identity.clientId, privateKey: identity.privateJwk });
    const calendarToken = (await exchanger.exchange(flow.accessToken, { resource: stack.urls.calendarUrl, scope: 'freebusy:read' })).accessToken;
    const { result, changed } = await head(`${stack.urls.calendarUrl}/freebusy`, { authorization: `Bearer ${calendarToken}` });
    expectRefusedHead(result, changed);
  });

  it('a page that only shows something keeps HEAD (the control): /login, /grants, the metadata', async () => {
    const { issuer } = stack.urls;
    for (const path of ['/login', '/grants', '/.well-known/oauth-authorization-server']) {
      const { result, changed } = await head(`${issuer}${path}`);
      // /grants without a session: its sign-in page (403), as GET answers.
      expect([path, result.status]).toEqual([path, path === '/grants' ? 403 : 200]);
      expect(changed).toEqual([]);
    }
  });
});
