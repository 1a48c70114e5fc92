// The revocation list in pages. Found in review: `GET /revocations?since=0` answered every live row at once, and
// with 100,000 of them (a mass revocation, or anyone on loopback asking again and again) eight concurrent fetches
// held the AS's event loop for over 3 s, /token included. Now an answer lists at most REVOCATION_PAGE_SIZE
// entries, says `more`, and the resource servers follow the pages; a whole list sent over several pages drops
// nothing the client holds until its last page is in; a sync that cannot finish stays fail-closed; and the AS
// holds at most MAX_HELD_REQUESTS long polls at once. Real AS, real SQLite, real CalendarAgent, real HTTP.
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeJwt } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAuthServer } from '../../src/authz/index.js';
import { MAX_HELD_REQUESTS, REVOCATION_PAGE_SIZE } from '../../src/authz/revocation-list.js';
import { createRevocationList, MAX_WAIT_SEC } from '../../src/resource/revocations.js';
import { openStore } from '../../src/store/index.js';
import { listenAgentFor, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { obtainTokens } from '../authz/helpers.js';
import { initializeBody, mcpHeaders, rawRequest } from '../agent/http.js';
import { expectInvalidToken } from '../security/stack.js';
import { eventually } from '../support/eventually.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** Revocations of made-up grants written straight into the database, as a mass revocation leaves them. */
const MASS = 5_000;

interface Answer {
  cursor: number;
  tag?: string;
  full?: boolean;
  more?: boolean;
  grants: string[];
  tokens: string[];
  keys: string[];
}

const entries = (a: Answer) => a.grants.length + a.tokens.length + a.keys.length;
const grantOf = (token: string) => String(decodeJwt(token).grant_id);
const claimsOf = (token: string) => ({ grant_id: grantOf(token), jti: String(decodeJwt(token).jti) });

async function authzServer(): Promise<TestAuthz> {
  const authz = await startTestAuthz();
  cleanups.push(() => rmSync(authz.home, { recursive: true, force: true }));
  return authz;
}

/** Inserts `count` revocations of made-up grants into the AS's database from another connection, listed for an hour. */
function revokeMany(authz: TestAuthz, count: number): void {
  const db = new Database(join(authz.home, 'delegate.db'), { timeout: 5_000 });
  const insert = db.prepare("INSERT INTO revocations (kind, id, revoked_at, keep_until) VALUES ('grant', ?, ?, ?)");
  const now = Date.now();
  db.transaction(() => {
    for (let i = 0; i < count; i++) insert.run(`grt_mass_${i}`, now, now + 3_600_000);
  })();
  db.close();
}

/**
 * The real fetch, recording each answer of the revocation list, and holding a request of it while `hold` says so
 * (until the promise it returns settles): the test looks at the client between two pages of one sync.
 */
function watchedFetch(answers: Array<{ url: URL; body: Answer }>, hold: (url: URL) => Promise<void> | undefined = () => undefined): typeof fetch {
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const listed = url.pathname === '/revocations';
    if (listed) await hold(url);
    const res = await fetch(input, init);
    if (listed && res.ok) answers.push({ url, body: (await res.clone().json()) as Answer });
    return res;
  };
}

/** Waits for a condition that the code under test brings about; fails the test if it never does. */
/** Resolves when the code under test reaches a point; `reached` marks it. */
function milestone(): { reached: () => void; passed: Promise<void> } {
  let reached!: () => void;
  const passed = new Promise<void>((resolve) => (reached = resolve));
  return { reached, passed };
}

describe('the revocation list in pages', () => {
  it('answers a long list in pages no larger than the bound, and CalendarAgent follows them to a grant revoked on the last', { timeout: 60_000 }, async () => {
    const authz = await authzServer();
    cleanups.push(() => authz.close());
    const user = await obtainTokens(authz);
    revokeMany(authz, MASS);
    expect(await authz.store.revokeGrant(grantOf(user.accessToken), Date.now(), 'test')).toBe(true);

    // Over the wire: page after page from since=0, each at most the bound, its cursor the next one's `since`.
    const pages: Answer[] = [];
    for (let since = 0, tag: string | undefined; pages.length <= MASS / REVOCATION_PAGE_SIZE + 2; ) {
      const page = (await (await fetch(`${authz.issuer}/revocations?since=${since}${tag ? `&tag=${tag}` : ''}`)).json()) as Answer;
      pages.push(page);
      expect(entries(page), `page ${pages.length}`).toBeLessThanOrEqual(REVOCATION_PAGE_SIZE);
      if (!page.more) break;
      expect(page.cursor).toBeGreaterThan(since);
      since = page.cursor;
      tag = page.tag;
    }
    expect(pages).toHaveLength(Math.ceil((MASS + 1) / REVOCATION_PAGE_SIZE));
    expect(pages[0]!.full).toBe(true);
    expect(pages.slice(1).every((p) => p.full === false)).toBe(true);
    const listed = pages.flatMap((p) => p.grants);
    expect(new Set(listed).size).toBe(MASS + 1);
    expect(pages.at(-1)!.grants).toContain(grantOf(user.accessToken));

    // CalendarAgent, starting with this list, follows the pages before it answers: the grant on the last is refused.
    const answers: Array<{ url: URL; body: Answer }> = [];
    const revocations = createRevocationList({ issuer: authz.issuer, fetchFn: watchedFetch(answers) });
    const agent = await listenAgentFor(authz, undefined, revocations);
    cleanups.push(() => agent.close());
    const res = await rawRequest({ port: Number(new URL(authz.agentUrl).port), method: 'POST', path: '/mcp', headers: mcpHeaders(user.accessToken), body: initializeBody });
    expectInvalidToken(res, 'a token whose grant is on the last page');
    expect(String(res.headers['www-authenticate'])).toContain('has been revoked');
    const firstSync = answers.slice(0, pages.length);
    expect(firstSync.map((a) => entries(a.body))).toEqual(pages.map(entries));
    expect(firstSync.map((a) => a.body.more)).toEqual([...pages.slice(1).map(() => true), false]);
    // Each page after the first was asked from the cursor before it, at once (no hold).
    for (let i = 1; i < firstSync.length; i++) {
      expect(firstSync[i]!.url.searchParams.get('since')).toBe(String(firstSync[i - 1]!.body.cursor));
      expect(firstSync[i]!.url.searchParams.get('wait')).toBe('0');
    }
  });

  it('keeps refusing what it holds while a whole list sent after a restore (tag mismatch) comes in over several pages', { timeout: 60_000 }, async () => {
    const authz = await authzServer();
    let stopped = false;
    cleanups.push(async () => {
      if (stopped) return;
      await authz.app.close();
      authz.store.close();
    });
    const path = join(authz.home, 'delegate.db');
    const kept = await obtainTokens(authz); // revoked before the backup: its row is on the last page of the list
    const lost = await obtainTokens(authz); // revoked after the backup: the restored database never lists it
    const restored = await obtainTokens(authz); // revoked on the restored database, at the number `lost` had
    revokeMany(authz, MASS / 2);
    await authz.store.revokeGrant(grantOf(kept.accessToken), Date.now(), 'test');

    const answers: Array<{ url: URL; body: Answer }> = [];
    let pause: { reached: () => void; passed: Promise<void>; release: Promise<void>; url?: URL } | undefined;
    let pauseNext = false;
    const failures: string[] = [];
    const list = createRevocationList({
      issuer: authz.issuer,
      minRetryMs: 20,
      maxRetryMs: 100,
      // Few entries kept once unlisted: a client that judged the whole list by its first page would drop these.
      maxUnlistedEntries: 100,
      logger: { warn: (_o, msg) => failures.push(msg) },
      fetchFn: watchedFetch(answers, (url) => {
        // The request after the first page of a whole list (`full`, `more`) waits until the test has looked.
        const last = answers.at(-1)?.body;
        if (!pause || pauseNext || !last?.full || !last.more) return undefined;
        pauseNext = true;
        pause.url = url;
        pause.reached();
        return pause.release;
      }),
    });
    cleanups.push(list.acquire());
    // A request still held when the test ends (it failed) is let go first, so that the list can stop.
    let release: (() => void) | undefined;
    cleanups.push(() => release?.());
    await list.synced();

    const copy = new Database(path);
    await copy.backup(join(authz.home, 'backup.db'));
    copy.close();
    await authz.store.revokeGrant(grantOf(lost.accessToken), Date.now(), 'test');
    const passed = (await authz.store.revocationsSince(0, Date.now())).cursor;
    while (list.status().cursor !== passed) await list.synced();
    for (const user of [kept, lost]) expect(await list.check(claimsOf(user.accessToken))).toEqual({ revoked: expect.stringContaining('revoked') });

    // The AS stops; after a failed poll the database is restored and a grant revoked there at the number passed.
    stopped = true;
    await authz.app.close();
    authz.store.close();
    await eventually(() => failures.length > 0, 'a poll fails while the AS is down');
    for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
    copyFileSync(join(authz.home, 'backup.db'), path);
    const store = openStore(path);
    cleanups.push(() => store.close());
    expect(await store.revokeGrant(grantOf(restored.accessToken), Date.now(), 'test')).toBe(true);
    expect((await store.revocationsSince(0, Date.now())).cursor).toBe(passed);

    const { reached, passed: pausedAt } = milestone();
    pause = { reached, passed: pausedAt, release: new Promise<void>((resolve) => (release = resolve)) };
    const caughtUp = list.synced();
    const app = await buildAuthServer({ issuer: authz.issuer, store, ownerKeyPath: join(authz.home, 'owner-key.json') });
    cleanups.push(() => app.close());
    await app.listen({ port: Number(new URL(authz.issuer).port), host: '127.0.0.1' });

    // The first answer of the restored AS is the whole list's first page, its cursor far behind the one sent.
    const first = await Promise.race([pausedAt.then(() => 'paged'), caughtUp.then(() => 'caught up in one answer')]);
    expect(first).toBe('paged');
    const page1 = answers.at(-1)!;
    expect(page1.url.searchParams.get('since')).toBe(String(passed));
    expect(page1.body).toMatchObject({ full: true, more: true });
    expect(entries(page1.body)).toBeLessThanOrEqual(REVOCATION_PAGE_SIZE);
    expect(page1.body.cursor).toBeLessThan(passed);
    // The client goes on after the first page (not from 0 again, as for a list that started over) ...
    expect(pause.url!.searchParams.get('since')).toBe(String(page1.body.cursor));
    // ... and meanwhile still refuses what it held: the grant on a later page and the one the restored list lacks.
    for (const user of [kept, lost]) expect(await list.check(claimsOf(user.accessToken))).toEqual({ revoked: expect.stringContaining('revoked') });

    release!();
    await caughtUp;
    for (const user of [kept, lost, restored]) expect(await list.check(claimsOf(user.accessToken))).toEqual({ revoked: expect.stringContaining('revoked') });
    const sync = answers.slice(answers.indexOf(page1));
    expect(sync.map((a) => a.body.more)).toEqual([...sync.slice(1).map(() => true), false]);
    expect(sync.every((a) => entries(a.body) <= REVOCATION_PAGE_SIZE)).toBe(true);
    expect(list.status().cursor).toBe(passed);
  });

  it('stays fail-closed when a sync cannot finish within its pages, says so, and goes on from where it was', { timeout: 60_000 }, async () => {
    const authz = await authzServer();
    cleanups.push(() => authz.close());
    const user = await obtainTokens(authz);
    revokeMany(authz, MASS);
    await authz.store.revokeGrant(grantOf(user.accessToken), Date.now(), 'test');

    const answers: Array<{ url: URL; body: Answer }> = [];
    const warnings: string[] = [];
    const infos: string[] = [];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const { reached, passed: held } = milestone();
    const list = createRevocationList({
      issuer: authz.issuer,
      maxPagesPerSync: 2,
      minRetryMs: 20,
      maxRetryMs: 100,
      firstSyncTimeoutMs: 50,
      logger: { warn: (_o, msg) => warnings.push(msg), info: (_o, msg) => infos.push(msg) },
      // The third request (the first after the pause) waits until the test has looked.
      fetchFn: watchedFetch(answers, () => {
        if (answers.length !== 2) return undefined;
        reached();
        return released;
      }),
    });
    const caughtUp = list.synced();
    cleanups.push(list.acquire());
    // A request still held when the test ends (it failed) is let go first, so that the list can stop.
    cleanups.push(() => release());

    expect(await Promise.race([held.then(() => 'paused'), caughtUp.then(() => 'caught up in one sync')])).toBe('paused');
    expect(answers.map((a) => a.body.more)).toEqual([true, true]);
    expect(warnings).toEqual([expect.stringMatching(/more after 2 pages in one sync.*refused once the list is 30 s old/)]);
    expect(list.status()).toMatchObject({ stale: true, lastSyncAt: undefined });
    expect(await list.check(claimsOf(user.accessToken))).toMatchObject({ unavailable: expect.any(String) });

    release();
    await caughtUp;
    expect(await list.check(claimsOf(user.accessToken))).toEqual({ revoked: 'The delegation behind this token has been revoked.' });
    // Every page once, each from the cursor before it: the pauses lost no page and fetched none twice.
    const pages = answers.slice(0, Math.ceil((MASS + 1) / REVOCATION_PAGE_SIZE));
    expect(pages.at(-1)!.body.more).toBe(false);
    for (let i = 1; i < pages.length; i++) expect(pages[i]!.url.searchParams.get('since')).toBe(String(pages[i - 1]!.body.cursor));
    await eventually(() => infos.includes('revocation list caught up'), 'the list says it caught up');
    expect(warnings).toHaveLength(1);
  });
});

describe('long polls at the AS', () => {
  // The test's time limit is below the AS's longest hold (MAX_WAIT_SEC), so the early answer cannot be a hold that ran out.
  it(`holds at most ${MAX_HELD_REQUESTS} at once and answers the next at once`, { timeout: (MAX_WAIT_SEC - 5) * 1000 }, async () => {
    const authz = await authzServer();
    cleanups.push(() => authz.close());
    const user = await obtainTokens(authz);
    const head = (await (await fetch(`${authz.issuer}/revocations?since=0`)).json()) as Answer;
    const ask = () => fetch(`${authz.issuer}/revocations?since=${head.cursor}&wait=25`).then(async (res) => (await res.json()) as Answer);
    const polls = Array.from({ length: MAX_HELD_REQUESTS + 1 }, () => ask());

    // One is answered at once, with nothing new; the others are held until something is revoked.
    const early = await Promise.race(polls.map((p, i) => p.then(() => i)));
    expect((await polls[early]!).grants).toEqual([]);
    await authz.store.revokeGrant(grantOf(user.accessToken), Date.now(), 'test');
    const held = await Promise.all(polls.filter((_, i) => i !== early));
    expect(held.filter((a) => a.grants.includes(grantOf(user.accessToken)))).toHaveLength(MAX_HELD_REQUESTS);
  });
});
