// Measures how long a revocation takes to reach delegate's resource servers:
// the real authorization server, calendar backend and CalendarAgent on
// ephemeral loopback ports, a grant with every kind of token derived from it
// (the user's access token, a refreshed one, and the calendar tokens the agent
// exchanges them for), then a revocation, and the time until each resource
// server refuses every one of those tokens. Used by the revocation test and by
// `bench/revocation.bench.ts`; no test framework inside, so both can run it.
import { performance } from 'node:perf_hooks';
import { SignJWT, decodeJwt, importJWK, type CryptoKey } from 'jose';
import type { FastifyInstance } from 'fastify';
import { buildCalendarServer } from '../../src/calendar/server.js';
import { listenAgentFor, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { postForm } from '../support/oauth-flow.js';
import { ownerApproves, redeemCode } from '../support/owner-flow.js';

const REDIRECT = 'http://127.0.0.1:43123/callback';

export interface RevocationStack {
  authz: TestAuthz;
  agent: FastifyInstance;
  calendar: FastifyInstance;
  close(): Promise<void>;
}

/** The three servers, with the resource servers' revocation lists built the default way (from the issuer). */
export async function startRevocationStack(): Promise<RevocationStack> {
  const authz = await startTestAuthz();
  const calendar = await buildCalendarServer({
    resourceUrl: authz.calendarUrl,
    issuer: authz.issuer,
    calendarsFor: async (sub) => {
      const user = await authz.store.userById(sub);
      if (!user) return undefined;
      const calendars = await authz.store.listCalendars(user.id);
      return { timeZone: user.timeZone, calendars: calendars.filter((c) => c.kind === 'file').map((c) => ({ name: c.name, path: c.source })) };
    },
  });
  await calendar.listen({ port: Number(new URL(authz.calendarUrl).port), host: '127.0.0.1' });
  const agent = await listenAgentFor(authz);
  return {
    authz,
    agent,
    calendar,
    close: async () => {
      await agent.close();
      await calendar.close();
      await authz.close();
    },
  };
}

/** Every token derived from one grant, by the resource server that accepts it. */
export interface DerivedTokens {
  grantId: string;
  clientId: string;
  refreshToken: string;
  /** Audience: the agent. The user's token and the one a refresh gave. */
  atAgent: string[];
  /** Audience: the calendar backend. What the agent got by exchanging each of the above. */
  atCalendar: string[];
}

/** The owner consents for a new client; its token is refreshed once; the agent exchanges both. */
export async function deriveTokens(authz: TestAuthz): Promise<DerivedTokens> {
  const approved = await ownerApproves(authz, { redirectUri: REDIRECT, state: 's' });
  const clientId = approved.clientId;
  const first = await redeemCode(authz, approved, {}, REDIRECT);
  if (first.status !== 200) throw new Error(`code redemption: ${JSON.stringify(first.body)}`);
  const refreshed = await postForm(`${authz.issuer}/token`, {
    grant_type: 'refresh_token',
    refresh_token: String(first.body.refresh_token),
    client_id: clientId,
    resource: authz.agentUrl,
  });
  if (refreshed.status !== 200) throw new Error(`refresh: ${JSON.stringify(refreshed.body)}`);
  const atAgent = [String(first.body.access_token), String(refreshed.body.access_token)];
  const atCalendar: string[] = [];
  for (const subject of atAgent) atCalendar.push(await exchangeAsAgent(authz, subject));
  return { grantId: String(decodeJwt(atAgent[0]!).grant_id), clientId, refreshToken: String(refreshed.body.refresh_token), atAgent, atCalendar };
}

/** RFC 8693 at the AS, authenticated as CalendarAgent (private_key_jwt), exactly as the agent does it. */
async function exchangeAsAgent(authz: TestAuthz, subjectToken: string): Promise<string> {
  const key = (await importJWK(authz.agent.privateJwk, 'ES256')) as CryptoKey;
  const nowSec = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: authz.agent.privateJwk.kid })
    .setIssuer(authz.agent.clientId)
    .setSubject(authz.agent.clientId)
    .setAudience(authz.issuer)
    .setJti(crypto.randomUUID())
    .setIssuedAt(nowSec)
    .setExpirationTime(nowSec + 60)
    .sign(key);
  const res = await postForm(`${authz.issuer}/token`, {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: subjectToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    resource: authz.calendarUrl,
    scope: 'freebusy:read',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
  });
  if (res.status !== 200) throw new Error(`exchange: ${JSON.stringify(res.body)}`);
  return String(res.body.access_token);
}

export type Answer = { status: number; error_description?: string };

/** What the agent says to a token: an MCP tools/list over Streamable HTTP. */
export async function askAgent(authz: TestAuthz, token: string): Promise<Answer> {
  const res = await fetch(authz.agentUrl, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  });
  return answerOf(res);
}

/** What the calendar backend says to a token: one day's free/busy. */
export async function askCalendar(authz: TestAuthz, token: string): Promise<Answer> {
  const from = new Date();
  const to = new Date(from.getTime() + 86_400_000);
  const res = await fetch(`${authz.calendarUrl}/freebusy?from=${from.toISOString()}&to=${to.toISOString()}`, { headers: { Authorization: `Bearer ${token}` } });
  return answerOf(res);
}

async function answerOf(res: Response): Promise<Answer> {
  const body = (await res.json().catch(() => ({}))) as { error_description?: unknown };
  return { status: res.status, ...(typeof body.error_description === 'string' ? { error_description: body.error_description } : {}) };
}

export type RevocationKind =
  /** `delegate grants revoke`: the grant is revoked in the store (possibly by another process). */
  | 'grant'
  /** RFC 7009 at the AS: the client revokes its refresh token, which ends its family and what was derived from it. */
  | 'refresh-token';

export interface RevocationDelay {
  kind: RevocationKind;
  /** Milliseconds from the start of the revocation until the agent refused every token meant for it. */
  agentMs: number;
  /** The same for the calendar backend. */
  calendarMs: number;
  /** What each resource server said to each token at the end. */
  agentAnswers: Answer[];
  calendarAnswers: Answer[];
}

/** What a resource server says to a token of a revoked grant (src/resource/revocations.ts): a 401 that names the revocation. */
export function refusedAsRevoked(answer: Answer): boolean {
  return answer.status === 401 && /revoked/.test(answer.error_description ?? '');
}

/**
 * Checks that each resource server accepts every token derived from the
 * grant (throws otherwise: a token it never accepted would "measure" how fast
 * it is refused for something else), revokes, then asks each server about
 * every token, over and over, until it refuses them all as revoked. Throws
 * on a 401 for any other reason, and when a server still accepts one after
 * `giveUpMs` (a revocation that never arrives).
 */
export async function measureRevocationDelay(stack: RevocationStack, tokens: DerivedTokens, kind: RevocationKind, giveUpMs = 10_000): Promise<RevocationDelay> {
  const { authz } = stack;
  const servers = [
    { name: 'agent', ask: (t: string) => askAgent(authz, t), list: tokens.atAgent },
    { name: 'calendar backend', ask: (t: string) => askCalendar(authz, t), list: tokens.atCalendar },
  ] as const;
  for (const { name, ask, list } of servers) {
    const answers = await Promise.all(list.map(ask));
    if (!answers.every((a) => a.status === 200)) throw new Error(`the ${name} did not accept every token before the revocation: ${JSON.stringify(answers)}`);
  }
  const until = async (ask: (token: string) => Promise<Answer>, list: readonly string[], started: number, name: string) => {
    for (;;) {
      const answers = await Promise.all(list.map(ask));
      const elapsed = performance.now() - started;
      if (answers.every(refusedAsRevoked)) return { ms: elapsed, answers };
      const other = answers.find((a) => a.status === 401 && !refusedAsRevoked(a));
      if (other) throw new Error(`the ${name} refused a token for another reason than the revocation: ${JSON.stringify(other)}`);
      if (elapsed > giveUpMs) throw new Error(`the ${name} still accepts a revoked token after ${giveUpMs} ms: ${JSON.stringify(answers)}`);
      // Everything runs in this process: leave the servers room to work between rounds of questions.
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  };
  const started = performance.now();
  if (kind === 'grant') {
    await authz.store.revokeGrant(tokens.grantId, Date.now(), 'revocation delay measurement');
  } else {
    const res = await postForm(`${authz.issuer}/revoke`, { token: tokens.refreshToken, token_type_hint: 'refresh_token', client_id: tokens.clientId });
    if (res.status !== 200) throw new Error(`revocation: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  }
  const [agent, calendar] = await Promise.all(servers.map(({ name, ask, list }) => until(ask, list, started, name)));
  return { kind, agentMs: agent!.ms, calendarMs: calendar!.ms, agentAnswers: agent!.answers, calendarAnswers: calendar!.answers };
}

export function describeDelay(d: RevocationDelay): string {
  return `revocation (${d.kind}) reached CalendarAgent in ${d.agentMs.toFixed(1)} ms and the calendar backend in ${d.calendarMs.toFixed(1)} ms`;
}
