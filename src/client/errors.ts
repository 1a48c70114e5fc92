// The one error type of the CLI's OAuth client, with a closed set of stable
// codes that callers (the CLI, tests) switch on instead of matching prose.
// Messages are written for the person at the terminal and never carry a token.
import { NOT_THE_OWNER_DESCRIPTION } from '../delegation/tokens.js';
import { printableClipped } from '../terminal-text.js';
import { canonicalResource } from '../delegation/resource.js';
import { badPortText, isBadPort } from '../bad-ports.js';

export type ClientErrorCode =
  /** tokens.json exists but is not a token cache we can read; it is left untouched. */
  | 'CACHE_CORRUPT'
  /** A file in the data directory could not be read or written. */
  | 'CACHE_IO'
  /** Another process held tokens.lock for too long. */
  | 'LOCK_TIMEOUT'
  /** The browser did not come back to the loopback listener in time. */
  | 'LOGIN_TIMEOUT'
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
  /**
   * The stored delegation's renewal was refused (revoked, expired, replayed: cache.ts EndedDelegation), so nothing
   * is stored for the agent any more; the cause of an AUTHORIZATION_REQUIRED where nobody signs in.
   */
  | 'DELEGATION_ENDED'
  /** The agent could not be reached or answered something unexpected. */
  | 'AGENT_UNAVAILABLE'
  /** The agent's tool answered with an error. */
  | 'TOOL_FAILED'
  /** The owner's login key is missing or unusable. */
  | 'OWNER_KEY'
  /**
   * A sign-in begun with the owner's link was approved by another account
   * (login CSRF, RFC 6749 §10.12): the authorization server issued nothing and
   * revoked that approval; nothing was stored.
   */
  | 'WRONG_ACCOUNT';

export class ClientError extends Error {
  readonly code: ClientErrorCode;
  /**
   * For the CLI's own message, the finding without the message's advice: what the server said of it, when it said
   * something (a challenge's error_description); for CACHE_CORRUPT, what is wrong with the token cache.
   */
  readonly detail: string | undefined;

  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown; detail?: string }) {
    super(message, options);
    this.name = 'ClientError';
    this.code = code;
    this.detail = options?.detail;
  }
}

export function isClientError(error: unknown, code?: ClientErrorCode): error is ClientError {
  return error instanceof ClientError && (code === undefined || error.code === code);
}

/**
 * The authorization server's refusal of a code another account approved, as
 * the owner's CLI gets it (invalid_grant with NOT_THE_OWNER_DESCRIPTION, see
 * src/authz/owner-proof.ts), in the person's words; undefined for any other error.
 */
export function wrongAccount(error: unknown, description: unknown): ClientError | undefined {
  if (error !== 'invalid_grant' || description !== NOT_THE_OWNER_DESCRIPTION) return undefined;
  return new ClientError(
    'WRONG_ACCOUNT',
    "The sign-in was approved by another account than this computer's owner: someone else approved this sign-in's request in their browser. " +
      'Nothing was issued or stored, and the authorization server revoked that approval (delegate audit names the account). Run delegate login again.',
  );
}

/**
 * Why the authorization server refused to renew a delegation, as it said it (`invalid_grant: The delegation behind
 * this token was revoked.`), another program's text made printable; for invalid_grant without a description, what
 * RFC 6749 §5.2 says it means.
 */
export function endedReason(ended: { error: string; error_description?: string }): string {
  const said = ended.error_description ? printableClipped(ended.error_description, 200) : ended.error === 'invalid_grant' ? 'revoked or expired' : '';
  return said ? `${printableClipped(ended.error, 40)}: ${said}` : printableClipped(ended.error, 40);
}

/**
 * Authorization required because the stored delegation for the agent ended: the authorization server refused to
 * renew it. Its detail is the finding alone, for a command that names its own `delegate login` (found in review:
 * `delegate token` said only that nothing was stored); its cause's (DELEGATION_ENDED) the reason alone (endedReason).
 */
export function delegationEnded(agentUrl: string, issuer: string, ended: { error: string; error_description?: string }, notSaved?: ClientError): ClientError {
  const reason = endedReason(ended);
  const finding = `The delegation stored for CalendarAgent at ${agentUrl} has ended: the authorization server ${issuer} refused to renew it (${reason})`;
  const cause = new ClientError('DELEGATION_ENDED', `${finding}.`, { detail: reason, ...(notSaved ? { cause: notSaved } : {}) });
  const unsaid = notSaved === undefined ? '' : `${notNoted(notSaved)} `;
  return new ClientError('AUTHORIZATION_REQUIRED', `${finding}. ${unsaid}Run \`delegate login\` to sign in again.`, { cause, detail: finding });
}

/**
 * When the token cache could not be told that the delegation ended (the write after the refusal failed: refresh.ts
 * refusalNotSaved), that failure and what it leaves, in a sentence or two to follow the finding; undefined otherwise.
 * Found in review (s31fault): the failure was all a command said, and `status` still says the sign-in is renewed on
 * next use, which it cannot know better.
 */
export function endedNotNoted(error: ClientError): string | undefined {
  const notSaved = error.cause instanceof ClientError ? error.cause.cause : undefined;
  return isClientError(notSaved, 'CACHE_IO') ? notNoted(notSaved) : undefined;
}

/** The write that could not note the refusal (`notSaved`), and what that leaves: endedNotNoted's sentences. */
function notNoted(notSaved: ClientError): string {
  return `${notSaved.message} The token cache still holds the ended sign-in: \`delegate status\` shows it as stored until you sign in again.`;
}

/** Authorization required because the stored delegation ended (delegationEnded). */
export function isDelegationEnded(error: unknown): error is ClientError & { detail: string; cause: ClientError & { detail: string } } {
  return isClientError(error, 'AUTHORIZATION_REQUIRED') && isClientError(error.cause, 'DELEGATION_ENDED') && error.detail !== undefined;
}

/** The sign-in was not finished within --login-timeout: the same words whether the person was to use the browser here or a device. */
export function loginTimedOut(timeoutMs: number): ClientError {
  return new ClientError('LOGIN_TIMEOUT', `Gave up waiting for the browser after ${describeMs(timeoutMs)}. Run the command again to get a new link.`);
}

/**
 * A request that got no full answer within the CLI's bound (bounded-fetch.ts): one line naming the server and what to
 * do, as "Cannot reach …" does for a refused connection. `url`, when known, is the request's: at the agent's origin it
 * is CalendarAgent, elsewhere its authorization server; unknown, both are named (found in review, s25faults: a hung
 * agent gave the SDK's "MCP error -32001: Request timed out", naming nothing).
 */
export function noAnswerInTime(agentUrl: string, ms: number, url?: string, cause?: unknown): ClientError {
  const within = `within ${describeMs(ms)}`;
  const todo = 'Check that it is running and not stuck (restart it if it is), then run the command again.';
  let server = `CalendarAgent at ${agentUrl} or its authorization server`;
  if (url !== undefined) server = sameOrigin(url, agentUrl) ? `CalendarAgent at ${agentUrl}` : `The authorization server at ${originOf(url)}, which CalendarAgent at ${agentUrl} uses,`;
  return new ClientError('AGENT_UNAVAILABLE', `${server} accepts connections but gave no answer ${within}. ${todo}`, { cause });
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

function sameOrigin(a: string, b: string): boolean {
  return originOf(a) === originOf(b);
}

function describeMs(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms >= 1000) return `${Math.round(ms / 100) / 10} s`;
  return `${ms} ms`;
}

/**
 * The error codes of a failure to reach a server: the connection refused,
 * reset or timed out, the host or network unreachable, the name not found.
 * A file system's codes (EROFS, ENOSPC, EACCES…) are not among them: those
 * are the token cache's, and say so (CACHE_IO).
 */
const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENETRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EADDRNOTAVAIL',
  'EPIPE',
]);

/**
 * What networkErrorCode names a request that fetch would not send: to a port on the Fetch standard's list of bad ports
 * (src/bad-ports.ts), which undici refuses with a cause whose message is 'bad port' and which has no code. Chromium's
 * name for it. Found in review (s30): `--agent-url http://127.0.0.1:6000/mcp` said only "fetch failed", and a server
 * probed on such a port was said to accept connections and not answer.
 */
export const UNSAFE_PORT = 'ERR_UNSAFE_PORT';

/**
 * The system error code (ECONNREFUSED, ENOTFOUND, …) a network failure carries, at most five causes deep, or
 * UNSAFE_PORT for a request fetch refused to send; undefined for any other failure.
 */
export function networkErrorCode(error: unknown): string | undefined {
  return codeAmong(error, NETWORK_ERROR_CODES) ?? (causeAmong(error, isBadPortRefusal) === undefined ? undefined : UNSAFE_PORT);
}

/**
 * A request to CalendarAgent or its authorization server that fetch refused to send (UNSAFE_PORT), in one line: naming
 * the port when it is the agent's own, else saying that its authorization server (as the agent's metadata names it) is
 * on such a port.
 */
export function unsafePort(agentUrl: string, cause: unknown): ClientError {
  const port = Number(new URL(agentUrl).port);
  const message = isBadPort(port)
    ? `Cannot reach CalendarAgent at ${agentUrl}: ${badPortText(port)}; it must be served on another port.`
    : `Cannot reach the authorization server of CalendarAgent at ${agentUrl}: it is on a port that browsers and fetch refuse (a "bad port" in the Fetch standard); it must be served on another port.`;
  return new ClientError('AGENT_UNAVAILABLE', message, { cause });
}

/** undici's refusal of a bad port: `TypeError('fetch failed', { cause: Error('bad port') })`. */
function isBadPortRefusal(cause: unknown): boolean {
  return cause instanceof Error && cause.message === 'bad port';
}

/**
 * The codes, as Node names OpenSSL's, of an https server's certificate this process does not trust: self-signed, of
 * a CA it does not know (a private one not given in NODE_EXTRA_CA_CERTS), expired, or for another name.
 */
const CERTIFICATE_ERROR_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The code of an https certificate refused (CERTIFICATE_ERROR_CODES), at most five causes deep; undefined for any other failure. */
export function certificateErrorCode(error: unknown): string | undefined {
  return codeAmong(error, CERTIFICATE_ERROR_CODES);
}

/** The first of an error and its causes (five deep: node:http and undici wrap theirs) that `matches`, if any. */
export function causeAmong(error: unknown, matches: (cause: unknown) => boolean): unknown {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (matches(e)) return e;
  }
  return undefined;
}

/** The first of `codes` an error or one of its causes carries as its `code`, if any. */
export function codeAmong(error: unknown, codes: ReadonlySet<string>): string | undefined {
  const found = causeAmong(error, (cause) => codes.has(codeOf(cause) ?? ''));
  return found === undefined ? undefined : codeOf(found);
}

function codeOf(cause: unknown): string | undefined {
  const code = (cause as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

const FILE_ERROR_WORDS: Record<string, string> = {
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is used up',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EIO: 'an input/output error',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'it is a directory',
  EEXIST: 'a file of that name is in the way',
  ENOENT: 'it does not exist',
  EMFILE: 'too many open files',
  EBUSY: 'it is busy, or a mount point',
};

/** What went wrong with a file, in a few words and its code (`the disk is full (ENOSPC)`), for a one-line message. */
export function fileErrorText(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  const words = typeof code === 'string' ? FILE_ERROR_WORDS[code] : undefined;
  if (words !== undefined) return `${words} (${code as string})`;
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s+/g, ' ').trim();
}

/**
 * An agent whose protected resource metadata names another resource than the URL it was reached at (RFC 9728 §3.3:
 * that metadata must not be used, and is not), as the person can act on it: when it names a bare http(s) URL, the
 * agent's own published one (a deployment's CalendarAgent reached by its loopback port: found in review, regress20g,
 * where the SDK's "Protected resource … does not match expected …" was all it said), the --agent-url to give instead.
 */
export function foreignResourceMetadata(agentUrl: string, named: unknown, cause?: unknown): ClientError {
  const bare = typeof named === 'string' && /^https?:\/\//.test(named) && canonicalResource(named) === named ? printableClipped(named, 200) : undefined;
  const message =
    bare !== undefined
      ? `The agent at ${agentUrl} says it is published at ${bare}, and is reached by that URL only (RFC 9728 §3.3): pass --agent-url ${bare}.`
      : `The agent at ${agentUrl} publishes protected resource metadata for ${printableClipped(JSON.stringify(named) ?? String(named), 200)}, not for itself; it is not used (RFC 9728 §3.3).`;
  return new ClientError('AUTHORIZATION_FAILED', message, cause !== undefined ? { cause } : undefined);
}

/** The resource the MCP SDK's refusal of another resource's metadata names (its selectResourceURL), else undefined. */
export function refusedResourceOf(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  return /^Protected resource (.+) does not match expected .+ \(or origin\)$/s.exec(error.message)?.[1];
}
