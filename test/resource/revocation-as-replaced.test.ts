// The authorization server restarted at the same address on another data
// directory (an operator who forgot DELEGATE_HOME): its revocation list starts
// over, empty, under a new signing key. Found in review (split): the resource
// servers cleared what the old list had revoked on their next full fetch, and
// their copy of the JWKS still held the old key, so every revoked token was
// accepted again for up to 5 minutes. What was revoked stays refused until it
// expires, and the news of a new list makes them fetch the keys again.
// Real ASs on one loopback port, a real CalendarAgent, real SQLite.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeJwt } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { createRevocationList } from '../../src/resource/revocations.js';
import { listenAgentFor, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { obtainTokens } from '../authz/helpers.js';
import { initializeBody, mcpHeaders, rawRequest } from '../agent/http.js';
import { expectInvalidToken, refusedSoon } from '../security/stack.js';
import { eventually } from '../support/eventually.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function stop(authz: TestAuthz): Promise<void> {
  await authz.app.close();
  authz.store.close();
}

/** CalendarAgent on its port, following `first`'s revocation list (its poll failures collected), and a request to it with a token. */
async function agentFollowing(first: TestAuthz) {
  const failures: string[] = [];
  const revocations = createRevocationList({ issuer: first.issuer, minRetryMs: 20, maxRetryMs: 100, logger: { warn: (_o, msg) => failures.push(msg) } });
  const agent = await listenAgentFor(first, undefined, revocations);
  cleanups.push(() => agent.close());
  const atAgent = (token: string) => rawRequest({ port: Number(new URL(first.agentUrl).port), method: 'POST', path: '/mcp', headers: mcpHeaders(token), body: initializeBody });
  return { failures, revocations, atAgent };
}

describe('an authorization server replaced by one on another data directory, at the same address', () => {
  it('leaves what the first revoked refused at CalendarAgent, and the first one’s tokens signed with an unknown key', { timeout: 30_000 }, async () => {
    const first = await startTestAuthz();
    cleanups.push(() => rmSync(first.home, { recursive: true, force: true }));
    const { failures, revocations, atAgent } = await agentFollowing(first);

    const revoked = await obtainTokens(first);
    const unseen = await obtainTokens(first);
    // CalendarAgent checks one (and keeps the first AS's JWKS, for 5 minutes); then its grant is revoked.
    expect((await atAgent(revoked.accessToken)).status).toBe(200);
    await first.store.revokeGrant(String(decodeJwt(revoked.accessToken).grant_id), Date.now(), 'test');
    expectInvalidToken(await refusedSoon(() => atAgent(revoked.accessToken)), 'revoked, before the AS is replaced');

    await stop(first);
    await eventually(() => failures.length > 0, 'a poll fails while no AS answers');
    const second = await startTestAuthz({ port: Number(new URL(first.issuer).port) });
    cleanups.push(() => rmSync(second.home, { recursive: true, force: true }));
    cleanups.push(() => stop(second));
    expect(second.issuer).toBe(first.issuer);
    // The new AS's first answer shows its list started over; the whole list is fetched after it.
    await revocations.synced();

    const res = await atAgent(revoked.accessToken);
    expectInvalidToken(res, 'revoked, after the AS was replaced');
    expect(String(res.headers['www-authenticate'])).toContain('has been revoked');
    // The first AS's key is not the second's: CalendarAgent fetched the keys again on the news, so a token of the
    // first AS that it never checked names a key the issuer no longer publishes.
    const unknown = await atAgent(unseen.accessToken);
    expectInvalidToken(unknown, 'a token of the first AS never checked before');
    expect(String(unknown.headers['www-authenticate'])).toContain('unknown key');
  });
});

describe('an authorization server replaced by one whose revocation list is as long as the old one’s', () => {
  // Found in review (regress18): the resource servers' cursor was then not past the new list's head, so the new AS
  // answered with its whole list (the revocation at the cursor being another), which was not taken for a list that
  // started over, and CalendarAgent kept the first AS's keys for up to 5 minutes: the first AS's tokens, which the
  // second knows nothing of and cannot revoke, were accepted meanwhile.
  it('makes CalendarAgent fetch the keys again: a token of the first AS never checked names an unknown key', { timeout: 30_000 }, async () => {
    const first = await startTestAuthz();
    cleanups.push(() => rmSync(first.home, { recursive: true, force: true }));
    const { failures, revocations, atAgent } = await agentFollowing(first);

    const checked = await obtainTokens(first);
    const unseen = await obtainTokens(first);
    expect((await atAgent(checked.accessToken)).status).toBe(200); // CalendarAgent now holds the first AS's keys
    await first.store.revokeGrant(String(decodeJwt(checked.accessToken).grant_id), Date.now(), 'test');
    expectInvalidToken(await refusedSoon(() => atAgent(checked.accessToken)), 'revoked at the first AS');
    const head = await first.store.revocationHead();

    await stop(first);
    await eventually(() => failures.length > 0, 'a poll fails while no AS answers');
    // The second AS's list is longer than the first's before it answers anything: the cursor held is not past its head.
    const second = await startTestAuthz({
      port: Number(new URL(first.issuer).port),
      beforeListen: (home) => {
        const db = new Database(join(home, 'delegate.db'), { timeout: 5_000 });
        const insert = db.prepare("INSERT INTO revocations (kind, id, revoked_at, keep_until) VALUES ('grant', ?, ?, ?)");
        const now = Date.now();
        for (let i = 0; i < head + 3; i++) insert.run(`grt_other_${i}`, now, now + 3_600_000);
        db.close();
      },
    });
    cleanups.push(() => rmSync(second.home, { recursive: true, force: true }));
    cleanups.push(() => stop(second));
    expect(await second.store.revocationHead()).toBeGreaterThan(head);
    await revocations.synced();

    expectInvalidToken(await atAgent(checked.accessToken), 'revoked at the first AS, after it was replaced');
    const unknown = await atAgent(unseen.accessToken);
    expectInvalidToken(unknown, 'a token of the first AS never checked before');
    expect(String(unknown.headers['www-authenticate'])).toContain('unknown key');
  });
});
