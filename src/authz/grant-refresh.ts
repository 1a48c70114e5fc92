// The refresh_token grant (OAuth 2.1 §4.3): the token is rotated on every use
// and the old one dies. Presenting a spent one revokes its family (RFC 9700
// §4.14.2). The new access token may narrow the scope, never widen it, and
// never holds more than the grant as it stands. A client that has hung up
// before the rotation commits gets no rotation: it could never read the new
// pair, and still holds the token it sent. A replay is judged and acted on
// whether or not its presenter is still there.
import { canonicalResource, formatScope, isSubset, parseScope } from '../delegation/index.js';
import type { FormBody } from '../http/app.js';
import type { ClientRecord, GrantRecord, RefreshTokenRecord, ReplayedToken, RotateRefreshResult } from '../store/index.js';
import type { AuthContext } from './context.js';
import { hashSecret } from './crypto.js';
import { InvalidGrantError, InvalidScopeError, InvalidTargetError } from './errors.js';
import { GRANT_READINGS, GrantChangedError, mintUserTokens, scopeUnder, tokenResponse, type IssuedPair } from './issue.js';
import { required, scopeParam, singleTarget } from './params.js';

/** The client closed its connection before its refresh was carried out: nothing was changed, and no answer can reach it. */
export class RefreshAbandoned extends Error {
  constructor() {
    super('The client closed the connection before its refresh token was rotated; nothing was changed.');
    this.name = 'RefreshAbandoned';
  }
}

/**
 * `clientGone` says whether the client has hung up (its connection closed):
 * asked inside the store's transaction once a rotation would be carried out,
 * and when it has, the refresh is not carried out (RefreshAbandoned). It is
 * not asked for a replay, an expired or a revoked token.
 */
export async function refreshTokenGrant(ctx: AuthContext, client: ClientRecord, body: FormBody, clientGone: () => boolean = () => false): Promise<Record<string, unknown>> {
  const presented = required(body, 'refresh_token');
  const resource = singleTarget(body, 'resource');
  const asked = scopeParam(body);

  const tokenHash = hashSecret(presented);
  const record = await ctx.store.refreshTokenByHash(tokenHash);
  if (!record) throw new InvalidGrantError('The refresh token is invalid.');
  // Checked before anything changes, so another client cannot burn this client's token.
  if (record.clientId !== client.clientId) throw new InvalidGrantError('The refresh token was issued to another client.');
  if (resource !== undefined && canonicalResource(resource) !== record.resource) {
    throw new InvalidTargetError('A refresh token is good only for the resource it was issued for.');
  }
  if (asked !== undefined && !isSubset(asked, parseScope(record.scope))) throw new InvalidScopeError('The requested scope exceeds the one granted.');

  let grant = await ctx.store.grantById(record.grantId);
  for (let reading = 1; ; reading++) {
    const now = ctx.now();
    // Which end, in the description: the CLI tells the person why their sign-in ended (RFC 6749 §5.2 leaves it to the text).
    if (!grant) throw new InvalidGrantError('The delegation behind this token has ended.');
    if (grant.revokedAt !== null) throw new InvalidGrantError('The delegation behind this token was revoked.');
    if (grant.expiresAt <= now) throw new InvalidGrantError('The delegation behind this token has expired.');
    const scopes = scopeUnder(grant, parseScope(record.scope), asked, 'refresh token');
    const { result, pair } = await rotate(ctx, client, { tokenHash, record, scopes, grant, now }, clientGone);
    if (result.status !== 'grant_changed') return answer(ctx, result, pair);
    // A consent changed the grant (narrowed it: 30 days ahead down to 7) while the token was signed under the old
    // limits, and revoked the grant's tokens in its transaction, before this one could be recorded (found in
    // review: the token was recorded after, with the old limits, and lived). Nothing was rotated: the client gets a
    // token under the grant as it now stands, not an error. A grant changing at every reading is not chased further:
    // 500 server_error (GrantChangedError), the refresh token kept (found in review: the CLI wrote "delegation ended").
    if (reading >= GRANT_READINGS) throw new GrantChangedError('refresh was carried out');
    grant = await ctx.store.grantById(record.grantId);
  }
}

/** Mints a pair under `grant` as read, and rotates the presented token to it in the store. */
async function rotate(
  ctx: AuthContext,
  client: ClientRecord,
  presented: { tokenHash: string; record: RefreshTokenRecord; scopes: string[]; grant: GrantRecord; now: number },
  clientGone: () => boolean,
): Promise<{ result: RotateRefreshResult; pair: IssuedPair }> {
  const { tokenHash, record, scopes, grant, now } = presented;
  // The access token may be narrower; the new refresh token keeps the presented one's scope (RFC 6749 §6).
  const pair = await mintUserTokens(ctx, grant, record.familyId, formatScope(scopes), record.scope);
  // The rotation and its audit record commit together: one durable write per refresh.
  const refreshed = (grace: boolean) => ({
    event: 'token_refreshed',
    user: grant.userId,
    client: client.clientId,
    grant: grant.id,
    resource: grant.resource,
    actors: [client.clientId, grant.userId],
    detail: { scope: pair.access.claims.scope, jti: pair.access.claims.jti, ...(grace ? { within_grace: true } : {}) },
  });
  // A client that hung up (Ctrl-C, a kill, its own timeout) while we worked would never read the new pair
  // and keeps the token it sent: rotating now would make its next refresh, after the grace window, a
  // replay that ends the family (RFC 9700 §4.14.2) and signs the person out. So it is not rotated, and the
  // token it holds stays good. Asked inside the store's transaction, which is synchronous: no close can be
  // noticed between this question and the commit. And asked only of a rotation: a spent token presented
  // again is a breach signal whoever sent it, and the presenter hanging up must not spare its family (found
  // in review s15rest: the question came before the store told a replay from a rotation, so a replay whose
  // presenter closed its connection was neither recorded nor acted on). Two turns first, so that a whole
  // poll phase has read what already waits on the connection: Node reads a request and the close behind it
  // in separate turns, and the signing above may finish in the turn before the close is read.
  await nextTurn();
  await nextTurn();
  // Minted: a refresh scope was given (and token.ts let only a client registered for this grant in).
  // A replay is recorded in the transaction that ends its family (found in review: with the record failing, the
  // family ended and no record was ever written, since later presentations find it revoked).
  // `presented`: what the token was (spent, retried already within the grace window, or superseded by its family's rotation).
  const replayed = (presented: ReplayedToken) => ({ event: 'refresh_replay', user: grant.userId, client: client.clientId, grant: grant.id, resource: grant.resource, detail: { family_revoked: record.familyId, presented } });
  const next = { refresh: pair.refresh!.record, access: pair.accessRecord, grant };
  const result = await ctx.store.rotateRefreshToken(tokenHash, now, next, ctx.lifetimes.refreshGraceSec * 1000, refreshed, () => !clientGone(), replayed);
  return { result, pair };
}

/** The answer to a refresh the store has judged (RFC 6749 §5.1, §5.2). */
function answer(ctx: AuthContext, result: Exclude<RotateRefreshResult, { status: 'grant_changed' }>, pair: IssuedPair): Record<string, unknown> {
  switch (result.status) {
    case 'abandoned':
      throw new RefreshAbandoned();
    case 'rotated':
      return tokenResponse(ctx, pair);
    case 'replayed':
      if (result.presented === 'superseded') throw new InvalidGrantError('Another refresh token of this sign-in was used after this one was issued; every token of its family is now revoked.');
      throw new InvalidGrantError('The refresh token was already used; every token of its family is now revoked.');
    case 'expired':
      throw new InvalidGrantError('The refresh token has expired.');
    case 'revoked':
      throw new InvalidGrantError('The refresh token has been revoked.');
    case 'unknown':
      throw new InvalidGrantError('The refresh token is invalid.');
  }
}

/** Resolves after the event loop's next check phase (after its poll phase, where sockets are read). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
