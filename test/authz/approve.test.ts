// The owner approving another app's request (`delegate approve`, src/cli/commands/approve.ts), at the authorization
// server: the sign-in page names the command for this very request (found in review, s22mcp: it said only
// `delegate login`, which signs in the CLI's own request), written so that a shell takes it as one word whatever the
// request's query holds; and a link signed with the approval claim always gets the consent page, never naming the app
// as the owner's own, even where the owner's own CLI's link would skip it (a grant covers the request).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../src/authz/index.js';
import { ownerLoginUrl, signOwnerAssertion } from '../../src/client/owner-login.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, authorizeUrl, parseConsentForm, pkcePair, postForm, registerDeviceClient, registerPublicClient } from '../support/oauth-flow.js';
import { REDIRECT } from './helpers.js';

let authz: TestAuthz;
const { challenge } = pkcePair();

beforeAll(async () => {
  authz = await startTestAuthz();
});
afterAll(async () => authz.close());

/** The page's `<pre><code>` command, unescaped as the person copies it. */
function commandOn(html: string): string | undefined {
  const code = /<pre><code>([^<]*)<\/code><\/pre>/.exec(html)?.[1];
  return code?.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** Opens the link `delegate approve` signs (the approval claim) or `login` signs (without it) for `href`. */
async function openSigned(href: string, approval: boolean) {
  const page = new URL(href);
  const next = `${page.pathname}${page.search}`;
  const assertion = await signOwnerAssertion({ key: authz.ownerJwk, issuer: authz.issuer, now: Date.now, next, approval });
  const browser = new Browser();
  return { browser, res: await browser.follow(ownerLoginUrl(authz.issuer, assertion, page)) };
}

describe('the sign-in page names `delegate approve` for this request', () => {
  it('an authorization request: the URL in single quotes, one shell word whatever its state holds, and the same request', async () => {
    const client = await registerPublicClient(authz.issuer);
    const state = `it's \\ $(touch /tmp/x) \`id\` "q" é`;
    const href = authorizeUrl(authz.issuer, { clientId: client, redirectUri: REDIRECT, resource: authz.agentUrl, state, challenge });
    const res = await new Browser().get(href);
    expect(res.status).toBe(403);
    const command = commandOn(res.html);
    expect(command).toMatch(new RegExp(`^delegate approve --auth-port ${new URL(authz.issuer).port} '[^'\\\\]+'$`));
    const url = new URL(/'(.*)'/.exec(command!)![1]!);
    expect(url.origin + url.pathname).toBe(`${authz.issuer}/authorize`);
    expect(url.searchParams.get('state')).toBe(state);
    expect(url.searchParams.get('client_id')).toBe(client);
    expect(res.html).not.toContain('Run <code>delegate login</code>');
  });

  // Found in review (s27rev3): Back or reload after a decision showed the command with the page's `signin` value, the
  // browser's alone, live while another sign-in of the same browser was; run, it sat on a command line every user can
  // read; and the password form sent the browser on with two.
  it('names the request without the sign-in value it came with', async () => {
    const client = await registerPublicClient(authz.issuer);
    const href = authorizeUrl(authz.issuer, { clientId: client, redirectUri: REDIRECT, resource: authz.agentUrl, state: 's', challenge });
    const value = 'A'.repeat(43);
    const res = await new Browser().get(`${href}&signin=${value}&sign%69n=${value}`);
    expect(res.status).toBe(403);
    expect(res.html).not.toContain(value);
    const url = new URL(/'(.*)'/.exec(commandOn(res.html)!)![1]!);
    expect(url.searchParams.has('signin')).toBe(false);
    expect(url.searchParams.get('client_id')).toBe(client);
    expect(url.searchParams.get('state')).toBe('s');
  });

  it('a device’s code page: the user code', async () => {
    const clientId = await registerDeviceClient(authz.issuer);
    const started = await postForm(`${authz.issuer}/device_authorization`, { client_id: clientId, scope: 'slots:find', resource: authz.agentUrl });
    const userCode = String(started.body.user_code);
    const res = await new Browser().get(String(started.body.verification_uri_complete));
    expect(res.status).toBe(403);
    expect(commandOn(res.html)).toBe(`delegate approve --auth-port ${new URL(authz.issuer).port} ${userCode}`);
  });

  it('another page (the grants page) still says `delegate login`', async () => {
    const res = await new Browser().get(`${authz.issuer}/grants`);
    expect(res.status).toBe(403);
    expect(commandOn(res.html)).toBeUndefined();
    expect(res.html).toContain('<code>delegate login</code>');
  });
});

describe('a link signed for another app’s request always shows the consent page', () => {
  it('even where a grant covers the request and the owner’s own CLI would get its code at once; the app’s name is its own claim', async () => {
    const client = await registerPublicClient(authz.issuer);
    const request = (state: string) => authorizeUrl(authz.issuer, { clientId: client, redirectUri: REDIRECT, resource: authz.agentUrl, state, challenge });
    const first = await openSigned(request('first'), true);
    expect(first.res.status).toBe(200);
    expect(first.res.html).toContain('not checked');
    const approved = await first.browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(first.res.html), decision: 'approve' });
    expect(approved.status).toBe(303);

    const again = await openSigned(request('again'), true);
    expect(again.res.status).toBe(200);
    expect(again.res.location).toBeNull();
    expect(again.res.html).toContain('Approve');
    expect(again.res.html).toContain('not checked');
    // The owner's CLI's own link (no approval claim) for the same covered request: straight back with a code.
    const own = await openSigned(request('own'), false);
    expect(own.res.location).toContain('code=');
  });

  it('for an app with an https redirect URI too, whose identity a password sign-in would take as assured (found in review s22new)', async () => {
    const redirect = 'https://app.example/cb'; // never followed: the browser stops at each answer
    const client = await registerPublicClient(authz.issuer, [redirect]);
    const request = (state: string) => authorizeUrl(authz.issuer, { clientId: client, redirectUri: redirect, resource: authz.agentUrl, state, challenge });
    const first = await openSigned(request('s1'), true);
    expect(first.res.status).toBe(200);
    const approved = await first.browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(first.res.html), decision: 'approve' });
    expect(approved.status).toBe(303);
    expect(approved.location).toMatch(/^https:\/\/app\.example\/cb\?code=/);

    const again = await openSigned(request('s3'), true);
    expect([again.res.status, again.res.location]).toEqual([200, null]);
    expect(again.res.html).toContain('Approve');
  });
});

// Found in review (s27rev3): the password form for /grants told the owner to run `delegate login`, which signs in its
// own request and never opens /grants. Last in this file: the account added makes every sign-in page a password form.
describe('the password form names what the owner runs instead', () => {
  it('for /grants: `delegate grants list`, not `delegate login`', async () => {
    await addUser(authz.store, { name: 'alice', password: 'alice has a long password', timeZone: 'UTC' }, Date.now());
    const res = await new Browser().get(`${authz.issuer}/grants`);
    expect(res.status).toBe(403);
    expect(res.html).toContain('<code>delegate grants list</code>');
    expect(res.html).not.toContain('<code>delegate login</code>');
  });
});
