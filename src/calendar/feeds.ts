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
// A fetch that fails with no copy to stand in is remembered too, for
// FAILED_FEED_RETRY_MS or the Retry-After its server gave (up to an hour):
// reads until then get the same failure, saying when to ask again, with no
// request (found in review, s24feeds: each /freebusy fetched it again).
// Redirects are followed by hand, at most MAX_FEED_REDIRECTS, each address
// checked before anything is sent to it and the connection made to the address
// checked (feed-redirects.ts). The validators of the copy held are sent only to
// the URL they came from (found in review, s24feeds: to every hop).
import { pinnedGet, type PinnedGet } from '../http/pinned-get.js';
import { CalendarSourceError } from './errors.js';
import { aborted, feedTarget, resolveBySystem, type FeedTarget, type ResolveHost } from './feed-redirects.js';
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
  /**
   * The URL the copy and its validators came from (the last of the feed's redirects): the only one they are sent to.
   * Absent or null for a copy kept before this was: the feed's own URL.
   */
  validatorsFrom?: string | null;
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
  /** Whether the feed's record is still kept (not once its calendar is removed), without reading its copy; by default feedCache's answer. */
  feedKept?(calendarId: string): Promise<boolean>;
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
  /** How a GET reaches the checked addresses (tests aim it at loopback servers); default src/http/pinned-get.ts. */
  get?: PinnedGet;
  /** Certificates trusted besides the system's, for the default `get` (tests with a private CA). */
  ca?: string | Buffer;
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
  /** Resolves the host names of the feed and of its redirects, once each (feed-redirects.ts); default the system's resolver. */
  resolve?: ResolveHost;
  /** Feeds this process remembers at most (their calendar, refusal or failure); the least recently settled go first. */
  maxRemembered?: number;
}

export const DEFAULT_FEED_TIMEOUT_MS = 10_000;
export const DEFAULT_FEED_REFRESH_MS = 5 * 60_000;
export const DEFAULT_FEED_WAIT_MS = 3_000;
export const DEFAULT_FEED_MAX_BYTES = 20 * 1024 * 1024;
/** Redirects followed at most for one fetch (found in review, s23feeds: fetch followed 20, wherever they led). */
export const MAX_FEED_REDIRECTS = 5;
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** How long a failed fetch with no copy to stand in answers the reads after it, when its server said nothing (Retry-After). */
export const FAILED_FEED_RETRY_MS = 30_000;
/** The longest Retry-After (RFC 9110 §10.2.3) a feed's server is taken at; past it, FAILED_FEED_RETRY_MS. */
export const MAX_FEED_RETRY_AFTER_MS = 60 * 60_000;
export const DEFAULT_MAX_REMEMBERED_FEEDS = 1024;

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

/** The validators of an answer held (a good copy, or a refused one), and the URL they came from: the only one they go to. */
interface Held {
  etag: string | null;
  lastModified: string | null;
  from: string;
}

/** A refused answer, remembered in place of a copy when there is none: the error, and what to ask the server whether it changed with. */
interface Refusal extends Held {
  error: CalendarSourceError;
}

/**
 * What this process made of a feed (of the calendar `ref`, as it was then): a good copy's calendar, or (with no good
 * copy) the refusal of its answer, or the failure of its fetch.
 */
type Parsed = {
  ref: FeedRef;
  /** Until when this stands without asking the server (this process checked it, or the cache says it is fresh). */
  until: number;
} & ({ version: string; calendar: ParsedCalendar; stale: StaleFeed | undefined } | { refusal: Refusal } | { failure: CalendarSourceError });

export function createFeedLoader(options: FeedLoaderOptions): FeedLoader {
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? DEFAULT_FEED_TIMEOUT_MS;
  const refreshAfterMs = options.refreshAfterMs ?? DEFAULT_FEED_REFRESH_MS;
  const maxBytes = options.maxBytes ?? DEFAULT_FEED_MAX_BYTES;
  const waitMs = options.waitMs ?? DEFAULT_FEED_WAIT_MS;
  const resolve = options.resolve ?? resolveBySystem;
  const get = options.get ?? pinnedGet(options.ca !== undefined ? { ca: options.ca } : {});
  const maxRemembered = options.maxRemembered ?? DEFAULT_MAX_REMEMBERED_FEEDS;
  /** By calendar id: one entry a calendar, whatever its name or URL (an entry for another URL or name is not used). */
  const parsed = new Map<string, Parsed>();
  const inFlight = new Map<string, Promise<ParsedCalendar>>();
  let nextSweep = now() + refreshAfterMs;

  const keyOf = (ref: FeedRef) => `${ref.id}\0${ref.url}\0${ref.name}`;
  /** What this process made of the calendar `ref`, as it is now. */
  const knownOf = (ref: FeedRef): Parsed | undefined => {
    const known = parsed.get(ref.id);
    return known && keyOf(known.ref) === keyOf(ref) ? known : undefined;
  };
  /** Remembers it, the oldest entries dropped past maxRemembered. */
  const remember = (entry: Parsed) => {
    parsed.delete(entry.ref.id);
    parsed.set(entry.ref.id, entry);
    for (const id of parsed.keys()) {
      if (parsed.size <= maxRemembered) break;
      parsed.delete(id);
    }
  };

  /**
   * Drops what is remembered of calendars that are gone (their cache record with them: the store removes a feed's
   * copy with its calendar), at most once each refreshAfterMs: a removed calendar is never read again, and its entry
   * would stay until maxRemembered pushed it out.
   */
  async function sweep(): Promise<void> {
    if (now() < nextSweep) return;
    nextSweep = now() + refreshAfterMs;
    const kept = options.cache.feedKept?.bind(options.cache) ?? (async (id: string) => (await options.cache.feedCache(id)) !== undefined);
    for (const [id, known] of [...parsed]) {
      // A cache that cannot answer now keeps the entry: only a record known to be gone drops it.
      if (!(await kept(id).catch(() => true)) && parsed.get(id) === known) parsed.delete(id);
    }
  }

  /** The calendar of a good copy, parsed once per version. */
  async function fromCopy(ref: FeedRef, record: FeedCacheRecord, checkedAt: number, stale: StaleFeed | undefined): Promise<ParsedCalendar> {
    const version = `${record.changedAt}:${record.body!.length}:${record.etag ?? ''}`;
    const known = knownOf(ref);
    const calendar = known && 'calendar' in known && known.version === version ? known.calendar : await parseCalendarCooperatively(record.body!, ref.name);
    // While the copy was parsed, a fetch that went on (a slow feed's) may have settled a newer one: that one stays.
    if (knownOf(ref) === known) remember({ ref, version, calendar, until: checkedAt + refreshAfterMs, stale });
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

    const known = knownOf(ref);
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
    const held = record.body !== null ? { etag: record.etag, lastModified: record.lastModified, from: record.validatorsFrom ?? record.url } : refused;
    const outcome = await fetchFeed(ref, held, { get, timeoutMs, maxBytes, resolve });
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
          validatorsFrom: outcome.from,
          fetchedAt: at,
          changedAt: record.body === outcome.text ? record.changedAt : at,
          checkedAt: at,
          error: null,
          errorAt: null,
        };
        await options.cache.saveFeedCache(next);
        const version = `${next.changedAt}:${next.body!.length}:${next.etag ?? ''}`;
        remember({ ref, version, calendar, until: at + refreshAfterMs, stale: undefined });
        return calendar;
      } catch (err) {
        if (!(err instanceof CalendarSourceError)) throw err;
        failure = err;
        refusal = { error: err, etag: outcome.etag, lastModified: outcome.lastModified, from: outcome.from };
      }
    } else if (outcome.kind === 'not-modified' && refused) {
      // The refused answer has not changed (RFC 9110 §15.4.5): refused again, neither downloaded nor parsed.
      failure = refused.error;
      refusal = { ...refused, etag: outcome.etag ?? refused.etag, lastModified: outcome.lastModified ?? refused.lastModified };
    } else if (outcome.kind === 'too-large') {
      failure = new CalendarSourceError('ERR_CALENDAR_UNREADABLE', ref.name, `The feed is larger than ${Math.round(maxBytes / 1024 / 1024)} MB.`);
      refusal = { error: failure, etag: outcome.etag, lastModified: outcome.lastModified, from: outcome.from };
    } else {
      failure = new CalendarSourceError('ERR_CALENDAR_UNREADABLE', ref.name, outcome.kind === 'failed' ? outcome.reason : 'The feed answered 304 Not Modified, but no copy of it is cached.');
    }
    const next = { ...record, checkedAt: at, error: failure.line === undefined ? failure.reason : `line ${failure.line}: ${failure.reason}`, errorAt: at };
    await options.cache.saveFeedCache(next);
    if (record.body !== null) {
      const stale = staleOf(ref, next);
      return fromCopy(ref, next, at, stale && failure.quoted !== undefined ? { ...stale, quoted: failure.quoted } : stale);
    }
    // No copy stands in. A refused answer is remembered like a copy, so that reads until refreshAfterMs neither fetch
    // nor parse it again. A failed fetch (no answer, an HTTP error) may pass, but not at once: the reads in the next
    // FAILED_FEED_RETRY_MS, or until its server's Retry-After, get the same failure without a request.
    const entry: Parsed = refusal ? { ref, until: at + refreshAfterMs, refusal } : { ref, until: at + retryDelay(outcome, at), failure };
    remember(entry);
    throw failedUntil(entry, at);
  }

  return {
    async load(ref) {
      await sweep();
      const key = keyOf(ref);
      const known = knownOf(ref);
      const at = now();
      if (known && at < known.until) {
        if ('calendar' in known) return known.calendar;
        throw failedUntil(known, at);
      }
      let pending = inFlight.get(key);
      if (!pending) {
        pending = refresh(ref).finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
      }
      return pending;
    },
    staleness(ref) {
      const known = knownOf(ref);
      return known && 'stale' in known ? known.stale : undefined;
    },
  };
}

/** A remembered refusal's or failure's error, saying when the server will be asked again (a 502's Retry-After, RFC 9110 §10.2.3). */
function failedUntil(known: Parsed, at: number): CalendarSourceError {
  const error = 'refusal' in known ? known.refusal.error : 'failure' in known ? known.failure : undefined;
  return error!.retryingAfter(Math.max(1, Math.ceil((known.until - at) / 1000)));
}

/** How long a failed fetch stands: its server's Retry-After (delay-seconds or an HTTP-date), when it gave one of an hour or less; else FAILED_FEED_RETRY_MS. */
function retryDelay(outcome: FetchOutcome, at: number): number {
  const given = outcome.kind === 'failed' ? outcome.retryAfter : undefined;
  if (!given) return FAILED_FEED_RETRY_MS;
  const ms = /^\d+$/.test(given.trim()) ? Number(given.trim()) * 1000 : Date.parse(given) - at;
  return Number.isFinite(ms) && ms > 0 && ms <= MAX_FEED_RETRY_AFTER_MS ? ms : FAILED_FEED_RETRY_MS;
}

function emptyRecord(ref: FeedRef): FeedCacheRecord {
  return { calendarId: ref.id, url: ref.url, body: null, etag: null, lastModified: null, fetchedAt: null, changedAt: null, checkedAt: null, error: null, errorAt: null };
}

function staleOf(ref: FeedRef, record: FeedCacheRecord): StaleFeed | undefined {
  if (record.error === null || record.fetchedAt === null) return undefined;
  return { calendar: ref.name, fetchedAt: record.fetchedAt, reason: record.error };
}

/** What a fetch brought, and from which URL (the last of its redirects): the answer's validators go back only there. */
type FetchOutcome =
  | { kind: 'body'; text: string; etag: string | null; lastModified: string | null; from: string }
  | { kind: 'not-modified'; etag: string | null; lastModified: string | null }
  | { kind: 'too-large'; etag: string | null; lastModified: string | null; from: string }
  /** `retryAfter`: the Retry-After of an HTTP error (RFC 9110 §10.2.3), as given. */
  | { kind: 'failed'; reason: string; retryAfter?: string | null };

/**
 * One GET under the timeout, the body read up to maxBytes; redirects followed one at a time, each address checked
 * first and connected to as checked (feed-redirects.ts). The request to the URL the answer held (a good copy, or a
 * refused one) came from is conditional on its validators; to any other, they are not sent: another origin has no
 * business with them, and a 304 from there confirms nothing.
 */
async function fetchFeed(ref: FeedRef, held: Held | undefined, opts: { get: PinnedGet; timeoutMs: number; maxBytes: number; resolve: ResolveHost }): Promise<FetchOutcome> {
  const signal = AbortSignal.timeout(opts.timeoutMs);
  try {
    let url = ref.url;
    let feed: FeedTarget | undefined;
    for (let redirects = 0; ; redirects++) {
      const target = await feedTarget(new URL(url), feed, opts.resolve, signal);
      if ('refused' in target) return { kind: 'failed', reason: target.refused };
      feed ??= target;
      const conditional = held !== undefined && held.from === url;
      // Raced against the deadline as well as handed it: the timeout holds whatever the transport does with a signal.
      const res = await Promise.race([opts.get(url, target.addresses, { headers: requestHeaders(conditional ? held : undefined), signal }), aborted(signal)]);
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
        if (!conditional && held !== undefined) return { kind: 'failed', reason: 'The feed answered 304 Not Modified to a request that named no copy.' };
        return { kind: 'not-modified', etag, lastModified };
      }
      if (!res.ok) {
        await res.body?.cancel();
        return { kind: 'failed', reason: `The feed could not be fetched: the server answered HTTP ${res.status}.`, retryAfter: res.headers.get('retry-after') };
      }
      const text = await Promise.race([readLimited(res, opts.maxBytes), aborted(signal)]);
      if (text === undefined) return { kind: 'too-large', etag, lastModified, from: url };
      return { kind: 'body', text, etag, lastModified, from: url };
    }
  } catch (err) {
    if (signal.aborted) return { kind: 'failed', reason: `The feed did not answer within ${seconds(opts.timeoutMs)}.` };
    return { kind: 'failed', reason: `The feed could not be reached${networkCode(err)}.` };
  }
}

/** A feed request's headers: conditional (RFC 9110 §13.1.1, §13.1.3) on the validators given, when given. */
function requestHeaders(validators: Held | undefined): Record<string, string> {
  // A User-Agent as fetch sent one (some hosts refuse requests without).
  const headers: Record<string, string> = { Accept: 'text/calendar, text/plain;q=0.9, */*;q=0.5', 'User-Agent': 'delegate' };
  if (validators?.etag) headers['If-None-Match'] = validators.etag;
  if (validators?.lastModified) headers['If-Modified-Since'] = validators.lastModified;
  return headers;
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
