// The owner's delegation to a public client, as tests and benchmarks set it
// up without a real browser: sign in with the owner's login assertion, open
// the consent page for an authorization request, Approve, take the code from
// the callback, and redeem it with the PKCE verifier.
import type { JWK } from 'jose';
import { Browser, authorizeUrl, callbackParams, parseConsentForm, pkcePair, postForm, registerPublicClient, signInAndOpenConsent, type WireResponse } from './oauth-flow.js';

/** Where the owner's flow runs: the authorization server, the resource asked for, and the owner's key. */
export interface FlowTarget {
  issuer: string;
  agentUrl: string;
  ownerJwk: JWK;
}

export const FLOW_REDIRECT = 'http://127.0.0.1:43123/callback';

export interface ApprovedCode {
  clientId: string;
  code: string;
  verifier: string;
  challenge: string;
  browser: Browser;
  /** The callback's query: code, state, iss. */
  params: URLSearchParams;
}

/**
 * Opens an authorization request as the owner's CLI does: through a sign-in
 * link of its own, which signs the browser in for that one request.
 */
export async function openAsOwner(target: { issuer: string; ownerJwk: JWK }, href: string, browser = new Browser()): Promise<{ browser: Browser; page: Awaited<ReturnType<typeof signInAndOpenConsent>> }> {
  const page = await signInAndOpenConsent(browser, target.issuer, target.ownerJwk, href);
  return { browser, page };
}

/**
 * The consent page's "May it ask another agent to help?" answered "Yes — one helper agent", for the tests of hand-offs
 * (may_act) and second hops: chosen, since a first consent preselects no helper agent (least privilege).
 */
export const ONE_HELPER_AGENT = { max_depth: '2' } as const;

/** What the owner changes on the consent page before Approve (its form fields, e.g. ONE_HELPER_AGENT); the page's preselection otherwise. */
export type ConsentChoices = Record<string, string | string[]>;

/** The owner approves a request of `clientId` (a new public client when absent) on the consent page; throws if no code comes back. */
export async function ownerApproves(
  target: FlowTarget,
  options: { clientId?: string; scope?: string; state?: string; redirectUri?: string; choices?: ConsentChoices } = {},
): Promise<ApprovedCode> {
  const redirectUri = options.redirectUri ?? FLOW_REDIRECT;
  const clientId = options.clientId ?? (await registerPublicClient(target.issuer, [redirectUri]));
  const { verifier, challenge } = pkcePair();
  const browser = new Browser();
  const request = authorizeUrl(target.issuer, { clientId, redirectUri, resource: target.agentUrl, scope: options.scope ?? 'slots:find', state: options.state ?? 'st', challenge });
  const page = await signInAndOpenConsent(browser, target.issuer, target.ownerJwk, request);
  if (page.status !== 200) throw new Error(`consent page: HTTP ${page.status}`);
  const decision = await browser.post(`${target.issuer}/consent`, { ...parseConsentForm(page.html), ...options.choices, decision: 'approve' });
  const params = callbackParams(decision.location ?? 'http://invalid/');
  const code = params.get('code');
  if (!code) throw new Error(`consent gave no code: ${decision.location}`);
  return { clientId, code, verifier, challenge, browser, params };
}

/** Redeems an approved code at /token (authorization_code grant, PKCE), for the target's resource; `extra` overrides. */
export function redeemCode(
  target: FlowTarget,
  c: { clientId: string; code: string; verifier: string },
  extra: Record<string, string | string[] | undefined> = {},
  redirectUri = FLOW_REDIRECT,
): Promise<WireResponse> {
  return postForm(`${target.issuer}/token`, {
    grant_type: 'authorization_code',
    code: c.code,
    code_verifier: c.verifier,
    redirect_uri: redirectUri,
    client_id: c.clientId,
    resource: target.agentUrl,
    ...extra,
  });
}
