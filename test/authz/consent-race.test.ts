// Two consent pages of one app (two sign-ins of the same CLI client started
// together), approved at the same moment. Found in review (s26): each Approve
// looked for the user's grant to the client before either wrote one, both found
// none, and the user was left with two active grants for one client and agent:
// `logout` revoked one and said so, and the other stayed active for 30 days.
// Here the two POSTs go to the real server over loopback, made to interleave
// deterministically: a pass-through wrapper of the store's grant look-up holds
// each Approve there until the other has looked too. The outcome must be the one
// the same two Approves give one after the other: one grant, with both scopes.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import type { GrantRecord, Store } from '../../src/store/index.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, authorizeUrl, callbackParams, parseConsentForm, pkcePair, postForm, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';
import { REDIRECT } from './helpers.js';

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
});
afterAll(async () => authz.close());
const restores: Array<() => void> = [];
afterEach(() => restores.splice(0).forEach((restore) => restore()));

interface OpenPage {
  browser: Browser;
  form: Record<string, string | string[]>;
  verifier: string;
}

/** The owner signed in, on the consent page of `clientId` asking `scope` (the first page of a new grant: none exists yet). */
async function consentPage(clientId: string, scope: string): Promise<OpenPage> {
  const { verifier, challenge } = pkcePair();
  const browser = new Browser();
  const href = authorizeUrl(authz.issuer, { clientId, redirectUri: REDIRECT, resource: authz.agentUrl, state: `s-${scope}`, challenge, scope });
  const page = await signInAndOpenConsent(browser, authz.issuer, authz.ownerJwk, href);
  expect(page.status, page.html.slice(0, 300)).toBe(200);
  return { browser, form: parseConsentForm(page.html), verifier };
}

/** Approve, as the page presets it; the code it sends to the app. */
async function approve(page: OpenPage): Promise<string> {
  const res = await page.browser.post(`${authz.issuer}/consent`, { ...page.form, decision: 'approve' });
  expect(res.status, res.html.slice(0, 300)).toBe(303);
  return callbackParams(res.location!).get('code')!;
}

/** The code redeemed at /token: the grant its access token is of. */
async function grantOfTokens(clientId: string, page: OpenPage, code: string): Promise<{ grantId: unknown; scope: unknown }> {
  const res = await postForm(`${authz.issuer}/token`, { grant_type: 'authorization_code', code, code_verifier: page.verifier, redirect_uri: REDIRECT, client_id: clientId, resource: authz.agentUrl });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const claims = decodeJwt(String(res.body.access_token));
  return { grantId: claims.grant_id, scope: claims.scope };
}

/** Holds the next `count` look-ups of a user's grant until all of them have been made: the Approves interleave there. */
function lookUpsMeet(store: Store, count: number): { met: () => boolean } {
  const original = store.activeGrant;
  let arrived = 0;
  let open!: () => void;
  const allThere = new Promise<void>((resolve) => (open = resolve));
  restores.push(() => (store.activeGrant = original));
  store.activeGrant = async (...args) => {
    const found = await original.apply(store, args);
    if (++arrived === count) {
      store.activeGrant = original;
      open();
    }
    await allThere;
    return found;
  };
  return { met: () => arrived >= count };
}

/** A grant's scope as a set: its order is that of the consents, which two at once take in either order. */
const scopes = (scope: string): string[] => scope.split(' ').sort();
const liveGrantsOf = async (clientId: string): Promise<GrantRecord[]> => (await authz.store.listGrants()).filter((g) => g.clientId === clientId && g.revokedAt === null);
const consentsOf = async (grantId: string) => (await authz.store.listAudit({ grant: grantId, events: ['consent'] })).map((r) => r.detail as Record<string, unknown>);

describe('two consent pages of one app approved at the same moment', () => {
  it('end with one grant holding both scopes, and both codes give tokens of it, as one Approve after the other does', async () => {
    // One after the other first: what the two must come to.
    const alone = await registerPublicClient(authz.issuer);
    const [first, second] = [await consentPage(alone, 'slots:find'), await consentPage(alone, 'busy:read')];
    const inTurn = [await approve(first), await approve(second)];
    const [sequential] = await liveGrantsOf(alone);
    expect(await liveGrantsOf(alone)).toHaveLength(1);
    expect(scopes(sequential!.scope)).toEqual(['busy:read', 'slots:find']);
    expect((await grantOfTokens(alone, first, inTurn[0]!)).grantId).toBe(sequential!.id);
    expect((await grantOfTokens(alone, second, inTurn[1]!)).grantId).toBe(sequential!.id);

    // The same two pages of another app, both open before either is approved, approved together.
    const clientId = await registerPublicClient(authz.issuer);
    const pages = [await consentPage(clientId, 'slots:find'), await consentPage(clientId, 'busy:read')];
    const meeting = lookUpsMeet(authz.store, 2);
    const codes = await Promise.all(pages.map(approve));
    expect(meeting.met()).toBe(true);

    const live = await liveGrantsOf(clientId);
    expect(live).toHaveLength(1);
    const [grant] = live;
    expect(scopes(grant!.scope)).toEqual(['busy:read', 'slots:find']);
    // Whichever went first, the grant is the one the two make in turn: the same limits and depth.
    const limits = (g: GrantRecord) => ({ authorizationDetails: g.authorizationDetails, maxDepth: g.maxDepth, revokedAt: g.revokedAt });
    expect(limits(grant!)).toEqual(limits(sequential!));
    // Both codes redeem into tokens of that one grant, each with the scope its page asked for.
    expect(await grantOfTokens(clientId, pages[0]!, codes[0]!)).toEqual({ grantId: grant!.id, scope: 'slots:find' });
    expect(await grantOfTokens(clientId, pages[1]!, codes[1]!)).toEqual({ grantId: grant!.id, scope: 'busy:read' });
    // On the record as one after the other: the first consent made the grant, the second added its scope to it.
    const records = await consentsOf(grant!.id);
    expect(records).toHaveLength(2);
    expect(records[0]).not.toHaveProperty('previous_scope');
    expect(records[1]!.previous_scope).toBe(records[0]!.scope);
    expect(scopes(String(records[1]!.scope))).toEqual(['busy:read', 'slots:find']);
    expect(await consentsOf(sequential!.id)).toHaveLength(2);
  });
});
