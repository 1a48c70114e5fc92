// Audience injection in private_key_jwt (OpenID Foundation disclosure, 2025;
// draft-ietf-oauth-rfc7523bis): a client assertion is accepted only when its
// `aud` is this server's issuer identifier, as a single string, at every
// endpoint that authenticates clients. An assertion made out to the token
// endpoint's URL (which a malicious AS can get a client to sign by publishing
// that URL as its own token endpoint), to the endpoint's own URL, or to a list
// holding the issuer among others, is refused with 400 invalid_client (401
// with the Basic challenge at /introspect, RFC 7662 §2.3) and changes nothing,
// not even the store of used jti values.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClientAssertionSigner } from '../../src/agent/client-assertion.js';
import { createPrivateKeyJwtAuth } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { decodeJwt } from 'jose';
import { postForm, type WireResponse } from '../support/oauth-flow.js';
import { ACCESS_TOKEN_TYPE, JWT_BEARER, TOKEN_EXCHANGE, agentAssertion, startStack, stateChangedBy, userTokens, type Stack } from './stack.js';

let stack: Stack;
let subject: string;
beforeAll(async () => {
  stack = await startStack();
  subject = (await userTokens(stack)).accessToken;
});
afterAll(async () => stack?.close());

/** Each endpoint that takes client authentication, with a request the agent may make there, and its answer when accepted. */
/**
 * RFC 7662 §2.3: /introspect answers invalid client credentials with 401 (and the challenge), and /audit, whose callers
 * are servers too, alike; the others with 400 (RFC 6749 §5.2).
 */
const refusedStatus = (path: string) => (path === '/introspect' || path === '/audit' ? 401 : 400);

const endpoints: Array<{ name: string; path: string; params: () => Record<string, string>; accepted: (res: WireResponse) => void }> = [
  {
    name: '/token (token exchange)',
    path: '/token',
    params: () => ({ grant_type: TOKEN_EXCHANGE, subject_token: subject, subject_token_type: ACCESS_TOKEN_TYPE, resource: stack.calendarUrl, scope: 'freebusy:read' }),
    accepted: (res) => expect(typeof res.body.access_token).toBe('string'),
  },
  { name: '/revoke', path: '/revoke', params: () => ({ token: 'dlg_rt_unknown' }), accepted: (res) => expect(res.status).toBe(200) },
  { name: '/introspect', path: '/introspect', params: () => ({ token: subject }), accepted: (res) => expect(res.body.active).toBe(true) },
  {
    name: '/audit',
    path: '/audit',
    params: () => ({
      // A report names the token it is about (here the user's token for CalendarAgent); who and which grant come from it.
      record: JSON.stringify({ event: 'tool_call', resource: stack.agentUrl, detail: { tool: 'find_slot', outcome: 'ok', jti: decodeJwt(subject).jti } }),
    }),
    accepted: (res) => expect(res.status).toBe(204),
  },
];

const send = async (path: string, params: Record<string, string>, aud: unknown) =>
  postForm(`${stack.issuer}${path}`, {
    ...params,
    client_id: stack.agent.clientId,
    client_assertion_type: JWT_BEARER,
    client_assertion: await agentAssertion(stack, {}, { aud }),
  });

/** The audiences refused everywhere: name, and the aud claim for an endpoint at `path`. */
const refusedAudiences: Array<[string, (path: string) => unknown]> = [
  ['the token endpoint URL', () => `${stack.issuer}/token`],
  ["the endpoint's own URL", (path) => `${stack.issuer}${path}`],
  ['[issuer, another audience]', () => [stack.issuer, 'https://other.example']],
  ['[issuer, the token endpoint URL]', () => [stack.issuer, `${stack.issuer}/token`]],
  ['[issuer] (a single-valued array, not a string)', () => [stack.issuer]],
  ['the issuer with a trailing slash', () => `${stack.issuer}/`],
];

describe.each(endpoints)('client assertion audience at $name', ({ path, params, accepted }) => {
  it('accepts aud = the issuer identifier (the control)', async () => {
    const res = await send(path, params(), stack.issuer);
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    accepted(res);
  });

  it.each(refusedAudiences)('refuses aud = %s: 400 (401 at /introspect and /audit) invalid_client naming the issuer, nothing changed', async (_name, aud) => {
    const { result: res, changed } = await stateChangedBy(stack, () => send(path, params(), aud(path)));
    expect(res.status).toBe(refusedStatus(path));
    expect(res.body.error).toBe('invalid_client');
    expect(res.body.error_description).toBe(`The client assertion's aud must be this server's issuer identifier, ${stack.issuer}.`);
    expect(changed).toEqual([]);
  });
});

describe('the clients that sign assertions for this server', () => {
  it('CalendarAgent (and the CLI and remote audit, which share its signer) puts the issuer, as a string, in aud', async () => {
    const sign = createClientAssertionSigner(stack.agent.clientId, stack.agent.privateJwk, stack.issuer);
    const assertion = await sign(Date.now());
    expect(decodeJwt(assertion).aud).toBe(stack.issuer);
    const res = await postForm(`${stack.issuer}/introspect`, { token: subject, client_assertion_type: JWT_BEARER, client_assertion: assertion });
    expect(res.body.active).toBe(true);
  });

  it("the MCP SDK's createPrivateKeyJwtAuth uses the issuer from the AS metadata, and is accepted; without metadata it names the token URL and is refused", async () => {
    const addAuth = createPrivateKeyJwtAuth({ issuer: stack.agent.clientId, subject: stack.agent.clientId, privateKey: stack.agent.privateJwk as Record<string, unknown>, alg: 'ES256' });
    const metadata = (await (await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)).json()) as { issuer: string; token_endpoint: string };
    const withMetadata = new URLSearchParams();
    await addAuth(new Headers(), withMetadata, metadata.token_endpoint, metadata as never);
    expect(decodeJwt(withMetadata.get('client_assertion')!).aud).toBe(stack.issuer);
    const ok = await postForm(`${stack.issuer}/introspect`, { token: subject, ...Object.fromEntries(withMetadata) });
    expect(ok.body.active, JSON.stringify(ok.body)).toBe(true);

    const withoutMetadata = new URLSearchParams();
    await addAuth(new Headers(), withoutMetadata, metadata.token_endpoint, undefined);
    expect(decodeJwt(withoutMetadata.get('client_assertion')!).aud).toBe(metadata.token_endpoint);
    const refused = await postForm(`${stack.issuer}/introspect`, { token: subject, ...Object.fromEntries(withoutMetadata) });
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_client');
  });
});
