// GET /revocations: the list resource servers keep to refuse revoked tokens
// without asking the AS on every request. It names random identifiers only
// (grant ids and token ids), so it needs no authentication. A request with
// `wait` is held until something is revoked after `since` (long poll), so a
// revocation reaches the resource servers within moments. A `tag` sent with
// `since` names the revocation the cursor was handed out at, so that a cursor
// from another copy of the database (a backup restored) is told apart. An
// answer lists at most REVOCATION_PAGE_SIZE entries; `more` says others follow,
// from the cursor it gives, and `full` that it starts the whole list over
// rather than continuing from `since`.
import type { FastifyInstance } from 'fastify';
import type { Store } from '../store/index.js';
import type { AuthContext } from './context.js';
import { sendOAuthError, InvalidRequestError } from './errors.js';
import { queryParams } from './params.js';

/**
 * How often the revocation head is read while requests are held. Revocations
 * may be written by another process (`delegate grants revoke`), so the store is
 * the signal; one read serves every held request. The read does not wait for the
 * disk (the answer that follows does): found in review, an idle AS with resource
 * servers attached synced its WAL 40 times a second for these reads.
 */
const WATCH_MS = 25;
const MAX_WAIT_SEC = 25;
/**
 * Most entries one answer lists; its cursor is then the last one's, and `more` says to ask again from it. Found in
 * review: unpaged, the list with 100,000 live rows (a mass revocation, or anyone on loopback asking `since=0`
 * again and again) held the AS's event loop for seconds, /token included. A page is one range read of the
 * primary key with a LIMIT: a few milliseconds, with 100,000 rows behind it.
 */
export const REVOCATION_PAGE_SIZE = 1_000;
/**
 * Most requests held at once (long polls). A deployment has a few resource servers, each holding one; past this,
 * a request is answered at once, as with `wait=0`, so that held requests cannot pile up sockets and timers.
 */
export const MAX_HELD_REQUESTS = 256;
/** A resource server whose list is older than this refuses every token (fail closed). */
export const REVOCATION_LIST_STALE_AFTER_SEC = 30;

/** Wakes held requests when the revocation cursor moves past theirs; reads the store only while someone waits. */
class RevocationWatch {
  private readonly waiters = new Set<{ since: number; wake: () => void }>();
  private timer: NodeJS.Timeout | undefined;
  private head = 0;

  constructor(private readonly store: Store) {}

  /** Whether another request may be held now (MAX_HELD_REQUESTS). */
  get atCapacity(): boolean {
    return this.waiters.size >= MAX_HELD_REQUESTS;
  }

  /** Resolves when something newer than `since` is revoked, when `signal` aborts, or after `ms`. */
  wait(since: number, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const waiter = { since, wake: () => done() };
      const timeout = setTimeout(() => done(), ms);
      const done = () => {
        clearTimeout(timeout);
        signal.removeEventListener('abort', done);
        this.waiters.delete(waiter);
        if (this.waiters.size === 0) this.stop();
        resolve();
      };
      if (signal.aborted) return resolve();
      signal.addEventListener('abort', done, { once: true });
      this.waiters.add(waiter);
      this.timer ??= setInterval(() => void this.tick(), WATCH_MS);
    });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async tick(): Promise<void> {
    const head = await this.store.revocationHead().catch(() => undefined);
    if (head === undefined || head <= this.head) return;
    this.head = head;
    for (const w of [...this.waiters]) if (w.since < this.head) w.wake();
  }
}

export function registerRevocationList(app: FastifyInstance, ctx: AuthContext): void {
  const watch = new RevocationWatch(ctx.store);
  const closing = new AbortController();
  // Long polls are answered as the server starts closing (preClose): it waits for requests in flight.
  app.addHook('preClose', async () => {
    closing.abort();
  });
  app.addHook('onClose', async () => {
    watch.stop();
  });

  app.get('/revocations', async (req, reply) => {
    const params = queryParams(req.url);
    const since = params.since === undefined ? 0 : Number(params.since);
    const wait = params.wait === undefined ? 0 : Number(params.wait);
    const tag = params.tag === '' ? undefined : params.tag;
    if (!Number.isInteger(since) || since < 0 || !Number.isFinite(wait) || wait < 0 || (tag !== undefined && typeof tag !== 'string')) {
      return sendOAuthError(reply, new InvalidRequestError('since must be a cursor, tag the one given with it, and wait a number of seconds.'));
    }
    const read = (from: number) => ctx.store.revocationsSince(from, ctx.now(), REVOCATION_PAGE_SIZE);
    let page = await read(since);
    // Whether this answer, with the pages after it, is the whole list rather than what is newer than `since`.
    let full = since === 0;
    if (since > page.cursor) {
      // A cursor from the future (the store was replaced): answer with the whole list so the client starts over.
      page = await read(0);
      full = true;
    } else if (tag !== undefined && page.sinceTag !== undefined && tag !== page.sinceTag) {
      // The cursor names a revocation this database numbers differently: it was restored from a backup, and
      // numbered new revocations again from the backup's head. What this database holds at or below `since`
      // was never sent to the client (found in review: a grant revoked after a restore was accepted until its
      // tokens expired). Answer with the whole list, marked `full`: its first page's cursor may be behind
      // `since`, and the client must take it as the start of a whole list, not as a list that started over.
      page = await read(0);
      full = true;
    } else if (page.cursor <= since && wait > 0 && !watch.atCapacity) {
      const gone = new AbortController();
      req.raw.once('close', () => gone.abort());
      await watch.wait(since, Math.min(wait, MAX_WAIT_SEC) * 1000, AbortSignal.any([gone.signal, closing.signal]));
      page = await read(since);
    }
    return reply.header('Cache-Control', 'no-store').send({
      cursor: page.cursor,
      ...(page.tag !== undefined ? { tag: page.tag } : {}),
      full,
      more: page.more,
      grants: page.grants,
      tokens: page.tokens,
      keys: page.keys,
      expires_at: page.expiresAt,
      stale_after: REVOCATION_LIST_STALE_AFTER_SEC,
    });
  });
}
