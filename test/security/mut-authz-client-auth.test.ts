// Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7591 §2
// token_endpoint_auth_method), attacked from outside: a confidential client's
// code redeemed by someone who knows only its client_id (and, having started
// the request, the PKCE verifier), and a confidential client authenticating
// with another method than the one it registered. Written for the mutation
// review (s32 M1): dropping either check in src/authz/client-auth.ts left every
// other test green. Each refusal is checked on the wire (invalid_client)
// and in the database (nothing changed, the code still redeemable by its
// client as registered).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postForm, postJson } from '../support/oauth-flow.js';
import { REDIRECT, ownerCode, startStack, stateChangedBy, type Stack } from './stack.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => stack?.close());

type Confidential = { id: string; secret: string };

async function registerConfidential(name: string, method: 'client_secret_basic' | 'client_secret_post'): Promise<Confidential> {
  const res = await postJson(`${stack.issuer}/register`, { client_name: name, redirect_uris: [REDIRECT], token_endpoint_auth_method: method, grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id: String(res.body.client_id), secret: String(res.body.client_secret) };
}

const basic = (c: Confidential) => ({ authorization: `Basic ${Buffer.from(`${encodeURIComponent(c.id)}:${encodeURIComponent(c.secret)}`).toString('base64')}` });
const codeRequest = (code: string, verifier: string) => ({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, resource: stack.agentUrl });

/**
 * invalid_client (RFC 6749 §5.2), no token in the answer: 401 after credentials in the Authorization header, 400
 * otherwise (src/authz/errors.ts: a 401 must carry a challenge).
 */
function expectInvalidClient(res: { status: number; body: Record<string, unknown> }, viaHeader: boolean): void {
  expect(res.status, JSON.stringify(res.body)).toBe(viaHeader ? 401 : 400);
  expect(res.body.error).toBe('invalid_client');
  expect(res.body.access_token).toBeUndefined();
  expect(res.body.refresh_token).toBeUndefined();
}

describe('a confidential client named without its credentials (token_endpoint_auth_method none is for public clients only)', () => {
  it('its own code, with the right PKCE verifier, redeemed with client_id alone: invalid_client, nothing changed, the code still good for the client with its secret', async () => {
    const victim = await registerConfidential('confidential victim', 'client_secret_basic');
    const approved = await ownerCode(stack, { clientId: victim.id });
    // Whoever started the request holds the verifier; the client's secret is what proves the client itself.
    const { result, changed } = await stateChangedBy(stack, () => postForm(`${stack.issuer}/token`, { ...codeRequest(approved.code, approved.verifier), client_id: victim.id }));
    expectInvalidClient(result, false);
    expect(changed).toEqual([]);
    const own = await postForm(`${stack.issuer}/token`, codeRequest(approved.code, approved.verifier), basic(victim));
    expect(own.status, JSON.stringify(own.body)).toBe(200);
  });

  it('its refresh token presented with client_id alone: invalid_client, nothing changed, the token not spent', async () => {
    const victim = await registerConfidential('confidential refresh victim', 'client_secret_post');
    const approved = await ownerCode(stack, { clientId: victim.id });
    const first = await postForm(`${stack.issuer}/token`, { ...codeRequest(approved.code, approved.verifier), client_id: victim.id, client_secret: victim.secret });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const refresh = String(first.body.refresh_token);
    const { result, changed } = await stateChangedBy(stack, () => postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: refresh, client_id: victim.id }));
    expectInvalidClient(result, false);
    expect(changed).toEqual([]);
    const own = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: refresh, client_id: victim.id, client_secret: victim.secret });
    expect(own.status, JSON.stringify(own.body)).toBe(200);
  });
});

describe('a confidential client using another authentication method than the one it registered (RFC 7591 §2)', () => {
  it('registered for client_secret_basic, its secret sent in the body (client_secret_post): invalid_client, nothing changed, the code still good with Basic', async () => {
    const client = await registerConfidential('basic only', 'client_secret_basic');
    const approved = await ownerCode(stack, { clientId: client.id });
    const { result, changed } = await stateChangedBy(stack, () =>
      postForm(`${stack.issuer}/token`, { ...codeRequest(approved.code, approved.verifier), client_id: client.id, client_secret: client.secret }),
    );
    expectInvalidClient(result, false);
    expect(changed).toEqual([]);
    const own = await postForm(`${stack.issuer}/token`, codeRequest(approved.code, approved.verifier), basic(client));
    expect(own.status, JSON.stringify(own.body)).toBe(200);
  });

  it('registered for client_secret_post, its secret sent with Basic: invalid_client, nothing changed, the code still good in the body', async () => {
    const client = await registerConfidential('post only', 'client_secret_post');
    const approved = await ownerCode(stack, { clientId: client.id });
    const { result, changed } = await stateChangedBy(stack, () => postForm(`${stack.issuer}/token`, codeRequest(approved.code, approved.verifier), basic(client)));
    expectInvalidClient(result, true);
    expect(changed).toEqual([]);
    const own = await postForm(`${stack.issuer}/token`, { ...codeRequest(approved.code, approved.verifier), client_id: client.id, client_secret: client.secret });
    expect(own.status, JSON.stringify(own.body)).toBe(200);
  });
});
