// OAuth errors on the wire: the SDK's typed error classes, mapped in this one
// place to their HTTP status and an RFC 6749 §5.2 body (its error_description
// held to the characters §5.2 allows). Every error response carries
// Cache-Control: no-store; the internal reason is logged, never sent.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { STORE_CORRUPT_DESCRIPTION, STORE_FULL_DESCRIPTION, STORE_READ_ONLY_DESCRIPTION } from '../delegation/tokens.js';
import { errorDescription } from '../error-description.js';
import { noteRefusal } from '../http/refusal-log.js';
import type { StoreError } from '../store/index.js';
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

/**
 * HTTP status for an OAuth error, given whether a challenge goes with it.
 * RFC 9110 §15.5.2: a 401 MUST carry a WWW-Authenticate challenge, so an
 * error is 401 only when one is sent. RFC 6749 §5.2 makes 400 the default, and
 * 401 for invalid_client a MAY, except after a failed Authorization header.
 */
function statusFor(err: OAuthError, challenged: boolean): number {
  if (challenged) return 401;
  if (err instanceof TooManyRequestsError) return 429;
  if (err instanceof ServerError) return 500;
  return 400;
}

/** How an endpoint answers a client it could not authenticate (invalid_client). */
export interface ClientChallenge {
  /**
   * 401 with the challenge however the client authenticated (in the body too, or not at all), not only after a
   * failed Authorization header: RFC 7662 §2.3 answers invalid credentials at /introspect with 401, and its callers
   * are resource servers, with no browser to ask anyone for a password.
   */
  always?: boolean;
}

/**
 * How the endpoints whose only callers are servers answer a client they could not authenticate: 401 with the Basic
 * challenge, however the credentials were sent (ClientChallenge.always). /introspect (RFC 7662 §2.3) and /audit,
 * which agents report to with private_key_jwt in the body; neither is ever opened in a browser.
 */
export const CHALLENGE_EVERY_CLIENT: ClientChallenge = Object.freeze({ always: true });

/**
 * RFC 6749 §5.2 (and RFC 7009 §2.2.1 by reference): a client that tried to authenticate with the Authorization
 * header and failed gets 401 with a WWW-Authenticate challenge: Basic, the one HTTP authentication scheme accepted
 * here (client_secret_basic; client_secret_post and private_key_jwt are sent in the body and have no scheme),
 * whatever scheme the header named. Decided here, from the request, so that every endpoint that authenticates
 * clients answers alike. A client that authenticated in the body (a secret or an assertion), or not at all, gets
 * 400 invalid_client: a 401 would need a challenge, and a Basic one could make a browser-based client's user agent
 * ask for a password; except where the endpoint challenges every client (CHALLENGE_EVERY_CLIENT: /introspect, /audit).
 * RFC 6750 §3.1: a refused bearer token (invalid_token) is challenged with the Bearer scheme.
 */
function challengeFor(req: FastifyRequest, err: OAuthError, clients: ClientChallenge): string | undefined {
  if (err instanceof InvalidTokenError) return `Bearer error="invalid_token"`;
  if (!(err instanceof InvalidClientError)) return undefined;
  // Any Authorization header counts as an attempt; Basic is the one scheme clients authenticate with here.
  return clients.always || req.headers.authorization !== undefined ? 'Basic realm="delegate"' : undefined;
}

/** Sends an OAuth error as JSON, with the client authentication challenge when one is due. */
export function sendOAuthError(reply: FastifyReply, err: OAuthError, clients: ClientChallenge = {}): FastifyReply {
  const challenge = challengeFor(reply.request, err, clients);
  if (challenge) reply.header('WWW-Authenticate', challenge);
  const body = err.toResponseObject();
  // The error and its reason on the access line.
  noteRefusal(reply.request, body.error, err.message);
  if (body.error_description !== undefined) body.error_description = errorDescription(body.error_description);
  return reply
    .code(statusFor(err, challenge !== undefined))
    .header('Cache-Control', 'no-store')
    .header('Pragma', 'no-cache')
    .type('application/json')
    .send(body);
}

/**
 * What a client is told when the store cannot take a write: its disk full, its file system read-only, or the
 * database damaged (found in review, s22store: a damaged one was a generic 500). RFC 6749
 * §5.2 has no `temporarily_unavailable` at the token endpoint (§4.1.2.1 has it for /authorize only), so these stay
 * 500 server_error; the description names the cause, which the agent passes on to the person, so their line says
 * what the log and the admin commands say. Not the database's path: internal details are logged, never sent.
 */
const STORE_CANNOT_WRITE: Partial<Record<StoreError['code'], string>> = {
  STORE_FULL: STORE_FULL_DESCRIPTION,
  STORE_READ_ONLY: STORE_READ_ONLY_DESCRIPTION,
  STORE_CORRUPT: STORE_CORRUPT_DESCRIPTION,
};

/** A store's full-disk or read-only failure (a StoreError by its name and code: whichever store threw it), with what to say. */
function cannotWrite(err: unknown): { error: StoreError; description: string } | undefined {
  if (!(err instanceof Error) || err.name !== 'StoreError') return undefined;
  const description = STORE_CANNOT_WRITE[(err as StoreError).code];
  return description ? { error: err as StoreError, description } : undefined;
}

/** Turns anything thrown by a handler into an OAuth error response; unexpected errors become server_error and are logged. */
export function replyWithError(req: FastifyRequest, reply: FastifyReply, err: unknown, clients: ClientChallenge = {}): FastifyReply {
  if (err instanceof OAuthError) {
    // Logged on the request's access line (sendOAuthError, noteRefusal), as every refusal of the three servers is.
    return sendOAuthError(reply, err, clients);
  }
  const storeProblem = cannotWrite(err);
  if (storeProblem) {
    req.log.error({ err: { name: storeProblem.error.name, code: storeProblem.error.code, message: storeProblem.error.message } }, 'store cannot be written');
    return sendOAuthError(reply, new ServerError(storeProblem.description));
  }
  req.log.error({ err: err instanceof Error ? { name: err.name, message: err.message } : String(err) }, 'unexpected error');
  return sendOAuthError(reply, new ServerError('The server could not complete the request.'));
}
