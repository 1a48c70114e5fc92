// POST /revoke (RFC 7009): a client ends one of its tokens. Revoking a refresh
// token ends the delegation it was issued under (its grant) and every token
// derived from it, as `delegate grants revoke` does; revoking an access token
// ends it and the tokens exchanged from it. An unknown token is not an error
// (§2.2), so the answer says nothing about which tokens exist.
// token_type_hint is ignored (§2.1): both kinds are always looked for.
import type { FastifyInstance } from 'fastify';
import type { FormBody } from '../http/app.js';
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
        req.log.info({ client: client.clientId, grant: refresh.grantId, family: refresh.familyId }, 'refresh token revoked, and its grant');
      } else {
        const checked = await verifyOwnAccessToken(ctx.issuer, ctx.keys, token, nowSec(ctx));
        if (checked.ok) {
          if (checked.claims.client_id !== client.clientId) throw new UnauthorizedClientError('The token was issued to another client.');
          // Recorded only when this call revoked something, in the revocation's transaction. Found in review:
          // every /revoke of one token (already revoked, or its grant ended) appended another token_revoked,
          // ~320 a second for anyone holding a leaked token. RFC 7009 §2.2: the repeat still answers 200.
          const revoked = await ctx.store.revokeIssuedToken(checked.claims.jti, now, {
            event: 'token_revoked',
            user: checked.claims.sub,
            client: client.clientId,
            grant: checked.claims.grant_id,
            resource: String(checked.claims.aud),
            detail: { token_type: 'access_token', jti: checked.claims.jti },
          });
          if (revoked) req.log.info({ client: client.clientId, jti: checked.claims.jti }, 'access token revoked');
        }
      }
      return reply.code(200).header('Cache-Control', 'no-store').send();
    } catch (err) {
      return replyWithError(req, reply, err);
    }
  });
}
