// POST /introspect (RFC 7662): for resource servers that prefer asking to
// verifying. The caller authenticates as a client with credentials (a secret
// or an assertion): RFC 7662 §2.1 requires some authorization, and the
// metadata leaves `none` out of introspection_endpoint_auth_methods_supported,
// so a client that only names itself is invalid_client, whether it is a public
// client or no client at all. invalid_client here is 401 with the Basic
// challenge, also for credentials sent in the body (RFC 7662 §2.3). An agent
// learns about tokens issued for its own resource only. Anything else, and any
// token that is expired, revoked or not ours, is just {"active": false}.
// token_type_hint is ignored (RFC 7662 §2.1 allows it): only access tokens can
// be active here, whatever the hint says, so no hint is refused.
import type { FastifyInstance } from 'fastify';
import { audienceIncludes } from '../delegation/index.js';
import type { FormBody } from '../http/app.js';
import { verifyOwnAccessToken } from './access-token.js';
import { authenticateClient } from './client-auth.js';
import { nowSec, type AuthContext } from './context.js';
import { CHALLENGE_EVERY_CLIENT, InvalidRequestError, replyWithError } from './errors.js';
import { required } from './params.js';

export function registerIntrospection(app: FastifyInstance, ctx: AuthContext): void {
  app.post('/introspect', async (req, reply) => {
    try {
      if (!req.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
        throw new InvalidRequestError('The introspection request must be application/x-www-form-urlencoded.');
      }
      const body = (req.body ?? {}) as FormBody;
      const token = required(body, 'token');
      const { client } = await authenticateClient(req, body, ctx, { requireCredentials: true });
      const inactive = () => reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache').send({ active: false });

      const checked = await verifyOwnAccessToken(ctx.issuer, ctx.keys, token, nowSec(ctx));
      if (!checked.ok) return inactive();
      const claims = checked.claims;
      const mayAsk = client.resource !== null && audienceIncludes(claims.aud, client.resource);
      if (!mayAsk) return inactive();
      if ((await ctx.store.tokenStanding(claims.jti, ctx.now())) !== 'active') return inactive();
      return reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache').send({
        active: true,
        iss: claims.iss,
        sub: claims.sub,
        aud: claims.aud,
        client_id: claims.client_id,
        scope: claims.scope,
        exp: claims.exp,
        iat: claims.iat,
        jti: claims.jti,
        // A token handed on (may_act) is good only as a subject token at this server: not usable as an access token
        // (RFC 8693 §2.2.1, as the exchange that issued it answered; found in review, regress18b).
        token_type: claims.may_act ? 'N_A' : 'Bearer',
        grant_id: claims.grant_id,
        ...(claims.act ? { act: claims.act } : {}),
        // Who may become the actor in this token's exchange (RFC 8693 §4.4), as the token says: a resource server that
        // asks learns why the token is not for it, and whom it was handed to (found in review: the claim was left out).
        ...(claims.may_act ? { may_act: claims.may_act } : {}),
        ...(claims.authorization_details ? { authorization_details: claims.authorization_details } : {}),
      });
    } catch (err) {
      // RFC 7662 §2.3: a caller whose credentials are invalid (or absent) gets 401, with the challenge, however it sent them.
      return replyWithError(req, reply, err, CHALLENGE_EVERY_CLIENT);
    }
  });
}
