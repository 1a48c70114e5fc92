// Mutation review s32 (M3): open registration (RFC 7591) bounds the number of redirect URIs a client may register
// (10), each short and the whole well under the metadata limit, so that the limit on bytes alone is not what holds.
// Kills: the count check skipped (src/authz/register.ts, `redirectUris.length > MAX_REDIRECT_URIS`), which survived
// test/authz/registration.test.ts, test/security/registration-limits.test.ts and test/authz/registration-audit.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson } from '../support/oauth-flow.js';
import { startStack, stateChangedBy, type Stack } from './stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => stack.close());

const base = { client_name: 'Many Callbacks', token_endpoint_auth_method: 'none', grant_types: ['authorization_code'], response_types: ['code'] };
const uris = (n: number) => Array.from({ length: n }, (_, i) => `https://app.example/cb${i}`);

describe('registration bounds the number of redirect URIs (mutation review s32 M3)', () => {
  it.each([11, 20])('refuses %d short redirect URIs: 400 invalid_redirect_uri, no client', async (n) => {
    const { result, changed } = await stateChangedBy(stack, () => postJson(`${stack.issuer}/register`, { ...base, redirect_uris: uris(n) }));
    expect([result.status, result.body.error]).toEqual([400, 'invalid_redirect_uri']);
    expect(String(result.body.error_description)).toMatch(/At most 10 redirect URIs/);
    expect(changed).toEqual([]);
  });

  it('registers 10 (the control)', async () => {
    const res = await postJson(`${stack.issuer}/register`, { ...base, redirect_uris: uris(10) });
    expect(res.status).toBe(201);
    expect(res.body.redirect_uris).toEqual(uris(10));
  });
});
