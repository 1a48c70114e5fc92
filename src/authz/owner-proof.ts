// The owner's CLI proving itself at the token endpoint (docs/internals.md,
// "Local owner sign-in"). A sign-in through the owner's link puts the CLI's
// authorization request (its state, PKCE challenge and callback port) on
// command lines that other users of the machine can read; one with an account
// of their own here can approve that very request and send its code to the
// CLI's listener (login CSRF, RFC 6749 §10.12, RFC 9700 §4.7). So the CLI adds
// to that sign-in's token request an assertion signed with the owner key (an
// extension parameter, RFC 6749 §3.2), and a code approved by anyone but the
// owner is then refused: spent, nothing issued, and the grant made by that
// approval (of the owner CLI's own request) revoked, on the record.
import { NOT_THE_OWNER_DESCRIPTION, OWNER_ASSERTION_PARAMETER } from '../delegation/index.js';
import type { FormBody } from '../http/app.js';
import type { AuditEventInput, AuthCodeRecord, ClientRecord, GrantRecord } from '../store/index.js';
import type { AuthContext } from './context.js';
import { InvalidGrantError, InvalidRequestError } from './errors.js';
import { OWNER_ASSERTION_MAX_LIFETIME_SEC, ownerPublicKey, verifiedOwnerAssertion } from './owner-login.js';
import { single } from './params.js';

/** Three base64url parts: what a signed JWT looks like before anything is checked. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Whether the token request proves it comes from the owner's CLI: false
 * without the parameter (every other client, and the CLI at a remote issuer);
 * true for a valid assertion, whose `jti` is spent; an invalid one throws
 * (invalid_request when it is no JWT at all, else invalid_grant).
 *
 * Checked as /login/owner checks its link (owner-login.ts): the owner's public
 * key, ES256 only, iss "delegate-cli", sub "owner", at most 120 s, one use. Its
 * audience is this server's token endpoint alone, the link's the issuer: the
 * one cannot be used as the other.
 */
export async function ownerAsserted(ctx: AuthContext, body: FormBody): Promise<boolean> {
  const assertion = single(body, OWNER_ASSERTION_PARAMETER);
  if (assertion === undefined) return false;
  if (!COMPACT_JWS.test(assertion)) throw new InvalidRequestError(`${OWNER_ASSERTION_PARAMETER} is not a signed JWT.`);
  const key = ctx.ownerKeyPath ? await ownerPublicKey(ctx.ownerKeyPath) : undefined;
  if (!key) throw new InvalidGrantError('This server has no owner key, so it cannot check the owner assertion.');
  const now = ctx.now();
  const audience = ctx.endpoints.token;
  let jti: string;
  let exp: number;
  try {
    const payload = await verifiedOwnerAssertion(assertion, key, audience, now, { maxTokenAge: OWNER_ASSERTION_MAX_LIFETIME_SEC });
    ({ jti, exp } = payload);
    // One audience only: the owner key signs nothing else for this endpoint.
    if (payload.aud !== audience) throw new Error('assertion for more than this endpoint');
  } catch {
    throw new InvalidGrantError('The owner assertion is not valid: expired, not signed with the owner key, or not made for this token endpoint.');
  }
  if (!(await ctx.store.useOnce(`owner-token:${jti}`, exp * 1000, now))) throw new InvalidGrantError('The owner assertion was used already.');
  return true;
}

/**
 * For a request that proved to come from the owner's CLI: throws unless the
 * code's grant is the owner's. Another account's approval of the owner CLI's
 * own request is the login CSRF above, so nothing legitimate depends on its
 * grant: the code is spent and the grant revoked, with every token of it, in
 * one transaction with the record of it (and the device authorization whose
 * poll presented it, `device`, with the code).
 */
export async function refuseUnlessOwners(ctx: AuthContext, client: ClientRecord, code: AuthCodeRecord, grant: GrantRecord, device?: string): Promise<void> {
  const owner = await ctx.store.ownerUser();
  if (owner && grant.userId === owner.id) return;
  const revoked: AuditEventInput = {
    event: 'grant_revoked',
    user: grant.userId,
    client: client.clientId,
    grant: grant.id,
    resource: grant.resource,
    detail: { by: 'authorization server', reason: "approved by another account than this computer's owner", via: OWNER_ASSERTION_PARAMETER, owner: owner?.id ?? null },
  };
  await ctx.store.refuseAuthCode(code.codeHash, ctx.now(), "approved by another account than this computer's owner", revoked, device);
  throw new InvalidGrantError(NOT_THE_OWNER_DESCRIPTION);
}
