// RFC 6749 §5.2 (and §4.1.2.1) from outside: error_description holds only
// %x20-21 / %x23-5B / %x5D-7E, no `"` and no `\`, on every path that used to
// send more: a fixed message written with `§`, messages that repeat what the
// client sent (a grant type, a parameter name), in a JSON body and in the
// redirect back to the client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { authorizeUrl, pkcePair, postJson, registerPublicClient } from '../support/oauth-flow.js';

const CONFORMS = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

let authz: TestAuthz;
beforeAll(async () => {
  authz = await startTestAuthz();
});
afterAll(async () => authz.close());

const client = { client_name: 'c', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none' };

describe('error_description on the wire', () => {
  it('DCR: grant_types and response_types that do not agree (the message cited RFC 7591 "§2.1")', async () => {
    const res = await postJson(`${authz.issuer}/register`, { ...client, grant_types: ['refresh_token'], response_types: ['code'] });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_client_metadata');
    expect(res.body.error_description).toBe('grant_types and response_types do not agree (RFC 7591 section 2.1).');
  });

  it('DCR: a grant type the client made up, echoed in the description, with quotes, a backslash, § and non-ASCII', async () => {
    const res = await postJson(`${authz.issuer}/register`, { ...client, grant_types: ['“my”\\grant§1 "x" ü 日'] });
    expect(res.status).toBe(400);
    const description = String(res.body.error_description);
    expect(description).toMatch(CONFORMS);
    expect(description).toBe("The grant type 'my'/grant section 1 'x' u ? cannot be registered.");
  });

  // It used to refuse this request naming the parameter (sanitized); RFC 6749 §3.1 says to ignore a parameter the
  // server does not recognize, so only the names the server reads can be named now, and those are plain.
  it('/authorize: a repeated parameter whose name has quotes and § is ignored, and a repeated one it reads is named conformingly', async () => {
    const clientId = await registerPublicClient(authz.issuer, ['http://127.0.0.1:43123/callback']);
    const url = new URL(authorizeUrl(authz.issuer, { clientId, redirectUri: 'http://127.0.0.1:43123/callback', resource: authz.agentUrl, scope: 'slots:find', state: 's', challenge: pkcePair().challenge }));
    const control = await fetch(url, { redirect: 'manual' });
    url.searchParams.append('x"§\\’', '1');
    url.searchParams.append('x"§\\’', '2');
    const ignored = await fetch(url, { redirect: 'manual' });
    expect(ignored.status).toBe(control.status);
    expect(ignored.headers.get('location') ?? '').not.toContain('error=');
    url.searchParams.append('scope', 'slots:find');
    const res = await fetch(url, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const back = new URL(res.headers.get('location')!).searchParams;
    expect(back.get('error')).toBe('invalid_request');
    expect(back.get('error_description')).toMatch(CONFORMS);
    expect(back.get('error_description')).toBe('The scope parameter is repeated.');
  });
});
