// The one error type of the CLI's OAuth client, with a closed set of stable
// codes that callers (the CLI, tests) switch on instead of matching prose.
// Messages are written for the person at the terminal and never carry a token.

export type ClientErrorCode =
  /** tokens.json exists but is not a token cache we can read; it is left untouched. */
  | 'CACHE_CORRUPT'
  /** A file in the data directory could not be read or written. */
  | 'CACHE_IO'
  /** Another process held tokens.lock for too long. */
  | 'LOCK_TIMEOUT'
  /** The browser did not come back to the loopback listener in time. */
  | 'LOGIN_TIMEOUT'
  /** The callback's `state` is not the one this login sent (RFC 6749 §10.12). */
  | 'STATE_MISMATCH'
  /** The callback's `iss` is not the authorization server we asked (RFC 9207 §2.4). */
  | 'ISSUER_MISMATCH'
  /** The person at the browser chose Deny (`error=access_denied`). */
  | 'ACCESS_DENIED'
  /** The authorization server answered the callback with another error. */
  | 'AUTHORIZATION_FAILED'
  /** No valid token, and this run may not ask the user (reserved for non-interactive use). */
  | 'AUTHORIZATION_REQUIRED'
  /** The authorization server did not refresh the tokens for a reason other than their being dead. */
  | 'REFRESH_FAILED'
  /** The agent could not be reached or answered something unexpected. */
  | 'AGENT_UNAVAILABLE'
  /** The agent's tool answered with an error. */
  | 'TOOL_FAILED'
  /** The owner's login key is missing or unusable. */
  | 'OWNER_KEY';

export class ClientError extends Error {
  readonly code: ClientErrorCode;

  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClientError';
    this.code = code;
  }
}

export function isClientError(error: unknown, code?: ClientErrorCode): error is ClientError {
  return error instanceof ClientError && (code === undefined || error.code === code);
}

/** The sign-in was not finished within --login-timeout: the same words whether the person was to use the browser here or a device. */
export function loginTimedOut(timeoutMs: number): ClientError {
  return new ClientError('LOGIN_TIMEOUT', `Gave up waiting for the browser after ${describeMs(timeoutMs)}. Run the command again to get a new link.`);
}

function describeMs(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms >= 1000) return `${Math.round(ms / 100) / 10} s`;
  return `${ms} ms`;
}

/** The system error code (ECONNREFUSED, ENOTFOUND, …) a network failure carries, at most five causes deep. */
export function networkErrorCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  }
  return undefined;
}
