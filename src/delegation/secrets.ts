// What counts as a credential in a value, by its name or by its shape, and the
// value with each one replaced by a marker: the classifier that the request
// logs (src/http/logging.ts) censor every line with, that POST /audit refuses
// a report by (src/authz/audit-report.ts), and that a resource server's audit
// record is built with (src/resource/audit.ts), so that a record an agent
// reports is never one the authorization server refuses. Pure: no I/O, no
// server modules, so an agent and the CLI can load it.
import { REFRESH_TOKEN_PREFIX } from './tokens.js';

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

/**
 * Credentials a URL carries by position, censored inside any string of a log line or a record (a request target in
 * absolute form, a `location`, an error's text): the user information of any `scheme://user:pass@host` (RFC 3986
 * §3.2.1, deprecated for exactly this reason), and the value of a query or form parameter with a credential's name
 * (SECRET_FIELDS, KEY_MATERIAL, and `code`, which in a URL is an authorization code) after `?`, `&` or `;`. Found in
 * review (s35logs): `GET http://alice:SECRET@127.0.0.1:8410/token` was logged with its target as sent, and a field
 * holding a redirect's `?code=` as written. Both run in time linear in the text: the user information is found
 * from each `://` to the end of its authority, and a parameter's match begins only at a separator and stops at the next.
 */
const SECRET_PARAMETER = /([?&;])([^=&#;?\s]+)=([^&#;\s]*)/g;
const AUTHORITY_END = /[/?#\s"'<>\\]/g;

function censorUserinfo(text: string): string {
  let out = '';
  let from = 0;
  let nextAt = text.indexOf('@');
  for (let scheme = text.indexOf('://'); scheme !== -1; scheme = text.indexOf('://', from)) {
    const start = scheme + 3;
    AUTHORITY_END.lastIndex = start;
    const end = AUTHORITY_END.exec(text)?.index ?? text.length;
    // The last `@` of the authority (a password may hold an unescaped one): each `@` of the text is looked at once.
    let at = -1;
    while (nextAt !== -1 && nextAt < start) nextAt = text.indexOf('@', nextAt + 1);
    while (nextAt !== -1 && nextAt < end) {
      at = nextAt;
      nextAt = text.indexOf('@', nextAt + 1);
    }
    if (at !== -1) {
      out += `${text.slice(from, start)}${REDACTION_CENSOR}`;
      from = at;
    } else {
      out += text.slice(from, end);
      from = end;
    }
  }
  return out + text.slice(from);
}

function isSecretParameter(name: string): boolean {
  let decoded = name;
  try {
    decoded = decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    // A malformed escape: judged as written.
  }
  const key = fieldName(decoded);
  return key === 'code' || SECRET_KEYS.has(key);
}

/** `text` with the user information of every URL in it, and the value of every credential-named parameter, replaced by the censor. */
export function censorUrlSecrets(text: string): string {
  let out = text.includes('://') ? censorUserinfo(text) : text;
  if (out.includes('=')) out = out.replace(SECRET_PARAMETER, (whole, separator: string, name: string) => (isSecretParameter(name) ? `${separator}${name}=${REDACTION_CENSOR}` : whole));
  return out;
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
 * censor, and shaped credentials and a URL's credentials (censorUrlSecrets) cut out of strings. Arrays take the key that
 * holds them. Objects are rebuilt without a prototype, so that a member named
 * `__proto__` stays a member.
 */
function censor(value: unknown, parent: string | undefined, depth: number): unknown {
  if (typeof value === 'string') return censorUrlSecrets(censorShapedSecrets(value));
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return REDACTION_CENSOR;
  if (Array.isArray(value)) return value.map((item) => censor(item, parent, depth + 1));
  const out = Object.create(null) as Record<string, unknown>;
  for (const [key, member] of Object.entries(value)) out[key] = isCredential(parent, key) ? REDACTION_CENSOR : censor(member, key, depth + 1);
  return out;
}

/** `value` with every credential in it, by name or by shape, replaced by REDACTION_CENSOR (a log line, an audit record's detail). */
export function censorCredentials(value: unknown): unknown {
  return censor(value, undefined, 0);
}

/**
 * Whether `value` holds a credential anywhere: a member with a credential's name, or a string with one's shape
 * (what `censorCredentials` would blank). Used where a value is to be kept, not logged (an agent's audit report,
 * audit-report.ts): what censorCredentials returns holds none.
 */
export function holdsCredential(value: unknown): boolean {
  return JSON.stringify(censorCredentials(value)) !== JSON.stringify(value);
}
