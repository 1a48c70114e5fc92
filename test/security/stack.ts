// The attack suite's target: delegate's three servers built exactly as the CLI
// builds them from a fresh data directory (src/cli/servers.ts: store, keys,
// bootstrap, the agent's audit wired to the store), each on an ephemeral
// loopback port, with their logs optionally captured. Also the one helper
// every attack needs: a fingerprint of the database, to show that a refused
// request changed nothing.
import { mkdtemp, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import Database from 'better-sqlite3';
import { expect } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { SignJWT, decodeJwt, importJWK, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { bootstrap, buildAgent, buildAuth, buildCalendar, closeAll, openDataStore, storeAudit } from '../../src/cli/servers.js';
import { loadOrCreateOwnerKey } from '../../src/client/owner-login.js';
import { loadOrCreateAgentKey } from '../../src/agent/identity.js';
import { resolvePaths, type Paths } from '../../src/config.js';
import { createLogger, type LogLevel } from '../../src/http/logging.js';
import type { GrantRecord, Store } from '../../src/store/index.js';
import { Browser, DEVICE_CODE_GRANT, hiddenField, parseConsentForm, postForm, registerDeviceClient, type WireResponse } from '../support/oauth-flow.js';
import { ownerLink } from '../support/authz.js';
import { ownerApproves, redeemCode as redeemApproved, type ConsentChoices } from '../support/owner-flow.js';
import { freePort } from '../support/ports.js';
import { initializeBody, mcpHeaders, rawRequest } from '../agent/http.js';

export const REDIRECT = 'http://127.0.0.1:43123/callback';
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export interface Stack {
  home: string;
  paths: Paths;
  store: Store;
  issuer: string;
  calendarUrl: string;
  agentUrl: string;
  ports: { auth: number; calendar: number; agent: number };
  ownerJwk: JWK;
  agent: { clientId: string; privateJwk: JWK };
  /** Every log line the three servers wrote (empty unless started with logs). */
  logLines: string[];
  apps: { auth: FastifyInstance; calendar: FastifyInstance; agent: FastifyInstance };
  close(): Promise<void>;
}

/** `logs`: capture every line, at `logLevel` (trace by default). `home`: a data directory to use (one on a tmpfs the test mounted, say) instead of a new one under the system's temp. */
export async function startStack(options: { logs?: boolean; logLevel?: LogLevel; home?: string } = {}): Promise<Stack> {
  const home = options.home ?? (await mkdtemp(join(tmpdir(), 'delegate-sec-')));
  const paths = resolvePaths({ DELEGATE_HOME: home });
  const store = await openDataStore(paths);
  const ports = { auth: await freePort(), calendar: await freePort(), agent: await freePort() };
  const urls = { issuer: `http://127.0.0.1:${ports.auth}`, calendarUrl: `http://127.0.0.1:${ports.calendar}`, agentUrl: `http://127.0.0.1:${ports.agent}/mcp` };
  await bootstrap(store, paths, urls, Date.now());
  const logLines: string[] = [];
  const logger = () => {
    if (!options.logs) return undefined;
    const stream = new PassThrough();
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => logLines.push(...chunk.split('\n').filter(Boolean)));
    return createLogger(options.logLevel ?? 'trace', stream);
  };
  const apps: FastifyInstance[] = [];
  const parts: Array<[FastifyInstance, number]> = [
    [await buildAuth(store, paths, urls.issuer, logger()), ports.auth],
    [await buildCalendar(store, paths, urls.calendarUrl, urls.issuer, logger()), ports.calendar],
    [await buildAgent(paths, urls, logger(), storeAudit(store)), ports.agent],
  ];
  for (const [app, port] of parts) {
    await app.listen({ port, host: '127.0.0.1' });
    apps.push(app);
  }
  const identity = await loadOrCreateAgentKey(paths.agentKey);
  return {
    home,
    paths,
    store,
    ...urls,
    ports,
    ownerJwk: await loadOrCreateOwnerKey(paths.ownerKey),
    agent: { clientId: identity.clientId, privateJwk: identity.privateJwk },
    logLines,
    apps: { auth: apps[0]!, calendar: apps[1]!, agent: apps[2]! },
    close: async () => {
      await closeAll(apps, store);
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** What the owner's browser ends with: a code for a freshly registered public client. */
export async function ownerCode(stack: Stack, options: { clientId?: string; state?: string; scope?: string; choices?: ConsentChoices } = {}) {
  return ownerApproves(stack, { ...options, redirectUri: REDIRECT });
}

export function redeemCode(stack: Stack, c: { clientId: string; code: string; verifier: string }, extra: Record<string, string | undefined> = {}): Promise<WireResponse> {
  return redeemApproved(stack, c, extra, REDIRECT);
}

export interface UserTokens {
  clientId: string;
  accessToken: string;
  refreshToken: string;
  grantId: string;
}

/** The owner's delegation to a new public client: its access token (aud = the agent) and refresh token. */
export async function userTokens(stack: Stack, options: { scope?: string; choices?: ConsentChoices } = {}): Promise<UserTokens> {
  const code = await ownerCode(stack, options);
  const res = await redeemCode(stack, code);
  if (res.status !== 200) throw new Error(`code redemption: ${JSON.stringify(res.body)}`);
  const accessToken = String(res.body.access_token);
  return { clientId: code.clientId, accessToken, refreshToken: String(res.body.refresh_token), grantId: String(decodeJwt(accessToken).grant_id) };
}

/** A private_key_jwt client assertion (RFC 7523) as CalendarAgent signs it; `header` and `claims` override. */
export async function agentAssertion(stack: Stack, header: Record<string, unknown> = {}, claims: Record<string, unknown> = {}, key?: JWK): Promise<string> {
  const jwk = key ?? stack.agent.privateJwk;
  const signingKey = (await importJWK(jwk, 'ES256')) as CryptoKey;
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: stack.agent.clientId, sub: stack.agent.clientId, aud: stack.issuer, jti: crypto.randomUUID(), iat: now, exp: now + 60, ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: stack.agent.privateJwk.kid, ...header })
    .sign(signingKey);
}

/** A user's tokens, and the calendar token CalendarAgent gets for them by exchange (checked to be issued). */
export async function userAndCalendarToken(stack: Stack, choices?: ConsentChoices): Promise<{ user: UserTokens; calendarToken: string }> {
  const user = await userTokens(stack, choices ? { choices } : {});
  const exchanged = await exchangeAsAgent(stack, user.accessToken);
  expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
  return { user, calendarToken: String(exchanged.body.access_token) };
}

/** RFC 8693 at the AS as CalendarAgent (or the agent `as`); `params` override (undefined removes). */
export async function exchangeAsAgent(
  stack: Stack,
  subjectToken: string,
  params: Record<string, string | undefined> = {},
  as: { clientId: string; privateJwk: JWK } = stack.agent,
): Promise<WireResponse> {
  return postForm(`${stack.issuer}/token`, {
    grant_type: TOKEN_EXCHANGE,
    subject_token: subjectToken,
    subject_token_type: ACCESS_TOKEN_TYPE,
    resource: stack.calendarUrl,
    scope: 'freebusy:read',
    client_assertion_type: JWT_BEARER,
    client_assertion: await agentAssertion(stack, { kid: as.privateJwk.kid }, { iss: as.clientId, sub: as.clientId }, as.privateJwk),
    ...params,
  });
}

/** The AS's current signing key, read from the store (where it lives), for forging tokens that differ in one claim only. */
export async function issuerSigningKey(stack: Stack): Promise<{ kid: string; privateJwk: JWK; publicJwk: JWK }> {
  const keys = (await stack.store.signingKeys()).filter((k) => k.retiredAt === null);
  const key = keys[keys.length - 1];
  if (!key) throw new Error('the store has no signing key');
  return { kid: key.kid, privateJwk: key.privateJwk as JWK, publicJwk: key.publicJwk as JWK };
}

/**
 * Every route of a fastify app as "METHOD /path", read from printRoutes'
 * tree (HEAD and OPTIONS left out: fastify adds them to GET and CORS routes).
 */
export function routesOf(app: FastifyInstance): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:[│ ] {3})*)[├└]── (\S+) \(([^)]+)\)$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    stack.length = depth;
    stack.push(m[2]!);
    const path = stack.join('');
    for (const method of m[3]!.split(', ')) if (method !== 'HEAD' && method !== 'OPTIONS') out.push(`${method} ${path}`);
  }
  return out.sort();
}

/** SQLite's own AUTOINCREMENT counters: an insert shows in its table anyway. Every other table counts. */
const IGNORED_TABLES = new Set<string>(['sqlite_sequence']);

export type Fingerprint = Record<string, string>;

/**
 * A hash of every row of every table, read through a second, read-only
 * connection to the database file (as another process would see it).
 */
/** Anything with a database file: a Stack, or `{ paths: { db } }` for another server. */
export type WithDatabase = { paths: { db: string } };

export function fingerprint(stack: WithDatabase): Fingerprint {
  const db = new Database(stack.paths.db, { readonly: true, fileMustExist: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>;
    const out: Fingerprint = {};
    for (const { name } of tables) {
      if (IGNORED_TABLES.has(name)) continue;
      const rows = db.prepare(`SELECT * FROM "${name}" ORDER BY rowid`).raw().all();
      out[name] = createHash('sha256').update(JSON.stringify(rows, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : typeof v === 'bigint' ? String(v) : v))).digest('hex');
    }
    return out;
  } finally {
    db.close();
  }
}

/** Rows a read-only query returns, through a second connection to the database file (as `fingerprint` reads it). */
export function queryRows(stack: WithDatabase, sql: string, ...params: unknown[]): Array<Record<string, unknown>> {
  const db = new Database(stack.paths.db, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as Array<Record<string, unknown>>;
  } finally {
    db.close();
  }
}

/** How many rows each of `tables` holds. */
export function rowCounts(stack: WithDatabase, tables: readonly string[]): Record<string, number> {
  return Object.fromEntries(tables.map((t) => [t, Number(queryRows(stack, `SELECT COUNT(*) AS n FROM "${t}"`)[0]!.n)]));
}

/** The tables whose rows differ between two fingerprints. */
export function changedTables(before: Fingerprint, after: Fingerprint): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...names].filter((n) => before[n] !== after[n]).sort();
}

/** Runs `attack` and returns what changed in the database while it ran. */
export async function stateChangedBy<T>(stack: WithDatabase, attack: () => Promise<T>): Promise<{ result: T; changed: string[] }> {
  const before = fingerprint(stack);
  const result = await attack();
  return { result, changed: changedTables(before, fingerprint(stack)) };
}

/**
 * What a refused token exchange may change: the agent's assertion jti is spent (RFC 7523 §3), and a refusal after
 * the subject token verified is recorded as one `token_exchange_refused` (at most one per subject token, error code
 * and minute: src/authz/exchange-refusals.ts). Nothing else: no token, no grant.
 */
export async function expectExchangeRefusedOnly(target: { store: Store }, changed: string[], spent: string[] = ['used_once']): Promise<void> {
  expect(changed.filter((t) => t !== 'audit_log')).toEqual(spent);
  if (changed.includes('audit_log')) expect((await target.store.listAudit()).at(-1)?.event).toBe('token_exchange_refused');
}

/**
 * What a refused owner sign-in link may change: nothing but one `sign_in_failed` record (method owner_link), at most
 * one per source, reason and minute (src/authz/owner-login.ts). No session, no spent jti.
 */
export async function expectOwnerLinkRefusedOnly(target: { store: Store }, changed: string[]): Promise<void> {
  expect(changed.filter((t) => t !== 'audit_log')).toEqual([]);
  if (changed.includes('audit_log')) expect((await target.store.listAudit()).at(-1)).toMatchObject({ event: 'sign_in_failed', detail: { method: 'owner_link' } });
}

/** Audit records appended since `seq` (refusals that are designed to be recorded show up here). */
export async function auditSince(stack: Stack, seq: number) {
  return (await stack.store.listAudit()).filter((r) => r.seq > seq);
}

export async function lastAuditSeq(stack: Stack): Promise<number> {
  const all = await stack.store.listAudit();
  return all.length === 0 ? 0 : all[all.length - 1]!.seq;
}

/** Checks one HTML answer's headers: a strict CSP and no framing. */
export function expectStrictPage(name: string, res: { status: number; headers: Headers }): void {
  expect(res.headers.get('content-type'), name).toMatch(/^text\/html/);
  const csp = res.headers.get('content-security-policy') ?? '';
  const directives = new Map(csp.split(';').map((d) => d.trim()).filter(Boolean).map((d) => [d.split(/\s+/)[0]!, d.split(/\s+/).slice(1)] as const));
  expect(directives.get('default-src'), `${name}: ${csp}`).toEqual(["'none'"]);
  expect(directives.get('frame-ancestors'), `${name}: ${csp}`).toEqual(["'none'"]);
  expect(directives.get('base-uri'), `${name}: ${csp}`).toEqual(["'none'"]);
  expect(directives.has('form-action'), `${name}: ${csp}`).toBe(true);
  // No script at all, and nothing that would re-enable inline code or eval.
  expect(directives.has('script-src'), `${name}: ${csp}`).toBe(false);
  const sources = [...directives.values()].flat();
  for (const loose of ["'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", '*', 'http:', 'https:', 'data:', 'blob:']) expect(sources, `${name}: ${csp}`).not.toContain(loose);
  // form-action names this server and, on the consent page, the client's redirect origin only, or the scheme of a
  // private-use redirect URI (whose URLs have no origin); never a scheme a browser acts on itself.
  for (const target of directives.get('form-action') ?? []) expect(target, `${name}: ${csp}`).toMatch(/^('self'|https?:\/\/[^/*]+|[a-z][a-z0-9+.-]*:)$/);
  for (const own of ['javascript:', 'vbscript:', 'file:', 'about:', 'filesystem:']) expect(directives.get('form-action'), `${name}: ${csp}`).not.toContain(own);
  expect(res.headers.get('x-frame-options'), name).toBe('DENY');
  expect(res.headers.get('x-content-type-options'), name).toBe('nosniff');
  expect(res.headers.get('cache-control'), name).toContain('no-store');
}

/** An MCP initialize at CalendarAgent with `token`: 200 when the token is accepted. */
export function atAgent(stack: Stack, token: string) {
  return rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(token), body: initializeBody });
}

/** A free/busy read at the calendar backend with `token`, for the next day. */
export function atCalendar(stack: Stack, token: string) {
  const from = new Date(Date.now() + 3600_000).toISOString();
  const to = new Date(Date.now() + 86400_000).toISOString();
  return rawRequest({ port: stack.ports.calendar, path: `/freebusy?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`, headers: { authorization: `Bearer ${token}` } });
}

/** Polls (bounded) until the resource server refuses: the revocation list reaches it by long poll. Returns the first refusal (or the last answer). */
export async function refusedSoon<T extends { status: number }>(call: () => Promise<T>): Promise<T> {
  let res = await call();
  for (let i = 0; i < 100 && res.status === 200; i++) {
    await new Promise((r) => setTimeout(r, 50));
    res = await call();
  }
  return res;
}

/** RFC 6750 §3.1: a refused token is answered 401 with a Bearer challenge naming invalid_token. */
export function expectInvalidToken(res: { status: number; headers: Record<string, unknown> }, where: string): void {
  expect(res.status, where).toBe(401);
  expect(String(res.headers['www-authenticate']), where).toMatch(/^Bearer .*\berror="invalid_token"/);
}

/** A step of the store that /token runs to record what it issues (or, authCodeByHash, to read the code it redeems). */
export type RecordingStep = 'redeemAuthCode' | 'rotateRefreshToken' | 'authCodeByHash';

/**
 * Runs each of `changes`, one per call, just before the next calls of the store's `step` (which then run as they
 * would have): a pass-through wrapper that puts a change (a consent, a revocation, a full disk) exactly in the window
 * between /token's reading and its recording. The wrapper takes itself off after the last change; `restores` gets
 * what puts the store back, for a test that failed before that.
 */
export function changeBefore(store: Store, step: RecordingStep, restores: Array<() => void>, ...changes: Array<() => Promise<unknown>>): { ran: () => boolean } {
  const original = store[step] as (...args: unknown[]) => Promise<unknown>;
  const slot = store as unknown as Record<RecordingStep, unknown>;
  const pending = [...changes];
  restores.push(() => (slot[step] = original));
  slot[step] = async (...args: unknown[]) => {
    const change = pending.shift()!;
    if (pending.length === 0) slot[step] = original;
    await change();
    return original.apply(store, args);
  };
  return { ran: () => pending.length === 0 };
}

/**
 * A device authorization the owner approved (signed in on the verification page, confirmed the code, approved), with
 * its grant, and the device's poll of /token.
 */
export async function approvedDevice(stack: Stack): Promise<{ clientId: string; grant: GrantRecord; poll: () => ReturnType<typeof postForm> }> {
  const clientId = await registerDeviceClient(stack.issuer);
  const started = await postForm(`${stack.issuer}/device_authorization`, { client_id: clientId, resource: stack.agentUrl });
  expect(started.status).toBe(200);
  const { device_code: deviceCode, verification_uri_complete: complete, user_code: userCode } = started.body as Record<string, string>;
  const browser = new Browser();
  const confirm = await browser.follow(await ownerLink(stack, complete!.slice(stack.issuer.length)));
  expect(confirm.status).toBe(200);
  const consent = await browser.post(`${stack.issuer}/device`, { user_code: userCode!, csrf: hiddenField(confirm.html, 'csrf'), signin: hiddenField(confirm.html, 'signin'), decision: 'continue' });
  expect(consent.status).toBe(200);
  const approved = await browser.post(`${stack.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
  expect(approved.status).toBe(303);
  // This server's own page, where the decision is kept for the device's poll.
  expect((await browser.get(new URL(approved.location!, stack.issuer).href)).status).toBe(200);
  const poll = () => postForm(`${stack.issuer}/token`, { grant_type: DEVICE_CODE_GRANT, device_code: deviceCode!, client_id: clientId });
  return { clientId, grant: await grantOf(stack, clientId), poll };
}

/** The live grant of a client. */
export async function grantOf(stack: Stack, clientId: string): Promise<GrantRecord> {
  const grant = (await stack.store.listGrants()).find((g) => g.clientId === clientId && g.revokedAt === null);
  if (!grant) throw new Error(`no active grant for ${clientId}`);
  return grant;
}

/** A copy of `base` with `changes` applied (undefined removes a claim): a token's claims as a test forges them. */
export function claims(base: JWTPayload, changes: Record<string, unknown> = {}): JWTPayload {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out as JWTPayload;
}
