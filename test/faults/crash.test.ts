// Crash safety of the authorization server: `delegate serve` is killed with
// SIGKILL in the middle of a burst of token requests (code redemptions,
// refresh grants, token exchanges, revocations and new consents, sent at once
// by many in-process HTTP clients), then started again on the same data
// directory. Afterwards the database passes its integrity check, no code is
// accepted twice, no acknowledged grant is lost, and every token a client
// received is either valid or revoked at introspection and at both resource
// servers, never half-written.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeJwt, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, authorizeUrl, parseConsentForm, pkcePair, postForm, registerPublicClient } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';
import { builtModule } from '../e2e/built.js';
import { killLeftovers, startCli, type Running } from '../e2e/run.js';
import { agentClientAuth, exchangeForCalendar, ready } from './support.js';

const REDIRECT = 'http://127.0.0.1/callback';
const CLIENTS = 6;
const CODES_PER_CLIENT = 4;
const WORKERS = 16;
/** The server is killed once this many burst requests have been answered, with the rest in flight. */
const KILL_AFTER = 100;

interface PendingCode {
  code: string;
  verifier: string;
  clientId: string;
  /** What happened to its redemption in the burst. */
  fate: 'untried' | 'accepted' | 'refused' | 'lost';
}
interface Chain {
  clientId: string;
  refresh: string;
  busy: boolean;
  /** Ended by us (revoked) or by the server (refused): not used again in the burst. */
  ended: boolean;
}
interface Received {
  token: string;
  jti: string;
  kind: 'user' | 'exchanged';
}

let root: string;
let home: string;
let ports: string[];
let issuer: string;
let calendarUrl: string;
let agentUrl: string;
let serve: Running;
let hashSecret: (s: string) => string;

const startServe = () => ready(startCli(['serve', ...ports], home));

beforeAll(async () => {
  ({ hashSecret } = (await import(builtModule('authz/crypto.js'))) as { hashSecret: (s: string) => string });
  root = await mkdtemp(join(tmpdir(), 'delegate-faults-crash-'));
  home = join(root, 'home');
  const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
  ports = ['--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)];
  issuer = `http://127.0.0.1:${auth}`;
  calendarUrl = `http://127.0.0.1:${calendar}`;
  agentUrl = `http://127.0.0.1:${agent}/mcp`;
  serve = await startServe();
}, 60_000);

afterAll(async () => {
  serve?.child.kill('SIGTERM');
  await serve?.done;
  killLeftovers();
  if (root) await rm(root, { recursive: true, force: true });
});

/**
 * The person at the browser, approving each request as the page presets it. Each request is opened through a
 * sign-in link of its own, as the CLI opens each (a link's session is good for its one request); a request a
 * grant already covers gets its code at once.
 */
class Owner {
  private readonly browser = new Browser();

  async approve(clientId: string): Promise<{ code: string; verifier: string }> {
    const { verifier, challenge } = pkcePair();
    const state = randomBytes(16).toString('base64url');
    const href = authorizeUrl(issuer, { clientId, redirectUri: REDIRECT, resource: agentUrl, scope: 'slots:find', state, challenge });
    const page = await this.signIn(href);
    let location = page.location;
    if (!location) {
      if (page.status !== 200) throw new Error(`expected the consent page, got ${page.status}`);
      const answer = await this.browser.post(`${issuer}/consent`, { ...parseConsentForm(page.html), decision: 'approve' });
      if (answer.status !== 303 || !answer.location) throw new Error(`consent answered ${answer.status}`);
      location = answer.location;
    }
    const code = new URL(location).searchParams.get('code');
    if (!code) throw new Error(`no code in the redirect: ${location}`);
    return { code, verifier };
  }

  private async signIn(href: string) {
    const { loadOrCreateOwnerKey, signOwnerAssertion } = (await import(builtModule('client/owner-login.js'))) as {
      loadOrCreateOwnerKey(path: string): Promise<JWK>;
      signOwnerAssertion(input: { key: JWK; issuer: string; now: () => number; next: string }): Promise<string>;
    };
    const key = await loadOrCreateOwnerKey(join(home, 'owner-key.json'));
    const next = href.slice(issuer.length);
    const assertion = await signOwnerAssertion({ key, issuer, now: Date.now, next });
    const link = `${issuer}/login/owner?assertion=${encodeURIComponent(assertion)}&next=${encodeURIComponent(next)}`;
    return this.browser.follow(link);
  }
}

const agentAuth = () => agentClientAuth(home, issuer);

const redeem = (c: PendingCode) =>
  postForm(`${issuer}/token`, { grant_type: 'authorization_code', code: c.code, code_verifier: c.verifier, redirect_uri: REDIRECT, client_id: c.clientId, resource: agentUrl });

const received = (token: string, kind: Received['kind']): Received => ({ token, kind, jti: String(decodeJwt(token).jti) });

describe('kill -9 during a burst of token requests', () => {
  it('loses no acknowledged write, accepts no code twice, and leaves every received token valid or revoked', { timeout: 120_000 }, async () => {
    // Before the burst: clients with grants, tokens from one code each, more codes waiting.
    const owner = new Owner();
    const ackedGrantClients = new Set<string>();
    const codes: PendingCode[] = [];
    const chains: Chain[] = [];
    const tokens: Received[] = [];
    const refreshTokens: string[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const clientId = await registerPublicClient(issuer, [REDIRECT]);
      const first = await owner.approve(clientId);
      ackedGrantClients.add(clientId);
      const res = await redeem({ ...first, clientId, fate: 'untried' });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      tokens.push(received(String(res.body.access_token), 'user'));
      refreshTokens.push(String(res.body.refresh_token));
      chains.push({ clientId, refresh: String(res.body.refresh_token), busy: false, ended: false });
      for (let j = 0; j < CODES_PER_CLIENT; j++) codes.push({ ...(await owner.approve(clientId)), clientId, fate: 'untried' });
    }

    // The burst: workers pick operations in turn until the server dies under them.
    let answered = 0;
    let killed = false;
    let failures = 0;
    const revokedAccess = new Set<string>();
    const answeredOne = () => {
      answered++;
      if (answered === KILL_AFTER && !killed) {
        killed = true;
        serve.child.kill('SIGKILL');
      }
    };
    const pick = <T>(items: T[], ok: (t: T) => boolean): T | undefined => {
      const candidates = items.filter(ok);
      return candidates[Math.floor(Math.random() * candidates.length)];
    };
    const redeemNext = async () => {
      const c = codes.find((x) => x.fate === 'untried');
      if (!c) return;
      c.fate = 'lost';
      const res = await redeem(c);
      c.fate = res.status === 200 ? 'accepted' : 'refused';
      if (res.status === 200) {
        tokens.push(received(String(res.body.access_token), 'user'));
        refreshTokens.push(String(res.body.refresh_token));
        chains.push({ clientId: c.clientId, refresh: String(res.body.refresh_token), busy: false, ended: false });
      }
      answeredOne();
    };
    const ops: Array<() => Promise<void>> = [
      redeemNext,
      redeemNext,
      async () => {
        const chain = pick(chains, (x) => !x.busy && !x.ended);
        if (!chain) return;
        chain.busy = true;
        try {
          const res = await postForm(`${issuer}/token`, { grant_type: 'refresh_token', refresh_token: chain.refresh, client_id: chain.clientId });
          if (res.status === 200) {
            tokens.push(received(String(res.body.access_token), 'user'));
            chain.refresh = String(res.body.refresh_token);
            refreshTokens.push(chain.refresh);
          } else chain.ended = true;
          answeredOne();
        } catch (error) {
          chain.ended = true; // its fate is unknown: it may have been rotated before the kill
          throw error;
        } finally {
          chain.busy = false;
        }
      },
      async () => {
        const subject = pick(tokens, (t) => t.kind === 'user');
        if (!subject) return;
        const res = await exchangeForCalendar(home, issuer, calendarUrl, subject.token);
        if (res.status === 200) tokens.push(received(String(res.body.access_token), 'exchanged'));
        answeredOne();
      },
      async () => {
        if (Math.random() < 0.5) {
          const chain = pick(chains, (x) => !x.busy && !x.ended);
          if (!chain) return;
          chain.busy = true;
          chain.ended = true;
          try {
            await postForm(`${issuer}/revoke`, { token: chain.refresh, token_type_hint: 'refresh_token', client_id: chain.clientId });
          } finally {
            chain.busy = false;
          }
        } else {
          const target = pick(tokens, (t) => t.kind === 'user' && !revokedAccess.has(t.jti));
          if (!target) return;
          const res = await postForm(`${issuer}/revoke`, { token: target.token, token_type_hint: 'access_token', client_id: String(decodeJwt(target.token).client_id) });
          if (res.status === 200) revokedAccess.add(target.jti);
        }
        answeredOne();
      },
      async () => {
        const clientId = await registerPublicClient(issuer, [REDIRECT]);
        const fresh = await owner.approve(clientId);
        ackedGrantClients.add(clientId); // the consent's redirect came back: the grant's creation was acknowledged
        codes.push({ ...fresh, clientId, fate: 'untried' });
        answeredOne();
      },
    ];
    const worker = async (n: number) => {
      for (let i = n; !killed; i++) {
        try {
          await ops[i % ops.length]!();
        } catch {
          failures++; // a request the kill cut off
        }
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, n) => worker(n)));
    const exit = await serve.done;
    expect(exit.signal).toBe('SIGKILL');
    console.log(`burst: ${answered} answered, ${failures} cut off by the kill; ${tokens.length} access tokens and ${refreshTokens.length} refresh tokens received; ${codes.filter((c) => c.fate === 'lost').length} code redemptions lost`);

    serve = await startServe();

    // The database: intact, in WAL mode, synced on every commit, every reference resolving.
    const db = new Database(join(home, 'delegate.db'), { readonly: true, fileMustExist: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(db.pragma('foreign_key_check')).toEqual([]);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');

      // No acknowledged grant is lost.
      const grantClients = new Set((db.prepare('SELECT client_id FROM grants').all() as Array<{ client_id: string }>).map((r) => r.client_id));
      for (const clientId of ackedGrantClients) expect(grantClients.has(clientId), `grant for ${clientId}`).toBe(true);

      // Every refresh token received is on record, in a family that is on record.
      const refreshRow = db.prepare('SELECT r.family_id, f.id AS family FROM refresh_tokens r LEFT JOIN token_families f ON f.id = r.family_id WHERE r.token_hash = ?');
      for (const rt of refreshTokens) {
        const row = refreshRow.get(hashSecret(rt)) as { family_id: string; family: string | null } | undefined;
        expect(row, 'a received refresh token has its row').toBeDefined();
        expect(row!.family).not.toBeNull();
      }

      // Every access token received: on record with its whole lineage, and valid or revoked everywhere alike.
      const standing = db.prepare(
        `SELECT t.revoked_at AS token_revoked, t.family_id, f.id AS family, f.revoked_at AS family_revoked, g.revoked_at AS grant_revoked
         FROM issued_tokens t JOIN grants g ON g.id = t.grant_id LEFT JOIN token_families f ON f.id = t.family_id WHERE t.jti = ?`,
      );
      const familyHasRefresh = db.prepare('SELECT count(*) AS n FROM refresh_tokens WHERE family_id = ?');
      let active = 0;
      let revoked = 0;
      for (const t of tokens) {
        const row = standing.get(t.jti) as { token_revoked: number | null; family_id: string | null; family: string | null; family_revoked: number | null; grant_revoked: number | null } | undefined;
        expect(row, `token ${t.kind} ${t.jti} has its row`).toBeDefined();
        if (t.kind === 'user') {
          expect(row!.family, 'a user token belongs to a family on record').not.toBeNull();
          expect((familyHasRefresh.get(row!.family_id) as { n: number }).n, 'its family has its refresh token').toBeGreaterThan(0);
        }
        const isActive = row!.token_revoked === null && row!.family_revoked === null && row!.grant_revoked === null;
        if (revokedAccess.has(t.jti)) expect(isActive, 'an acknowledged revocation holds').toBe(false);
        isActive ? active++ : revoked++;
        if (t.kind === 'user') {
          const intro = await postForm(`${issuer}/introspect`, { token: t.token, ...(await agentAuth()) });
          expect(intro.status, JSON.stringify(intro.body)).toBe(200);
          expect(intro.body.active).toBe(isActive);
          const mcp = await fetch(agentUrl, {
            method: 'POST',
            headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
            body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'crash-test', version: '1' } } }),
          });
          await mcp.body?.cancel();
          expect(mcp.status, `agent on a ${isActive ? 'valid' : 'revoked'} token`).toBe(isActive ? 200 : 401);
        } else {
          const from = new Date().toISOString();
          const to = new Date(Date.now() + 86_400_000).toISOString();
          const res = await fetch(`${calendarUrl}/freebusy?from=${from}&to=${to}`, { headers: { authorization: `Bearer ${t.token}` } });
          await res.body?.cancel();
          expect(res.status, `calendar on a ${isActive ? 'valid' : 'revoked'} token`).toBe(isActive ? 200 : 401);
        }
      }
      console.log(`after the restart: ${active} access tokens valid, ${revoked} revoked, none half-written`);

      // No code is accepted twice. A redemption whose answer was lost counts if the database says it happened.
      const usedAt = db.prepare('SELECT used_at FROM auth_codes WHERE code_hash = ?');
      const lost = codes.filter((c) => c.fate === 'lost').map((c) => ({ c, committed: (usedAt.get(hashSecret(c.code)) as { used_at: number | null }).used_at !== null }));
      console.log(`codes: ${codes.filter((c) => c.fate === 'accepted').length} accepted before the kill; of ${lost.length} whose answer was lost, ${lost.filter((l) => l.committed).length} had been redeemed`);
      for (const c of codes.filter((x) => x.fate === 'accepted')) {
        const again = await redeem(c);
        expect(again.status).toBe(400);
        expect(again.body.error).toBe('invalid_grant');
      }
      for (const { c, committed } of lost) {
        const first = await redeem(c);
        const second = await redeem(c);
        expect(second.body.error).toBe('invalid_grant');
        if (committed) expect(first.body.error, 'a code redeemed before the kill is not accepted again').toBe('invalid_grant');
        else expect([200, 400]).toContain(first.status); // never redeemed: accepted now (once), or expired
      }
    } finally {
      db.close();
    }
  });
});
