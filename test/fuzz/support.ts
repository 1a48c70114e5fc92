// What the fuzz tests share: how many runs (FUZZ_RUNS), generators of
// plausible-but-wrong request parts, sending one generated request over
// loopback, a snapshot of the store's state, and the check of one answer.
//
// "An RFC error body" means, per endpoint class (see `checkAnswer`):
// - oauth (/token, /register, /revoke, /introspect, /device_authorization,
//   /revocations, /audit, metadata, unknown routes, and any request the shared
//   fastify plumbing refuses: Host, content type, body size, JSON syntax):
//   `application/json`, an object whose `error` is one of the codes the RFC
//   of that endpoint defines (ERROR_CODES: RFC 6749 §5.2, RFC 8707 §2,
//   RFC 8628 §3.5, RFC 8693 §2.2.2 at /token; RFC 7009 §2.2.1 at /revoke;
//   RFC 7591 §3.2.2 at /register; RFC 7662 §2.3 at /introspect; the
//   plumbing's invalid_request anywhere; too_many_requests only on a 429 with
//   Retry-After), with an optional string `error_description`, and
//   `Cache-Control: no-store`.
// - a request no route matches (any class; the caller says so, from fastify's
//   own `hasRoute`): 404 with this project's `not_found` body (no RFC defines
//   a code for a path that is no endpoint; docs/internals.md), `no-store`; or
//   a refusal of the shared plumbing with the oauth body above. `not_found`
//   is accepted nowhere else, and a 404 from a route must carry its class's
//   own codes. A method a path that is an endpoint does not take (GET /token)
//   is such a refusal: 405 with `Allow` and an `invalid_request` body.
// - every class: an `error_description`, wherever it appears (a JSON error
//   body, a WWW-Authenticate challenge, the query of /authorize's redirect),
//   holds only %x20-21 / %x23-5B / %x5D-7E (RFC 6749 §5.2 and §4.1.2.1,
//   RFC 6750 §3): printable ASCII without `"` and `\`.
// - page (/authorize, /login, /login/owner, /consent, /grants,
//   /grants/revoke, /logout, /device, /device/done): an HTML page as
//   src/authz/pages.ts frames it (`text/html`, the document's title repeated
//   as the one `<h1>` opening `<main>`), saying why: the error page
//   (`sendErrorPage`: the reason in a `<p>`, then "Nothing was shared…"), the
//   sign-in page (heading "Sign in to continue": the password form, or how
//   the owner signs in), or a form shown again with its reason in a
//   `<p class="warn">` (a wrong password, a wrong device code, too many
//   attempts); or the oauth body above when the shared
//   plumbing refused the request before the page's handler ran; /authorize
//   may instead redirect to the client with `error` in the query
//   (RFC 6749 §4.1.2.1), which counts as a refusal.
// - bearer (the calendar's /freebusy): an RFC 6750 §3.1 body (`error`
//   invalid_request, invalid_token or insufficient_scope) and, on 401 and
//   403, a `WWW-Authenticate: Bearer` challenge.
// - mcp (/mcp): a JSON-RPC 2.0 error object (`error.code` an integer,
//   `error.message` a string), or the bearer answer above before the body is
//   read (a missing or bad token, a missing scope).
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { expect } from 'vitest';

/** Runs per endpoint: small in CI; FUZZ_RUNS=5000 for a long run. */
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS) > 0 ? Number(process.env.FUZZ_RUNS) : 60;

/** A test's time limit: vitest's 30 s for the CI runs, more for a long run (a password check takes tens of ms). */
export function fuzzTimeout(runs = FUZZ_RUNS): number {
  return Math.max(30_000, runs * 250);
}

/** fast-check parameters of every property: the seed and the path are printed on failure, so a failing run can be replayed. */
export function fuzzParams(runs = FUZZ_RUNS): fc.Parameters<unknown> {
  return { numRuns: runs, verbose: 1, endOnFailure: true, ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {}) };
}

// ---------------------------------------------------------------- values

const OVER_BODY_LIMIT = 70 * 1024;

/** Strings a careless or hostile client sends where a parameter's value goes. */
export function junk(): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
    { weight: 1, arbitrary: fc.constantFrom('', ' ', '\u0000', '%00', '%', '%zz', '\r\n', '../../etc/passwd', '<script>alert(1)</script>', '${jndi:x}', "' OR 1=1 --") },
    // Names an object lookup finds on Object.prototype (a tool named toString once got a 500).
    { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf') },
    { weight: 1, arbitrary: fc.constantFrom('null', 'true', '0', '-1', '1e309', 'NaN', '9007199254740993', '[]', '{}', '{"a":1}') },
    { weight: 1, arbitrary: fc.integer({ min: 1000, max: 6000 }).map((n) => 'x'.repeat(n)) },
    { weight: 1, arbitrary: fc.constantFrom('http://127.0.0.1/callback', 'https://evil.example/cb', 'http://127.0.0.1:1/mcp', 'javascript:alert(1)', 'http://[::1', '//evil.example') },
    { weight: 1, arbitrary: jwtLike() },
  );
}

/** Something shaped like a JWT that no key signed (or signed with alg none). */
export function jwtLike(): fc.Arbitrary<string> {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return fc.oneof(
    fc.tuple(fc.constantFrom('none', 'HS256', 'ES256', 'RS256'), fc.constantFrom('at+jwt', 'JWT', 'x'), fc.jsonValue({ maxDepth: 2 }), fc.string({ maxLength: 20 })).map(
      ([alg, typ, claims, sig]) => `${b64({ alg, typ, kid: 'k' })}.${b64(claims)}.${Buffer.from(sig).toString('base64url')}`,
    ),
    fc.constantFrom('a.b.c', '..', 'eyJ.eyJ.', 'Bearer'),
  );
}

/** A parameter's value: usually one of the plausible values (right name, maybe the right kind of thing), else junk. */
export function valueOf(plausible: readonly string[]): fc.Arbitrary<string> {
  return plausible.length === 0 ? junk() : fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...plausible) }, { weight: 2, arbitrary: junk() });
}

/**
 * A request's parameters by name, each with its plausible values; a name
 * starting with `?` is optional (left out of a well-formed request half the
 * time), one starting with `~` is a mistake (a parameter a correct client
 * does not send, such as a public client's client_secret: in one well-formed
 * request of eight). The first value of a field is the one a correct client
 * would send.
 */
export type Fields = Record<string, readonly string[]>;

type Pairs = Array<[string, string]>;

/**
 * Parameters as a list of pairs. Mostly a well-formed request (plausible
 * values, optional fields sometimes present) with up to three mutations:
 * a field dropped, repeated, or given a junk value, or an unknown field
 * added; otherwise every field independently present, missing, repeated or
 * junk. The first kind gets past the first check and reaches the deeper ones.
 */
export function paramsOf(fields: Fields): fc.Arbitrary<Pairs> {
  return fc.oneof({ weight: 3, arbitrary: mutated(fields) }, { weight: 1, arbitrary: chaotic(fields) });
}

function fieldList(fields: Fields): Array<{ name: string; optional: boolean; mistake: boolean; plausible: readonly string[] }> {
  return Object.entries(fields).map(([key, plausible]) => ({ name: key.replace(/^[?~]/, ''), optional: key.startsWith('?'), mistake: key.startsWith('~'), plausible }));
}

function wellFormed(fields: Fields): fc.Arbitrary<Pairs> {
  const parts = fieldList(fields).map(({ name, optional, mistake, plausible }) => {
    // Mostly the first value (the one a correct client sends), else another plausible one.
    const value = plausible.length === 0 ? junk() : plausible.length === 1 ? fc.constant(plausible[0]!) : fc.oneof({ weight: 3, arbitrary: fc.constant(plausible[0]!) }, { weight: 1, arbitrary: fc.constantFrom(...plausible.slice(1)) });
    const present = value.map((v) => [[name, v]] as Pairs);
    if (mistake) return fc.oneof({ weight: 7, arbitrary: fc.constant([] as Pairs) }, { weight: 1, arbitrary: present });
    return optional ? fc.oneof(present, fc.constant([] as Pairs)) : present;
  });
  return fc.tuple(...parts).map((p) => p.flat());
}

/**
 * The request a correct client sends (every field but the mistakes, each with its first value), with at most one
 * thing wrong: a field given another of its plausible values, or left out, or a mistake added. Such a request
 * passes every check but the one that field is for, so a check that went missing shows (a wrong redirect_uri with a
 * live code and the right verifier).
 */
export function nearlyRight(fields: Fields): fc.Arbitrary<Pairs> {
  const list = fieldList(fields);
  const right: Pairs = list.filter((f) => !f.mistake && f.plausible.length > 0).map((f) => [f.name, f.plausible[0]!]);
  // Another value is the likelier change: it is what gets past the parser to the check.
  const changes = list.flatMap(({ name, mistake, plausible }): Array<fc.WeightedArbitrary<Pairs>> => {
    if (mistake) return plausible.length > 0 ? [{ weight: 1, arbitrary: fc.constantFrom(...plausible).map((v): Pairs => [...right, [name, v]]) }] : [];
    const others = plausible.slice(1);
    const without = { weight: 1, arbitrary: fc.constant(right.filter(([k]) => k !== name)) };
    return others.length > 0 ? [without, { weight: 3, arbitrary: fc.constantFrom(...others).map((v): Pairs => right.map(([k, old]) => [k, k === name ? v : old])) }] : [without];
  });
  return fc.oneof({ weight: 2, arbitrary: fc.constant(right) }, ...changes);
}

type Mutation = { kind: 'drop' | 'repeat' | 'junk'; at: number; value: string } | { kind: 'extra'; at: number; value: string; name: string };

function mutated(fields: Fields): fc.Arbitrary<Pairs> {
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ kind: fc.constantFrom('drop' as const, 'repeat' as const, 'junk' as const), at: fc.nat(), value: junk() }),
    fc.record({ kind: fc.constant('extra' as const), at: fc.nat(), value: junk(), name: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'toString')) }),
  );
  return fc.tuple(wellFormed(fields), fc.array(mutation, { maxLength: 3 })).map(([pairs, mutations]) => {
    const out: Pairs = pairs.map(([k, v]) => [k, v]);
    for (const m of mutations) {
      if (m.kind === 'extra') {
        out.push([m.name, m.value]);
        continue;
      }
      if (out.length === 0) continue;
      const i = m.at % out.length;
      if (m.kind === 'drop') out.splice(i, 1);
      else if (m.kind === 'repeat') out.push([out[i]![0], m.value]);
      else out[i] = [out[i]![0], m.value];
    }
    return out;
  });
}

function chaotic(fields: Fields): fc.Arbitrary<Pairs> {
  const entries = fieldList(fields).map(({ name, plausible }) =>
    fc.oneof(
      { weight: 3, arbitrary: valueOf(plausible).map((v) => [[name, v]] as Pairs) },
      { weight: 1, arbitrary: fc.constant([] as Pairs) },
      { weight: 1, arbitrary: fc.tuple(valueOf(plausible), valueOf(plausible)).map(([a, b]) => [[name, a], [name, b]] as Pairs) },
    ),
  );
  const extra = fc.array(fc.tuple(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString')), junk()), { maxLength: 2 });
  return fc.tuple(fc.tuple(...entries), extra).map(([known, more]) => [...known.flat(), ...more]);
}

export function toQuery(pairs: ReadonlyArray<[string, string]>): string {
  const params = new URLSearchParams();
  for (const [k, v] of pairs) params.append(k, v);
  const text = params.toString();
  return text ? `?${text}` : '';
}

// ---------------------------------------------------------------- requests

export interface FuzzRequest {
  method: string;
  /** Path and query, on the target server's origin. */
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

/**
 * A body for an endpoint that reads a form: mostly the right form with wrong
 * values, else the same fields as JSON, garbage JSON, bytes, an oversized
 * body, or the right body under the wrong content type.
 */
export function formBody(fields: Fields): fc.Arbitrary<Pick<FuzzRequest, 'headers' | 'body'>> {
  const form = 'application/x-www-form-urlencoded';
  return fc.oneof(
    { weight: 12, arbitrary: paramsOf(fields).map((p) => ({ headers: { 'content-type': form }, body: toQuery(p).slice(1) })) },
    { weight: 1, arbitrary: paramsOf(fields).map((p) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(Object.fromEntries(p)) })) },
    { weight: 1, arbitrary: paramsOf(fields).map((p) => ({ headers: { 'content-type': 'text/plain' }, body: toQuery(p).slice(1) })) },
    { weight: 1, arbitrary: paramsOf(fields).map((p) => ({ headers: {}, body: toQuery(p).slice(1) })) },
    { weight: 1, arbitrary: paramsOf(fields).map((p) => ({ headers: { 'content-type': `${form}; charset=utf-16` }, body: toQuery(p).slice(1) })) },
    { weight: 1, arbitrary: garbageBody() },
  );
}

/** A body for an endpoint that reads JSON. */
export function jsonBody(value: fc.Arbitrary<unknown>): fc.Arbitrary<Pick<FuzzRequest, 'headers' | 'body'>> {
  return fc.oneof(
    { weight: 12, arbitrary: value.map((v) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(v) ?? 'undefined' })) },
    { weight: 1, arbitrary: value.map((v) => ({ headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: JSON.stringify(v) ?? '' })) },
    { weight: 1, arbitrary: value.map((v) => ({ headers: { 'content-type': 'application/json; charset=latin1' }, body: JSON.stringify(v) ?? '' })) },
    { weight: 2, arbitrary: garbageBody() },
  );
}

function garbageBody(): fc.Arbitrary<Pick<FuzzRequest, 'headers' | 'body'>> {
  const contentType = fc.constantFrom('application/json', 'application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x', 'application/octet-stream', '*/*', 'application/json; charset=utf-8; x=', '');
  const payload = fc.oneof(
    fc.constantFrom('{', '{"a":', '[1,2', '{"__proto__":{"polluted":1}}', 'null', '""', '[]', '\u0000', '=&=&&==', 'a=%', 'a=%E0%A4%A', '\uFEFF{}'),
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
    fc.constant('a='.padEnd(OVER_BODY_LIMIT, 'x')),
    fc.integer({ min: 1, max: 3 }).map((depth) => '['.repeat(depth * 2000) + ']'.repeat(depth * 2000)),
  );
  return fc.tuple(contentType, payload).map(([type, body]): Pick<FuzzRequest, 'headers' | 'body'> => ({ headers: type ? { 'content-type': type } : {}, body }));
}

/** Extra headers: credentials that are wrong or garbage, foreign origins, odd request ids. */
export function noiseHeaders(options: { cookie?: string; basic?: string[] } = {}): fc.Arbitrary<Record<string, string>> {
  const authorization = fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: jwtLike().map((t) => `Bearer ${t}`) },
    { weight: 1, arbitrary: fc.constantFrom('Bearer', 'Bearer ', 'Basic', 'Basic !!!', 'Basic Og==', 'Digest x', 'bearer a b c') },
    { weight: 1, arbitrary: fc.constantFrom(...(options.basic ?? ['x:y'])).map((pair) => `Basic ${Buffer.from(pair).toString('base64')}`) },
  );
  const cookie = options.cookie
    ? fc.oneof({ weight: 6, arbitrary: fc.constant(options.cookie) }, { weight: 1, arbitrary: fc.constantFrom(undefined, 'a=b', '=', `${options.cookie}x`) })
    : fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('a=b', '=', 'delegate_session=forged') });
  const origin = fc.oneof({ weight: 10, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('https://evil.example', 'null') });
  const requestId = fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: junk().filter((v) => /^[\t\x20-\x7e]*$/.test(v) && v.length < 2000) });
  return fc.record({ authorization, cookie, origin, requestId }).map(({ authorization, cookie, origin, requestId }) => {
    const headers: Record<string, string> = {};
    if (authorization !== undefined) headers.authorization = authorization;
    if (cookie !== undefined) headers.cookie = cookie;
    if (origin !== undefined) headers.origin = origin;
    if (requestId !== undefined) headers['x-request-id'] = requestId;
    return headers;
  });
}

// ---------------------------------------------------------------- sending

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

/** Sends one request over loopback; redirects are answers, not followed. */
export async function send(origin: string, request: FuzzRequest): Promise<Answer> {
  const res = await fetch(`${origin}${request.path}`, {
    method: request.method,
    headers: request.headers,
    ...(request.body !== undefined && request.method !== 'GET' && request.method !== 'HEAD' ? { body: request.body } : {}),
    redirect: 'manual',
    signal: AbortSignal.timeout(20_000),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** A short description of a request for failure messages (bodies cut). */
export function describeRequest(request: FuzzRequest): string {
  const body = request.body === undefined ? '' : ` body(${request.body.length}): ${String(request.body).slice(0, 200)}`;
  return `${request.method} ${request.path.slice(0, 300)} ${JSON.stringify(request.headers).slice(0, 300)}${body}`;
}

// ---------------------------------------------------------------- state

export type Snapshot = Record<string, string>;

/**
 * Reads the store through its own read-only connection, as another process
 * would. A snapshot hashes every row of every table the database holds (read
 * from sqlite_master each time, so that a table added by a migration, or
 * created while the fuzz runs, is checked too; sqlite_sequence, SQLite's own
 * AUTOINCREMENT counters, is left out: an insert shows in its table anyway).
 * It is taken again only when SQLite's data_version says another connection
 * has committed since the last one, so a request that writes nothing costs
 * one pragma.
 */
export function stateReader(dbPath: string): { snapshot(): Snapshot; auditSince(seq: number): Array<{ seq: number; event: string; detail: string }>; lastAuditSeq(): number; close(): void } {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'sqlite_sequence' ORDER BY name");
  const since = db.prepare('SELECT seq, event, detail FROM audit_log WHERE seq > ? ORDER BY seq');
  const last = db.prepare('SELECT coalesce(max(seq), 0) AS seq FROM audit_log');
  const dataVersion = () => db.pragma('data_version', { simple: true }) as number;
  const full = (): Snapshot => {
    const out: Snapshot = {};
    for (const { name } of tables.all() as Array<{ name: string }>) {
      // Each row as JSON, sorted: no ORDER BY rowid, which a WITHOUT ROWID table lacks.
      const rows = (db.prepare(`SELECT * FROM "${name.replaceAll('"', '""')}"`).raw().all() as unknown[]).map((row) => JSON.stringify(row, cellJson)).sort();
      out[name] = createHash('sha256').update(rows.join('\n')).digest('base64url');
    }
    return out;
  };
  let version = dataVersion();
  let cached = full();
  return {
    snapshot() {
      const now = dataVersion();
      if (now !== version) {
        version = now;
        cached = full();
      }
      return cached;
    },
    auditSince: (seq) => since.all(seq) as Array<{ seq: number; event: string; detail: string }>,
    lastAuditSeq: () => (last.get() as { seq: number }).seq,
    close: () => db.close(),
  };
}

/** A cell as JSON: a 64-bit integer as text (JSON.stringify throws on a bigint); a blob comes as Buffer's toJSON, its bytes. */
function cellJson(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? String(value) : value;
}

/**
 * Refusals that are recorded by design, so that an operator can see them
 * (docs/internals.md, "Audit log"): a failed password sign-in, a tool call
 * refused for want of a scope or ending in an error, a free/busy read beyond
 * the delegation's limits, and replays of a code or refresh token (which
 * revoke a family). Each appends to audit_log and changes nothing else.
 */
export function designedAudit(row: { event: string; detail: string }): boolean {
  const detail = JSON.parse(row.detail) as { outcome?: string };
  if (row.event === 'sign_in_failed') return true;
  // An authenticated agent's exchange refused after its subject token verified (src/authz/exchange-refusals.ts).
  if (row.event === 'token_exchange_refused') return true;
  if ((row.event === 'tool_call' || row.event === 'freebusy_read') && (detail.outcome === 'refused' || detail.outcome === 'error')) return true;
  return false;
}

// ---------------------------------------------------------------- answers

export type EndpointClass = 'oauth' | 'page' | 'bearer' | 'mcp';

/**
 * The error codes each endpoint may answer, from the RFC that defines it (found in review s35fuzz: any of 22 codes
 * passed anywhere, so /revoke answering invalid_target, a code RFC 7009 does not give it, went unseen). Every set
 * holds `invalid_request`, the code of the shared fastify plumbing's refusals (Host, content type, body size, JSON
 * syntax, a method the path does not take: src/http/app.ts), which any route may answer.
 */
const PLUMBING = ['invalid_request'] as const;
/** RFC 6749 §5.2: a client's authentication, or its right to the grant, refused. */
const CLIENT = ['invalid_client', 'unauthorized_client'] as const;
/** This project's 429 (docs/internals.md: the registration and device request limits), with Retry-After: see checkTooMany. */
const TOO_MANY = 'too_many_requests';
export const ERROR_CODES = {
  /** Metadata, JWKS, protected resource metadata, CORS preflights: nothing of their own to refuse. */
  plumbing: new Set<string>(PLUMBING),
  /**
   * /token: RFC 6749 §5.2; RFC 8707 §2 invalid_target; RFC 8628 §3.5 (the device grant's polls); RFC 8693 §2.2.2
   * (the exchange: RFC 6749's codes and invalid_target); RFC 9396 §6.2 invalid_authorization_details (the exchange's
   * details, SECURITY.md).
   */
  token: new Set<string>([...PLUMBING, ...CLIENT, 'invalid_grant', 'unsupported_grant_type', 'invalid_scope', 'invalid_target', 'authorization_pending', 'slow_down', 'access_denied', 'expired_token', 'invalid_authorization_details']),
  /** /revoke: RFC 7009 §2.2.1, RFC 6749 §5.2's client errors and unsupported_token_type. */
  revoke: new Set<string>([...PLUMBING, ...CLIENT, 'unsupported_token_type']),
  /** /introspect: RFC 7662 §2.3, the client's authentication refused (RFC 6749 §5.2) or a malformed request. */
  introspect: new Set<string>([...PLUMBING, 'invalid_client']),
  /** /register: RFC 7591 §3.2.2, and the registration limit (docs/internals.md). */
  register: new Set<string>([...PLUMBING, 'invalid_redirect_uri', 'invalid_client_metadata', 'invalid_software_statement', 'unapproved_software_statement', TOO_MANY]),
  /** /device_authorization: RFC 8628 §3.2 takes RFC 6749 §5.2's codes; RFC 8707 §2 invalid_target; the device request limit. */
  deviceAuthorization: new Set<string>([...PLUMBING, ...CLIENT, 'invalid_scope', 'invalid_target', TOO_MANY]),
  /** POST /audit (this project's, docs/internals.md): the agent's authentication, and a report only an agent may send. */
  audit: new Set<string>([...PLUMBING, ...CLIENT]),
  /** GET /revocations (this project's): a malformed cursor or wait. */
  revocations: new Set<string>(PLUMBING),
  /** RFC 6750 §3.1: a bearer-protected resource (the calendar's /freebusy, the agent's /mcp before the body is read). */
  bearer: new Set<string>([...PLUMBING, 'invalid_token', 'insufficient_scope']),
} as const;

/** This project's code for a request no route matches (src/http/app.ts's not-found handler): 404 only, and only there. */
const UNKNOWN_ROUTE_CODES: ReadonlySet<string> = new Set(['not_found']);

function json(answer: Answer): unknown {
  try {
    return JSON.parse(answer.text);
  } catch {
    return undefined;
  }
}

function isOAuthErrorBody(answer: Answer, codes: ReadonlySet<string>): boolean {
  if (!answer.headers.get('content-type')?.startsWith('application/json')) return false;
  const body = json(answer) as { error?: unknown; error_description?: unknown } | undefined;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  if (typeof body.error !== 'string' || !codes.has(body.error)) return false;
  return body.error_description === undefined || typeof body.error_description === 'string';
}

/** The frame of every page (src/authz/pages.ts's sendPage): the title, and the same text as the one heading opening <main>. */
const PAGE_FRAME = /^<!doctype html>\n<html lang="en">\n<head>\n[\s\S]*?<title>([^<]+)<\/title>\n[\s\S]*?<\/head>\n<body>\n<main>\n<h1>([^<]+)<\/h1>\n?([\s\S]*)<\/main>\n<\/body>\n<\/html>\n$/;
/** sendErrorPage: the reason, then that nothing was shared. */
const ERROR_PAGE_BODY = /^<p>[^<]+<\/p>\n<p class="muted">Nothing was shared\.[^<]*<\/p>$/;

/** A refusal page of the authorization server, as the top of this file describes it. */
function isErrorPage(answer: Answer): boolean {
  if (!(answer.headers.get('content-type') ?? '').startsWith('text/html')) return false;
  const frame = PAGE_FRAME.exec(answer.text);
  if (!frame || frame[1] !== frame[2] || /<h1>/.test(frame[3]!)) return false;
  const [, , heading, rest] = frame as unknown as [string, string, string, string];
  if (ERROR_PAGE_BODY.test(rest.trim())) return true;
  if (heading === 'Sign in to continue') return /<form method="post" action="\/login">/.test(rest) || /<code>delegate login<\/code>/.test(rest) || /<pre><code>delegate approve /.test(rest);
  return /<p class="warn">[^<]+<\/p>/.test(rest) && /<form method="(get|post)" action="\/[a-z/]*">/.test(rest);
}

function isJsonRpcError(answer: Answer): boolean {
  const body = json(answer) as { jsonrpc?: unknown; error?: { code?: unknown; message?: unknown } } | undefined;
  return body?.jsonrpc === '2.0' && Number.isInteger(body.error?.code) && typeof body.error?.message === 'string';
}

/** Whether an answer refuses the request: any 4xx, and /authorize's redirect back to the client with an error. */
export function isRefusal(answer: Answer): boolean {
  if (answer.status >= 400) return true;
  const location = answer.headers.get('location');
  if (answer.status >= 300 && answer.status < 400 && location) {
    try {
      return new URL(location, 'http://x').searchParams.has('error');
    } catch {
      return false;
    }
  }
  return false;
}

/** RFC 6749 §5.2: the characters an error_description may hold. */
const ERROR_DESCRIPTION_CHARS = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Every error_description the answer carries (body, challenge, redirect), checked against RFC 6749 §5.2's set. */
function checkDescriptions(answer: Answer, context: string): void {
  const where = (what: string) => `${what} of ${answer.status} for ${context}`;
  const body = json(answer) as { error_description?: unknown } | undefined;
  if (typeof body === 'object' && body !== null && typeof body.error_description === 'string') {
    expect(body.error_description, where("the body's error_description")).toMatch(ERROR_DESCRIPTION_CHARS);
  }
  // The quoted-string as sent, escapes and all: a `\` or an escaped `"` inside fails the check.
  const challenge = /error_description="((?:[^"\\]|\\.)*)"/.exec(answer.headers.get('www-authenticate') ?? '');
  if (challenge) expect(challenge[1], where("the challenge's error_description")).toMatch(ERROR_DESCRIPTION_CHARS);
  const location = answer.headers.get('location');
  if (location) {
    let described: string | null = null;
    try {
      described = new URL(location, 'http://x').searchParams.get('error_description');
    } catch {
      // not a URL: nothing to check
    }
    if (described !== null) expect(described, where("the redirect's error_description")).toMatch(ERROR_DESCRIPTION_CHARS);
  }
}

/**
 * Asserts no 5xx, the class's error body on every 4xx (see the top of this file), and every error_description's characters.
 * `unknownRoute`: no route of the server matches the request's method and path (fastify's hasRoute), so its 404 is the
 * not-found handler's. `codes`: the error codes the endpoint may answer (ERROR_CODES; for an oauth endpoint, only the
 * plumbing's invalid_request unless given).
 */
export function checkAnswer(kind: EndpointClass, answer: Answer, method: string, context: string, unknownRoute = false, codes?: ReadonlySet<string>): void {
  expect(answer.status, `5xx for ${context}\n${answer.text.slice(0, 500)}`).toBeLessThan(500);
  checkDescriptions(answer, context);
  if (answer.status < 400) return;
  // RFC 9110 §15.5.2: a 401 MUST carry a challenge, whatever the endpoint (a sign-in page once answered 401 without one).
  if (answer.status === 401) expect(answer.headers.get('www-authenticate'), `401 with no WWW-Authenticate for ${context}`).toBeTruthy();
  // RFC 9110 §15.5.6: a 405 MUST carry Allow (GET /token was once a 404 naming no method; review oauth-core).
  if (answer.status === 405) expect(answer.headers.get('allow'), `405 with no Allow for ${context}`).toBeTruthy();
  // A HEAD answer has no body by definition (RFC 9110 §9.3.2); its status was checked.
  if (method === 'HEAD') return;
  const where = `${answer.status} for ${context}\nanswer: ${answer.headers.get('content-type')} ${answer.text.slice(0, 400)}`;
  checkTooMany(answer, where);
  if (unknownRoute && answer.status === 404) {
    expect(isOAuthErrorBody(answer, UNKNOWN_ROUTE_CODES), `no not_found body for a request no route matches: ${where}`).toBe(true);
    expect(answer.headers.get('cache-control'), `error not no-store: ${where}`).toMatch(/no-store/);
    return;
  }
  switch (kind) {
    case 'oauth':
      expect(isOAuthErrorBody(answer, codes ?? ERROR_CODES.plumbing), `no RFC error body with one of this endpoint's codes (${[...(codes ?? ERROR_CODES.plumbing)].join(' ')}): ${where}`).toBe(true);
      expect(answer.headers.get('cache-control'), `error not no-store: ${where}`).toMatch(/no-store/);
      return;
    case 'page':
      expect(isErrorPage(answer) || isOAuthErrorBody(answer, codes ?? ERROR_CODES.plumbing), `no error page: ${where}`).toBe(true);
      return;
    case 'bearer':
      expect(isOAuthErrorBody(answer, codes ?? ERROR_CODES.bearer), `no RFC 6750 body: ${where}`).toBe(true);
      if (answer.status === 401) expect(answer.headers.get('www-authenticate'), `no challenge: ${where}`).toMatch(/^Bearer /);
      return;
    case 'mcp':
      if (isJsonRpcError(answer)) return;
      expect(isOAuthErrorBody(answer, codes ?? ERROR_CODES.bearer), `neither JSON-RPC error nor bearer refusal: ${where}`).toBe(true);
      if (answer.status === 401) expect(answer.headers.get('www-authenticate'), `no challenge: ${where}`).toMatch(/^Bearer /);
      return;
  }
}

/**
 * The shipped limits' answer (docs/internals.md: registration, device requests): too_many_requests only on a 429,
 * which says when to come back (RFC 6585 §4, Retry-After) and is not cached; a 429 with a JSON body says
 * too_many_requests. The sign-in and device pages' own 429 (the form again, with its reason) is a page.
 */
function checkTooMany(answer: Answer, where: string): void {
  const error = (json(answer) as { error?: unknown } | undefined)?.error;
  if (error !== TOO_MANY && !(answer.status === 429 && typeof error === 'string')) return;
  expect([answer.status, error], `too_many_requests only on a 429, and a 429 says too_many_requests: ${where}`).toEqual([429, TOO_MANY]);
  expect(answer.headers.get('retry-after'), `a 429 with no Retry-After: ${where}`).toMatch(/^\d+$/);
  expect(answer.headers.get('cache-control'), `a 429 not no-store: ${where}`).toMatch(/no-store/);
}
