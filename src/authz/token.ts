// POST /token (RFC 6749 §3.2): authenticates the client, then hands the
// request to its grant: authorization_code, refresh_token or token exchange
// (RFC 8693). Responses are never cached; errors are RFC 6749 §5.2 bodies.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GRANT_TYPE_AUTHORIZATION_CODE, GRANT_TYPE_REFRESH_TOKEN, GRANT_TYPE_TOKEN_EXCHANGE } from '../delegation/index.js';
import type { FormBody } from '../http/app.js';
import { authenticateClient } from './client-auth.js';
import type { AuthContext } from './context.js';
import { InvalidRequestError, UnauthorizedClientError, UnsupportedGrantTypeError, replyWithError } from './errors.js';
import { required } from './params.js';
import { authorizationCodeGrant } from './grant-code.js';
import { RefreshAbandoned, refreshTokenGrant } from './grant-refresh.js';
import { tokenExchangeGrant } from './grant-exchange.js';
import { ExchangeRefusals } from './exchange-refusals.js';

const FORM = 'application/x-www-form-urlencoded';

export function registerToken(app: FastifyInstance, ctx: AuthContext): void {
  const exchangeRefusals = new ExchangeRefusals(ctx.now);
  app.post('/token', async (req, reply) => {
    try {
      if (!req.headers['content-type']?.toLowerCase().startsWith(FORM)) {
        throw new InvalidRequestError('The token request must be application/x-www-form-urlencoded.');
      }
      const body = (req.body ?? {}) as FormBody;
      const grantType = required(body, 'grant_type');
      const { client } = await authenticateClient(req, body, ctx);
      // On the request's access line (app.ts), not a line of its own: one log line per token. A line, its redaction
      // and its write were about 5% of a refresh's CPU in the token benchmark's profile. The client as soon as it is
      // known, so that a refusal names it too (found in review, s35logs); the grant type once it is one it may use
      // (before, it is the client's text, up to the body limit).
      req.accessLog = { ...req.accessLog, client: client.clientId };
      if (!client.grantTypes.includes(grantType)) {
        if (![GRANT_TYPE_AUTHORIZATION_CODE, GRANT_TYPE_REFRESH_TOKEN, GRANT_TYPE_TOKEN_EXCHANGE].includes(grantType)) {
          throw new UnsupportedGrantTypeError(`The grant type ${grantType} is not supported.`);
        }
        throw new UnauthorizedClientError(`This client may not use the ${grantType} grant.`);
      }
      req.accessLog = { ...req.accessLog, grant_type: grantType };
      let response: Record<string, unknown>;
      switch (grantType) {
        case GRANT_TYPE_AUTHORIZATION_CODE:
          response = await authorizationCodeGrant(ctx, client, body);
          break;
        case GRANT_TYPE_REFRESH_TOKEN:
          response = await refreshTokenGrant(ctx, client, body, () => hungUp(req, reply));
          break;
        case GRANT_TYPE_TOKEN_EXCHANGE:
          response = await tokenExchangeGrant(ctx, client, body, exchangeRefusals);
          break;
        default:
          throw new UnsupportedGrantTypeError(`The grant type ${grantType} is not supported.`);
      }
      return reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache').send(response);
    } catch (err) {
      if (err instanceof RefreshAbandoned) {
        // Nobody is there to answer: say so in the log (never the token) and drop the connection.
        req.log.info({ grant_type: GRANT_TYPE_REFRESH_TOKEN }, 'refresh not carried out: the client closed the connection first');
        reply.hijack();
        reply.raw.destroy();
        return reply;
      }
      return replyWithError(req, reply, err);
    }
  });
}

/**
 * Whether the client has closed the connection this request came on (its end
 * read, or the socket gone): no answer can reach it any more. Node's server
 * does not answer a half-closed connection either (httpAllowHalfOpen is off).
 */
function hungUp(req: FastifyRequest, reply: FastifyReply): boolean {
  const socket = req.raw.socket as typeof req.raw.socket | null;
  return reply.raw.destroyed || !socket || socket.destroyed || !socket.writable || socket.readableEnded;
}
