// GET /revocations: the list resource servers keep to refuse revoked tokens
// without asking the AS on every request. It names random identifiers only
// (grant ids and token ids), so it needs no authentication. A request with
// `wait` is held until something is revoked after `since` (long poll), so a
// revocation reaches the resource servers within moments.
import type { FastifyInstance } from 'fastify';
import type { AuthContext } from './context.js';
import { sendOAuthError, InvalidRequestError } from './errors.js';
import { queryParams } from './params.js';

/** How often a held request looks for new revocations (they may be written by another process, such as `delegate grants revoke`). */
const POLL_MS = 100;
const MAX_WAIT_SEC = 25;
/** A resource server whose list is older than this refuses every token (fail closed). */
export const REVOCATION_LIST_STALE_AFTER_SEC = 30;

export function registerRevocationList(app: FastifyInstance, ctx: AuthContext): void {
  app.get('/revocations', async (req, reply) => {
    const params = queryParams(req.url);
    const since = params.since === undefined ? 0 : Number(params.since);
    const wait = params.wait === undefined ? 0 : Number(params.wait);
    if (!Number.isInteger(since) || since < 0 || !Number.isFinite(wait) || wait < 0) {
      return sendOAuthError(reply, new InvalidRequestError('since must be a cursor and wait a number of seconds.'));
    }
    const deadline = Date.now() + Math.min(wait, MAX_WAIT_SEC) * 1000;
    let closed = false;
    req.raw.once('close', () => (closed = true));
    let page = await ctx.store.revocationsSince(since, ctx.now());
    // A cursor from the future (the store was replaced): answer with the whole list so the client starts over.
    if (since > page.cursor) page = await ctx.store.revocationsSince(0, ctx.now());
    else while (page.cursor <= since && Date.now() < deadline && !closed) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      page = await ctx.store.revocationsSince(since, ctx.now());
    }
    return reply.header('Cache-Control', 'no-store').send({ ...page, stale_after: REVOCATION_LIST_STALE_AFTER_SEC });
  });
}
