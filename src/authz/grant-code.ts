// The authorization_code grant (OAuth 2.1 §4.1.3): a code is single-use and
// bound to its client, redirect URI (when the request sent one), PKCE verifier and resource. A replayed
// code revokes the tokens it issued (RFC 6749 §4.1.2). A request that proves
// it is the owner's CLI (owner_assertion, owner-proof.ts) gets tokens only for
// a code the owner approved. The tokens hold the code's scope as far as the
// grant, read when the code is redeemed, still allows it.
import { GRANT_TYPE_REFRESH_TOKEN, canonicalResource, formatScope, parseScope } from '../delegation/index.js';
import type { FormBody } from '../http/app.js';
import type { AuditEventInput, ClientRecord } from '../store/index.js';
import type { AuthContext } from './context.js';
import { hashSecret } from './crypto.js';
import { InvalidGrantError, InvalidRequestError, InvalidTargetError } from './errors.js';
import { GRANT_READINGS, GrantChangedError, mintUserTokens, scopeUnder, tokenResponse, type IssuedPair } from './issue.js';
import { ownerAsserted, refuseUnlessOwners } from './owner-proof.js';
import { required, single, singleTarget } from './params.js';
import { checkVerifier } from './policy/pkce.js';

/** RFC 8628 §3.5 invalid_grant: a device's poll after another of its polls redeemed the code. */
export const DEVICE_CODE_USED = 'The device code was used already.';

export async function authorizationCodeGrant(ctx: AuthContext, client: ClientRecord, body: FormBody): Promise<Record<string, unknown>> {
  // Checked (and its jti spent) before the code is looked at: an invalid assertion leaves the code as it was.
  const byOwner = await ownerAsserted(ctx, body);
  return redeemAuthorizationCode(ctx, client, body, { byOwner });
}

/**
 * Redeems a code (for the device grant too, device.ts, which checks its poll's owner assertion itself). `byOwner`:
 * the request proved it is the owner's CLI, so the code must be the owner's. `grantType`: the grant the client used,
 * as the issuance's audit record names it (the device grant's URN for a device poll). `device`: the device_code hash
 * of the device authorization the code was handed out for, spent with the code (Store.redeemAuthCode).
 */
export async function redeemAuthorizationCode(
  ctx: AuthContext,
  client: ClientRecord,
  body: FormBody,
  proof: { byOwner: boolean; grantType?: string; device?: string },
): Promise<Record<string, unknown>> {
  const code = required(body, 'code');
  const redirectUri = single(body, 'redirect_uri');
  const verifier = single(body, 'code_verifier');
  const resource = singleTarget(body, 'resource');

  const codeHash = hashSecret(code);
  const record = await ctx.store.authCodeByHash(codeHash);
  const now = ctx.now();
  if (!record) throw new InvalidGrantError('The authorization code is invalid.');
  // RFC 6749 §4.1.3: the code must have been issued to the authenticated client, and the PKCE verifier must match
  // (RFC 7636 §4.6). Both before the replay check: the revocation of RFC 6749 §4.1.2 and §10.5 answers a second
  // redemption by someone who could have redeemed the code (its client, with its verifier), in case the first was
  // not theirs. Another client, or a request without the verifier, could not have redeemed it, so its presentation
  // ends nothing (found in review regress21b: any confidential client ended another's token family with a spent
  // code and a wrong verifier, also a day after the code expired).
  if (record.clientId !== client.clientId) throw new InvalidGrantError('The authorization code was issued to another client.');
  const pkce = checkVerifier(verifier, record.codeChallenge);
  if (!pkce.ok) throw new InvalidGrantError(pkce.reason);
  const replayed: AuditEventInput = { event: 'code_replay', user: record.userId, client: client.clientId, grant: record.grantId, resource: record.resource, detail: { family_revoked: record.familyId } };
  if (record.usedAt !== null) {
    // A device's code is redeemed only by this server for the device's polls, with the verifier it alone holds: spent,
    // it is the device polling again while another of its polls redeemed it, never a replay (redeemAuthCode's
    // device_consumed; found in review regress21e: the tokens that poll got were revoked).
    if (proof.device !== undefined) throw new InvalidGrantError(DEVICE_CODE_USED);
    // Expired or not: a spent code in its own client's hands, with its verifier, a second time is a replay whatever
    // its age (RFC 6749 §4.1.2 puts no time on it; codes are kept a day past expiry for this). The family's end and
    // its record in one transaction (found in review: with the record failing, the family ended off the record).
    await ctx.store.revokeFamily(record.familyId, now, 'authorization code replayed', replayed);
    throw new InvalidGrantError('The authorization code was already used; the tokens it issued are revoked.');
  }
  if (record.expiresAt <= now) throw new InvalidGrantError('The authorization code has expired.');
  // RFC 6749 §4.1.3 (OAuth 2.1 §4.1.3): redirect_uri is required when the authorization request sent it, and, when
  // sent, must be the URI the code went to, exactly (the client's one registered URI when the request left it out).
  if (redirectUri === undefined) {
    if (record.redirectUriGiven !== false) throw new InvalidRequestError('The redirect_uri parameter is required: the authorization request sent one.');
  } else if (record.redirectUri !== redirectUri) {
    throw new InvalidGrantError('redirect_uri does not match the authorization request.');
  }
  if (resource !== undefined && canonicalResource(resource) !== record.resource) {
    throw new InvalidTargetError('The resource does not match the authorization request.');
  }
  let grant = await ctx.store.grantById(record.grantId);
  if (!grant || grant.revokedAt !== null || grant.expiresAt <= now) throw new InvalidGrantError('The delegation behind this code has ended.');
  // Login CSRF (RFC 6749 §10.12): the owner's CLI redeems, with its own verifier, a code someone else approved.
  if (proof.byOwner) await refuseUnlessOwners(ctx, client, record, grant, proof.device);

  // A refresh token only for a client registered for the refresh grant (RFC 7591 §2; token.ts refuses the others
  // that grant), so that none is issued, or kept, that its holder may not use.
  const refreshes = client.grantTypes.includes(GRANT_TYPE_REFRESH_TOKEN);
  let pair: IssuedPair;
  for (let reading = 1; ; reading++) {
    // The code's scope cut down to the grant's as it stands, for both tokens (defence in depth, as the refresh grant
    // does: found in review, s18, a code minted the scope recorded at approval whatever the grant had become since).
    const scope = formatScope(scopeUnder(grant, parseScope(record.scope), undefined, 'authorization code'));
    pair = await mintUserTokens(ctx, grant, record.familyId, scope, refreshes ? scope : null);
    // A replay racing the first redemption is found here, inside its transaction: it revokes the family and is recorded there
    // (found in review: of 4 concurrent redemptions of one code, the losers revoked the family with no code_replay record).
    // So is a grant revoked, or changed by a consent, while the tokens were signed (found in review: a code redeemed
    // as `grants revoke` ran got a live token the revocation had missed): nothing is recorded then.
    const issued: AuditEventInput = {
      event: 'token_issued',
      user: grant.userId,
      client: client.clientId,
      grant: grant.id,
      resource: grant.resource,
      actors: [client.clientId, grant.userId],
      detail: { grant_type: proof.grantType ?? 'authorization_code', scope: pair.access.claims.scope, jti: pair.access.claims.jti },
    };
    const issue = { refresh: pair.refresh?.record ?? null, access: pair.accessRecord, grant, record: issued, ...(proof.device !== undefined ? { device: proof.device } : {}) };
    const result = await ctx.store.redeemAuthCode(codeHash, now, issue, replayed);
    if (result.status === 'redeemed') break;
    if (result.status === 'replayed') throw new InvalidGrantError('The authorization code was already used; the tokens it issued are revoked.');
    if (result.status === 'other_client') throw new InvalidGrantError('The authorization code was issued to another client.');
    if (result.status === 'device_consumed') throw new InvalidGrantError(DEVICE_CODE_USED);
    // RFC 6749 §5.2 invalid_grant: the grant behind the code was revoked, or expired, meanwhile.
    if (result.status === 'grant_ended') throw new InvalidGrantError('The delegation behind this code has ended.');
    // grant_changed: the client gets tokens under the grant as it now stands, not an error. A grant changing at every
    // reading is not chased further: the store wrote nothing, so the code is unspent and the same request may succeed
    // a moment later (it is still single-use, RFC 6749 §4.1.2 and §10.5: the store spends it only with the
    // tokens it records). 500 server_error, as the refresh grant answers, not invalid_grant, which says the code is
    // dead (found in review, s21: "changed, try again" and "ended" were one answer). A grant that ended between the
    // readings is invalid_grant.
    if (reading >= GRANT_READINGS) throw new GrantChangedError('code was redeemed');
    const fresh = await ctx.store.grantById(record.grantId);
    if (!fresh || fresh.revokedAt !== null || fresh.expiresAt <= now) throw new InvalidGrantError('The delegation behind this code has ended.');
    grant = fresh;
  }
  // delegate's own member, in the answer to a sign-in only (this client signed the person in, so it learns nothing new):
  // the account's name, which `delegate status` shows beside the opaque `sub`. Never in the access token, which every
  // resource server and sub-agent reads.
  const user = await ctx.store.userById(grant.userId);
  return { ...tokenResponse(ctx, pair), ...(user !== undefined ? { user_name: user.name } : {}) };
}
