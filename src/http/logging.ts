// Structured request logs (pino, through fastify) that cannot leak secrets:
// requests are logged by path only, never with their query string (which can
// carry codes, login assertions and states), with the client's address
// (`remoteAddress`, fastify's req.ip), and credential-bearing headers
// and fields are redacted by configuration (the lists below, applied to every
// line the logger writes), not by the care of whoever writes a log call.
// Every request carries an id (fastify's reqId): an incoming X-Request-Id when
// it is a short safe token, else a fresh UUID, echoed in the X-Request-Id
// response header.
import { randomUUID } from 'node:crypto';
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { REFRESH_TOKEN_PREFIX } from '../delegation/tokens.js';

/** Field names whose values are credentials wherever they appear in a log object. */
export const SECRET_FIELDS = [
  'access_token',
  'refresh_token',
  'id_token',
  'subject_token',
  'actor_token',
  'device_code',
  'user_code',
  'client_secret',
  'client_assertion',
  'code_verifier',
  'password',
  'assertion',
  'token',
  'authorization',
  'cookie',
  'csrf',
] as const;

/** Where request parameters would sit in a log object (fastify's req, a handler's own fields). */
export const PARAMETER_CONTAINERS = ['body', 'query', 'params', 'form', 'search', 'searchParams'] as const;

/** Headers that carry credentials, blanked inside any object named `headers` (any case). */
export const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'set-cookie', 'proxy-authorization', 'dpop'] as const;

export const REDACTION_CENSOR = '[redacted]';

/** A field name as compared: lower case, without `_` and `-` (so `refresh_token`, `refreshToken` and `Refresh-Token` are one name). */
const fieldName = (key: string) => key.toLowerCase().replace(/[_-]/g, '');

/** Names beyond SECRET_FIELDS that hold key material or secrets in this code base (`privateJwk`, `secret`). */
const KEY_MATERIAL = ['secret', 'private_key', 'private_jwk', 'set_cookie', 'session_id'] as const;
const SECRET_KEYS: ReadonlySet<string> = new Set([...SECRET_FIELDS, ...KEY_MATERIAL].map(fieldName));
const HEADER_KEYS: ReadonlySet<string> = new Set(CREDENTIAL_HEADERS.map(fieldName));
const CONTAINER_KEYS: ReadonlySet<string> = new Set(PARAMETER_CONTAINERS);

/**
 * Credentials with a shape of their own, censored inside any string (a
 * message, an error's text): compact JWTs (access tokens, assertions; each
 * segment base64url JSON starting `{"`) and delegate's refresh tokens
 * (REFRESH_TOKEN_PREFIX). Other secrets (codes, client secrets) are
 * random base64url with no shape; they are caught by their field names only.
 *
 * Both patterns run in time linear in the text, whatever it holds. A JWT is a
 * whole run of base64url characters holding `eyJ`, then `.`, a run, `.` and a
 * run: its match can begin only where a run begins (the lookbehind), and the
 * lookahead that finds the run's `eyJ` is tried once per run (a lookahead is
 * never re-entered on backtracking), so each run is read a bounded number of
 * times. A refresh token's match never fails after its first character past the
 * prefix, and when it matches it takes the rest of its run. Found in review
 * (regress21c, high): the JWT pattern was `eyJ[A-Za-z0-9_-]*\.…`, which began a
 * match at every `eyJ` and read on to the end of the run, so 64 KiB of `eyJ`
 * (a client's grant_type, repeated in a refusal's logged reason) took 1.9 s to
 * redact, holding every server in the process. The whole run is censored now,
 * with any base64url text that stood right before the `eyJ` (the old pattern
 * left that).
 */
const JWT_START = 'eyJ';
const BASE64URL = '[A-Za-z0-9_-]';
const SHAPED_JWT = `(?<!${BASE64URL})(?=${BASE64URL}*?${JWT_START})${BASE64URL}*\\.${BASE64URL}+\\.${BASE64URL}*`;
const SHAPED_REFRESH_TOKEN = `${REFRESH_TOKEN_PREFIX}${BASE64URL}+`;
const SHAPED_SECRETS = new RegExp(`${SHAPED_JWT}|${SHAPED_REFRESH_TOKEN}`, 'g');

/** `text` with every shaped credential in it (SHAPED_SECRETS) replaced by the censor. */
export function censorShapedSecrets(text: string): string {
  return text.includes(JWT_START) || text.includes(REFRESH_TOKEN_PREFIX) ? text.replace(SHAPED_SECRETS, REDACTION_CENSOR) : text;
}

/** Deeper than this, a value is censored whole rather than walked (pino itself cuts objects off at 10 levels, arrays too). */
const MAX_DEPTH = 64;

/**
 * Whether the member `key` of an object held under `parent` is a credential:
 * a SECRET_FIELDS or KEY_MATERIAL name anywhere, a credential header inside
 * `headers`, or `code` inside request parameters only (elsewhere `code` is an
 * error code, `{ code: 'invalid_grant' }`, `{ err: { code: 'FST_ERR_…' } }`,
 * that an operator needs, while `query.code` or `body.code` is an
 * authorization code). Names compare in any case, with or without `_`/`-`.
 */
function isCredential(parent: string | undefined, key: string): boolean {
  const name = fieldName(key);
  if (SECRET_KEYS.has(name)) return true;
  if (parent !== undefined && parent.toLowerCase() === 'headers') return HEADER_KEYS.has(name);
  return key === 'code' && parent !== undefined && CONTAINER_KEYS.has(parent);
}

/**
 * `value` with every credential member, at any depth, replaced by the
 * censor, and shaped credentials cut out of strings. Arrays take the key that
 * holds them. Objects are rebuilt without a prototype, so that a member named
 * `__proto__` stays a member.
 */
function censor(value: unknown, parent: string | undefined, depth: number): unknown {
  if (typeof value === 'string') return censorShapedSecrets(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return REDACTION_CENSOR;
  if (Array.isArray(value)) return value.map((item) => censor(item, parent, depth + 1));
  const out = Object.create(null) as Record<string, unknown>;
  for (const [key, member] of Object.entries(value)) out[key] = isCredential(parent, key) ? REDACTION_CENSOR : censor(member, key, depth + 1);
  return out;
}

/**
 * Whether `value` holds a credential anywhere: a member with a credential's name, or a string with one's shape
 * (what `censor` would blank). Used where a value is to be kept, not logged (an agent's audit report, audit-report.ts).
 */
export function holdsCredential(value: unknown): boolean {
  return JSON.stringify(censor(value, undefined, 0)) !== JSON.stringify(value);
}

const dropped = (why: string) => `${JSON.stringify({ level: 50, time: Date.now(), msg: `a log line was dropped unwritten: ${why}` })}\n`;

/**
 * A log line (pino's JSON, with its newline) as it may be written: parsed, its
 * credentials censored wherever they sit, written again. A line that cannot
 * be read or censored (pino writes none) is replaced by a notice rather than
 * written as it was; this never throws.
 */
export function redactLine(line: string): string {
  try {
    return `${JSON.stringify(censor(JSON.parse(line), undefined, 0))}\n`;
  } catch (err) {
    return dropped(err instanceof SyntaxError ? 'it was not JSON' : 'it could not be redacted');
  }
}

/**
 * The destination every log line goes through before `stream`: redaction by
 * configuration (the lists above), applied to the finished line, so that it
 * covers what serializers, child loggers' bindings and log calls put there
 * alike. (pino's own `redact`, with the wildcard paths this needs, cost 37 µs
 * a line against about 4 µs for this; a line per request.) The stream's
 * `flush` is passed on. pino's multistream, which pino recognises by a marker
 * this wrapper would hide (and then writes nothing), is refused.
 */
function redacting(stream: DestinationStream): DestinationStream {
  if ((stream as unknown as Record<symbol, unknown>)[Symbol.for('pino.metadata')]) {
    throw new Error('createLogger: a pino multistream cannot be redacted line by line; give each stream its own logger.');
  }
  const target = stream as DestinationStream & { flush?: (cb?: (err?: Error) => void) => void; flushSync?: () => void };
  return Object.assign(
    { write: (line: string) => target.write(redactLine(line)) },
    target.flush ? { flush: (cb?: (err?: Error) => void) => target.flush!(cb) } : {},
    target.flushSync ? { flushSync: () => target.flushSync!() } : {},
  );
}

export type LogLevel = LevelWithSilent;

/** A logger that writes JSON lines to `stream` (stderr by default, so stdout stays the program's), credentials redacted. */
export function createLogger(level: LogLevel, stream: DestinationStream = process.stderr): Logger {
  return pino(
    {
      level,
      serializers: {
        // remoteAddress: the client's address as fastify's trustProxy resolved it (a FastifyRequest's ip: the peer's,
        // or behind a trusted proxy the rightmost X-Forwarded-For entry that is no trusted proxy's), for the operator
        // auditing who signed in or registered. An address, no credential; redacted as the rest of the line is.
        // No id: the request's logger puts it on each of its lines as `reqId` (fastify's own lines carry only that),
        // and an `id` here wrote it a second time on every access line.
        req: (req: { method?: string; url?: string; ip?: string }) => ({
          method: req.method,
          path: pathOnly(req.url),
          remoteAddress: req.ip,
        }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      },
    },
    redacting(stream),
  );
}

/** A URL's path without its query string or fragment. */
export function pathOnly(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const cut = url.search(/[?#]/);
  return cut === -1 ? url : url.slice(0, cut);
}

export const REQUEST_ID_HEADER = 'x-request-id';

/** The header that carries `requestId` on an onward request (none without one), so the next server's log line of it carries the same id. */
export function requestIdHeader(requestId: string | undefined): Record<string, string> {
  return requestId !== undefined ? { [REQUEST_ID_HEADER]: requestId } : {};
}

/** A caller's request id is kept only when it is short and plain: no spaces, quotes or control characters to forge log lines with. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** The id of a request: the caller's X-Request-Id when it is a safe short token, else a fresh UUID. */
export function requestIdFor(headers: Record<string, string | string[] | undefined>): string {
  const given = headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
}
