// The revocation list a resource server keeps so that a revoked grant or token
// is refused within moments, with no call to the authorization server on the
// request path (docs/internals.md, "Revocation list for resource servers").
// It long-polls `GET <issuer>/revocations?since=&tag=&wait=`, keeps the revoked
// grant ids and token ids in memory, and fails closed: a list that has not
// been refreshed for `stale_after` seconds refuses every token until it has.
import type { FastifyInstance } from 'fastify';
import type { AccessTokenClaims } from '../delegation/index.js';
import type { BearerVerifier } from './bearer.js';
import { heldTimeout, timedOut } from '../http/held-timeout.js';

/** What `reject` says about a token: nothing (accept it), a reason to refuse it, or that no verdict can be given now. */
export type RevocationVerdict = undefined | { revoked: string } | { unavailable: string; retryAfterSec: number };

export interface RevocationList {
  /** The verdict on a verified token. Answers from memory; before the first sync it waits for it (bounded). */
  check(claims: Pick<AccessTokenClaims, 'grant_id' | 'jti'>, kid?: string): Promise<RevocationVerdict>;
  /**
   * Starts polling if it is not running, and returns the function that gives
   * this holder's share back: polling stops when the last holder has released.
   * Several servers of one process may share one list.
   */
  acquire(): () => Promise<void>;
  /** Resolves after the next successful sync. */
  synced(): Promise<void>;
  /** For status pages and tests: what the list knows now. */
  status(): RevocationListStatus;
  /**
   * Calls `listener` whenever a sync brings a signing key id not listed before (withdrawn as leaked), or shows
   * that the server's list started over (another database behind the issuer): the issuer's keys changed, or may
   * have, and a copy of its JWKS is out of date. Returns the function that stops it.
   */
  onKeysChanged(listener: () => void): () => void;
}

export interface RevocationListStatus {
  running: boolean;
  endpoint: string | undefined;
  cursor: number;
  /** Monotonic time (ms, the `elapsed` clock) of the last successful sync; undefined before the first. */
  lastSyncAt: number | undefined;
  staleAfterSec: number;
  stale: boolean;
  grants: number;
  tokens: number;
  keys: number;
}

/** Minimal logger surface (pino and fastify's logger both fit). */
export interface RevocationLogger {
  warn(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
}

export interface RevocationListOptions {
  /** The authorization server (exact issuer identifier). */
  issuer: string;
  fetchFn?: typeof fetch;
  /** Milliseconds since the epoch: when an entry's tokens have all expired. */
  now?: () => number;
  /**
   * A monotonic clock in milliseconds (performance.now by default): how long
   * ago the list was refreshed. Kept apart from `now` because freshness is
   * elapsed real time, whatever wall-clock time tests or servers pretend.
   */
  elapsed?: () => number;
  logger?: RevocationLogger;
  /** Longest hold asked of the server per poll, seconds (the server allows at most 25). */
  maxWaitSec?: number;
  /** How long a check made before the first sync waits for it, ms. */
  firstSyncTimeoutMs?: number;
  /** How often the whole list is fetched again (since=0), which drops entries the server no longer lists. */
  resyncIntervalMs?: number;
  /** Pause after a failed poll, growing to `maxRetryMs`. */
  minRetryMs?: number;
  maxRetryMs?: number;
  /** Seconds of clock difference allowed when an entry's expiry is judged. */
  clockToleranceSec?: number;
  /** Most entries of each kind kept after the server stopped listing them (default 10,000). */
  maxUnlistedEntries?: number;
  /** Most pages one sync follows before it pauses as after a failed poll (default DEFAULT_MAX_PAGES_PER_SYNC). */
  maxPagesPerSync?: number;
}

/** Until the server has said otherwise (docs/internals.md). */
export const DEFAULT_STALE_AFTER_SEC = 30;
/** The server holds a poll at most this long. */
export const MAX_WAIT_SEC = 25;
const DEFAULT_MAX_WAIT_SEC = 20;
const DEFAULT_FIRST_SYNC_TIMEOUT_MS = 5_000;
/**
 * The whole list is fetched again this often: a backstop for whatever a cursor cannot tell (a database restored
 * from a backup, by a server that sends no tag). Found in review: at 10 minutes, the access tokens' lifetime, it
 * bounded nothing; at 2 minutes a missed revocation is picked up well before the tokens it names expire.
 */
export const DEFAULT_RESYNC_INTERVAL_MS = 2 * 60_000;
/**
 * How long past a full fetch an entry the server no longer lists is kept at most, whatever expiry it was given:
 * the AS lists a grant or token until its last token has expired (10 minutes at most, and a margin), a withdrawn
 * key a day. Found in review: kept until any expiry an AS named, entries of a broken or hostile AS (a clock far
 * ahead) piled up for as long as the resource server ran.
 */
const UNLISTED_ENTRY_HORIZON_MS = 3_600_000;
const UNLISTED_KEY_HORIZON_MS = 25 * 3_600_000;
const DEFAULT_MAX_UNLISTED_ENTRIES = 10_000;
/**
 * Most pages (answers with `more`) one sync follows; the AS lists at most 1,000 entries a page, so this is 100,000
 * entries. Past it the sync pauses as after a failed poll, says so once, and goes on later from where it was; the
 * list is not up to date meanwhile, so once it is `stale_after` old every token is refused (fail closed).
 */
export const DEFAULT_MAX_PAGES_PER_SYNC = 100;
/** A server that answers nothing this long after its promised hold is taken as gone. */
const POLL_GRACE_MS = 5_000;
/** Bounds on the staleness a server may ask for: below, polls would race it; above, revocation would wait too long. */
const MIN_STALE_AFTER_SEC = 2;
const MAX_STALE_AFTER_SEC = 300;

interface Entry {
  /** Milliseconds since the epoch after which no token it affects is valid; undefined when the server did not say. */
  until: number | undefined;
}

/** One answer of the endpoint, checked. */
interface Page {
  cursor: number;
  /** Names the revocation at `cursor`, sent back with it (absent from an older server's answer, or with none there). */
  tag: string | undefined;
  grants: string[];
  tokens: string[];
  /** Signing key ids withdrawn as leaked: an optional member, absent from an older server's answer. */
  keys: string[];
  staleAfterSec: number;
  /** Optional extension: id → NumericDate after which the entry can go (see parsePage). */
  expiresAt: Map<string, number>;
  /** The answer starts the whole list (it and the pages after it), whatever `since` was asked. */
  full: boolean;
  /** Others follow from `cursor` (absent from an older server's answer: it sends the whole list at once). */
  more: boolean;
}

/** A whole list being fetched over several pages: the ids its pages listed so far, and the cursor held before it. */
interface WholeList {
  grants: Set<string>;
  tokens: Set<string>;
  keys: Set<string>;
  cursorBefore: number;
}

export function createRevocationList(options: RevocationListOptions): RevocationList {
  const issuer = options.issuer.replace(/\/+$/, '');
  const fetchFn = options.fetchFn ?? fetch;
  const now = options.now ?? Date.now;
  const elapsed = options.elapsed ?? (() => performance.now());
  const maxWaitSec = Math.min(options.maxWaitSec ?? DEFAULT_MAX_WAIT_SEC, MAX_WAIT_SEC);
  const firstSyncTimeoutMs = options.firstSyncTimeoutMs ?? DEFAULT_FIRST_SYNC_TIMEOUT_MS;
  const resyncIntervalMs = options.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS;
  const minRetryMs = options.minRetryMs ?? 250;
  const maxRetryMs = options.maxRetryMs ?? 5_000;
  const toleranceMs = (options.clockToleranceSec ?? 5) * 1000;
  const maxUnlisted = options.maxUnlistedEntries ?? DEFAULT_MAX_UNLISTED_ENTRIES;
  const maxPages = Math.max(1, options.maxPagesPerSync ?? DEFAULT_MAX_PAGES_PER_SYNC);

  const grants = new Map<string, Entry>();
  const tokens = new Map<string, Entry>();
  const keys = new Map<string, Entry>();
  let cursor = 0;
  let cursorTag: string | undefined;
  let lastSyncAt: number | undefined;
  let lastFullSyncAt: number | undefined;
  let staleAfterSec = DEFAULT_STALE_AFTER_SEC;
  let endpoint: string | undefined;
  let holders = 0;
  let loop: Promise<void> | undefined;
  let stopping: AbortController | undefined;
  let waiters: Array<() => void> = [];
  const keyListeners = new Set<() => void>();
  /** The server's list started over: the whole list is fetched next, at once. */
  let startedOver = false;
  /** The last answer said more follows from `cursor`: the next request continues from it, at once. */
  let behind = false;
  /**
   * A whole list under way, across pages: entries it does not list are dropped (keepUnlisted) only once its last
   * page is in, since the entries still to come are on the pages after. Kept across a failed poll or a paused sync.
   */
  let wholeList: WholeList | undefined;
  // One promise that every check made before the first sync shares, so waiting requests hold no state of their own.
  let markFirstSync!: () => void;
  const firstSync = new Promise<void>((resolve) => (markFirstSync = resolve));

  const isStale = (): boolean => lastSyncAt === undefined || elapsed() - lastSyncAt > staleAfterSec * 1000;
  const nextSync = (): Promise<void> => new Promise((resolve) => waiters.push(resolve));

  const discover = async (signal: AbortSignal): Promise<string> => {
    const res = await fetchFn(`${issuer}/.well-known/oauth-authorization-server`, { headers: { Accept: 'application/json' }, signal });
    if (!res.ok) throw new Error(`authorization server metadata: HTTP ${res.status}`);
    const metadata = (await res.json().catch(() => undefined)) as { issuer?: unknown; revocation_list_endpoint?: unknown } | undefined;
    // RFC 8414 §3.3: metadata that names another issuer is not this issuer's.
    if (metadata?.issuer !== issuer) throw new Error('authorization server metadata names another issuer');
    const named = metadata.revocation_list_endpoint;
    if (named === undefined) return `${issuer}/revocations`;
    const url = typeof named === 'string' ? httpUrl(named) : undefined;
    if (!url) throw new Error('authorization server metadata names an unusable revocation_list_endpoint');
    return url;
  };

  /**
   * One sync: a request, then the pages that follow it (`more`), each asked at once; returns whether it brought news
   * (the cursor moved or a whole list was fetched). `atOnce` asks for an answer without holding: after a failed
   * poll, so that a list gone stale while the AS was away is fresh again as soon as it answers. Found in review: a
   * held poll after an AS paused for over 30 s kept every token refused (503) for up to 15 s more, until the hold
   * ran out with nothing new.
   */
  const pollOnce = async (stop: AbortSignal, atOnce: boolean): Promise<boolean> => {
    if (endpoint === undefined) {
      const bound = heldTimeout(POLL_GRACE_MS, timedOut, stop);
      try {
        endpoint = await discover(bound.signal);
      } finally {
        bound.dispose();
      }
    }
    const at = endpoint;
    let news = false;
    for (let pages = 0; ; pages++) {
      if (pages === maxPages) throw new UnfinishedSync(maxPages, staleAfterSec);
      news = (await fetchPage(at, stop, atOnce)) || news;
      if (!behind) return news;
    }
  };

  /** One request to the endpoint `at` and its answer applied; returns whether it brought news. */
  const fetchPage = async (at: string, stop: AbortSignal, atOnce: boolean): Promise<boolean> => {
    // A sync that stopped between pages goes on from where it was, whatever is due.
    const full = !behind && (cursor === 0 || lastFullSyncAt === undefined || elapsed() - lastFullSyncAt >= resyncIntervalMs);
    const since = full ? 0 : cursor;
    // The first fetch is answered at once, and so is the next page; later ones are held, but never so long that
    // the list would go stale meanwhile.
    const waitSec = lastSyncAt === undefined || atOnce || startedOver || behind ? 0 : Math.max(1, Math.min(maxWaitSec, Math.floor(staleAfterSec / 2)));
    startedOver = false;
    const url = new URL(at);
    url.searchParams.set('since', String(since));
    if (!full && cursorTag !== undefined) url.searchParams.set('tag', cursorTag);
    url.searchParams.set('wait', String(waitSec));
    // A server that says nothing well past the hold it promised is taken as gone. (A timer of its own, not
    // AbortSignal.any() with AbortSignal.timeout(): see src/http/held-timeout.ts; disposed with the answer read.)
    const bound = heldTimeout(waitSec * 1000 + POLL_GRACE_MS, timedOut, stop);
    let page: Page;
    try {
      const res = await fetchFn(url, { headers: { Accept: 'application/json' }, redirect: 'error', signal: bound.signal });
      if (!res.ok) throw new Error(`revocation list: HTTP ${res.status}`);
      page = parsePage(await res.json());
    } finally {
      bound.dispose();
    }
    const before = cursor;
    const whole = apply(page, since);
    return whole || cursor !== before;
  };

  /** Applies one answer to the request made with `since`; returns whether it started or finished a whole list. */
  const apply = (page: Page, since: number): boolean => {
    const t = elapsed();
    if (since > 0 && !page.full && page.cursor < since) {
      // The server's list started over: another database answers for the issuer (a new data directory, a backup
      // restored), and the server does not say so itself (`full`). Fetch it whole next. What the old one revoked
      // stays refused (below), and its keys may be gone.
      cursor = 0;
      cursorTag = undefined;
      behind = false;
      wholeList = undefined;
      // Asked at once, not held: a new list with nothing newer than 0 would hold the request for nothing.
      startedOver = true;
      for (const listener of [...keyListeners]) listener();
      return false;
    }
    const starts = since === 0 || page.full;
    // A whole list started again (the server answered one while another was under way) still counts from the
    // cursor held before the first: that is the one a started-over list is behind.
    if (starts) wholeList = { grants: new Set(), tokens: new Set(), keys: new Set(), cursorBefore: wholeList?.cursorBefore ?? cursor };
    // A whole list not asked for (a cursor past the server's head, or the revocation at it another than the one
    // this list holds: a database restored, or another one behind the issuer) may come with other signing keys too:
    // fetched again at once, as for a list that started over (found in review, regress18: a replacement whose list
    // was as long as the old one was answered whole, and the old keys were kept for up to 5 minutes).
    let keysChanged = page.keys.some((id) => !keys.has(id)) || (since > 0 && page.full);
    for (const id of page.grants) hold(grants, id, untilOf(page, id));
    for (const id of page.tokens) hold(tokens, id, untilOf(page, id));
    for (const id of page.keys) hold(keys, id, untilOf(page, id));
    if (wholeList) {
      for (const id of page.grants) wholeList.grants.add(id);
      for (const id of page.tokens) wholeList.tokens.add(id);
      for (const id of page.keys) wholeList.keys.add(id);
    }
    cursor = page.cursor;
    cursorTag = page.tag;
    staleAfterSec = page.staleAfterSec;
    behind = page.more;
    if (behind) {
      // Not up to date until the last page: the list's freshness, the first sync and synced() wait for it.
      if (keysChanged) for (const listener of [...keyListeners]) listener();
      return starts;
    }
    const finished = wholeList;
    if (finished) {
      // The whole list as the server keeps it, all its pages in. An entry whose expiry is known stays until then,
      // listed or not: a revocation is never undone, and a server that no longer lists one (its database replaced or
      // restored) must not bring its tokens back (found in review: an AS restarted on another data directory at the
      // same address made every revoked token good again, for as long as the resource servers kept its old key). An
      // entry without a known expiry goes once the server no longer lists it: it could not be dropped otherwise.
      const wall = now();
      keepUnlisted(grants, finished.grants, wall + UNLISTED_ENTRY_HORIZON_MS);
      keepUnlisted(tokens, finished.tokens, wall + UNLISTED_ENTRY_HORIZON_MS);
      keepUnlisted(keys, finished.keys, wall + UNLISTED_KEY_HORIZON_MS);
      // A whole list whose cursor is behind the one held started over too (found by a periodic full fetch first).
      if (cursor < finished.cursorBefore) keysChanged = true;
      wholeList = undefined;
      lastFullSyncAt = t;
    }
    lastSyncAt = t;
    markFirstSync();
    prune(now());
    const ready = waiters;
    waiters = [];
    for (const resolve of ready) resolve();
    if (keysChanged) for (const listener of [...keyListeners]) listener();
    return finished !== undefined;
  };

  /**
   * What a whole list does to the entries of `map` it no longer names: one without a known expiry goes; the others
   * stay until their expiry, but no later than `horizon`, and at most `maxUnlisted` of them (those that expire last).
   */
  const keepUnlisted = (map: Map<string, Entry>, named: ReadonlySet<string>, horizon: number): void => {
    const kept: Array<[string, number]> = [];
    for (const [id, entry] of map) {
      if (named.has(id)) continue;
      if (entry.until === undefined) {
        map.delete(id);
        continue;
      }
      if (entry.until > horizon) entry.until = horizon;
      kept.push([id, entry.until]);
    }
    if (kept.length <= maxUnlisted) return;
    kept.sort((a, b) => a[1] - b[1]);
    for (const [id] of kept.slice(0, kept.length - maxUnlisted)) map.delete(id);
  };

  /**
   * Holds `id` until the later of what was held and what this answer says: an id listed again (on a later page, or
   * revoked a second time) with an earlier expiry must not end its refusal sooner, since a revocation is never
   * undone; a known expiry counts over none (none: held only while listed). Found in review (s18).
   */
  const hold = (map: Map<string, Entry>, id: string, until: number | undefined): void => {
    const held = map.get(id);
    if (held === undefined) map.set(id, { until });
    else if (until !== undefined && (held.until === undefined || until > held.until)) held.until = until;
  };

  const untilOf = (page: Page, id: string): number | undefined => {
    const exp = page.expiresAt.get(id);
    return exp === undefined ? undefined : exp * 1000;
  };

  /** Entries whose tokens have all expired can affect nothing any more. */
  const prune = (t: number): void => {
    for (const map of [grants, tokens, keys]) {
      for (const [id, entry] of map) if (entry.until !== undefined && entry.until + toleranceMs <= t) map.delete(id);
    }
  };

  const run = async (stop: AbortSignal): Promise<void> => {
    let retryMs = minRetryMs;
    let failing = false;
    while (!stop.aborted) {
      const started = performance.now();
      try {
        const news = await pollOnce(stop, failing || isStale());
        if (failing) options.logger?.info?.({ cursor }, 'revocation list caught up');
        failing = false;
        retryMs = minRetryMs;
        // A server that answers a held poll at once with nothing new would make this loop spin.
        if (!news && performance.now() - started < 100) await sleep(minRetryMs, stop);
      } catch (err) {
        if (stop.aborted) break;
        if (!failing) {
          // Where it was asked, and the system's code under fetch's "fetch failed" (ECONNREFUSED): noticed at stop 30, a
          // split server's line said only "fetch failed", naming neither the server nor why.
          const code = (err as { cause?: { code?: unknown } } | undefined)?.cause?.code;
          options.logger?.warn(
            {
              err: { name: (err as Error)?.name, message: (err as Error)?.message, ...(typeof code === 'string' ? { code } : {}) },
              cursor,
              url: endpoint ?? `${issuer}/.well-known/oauth-authorization-server`,
            },
            err instanceof UnfinishedSync ? err.message : 'revocation list poll failed; retrying',
          );
        }
        failing = true;
        await sleep(retryMs, stop);
        retryMs = Math.min(retryMs * 2, maxRetryMs);
      }
    }
  };

  const check = async (claims: Pick<AccessTokenClaims, 'grant_id' | 'jti'>, kid?: string): Promise<RevocationVerdict> => {
    if (lastSyncAt === undefined && loop) {
      // Just started: the first answer is normally moments away.
      await Promise.race([firstSync, sleep(firstSyncTimeoutMs)]);
    }
    if (grants.has(claims.grant_id)) return { revoked: 'The delegation behind this token has been revoked.' };
    if (tokens.has(claims.jti)) return { revoked: 'This token has been revoked.' };
    if (kid !== undefined && keys.has(kid)) return { revoked: 'The key that signed this token has been withdrawn.' };
    if (isStale()) {
      const retryAfterSec = Math.max(1, Math.ceil(maxRetryMs / 1000));
      return lastSyncAt === undefined
        ? { unavailable: 'The list of revoked delegations could not be fetched from the authorization server yet; try again shortly.', retryAfterSec }
        : { unavailable: `The list of revoked delegations has not been refreshed for over ${staleAfterSec} s; tokens are refused until it is.`, retryAfterSec };
    }
    return undefined;
  };

  const start = (): void => {
    if (loop) return;
    const controller = new AbortController();
    stopping = controller;
    loop = run(controller.signal).finally(() => {
      loop = undefined;
      // Acquired again while the last holder's release was stopping it.
      if (holders > 0) start();
    });
  };

  return {
    check,
    acquire() {
      holders++;
      start();
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        holders--;
        if (holders > 0) return;
        stopping?.abort();
        await loop;
      };
    },
    synced: nextSync,
    onKeysChanged(listener) {
      keyListeners.add(listener);
      return () => keyListeners.delete(listener);
    },
    status() {
      return { running: loop !== undefined, endpoint, cursor, lastSyncAt, staleAfterSec, stale: isStale(), grants: grants.size, tokens: tokens.size, keys: keys.size };
    },
  };
}

/**
 * Ties a list to a server's lifecycle: polling starts when the server is
 * ready (listen, or the first inject) and this server's share is released
 * when it closes. With `verifier`, the server's bearer verifier fetches the
 * issuer's JWKS again whenever the list says its keys changed (a key withdrawn
 * as leaked, another database behind the issuer), until the server closes.
 */
export function attachRevocationList(app: FastifyInstance, list: RevocationList, verifier?: Pick<BearerVerifier, 'reloadKeys'>): void {
  const stopFollowingKeys = verifier && list.onKeysChanged(() => void verifier.reloadKeys());
  let release: (() => Promise<void>) | undefined;
  app.addHook('onReady', async () => {
    release ??= list.acquire();
  });
  app.addHook('onClose', async () => {
    stopFollowingKeys?.();
    await release?.();
    release = undefined;
  });
}

/**
 * The endpoint's answer (docs/internals.md): `{cursor, grants, tokens,
 * stale_after}`, and `keys` from a server that lists withdrawn signing keys, `tag` from one that names its cursor. An optional `expires_at` object, id → NumericDate, tells
 * when an entry can affect no token any more; entries without it are kept
 * until a full fetch no longer lists them. `more: true` from a server that
 * pages its answers (others follow from `cursor`), `full: true` when the answer
 * starts the whole list; an older server sends neither.
 */
function parsePage(body: unknown): Page {
  if (typeof body !== 'object' || body === null) throw new Error('revocation list: not a JSON object');
  const b = body as Record<string, unknown>;
  if (typeof b.cursor !== 'number' || !Number.isSafeInteger(b.cursor) || b.cursor < 0) throw new Error('revocation list: bad cursor');
  const ids = (v: unknown, name: string): string[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new Error(`revocation list: ${name} is not a list of ids`);
    return v as string[];
  };
  const staleAfter = typeof b.stale_after === 'number' && Number.isFinite(b.stale_after) ? b.stale_after : DEFAULT_STALE_AFTER_SEC;
  const expiresAt = new Map<string, number>();
  if (typeof b.expires_at === 'object' && b.expires_at !== null && !Array.isArray(b.expires_at)) {
    for (const [id, exp] of Object.entries(b.expires_at as Record<string, unknown>)) {
      if (typeof exp === 'number' && Number.isFinite(exp)) expiresAt.set(id, exp);
    }
  }
  return {
    cursor: b.cursor,
    tag: typeof b.tag === 'string' && b.tag !== '' ? b.tag : undefined,
    grants: ids(b.grants, 'grants'),
    tokens: ids(b.tokens, 'tokens'),
    keys: ids(b.keys, 'keys'),
    staleAfterSec: Math.min(MAX_STALE_AFTER_SEC, Math.max(MIN_STALE_AFTER_SEC, staleAfter)),
    expiresAt,
    full: b.full === true,
    more: b.more === true,
  };
}

/** A sync that stopped at its bound on pages (DEFAULT_MAX_PAGES_PER_SYNC): it goes on after a pause, as after a failed poll. */
class UnfinishedSync extends Error {
  override name = 'UnfinishedSync';
  constructor(pages: number, staleAfterSec: number) {
    super(
      `revocation list: the authorization server had more after ${pages} pages in one sync; the rest is fetched after a pause, and tokens are refused once the list is ${staleAfterSec} s old`,
    );
  }
}

function httpUrl(value: string): string | undefined {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    timer.unref?.();
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
