// OAuth errors on the wire: the SDK's typed error classes, mapped in this one
// place to their HTTP status and an RFC 6749 §5.2 body. Every error response
// carries Cache-Control: no-store; the internal reason is logged, never sent.
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  InvalidClientError,
  InvalidTokenError,
  OAuthError,
  ServerError,
  TooManyRequestsError,
  CustomOAuthError,
} from '@modelcontextprotocol/sdk/server/auth/errors.js';

export {
  AccessDeniedError,
  InvalidClientError,
  InvalidClientMetadataError,
  InvalidGrantError,
  InvalidRequestError,
  InvalidScopeError,
  InvalidTargetError,
  OAuthError,
  ServerError,
  TooManyRequestsError,
  UnauthorizedClientError,
  UnsupportedGrantTypeError,
  UnsupportedResponseTypeError,
  UnsupportedTokenTypeError,
} from '@modelcontextprotocol/sdk/server/auth/errors.js';

/** RFC 7591 §3.2.2: a redirect URI the server will not register. */
export class InvalidRedirectUriError extends CustomOAuthError {
  constructor(message: string) {
    super('invalid_redirect_uri', message);
  }
}

/** RFC 9396 §5: the authorization details asked for are not acceptable. */
export class InvalidAuthorizationDetailsError extends CustomOAuthError {
  constructor(message: string) {
    super('invalid_authorization_details', message);
  }
}

/** HTTP status for an OAuth error code. */
export function statusFor(err: OAuthError): number {
  if (err instanceof InvalidClientError) return 401;
  if (err instanceof InvalidTokenError) return 401;
  if (err instanceof TooManyRequestsError) return 429;
  if (err instanceof ServerError) return 500;
  return 400;
}

/** Sends an OAuth error as JSON. An invalid_client after Basic authentication carries a Basic challenge (RFC 6749 §5.2). */
export function sendOAuthError(reply: FastifyReply, err: OAuthError, opts: { basicChallenge?: boolean } = {}): FastifyReply {
  const status = statusFor(err);
  if (status === 401 && opts.basicChallenge) reply.header('WWW-Authenticate', 'Basic realm="delegate"');
  return reply
    .code(status)
    .header('Cache-Control', 'no-store')
    .header('Pragma', 'no-cache')
    .type('application/json')
    .send(err.toResponseObject());
}

/** Turns anything thrown by a handler into an OAuth error response; unexpected errors become server_error and are logged. */
export function replyWithError(req: FastifyRequest, reply: FastifyReply, err: unknown, opts: { basicChallenge?: boolean } = {}): FastifyReply {
  if (err instanceof OAuthError) {
    req.log.info({ error: err.errorCode, reason: err.message }, 'oauth request refused');
    return sendOAuthError(reply, err, opts);
  }
  req.log.error({ err: err instanceof Error ? { name: err.name, message: err.message } : String(err) }, 'unexpected error');
  return sendOAuthError(reply, new ServerError('The server could not complete the request.'));
}
