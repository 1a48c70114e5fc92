// The checks every request to CalendarAgent's /mcp endpoint passes before the
// MCP SDK sees it: the Origin check against DNS rebinding (MCP transports
// spec: a present, foreign Origin gets 403; createApp already checks Host),
// then the bearer token (RFC 6750, RFC 9068), answered with the RFC 9728
// challenge that starts an MCP client's discovery.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { isLoopbackName } from '../delegation/index.js';
import { errorDescription } from '../error-description.js';
import { noteRefusal } from '../http/refusal-log.js';
import { BearerError, ExpiredTokenError, VerifierUnavailableError, wwwAuthenticate, type BearerVerifier, type VerifiedBearer } from '../resource/bearer.js';

/**
 * Whether a request's Origin, if it has one, is this server's own: the origin
 * of its resource URL, or a loopback name on the port the request arrived on
 * (the names createApp accepts in Host). Non-browser clients send no Origin.
 */
export function originAllowed(req: FastifyRequest, resourceUrl: string): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  if (origin === new URL(resourceUrl).origin) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // includes the opaque origin "null"
  }
  // The loopback names only, as createApp's Host check: another loopback address is this server's as its resource URL names it (above).
  if (url.protocol !== 'http:' || !isLoopbackName(url.hostname)) return false;
  const port = req.raw.socket.localPort;
  return port !== undefined && url.port === String(port) && url.origin === origin;
}

/** 403 for a cross-origin request, as a JSON-RPC error without an id (MCP transports spec). */
export function refuseOrigin(reply: FastifyReply): FastifyReply {
  return sendJsonRpcError(reply, 403, -32000, 'Forbidden: cross-origin requests are refused.');
}

/**
 * Verifies the bearer token for `requiredScopes`, or answers the request with
 * 400/401/403 and the WWW-Authenticate challenge (400 invalid_request for
 * access_token in the URL query beside the header) (resource_metadata always;
 * error only when a token was sent, RFC 6750 §3.1; scope on insufficient_scope,
 * and `challengeScope` of the scopes an expired token held (ExpiredTokenError),
 * else of none, on a 401 so a client knows what to ask for) and
 * returns undefined. A verifier that cannot judge now (a stale revocation
 * list) gets 503 with Retry-After: the request is refused, the token is not
 * declared bad.
 */
export async function authenticate(
  req: FastifyRequest,
  reply: FastifyReply,
  verify: BearerVerifier,
  requiredScopes: readonly string[],
  resourceMetadataUrl: string,
  challengeScope?: (held: readonly string[]) => string,
): Promise<VerifiedBearer | undefined> {
  try {
    return await verify(req, requiredScopes);
  } catch (err) {
    if (err instanceof VerifierUnavailableError) {
      noteRefusal(req, 'temporarily_unavailable', err.message);
      await reply
        .code(503)
        .header('Retry-After', String(err.retryAfterSec))
        .header('Cache-Control', 'no-store')
        .type('application/json')
        .send({ error: 'temporarily_unavailable', error_description: errorDescription(err.message) });
      return undefined;
    }
    let refusal = err instanceof BearerError ? err : new BearerError(401, 'invalid_token', 'The token could not be verified.');
    if (!(err instanceof BearerError)) req.log.warn({ err: { name: (err as Error)?.name } }, 'bearer verification failed unexpectedly');
    // RFC 6750 §3: a challenge may name the scope needed; the MCP authorization spec asks for it on 401 too. For a
    // token that is good but expired, what it held too, as a 403's step-up names it: the client's new authorization
    // then asks for it again, where the initial scope alone would lose it and cost a second consent (found in review,
    // s31mcp). Any other refused token, or none, names nothing of its own.
    if (refusal.status === 401 && refusal.scope === undefined && challengeScope) {
      refusal = new BearerError(401, refusal.code, refusal.message, challengeScope(refusal instanceof ExpiredTokenError ? refusal.heldScopes : []));
    }
    await refuseBearer(reply, resourceMetadataUrl, refusal);
    return undefined;
  }
}

/** Answers with a bearer refusal: its status, the RFC 6750 §3 / RFC 9728 challenge and an RFC-style body; its error and reason on the access line. */
export async function refuseBearer(reply: FastifyReply, resourceMetadataUrl: string, refusal: BearerError): Promise<void> {
  noteRefusal(reply.request, refusal.code ?? 'invalid_token', refusal.message);
  await reply
    .code(refusal.status)
    .header('WWW-Authenticate', wwwAuthenticate(resourceMetadataUrl, refusal))
    .header('Cache-Control', 'no-store')
    .type('application/json')
    // The challenge carries no error code when no token was sent (RFC 6750 §3.1); the body, like the
    // calendar backend's, always names one so every 4xx has an RFC-style error body.
    .send({ error: refusal.code ?? 'invalid_token', error_description: errorDescription(refusal.message) });
}

/** What the MCP SDK hands tool handlers as `extra.authInfo`. */
export function authInfoFrom(bearer: VerifiedBearer, resourceUrl: string): AuthInfo {
  return {
    token: bearer.token,
    clientId: bearer.claims.client_id,
    scopes: bearer.scopes,
    expiresAt: bearer.claims.exp,
    resource: new URL(resourceUrl),
    extra: { claims: bearer.claims },
  };
}

export function sendJsonRpcError(reply: FastifyReply, status: number, code: number, message: string): FastifyReply {
  return reply
    .code(status)
    .header('Cache-Control', 'no-store')
    .type('application/json')
    .send({ jsonrpc: '2.0', error: { code, message }, id: null });
}
