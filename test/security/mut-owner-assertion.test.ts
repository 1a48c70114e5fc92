// Mutation review s32 (M3): the owner's token-endpoint assertion (src/authz/owner-proof.ts) made out to this token
// endpoint alone, and the owner's sign-in link (src/authz/owner-login.ts) made out to sub "owner". Assertions signed
// with the real owner key but otherwise off: an `aud` array naming the token endpoint and the issuer (one assertion
// good at both), and a subject other than "owner". Kills: owner-proof.ts's `payload.aud !== audience` skipped, and
// owner-login.ts's `subject: OWNER_ASSERTION_SUBJECT` dropped from verifiedOwnerAssertion; both survived
// test/security/{owner-link,owner-token-assertion,pages}.test.ts and test/authz/owner-login-refusals.test.ts.
import { importJWK, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signOwnerTokenAssertion } from '../../src/client/owner-login.js';
import { ownerCode, redeemCode, startStack, stateChangedBy, type Stack } from './stack.js';

let stack: Stack;
let tokenEndpoint: string;

beforeAll(async () => {
  stack = await startStack();
  tokenEndpoint = `${stack.issuer}/token`;
});
afterAll(async () => stack?.close());

/** An assertion signed with the owner's own key, as the CLI's but for `aud` and `sub`. */
async function ownerSigned(aud: string | string[], sub = 'owner'): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', ...(stack.ownerJwk.kid ? { kid: stack.ownerJwk.kid } : {}) })
    .setIssuer('delegate-cli')
    .setSubject(sub)
    .setAudience(aud)
    .setJti(crypto.randomUUID() + crypto.randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + 60)
    .sign((await importJWK(stack.ownerJwk, 'ES256')) as CryptoKey);
}

describe('owner assertions signed with the owner key for more, or for someone else (mutation review s32 M3)', () => {
  it.each([
    ['aud [token endpoint, issuer]', () => ownerSigned([tokenEndpoint, stack.issuer])],
    ['sub other than "owner"', () => ownerSigned(tokenEndpoint, 'mallory')],
  ])('at /token, %s: 400 invalid_grant, nothing issued or changed; the code still redeems with the CLI’s assertion', async (_name, make) => {
    const own = await ownerCode(stack);
    const assertion = await make();
    const { result: res, changed } = await stateChangedBy(stack, () => redeemCode(stack, own, { owner_assertion: assertion }));
    expect([res.status, res.body.error, res.body.access_token]).toEqual([400, 'invalid_grant', undefined]);
    expect(changed).toEqual([]);
    const control = await redeemCode(stack, own, { owner_assertion: await signOwnerTokenAssertion({ key: stack.ownerJwk, tokenEndpoint, now: Date.now }) });
    expect(control.status).toBe(200);
  });
});
