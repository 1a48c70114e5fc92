// POST /revoke (RFC 7009): a client ends one of its tokens. A token of a grant
// presented by the client the grant was given to, refresh or access token
// alike, ends that delegation (its grant) and every token derived from it, at
// every resource server, as `delegate grants revoke` does (DESIGN.md, Tokens:
// "RFC 7009 on any of its tokens"). A token exchanged from it, presented by
// the agent it was issued to, ends that token and the ones exchanged from it,
// not the grant (see revokeAccessToken). An unknown token is not an error
// (§2.2), so the answer says nothing about which tokens exist.
// token_type_hint is ignored (§2.1): both kinds are always looked for.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { AccessTokenClaims } from '../delegation/index.js';
import type { FormBody } from '../http/app.js';
import { actorsOf } from './audit.js';
import { verifyOwnAccessToken } from './access-token.js';
import { authenticateClient } from './client-auth.js';
import { nowSec, type AuthContext } from './context.js';
import { hashSecret } from './crypto.js';
import { InvalidRequestError, UnauthorizedClientError, replyWithError } from './errors.js';
import { required, single } from './params.js';

export function registerRevocation(app: FastifyInstance, ctx: AuthContext): void {
  app.post('/revoke', async (req, reply) => {
    try {
      if (!req.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
        throw new InvalidRequestError('The revocation request must be application/x-www-form-urlencoded.');
      }
      const body = (req.body ?? {}) as FormBody;
      const token = required(body, 'token');
      // RFC 7009 §2.1: the hint is only a hint. A server that cannot find the token by it "MUST extend
      // its search across all of its supported token types", and "MAY ignore this parameter": an
      // unknown hint (an RFC 8693 token type URI, anything) is no reason to refuse, nor to leave the
      // token alive. Both kinds are looked up below, whatever it says; it is read only so that a
      // repeated one is refused like any repeated parameter (RFC 6749 §3.2).
      single(body, 'token_type_hint');
      const { client } = await authenticateClient(req, body, ctx);
      const now = ctx.now();

      const refresh = await ctx.store.refreshTokenByHash(hashSecret(token));
      if (refresh) {
        if (refresh.clientId !== client.clientId) throw new UnauthorizedClientError('The token was issued to another client.');
        // RFC 7009 §2.1: "the revocation of a particular token may cause the revocation of related tokens
        // and the underlying authorization grant". A client gives up its refresh token to end the
        // delegation (`delegate logout`); ending only the token's family would leave the grant active, and
        // a new request from the same client would be approved by it without consent. So the grant goes,
        // with every family and token derived from it, onto the revocation list the resource servers follow.
        // The record is written in the revocation's transaction: a grant is never revoked off the record.
        const revoked = await ctx.store.revokeGrant(refresh.grantId, now, 'refresh token revoked by its client', {
          event: 'grant_revoked',
          user: refresh.userId,
          client: client.clientId,
          grant: refresh.grantId,
          resource: refresh.resource,
          detail: { by: 'client', via: 'revocation endpoint', token_type: 'refresh_token', family: refresh.familyId },
        });
        if (!revoked) {
          // The grant had ended already; the token's family goes too, should it still stand.
          await ctx.store.revokeRefreshToken(refresh.tokenHash, now);
        }
        req.log.info({ client: client.clientId, grant: refresh.grantId, family: refresh.familyId }, revoked ? 'refresh token revoked, and its grant' : 'refresh token revoked; its grant had ended already');
      } else {
        const checked = await verifyOwnAccessToken(ctx.issuer, ctx.keys, token, nowSec(ctx));
        if (checked.ok) {
          if (checked.claims.client_id !== client.clientId) throw new UnauthorizedClientError('The token was issued to another client.');
          await revokeAccessToken(ctx, req.log, client.clientId, checked.claims, now);
        }
      }
      return reply.code(200).header('Cache-Control', 'no-store').send();
    } catch (err) {
      return replyWithError(req, reply, err);
    }
  });
}

/**
 * An access token its client gives up. Issued to the client the grant was given to (the CLI's, any MCP client's),
 * it ends the grant, as its refresh token does: RFC 7009 §2.1 lets the server revoke "the underlying authorization
 * grant", and DESIGN.md (Tokens) makes any of a grant's tokens end it. Found in review (s23deleg): only the token and
 * those exchanged from it ended, while its refresh token went on renewing the delegation and `grants list` showed it
 * active; a client registered without refresh tokens could not end its delegation at all.
 *
 * A token exchanged from it (RFC 8693), issued to the agent that exchanged it (client_id: the agent), ends only itself
 * and the tokens exchanged from it. The grant is not the agent's to give up: the person gave it to their client, and
 * the agent holds only a narrower slice of it. Were that slice to end the whole grant, an agent holding it, or a
 * sub-agent it was handed to (`may_act`), could sign the person out of every sign-in of that delegation, which is
 * wider than the slice it holds (DESIGN.md: an agent passes on a narrower slice, never a wider one); and an agent that
 * revokes its calendar token when a call is done would end the delegation on every call.
 *
 * Either way the record is written in the revocation's transaction, and only when it revoked something: a repeat
 * (the token, or its grant, ended already) answers 200 (§2.2) and changes nothing, the audit log included.
 */
async function revokeAccessToken(ctx: AuthContext, log: FastifyBaseLogger, clientId: string, claims: AccessTokenClaims, now: number): Promise<void> {
  const grant = await ctx.store.grantById(claims.grant_id);
  if (grant && grant.clientId === clientId) {
    const revoked = await ctx.store.revokeGrant(grant.id, now, 'access token revoked by its client', {
      event: 'grant_revoked',
      user: grant.userId,
      client: clientId,
      grant: grant.id,
      resource: grant.resource,
      detail: { by: 'client', via: 'revocation endpoint', token_type: 'access_token', jti: claims.jti },
    });
    if (revoked) log.info({ client: clientId, grant: grant.id, jti: claims.jti }, 'access token revoked, and its grant');
    return;
  }
  // Found in review: every /revoke of one token (already revoked, or its grant ended) appended another
  // token_revoked, ~320 a second for anyone holding a leaked token.
  const revoked = await ctx.store.revokeIssuedToken(claims.jti, now, {
    event: 'token_revoked',
    user: claims.sub,
    client: clientId,
    grant: claims.grant_id,
    resource: String(claims.aud),
    // Whose token it was, as the exchange that issued it recorded its chain (found in review, s33deleg: `actors: []`).
    actors: actorsOf(claims),
    // A token handed on to a sub-agent (may_act) names it, as the hand-off's token_exchanged does.
    detail: { token_type: 'access_token', jti: claims.jti, ...(typeof claims.may_act?.sub === 'string' ? { handed_to: claims.may_act.sub } : {}) },
  });
  if (revoked) log.info({ client: clientId, jti: claims.jti }, 'access token revoked');
}
