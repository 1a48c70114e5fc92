// ICS feeds: calendars published at a URL (the private addresses Google
// Calendar, Outlook and iCloud give out). A feed is fetched under a timeout,
// revalidated with ETag / Last-Modified (RFC 9110 §13.1) rather than
// downloaded again, and its last good copy is kept in a cache (the store, in
// the CLI's wiring): when a fetch fails or brings something that is not a
// calendar, that copy is used and the failure is recorded, so `calendar list`
// can say when it happened and the answer can say which copy it used. A copy
// younger than `refreshAfterMs` is used without asking the server at all.
// Messages name the calendar, never its URL (a private feed's URL is a secret).
// A feed is parsed cooperatively (the process's other requests run between the
// steps), and one with more than MAX_CALENDAR_COMPONENTS components is refused.
// A refused answer (not a calendar, too many components, too large) with no
// good copy to stand in is remembered as a parsed copy is, without its body:
// for `refreshAfterMs` reads get that refusal with no request and no parse,
// then the server is asked with the refused answer's validators, and a 304
// refuses it again without a download or a parse (found in review: such a
// feed was fetched and parsed again at every read, 1.5 s of CPU for 20 MB).
// Redirects are followed by hand, at most MAX_FEED_REDIRECTS, each address
// checked before anything is sent to it (feed-redirects.ts).
import { CalendarSourceError } from './errors.js';
import { refusedFeedTarget, resolveBySystem, type ResolveHost } from './feed-redirects.js';
import { parseCalendarCooperatively, type ParsedCalendar } from './ics.js';

/** What the cache keeps of a feed. Times are epoch ms. */
export interface FeedCacheRecord {
  calendarId: string;
  /** The URL the copy came from; a calendar pointed elsewhere starts afresh. */
  url: string;
  /** The last good copy (it parsed), or null when none was ever fetched. */
  body: string | null;
  etag: string | null;
  lastModified: string | null;
  /** When the server last gave or confirmed (304) the copy. */
  fetchedAt: number | null;
  /** When the copy last changed. */
  changedAt: number | null;
  /** The last attempt, whatever came of it. */
  checkedAt: number | null;
  /** Why the last attempt failed; null when it succeeded. */
  error: string | null;
  errorAt: number | null;
}

export interface FeedCache {
  feedCache(calendarId: string): Promise<FeedCacheRecord | undefined>;
  saveFeedCache(record: FeedCacheRecord): Promise<void>;
}

/** A feed as the user configured it. */
export interface FeedRef {
  name: string;
  /** The calendar's stable id: the cache's key. */
  id: string;
  url: string;
}

/** A feed whose last fetch failed, so an older copy stands in. */
export interface StaleFeed {
  calendar: string;
  /** When the copy in use was fetched. */
  fetchedAt: number;
  reason: string;
  /** The feed's text at fault (CalendarSourceError#quoted), known to the process that fetched it: for the owner's log only. */
  quoted?: string;
}

export interface FeedLoader {
  /** The feed's calendar: fresh, revalidated, or the last good copy; throws CalendarSourceError when there is none. */
  load(ref: FeedRef): Promise<ParsedCalendar>;
  /** Whether the copy the last load returned is an old one standing in for a failed fetch. */
  staleness(ref: FeedRef): StaleFeed | undefined;
}

export interface FeedLoaderOptions {
  cache: FeedCache;
  fetchFn?: typeof fetch;
  now?: () => number;
  /** How long one fetch may take, headers and body; default 10 s. */
  timeoutMs?: number;
  /** A copy checked more recently than this is used without a request; default 5 minutes. */
  refreshAfterMs?: number;
  /**
   * How long a search waits for a fetch when a copy is cached (the copy
   * answers after that, while the fetch goes on); default 3 s, so a slow feed
   * fits in CalendarAgent's wait for the calendar backend.
   */
  waitMs?: number;
  /** The largest feed accepted, in bytes; default 20 MB. */
  maxBytes?: number;
  /** Resolves the host names redirects lead to (feed-redirects.ts); default the system's resolver, as the fetch's own. */
  resolve?: ResolveHost;
}

export const DEFAULT_FEED_TIMEOUT_MS = 10_000;
export const DEFAULT_FEED_REFRESH_MS = 5 * 60_000;
export const DEFAULT_FEED_WAIT_MS = 3_000;
export const DEFAULT_FEED_MAX_BYTES = 20 * 1024 * 1024;
/** Redirects followed at most for one fetch (found in review, s23feeds: fetch followed 20, wherever they led). */
export const MAX_FEED_REDIRECTS = 5;
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/** webcal:// (as Apple and Google write subscription links) is https://; anything but http(s) is refused. */
export function normalizeFeedUrl(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text.trim().replace(/^webcals?:\/\//i, 'https://'));
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username || url.password) return undefined;
  url.hash = '';
  return url.href;
}

/** A feed URL for people to recognise without giving the secret away: scheme, host and "…". */
export function redactFeedUrl(text: string): string {
  try {
    const url = new URL(text);
    return url.pathname === '/' && url.search === '' ? url.origin : `${url.origin}/…`;
  } catch {
    return '…';
  }
}

/** A refused answer, remembered in place of a copy when there is none: the error, and what to ask the server whether it changed with. */
interface Refusal {
  error: CalendarSourceError;
  etag: string | null;
  lastModified: string | null;
}

/** What this process made of a feed: a good copy's calendar, or (with no good copy) the refusal of its answer. */
type Parsed = {
  /** When this process last checked the feed (or read a copy the cache says is fresh). */
  checkedAt: number;
} & ({ version: string; calendar: ParsedCalendar; stale: StaleFeed | undefined } | { refusal: Refusal });

export function createFeedLoader(options: FeedLoaderOptions): FeedLoader {
  const fetchFn = options.fetchFn ?? fetch;
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? DEFAULT_FEED_TIMEOUT_MS;
  const refreshAfterMs = options.refreshAfterMs ?? DEFAULT_FEED_REFRESH_MS;
  const maxBytes = options.maxBytes ?? DEFAULT_FEED_MAX_BYTES;
  const waitMs = options.waitMs ?? DEFAULT_FEED_WAIT_MS;
  const resolve = options.resolve ?? resolveBySystem;
  const parsed = new Map<string, Parsed>();
  const inFlight = new Map<string, Promise<ParsedCalendar>>();

  const keyOf = (ref: FeedRef) => `${ref.id}\0${ref.url}\0${ref.name}`;

  /** The calendar of a good copy, parsed once per version. */
  async function fromCopy(ref: FeedRef, record: FeedCacheRecord, checkedAt: number, stale: StaleFeed | undefined): Promise<ParsedCalendar> {
    const version = `${record.changedAt}:${record.body!.length}:${record.etag ?? ''}`;
    const known = parsed.get(keyOf(ref));
    const calendar = known && 'calendar' in known && known.version === version ? known.calendar : await parseCalendarCooperatively(record.body!, ref.name);
    // While the copy was parsed, a fetch that went on (a slow feed's) may have settled a newer one: that one stays.
    if (parsed.get(keyOf(ref)) === known) parsed.set(keyOf(ref), { version, calendar, checkedAt, stale });
    return calendar;
  }

  async function refresh(ref: FeedRef): Promise<ParsedCalendar> {
    const stored = await options.cache.feedCache(ref.id);
    const record: FeedCacheRecord = stored && stored.url === ref.url ? stored : emptyRecord(ref);
    const at = now();
    if (record.body !== null && record.checkedAt !== null && at - record.checkedAt < refreshAfterMs) {
      // Another process checked it a moment ago: its verdict stands.
      return fromCopy(ref, record, record.checkedAt, staleOf(ref, record));
    }

    const known = parsed.get(keyOf(ref));
    const fetching = fetchAndSettle(ref, record, record.body === null && known && 'refusal' in known ? known.refusal : undefined);
    if (record.body === null || waitMs >= timeoutMs) return fetching;
    // With a copy in hand, a slow feed does not hold the search up: the copy
    // answers after waitMs, and the fetch goes on to refresh the cache for
    // the next search.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const slow = new Promise<'slow'>((resolve) => {
      timer = setTimeout(() => resolve('slow'), waitMs);
    });
    const first = await Promise.race([fetching, slow]).finally(() => clearTimeout(timer));
    if (first !== 'slow') return first;
    fetching.catch(() => undefined);
    const reason = `The feed did not answer within ${seconds(waitMs)}; a fresh copy is being fetched for the next search.`;
    return fromCopy(ref, record, at, { calendar: ref.name, fetchedAt: record.fetchedAt ?? at, reason });
  }

  /**
   * One fetch, and what it leaves in the cache: a new copy, a confirmed one, or the failure beside the old copy;
   * with no copy, a refused answer is remembered (`refused`: the one remembered before, asked about with its validators).
   */
  async function fetchAndSettle(ref: FeedRef, record: FeedCacheRecord, refused: Refusal | undefined): Promise<ParsedCalendar> {
    const outcome = await fetchFeed(ref, record.body !== null ? record : refused, { fetchFn, timeoutMs, maxBytes, resolve });
    const at = now();
    if (outcome.kind === 'not-modified' && record.body !== null) {
      const next = { ...record, fetchedAt: at, checkedAt: at, error: null, errorAt: null, etag: outcome.etag ?? record.etag, lastModified: outcome.lastModified ?? record.lastModified };
      await options.cache.saveFeedCache(next);
      return fromCopy(ref, next, at, undefined);
    }
    let failure: CalendarSourceError;
    /** Set when the answer itself was refused: unlike a failed fetch, it will be refused again until it changes. */
    let refusal: Refusal | undefined;
    if (outcome.kind === 'body') {
      try {
        const calendar = await parseCalendarCooperatively(outcome.text, ref.name);
        const next: FeedCacheRecord = {
          ...record,
          body: outcome.text,
          etag: outcome.etag,
          lastModified: outcome.lastModified,
          fetchedAt: at,
          changedAt: record.body === outcome.text ? record.changedAt : at,
          checkedAt: at,
          error: null,
          errorAt: null,
        };
        await options.cache.saveFeedCache(next);
        const version = `${next.changedAt}:${next.body!.length}:${next.etag ?? ''}`;
        parsed.set(keyOf(ref), { version, calendar, checkedAt: at, stale: undefined });
        return calendar;
      } catch (err) {
        if (!(err instanceof CalendarSourceError)) throw err;
        failure = err;
        refusal = { error: err, etag: outcome.etag, lastModified: outcome.lastModified };
      }
    } else if (outcome.kind === 'not-modified' && refused) {
      // The refused answer has not changed (RFC 9110 §15.4.5): refused again, neither downloaded nor parsed.
      failure = refused.error;
      refusal = { error: refused.error, etag: outcome.etag ?? refused.etag, lastModified: outcome.lastModified ?? refused.lastModified };
    } else if (outcome.kind === 'too-large') {
      failure = new CalendarSourceError('ERR_CALENDAR_UNREADABLE', ref.name, `The feed is larger than ${Math.round(maxBytes / 1024 / 1024)} MB.`);
      refusal = { error: failure, etag: outcome.etag, lastModified: outcome.lastModified };
    } else {
      failure = new CalendarSourceError('ERR_CALENDAR_UNREADABLE', ref.name, outcome.kind === 'failed' ? outcome.reason : 'The feed answered 304 Not Modified, but no copy of it is cached.');
    }
    const next = { ...record, checkedAt: at, error: failure.line === undefined ? failure.reason : `line ${failure.line}: ${failure.reason}`, errorAt: at };
    await options.cache.saveFeedCache(next);
    if (record.body !== null) {
      const stale = staleOf(ref, next);
      return fromCopy(ref, next, at, stale && failure.quoted !== undefined ? { ...stale, quoted: failure.quoted } : stale);
    }
    // No copy stands in. A failed fetch (no answer, an HTTP error) may pass and is tried again at the next read; a
    // refused answer is remembered like a copy, so that reads until refreshAfterMs neither fetch nor parse it again.
    if (refusal) parsed.set(keyOf(ref), { checkedAt: at, refusal });
    throw failure;
  }

  return {
    load(ref) {
      const key = keyOf(ref);
      const known = parsed.get(key);
      if (known && now() - known.checkedAt < refreshAfterMs) return 'refusal' in known ? Promise.reject(known.refusal.error) : Promise.resolve(known.calendar);
      let pending = inFlight.get(key);
      if (!pending) {
        pending = refresh(ref).finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
      }
      return pending;
    },
    staleness(ref) {
      const known = parsed.get(keyOf(ref));
      return known && 'stale' in known ? known.stale : undefined;
    },
  };
}

function emptyRecord(ref: FeedRef): FeedCacheRecord {
  return { calendarId: ref.id, url: ref.url, body: null, etag: null, lastModified: null, fetchedAt: null, changedAt: null, checkedAt: null, error: null, errorAt: null };
}

function staleOf(ref: FeedRef, record: FeedCacheRecord): StaleFeed | undefined {
  if (record.error === null || record.fetchedAt === null) return undefined;
  return { calendar: ref.name, fetchedAt: record.fetchedAt, reason: record.error };
}

type FetchOutcome =
  | { kind: 'body'; text: string; etag: string | null; lastModified: string | null }
  | { kind: 'not-modified'; etag: string | null; lastModified: string | null }
  | { kind: 'too-large'; etag: string | null; lastModified: string | null }
  | { kind: 'failed'; reason: string };

/**
 * One GET under the timeout, conditional on the validators of the answer held (a good copy, or a refused one), the
 * body read up to maxBytes; redirects followed one at a time, each address checked first (feed-redirects.ts).
 */
async function fetchFeed(
  ref: FeedRef,
  held: { etag: string | null; lastModified: string | null } | undefined,
  opts: { fetchFn: typeof fetch; timeoutMs: number; maxBytes: number; resolve: ResolveHost },
): Promise<FetchOutcome> {
  const headers: Record<string, string> = { Accept: 'text/calendar, text/plain;q=0.9, */*;q=0.5' };
  if (held?.etag) headers['If-None-Match'] = held.etag;
  if (held?.lastModified) headers['If-Modified-Since'] = held.lastModified;
  const signal = AbortSignal.timeout(opts.timeoutMs);
  try {
    let url = ref.url;
    for (let redirects = 0; ; redirects++) {
      const refused = await refusedFeedTarget(ref.url, url, redirects > 0, opts.resolve, signal);
      if (refused) return { kind: 'failed', reason: refused };
      const res = await opts.fetchFn(url, { headers, signal, redirect: 'manual' });
      if (REDIRECT_STATUSES.has(res.status)) {
        await res.body?.cancel();
        const location = res.headers.get('location');
        // Resolved against the URL that answered (RFC 9110 §10.2.2), then held to the rules of a feed's own URL.
        if (location === null) return { kind: 'failed', reason: `The feed could not be fetched: the server answered HTTP ${res.status} without a Location.` };
        const next = URL.canParse(location, url) ? normalizeFeedUrl(new URL(location, url).href) : undefined;
        if (next === undefined) return { kind: 'failed', reason: 'The feed redirected to an address that is not http or https, or that holds a user name or password; the redirect was not followed.' };
        // Found in review (s23feeds): an https feed could be sent to plain http, where the calendar, and the next
        // address (a secret too, as often as not), could be read or changed on the way. Browsers warn; a feed is refused.
        if (new URL(url).protocol === 'https:' && new URL(next).protocol === 'http:') {
          return { kind: 'failed', reason: 'The feed redirected from https to plain http, where the calendar could be read or changed on the way; the redirect was not followed.' };
        }
        if (redirects === MAX_FEED_REDIRECTS) return { kind: 'failed', reason: `The feed redirected more than ${MAX_FEED_REDIRECTS} times; the last redirect was not followed.` };
        url = next;
        continue;
      }
      const etag = res.headers.get('etag');
      const lastModified = res.headers.get('last-modified');
      if (res.status === 304) {
        await res.body?.cancel();
        return { kind: 'not-modified', etag, lastModified };
      }
      if (!res.ok) {
        await res.body?.cancel();
        return { kind: 'failed', reason: `The feed could not be fetched: the server answered HTTP ${res.status}.` };
      }
      const text = await readLimited(res, opts.maxBytes);
      if (text === undefined) return { kind: 'too-large', etag, lastModified };
      return { kind: 'body', text, etag, lastModified };
    }
  } catch (err) {
    if (signal.aborted) return { kind: 'failed', reason: `The feed did not answer within ${seconds(opts.timeoutMs)}.` };
    return { kind: 'failed', reason: `The feed could not be reached${networkCode(err)}.` };
  }
}

async function readLimited(res: Response, maxBytes: number): Promise<string | undefined> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  return new TextDecoder('utf-8').decode(Buffer.concat(chunks));
}

function networkCode(error: unknown): string {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z_]+$/.test(code)) return ` (${code})`;
  }
  return '';
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
