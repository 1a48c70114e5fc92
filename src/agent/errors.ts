// The one error type of CalendarAgent's token exchange client, with a closed
// union of stable codes that callers switch on: the RFC 6749 §5.2 / RFC 8693
// §2.2.2 error codes the authorization server may answer with, plus the two
// ways the exchange can fail before the server has said anything useful.

export type TokenExchangeErrorCode =
  // Answered by the authorization server (RFC 6749 §5.2, RFC 8693 §2.2.2).
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'server_error'
  | 'temporarily_unavailable'
  // The authorization server could not be reached, or did not answer in time.
  | 'unreachable'
  // It answered, but not with RFC 8414 metadata or an RFC 8693 token response.
  | 'invalid_response';

const SERVER_CODES: ReadonlySet<string> = new Set([
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'invalid_target',
  'server_error',
  'temporarily_unavailable',
]);

export class TokenExchangeError extends Error {
  readonly code: TokenExchangeErrorCode;
  /** The authorization server's `error_description`, when it gave one. Never holds a token. */
  readonly serverDescription: string | undefined;

  constructor(code: TokenExchangeErrorCode, message: string, serverDescription?: string) {
    super(message);
    this.name = 'TokenExchangeError';
    this.code = code;
    this.serverDescription = serverDescription;
  }
}

/** An `error` value from the authorization server as one of our codes; anything unknown is a server error. */
export function exchangeErrorCode(error: unknown): TokenExchangeErrorCode {
  return typeof error === 'string' && SERVER_CODES.has(error) ? (error as TokenExchangeErrorCode) : 'server_error';
}
