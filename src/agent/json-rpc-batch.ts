// What MCP allows of a JSON-RPC batch, judged the same way on both of
// CalendarAgent's transports (Streamable HTTP and stdio): none at all since
// protocol version 2025-06-18, and before it at most 100 messages, no
// initialize inside one and no two requests sharing an id.
import { JSONRPCMessageSchema } from '@modelcontextprotocol/sdk/types.js';

/** The most messages one batch may hold: the MCP SDK's bound on its HTTP transport (MAX_BATCH_SIZE), kept on stdio too. */
export const MAX_BATCH_MESSAGES = 100;

/** The first MCP protocol version without JSON-RPC batches (its base protocol: one message at a time). */
const BATCHLESS_SINCE = '2025-06-18';

/**
 * Why a JSON-RPC batch is refused before the SDK sees it, or undefined. The
 * SDK takes any batch of up to 100 messages whatever the protocol version,
 * lets an initialize through alone in a batch, and for two requests with the
 * same id runs both but answers one (its answers are keyed by id).
 */
export function batchProblem(batch: unknown[], version: string | string[] | undefined): string | undefined {
  if (batch.length > MAX_BATCH_MESSAGES) return `a batch must not hold more than ${MAX_BATCH_MESSAGES} messages.`;
  // A member that is no JSON-RPC message at all is left to the caller (over HTTP, the SDK answers -32700).
  if (!batch.every((m) => JSONRPCMessageSchema.safeParse(m).success)) return undefined;
  // Version strings are dates (YYYY-MM-DD), so they compare as strings; none (no header, or before initialize) means 2025-03-26.
  if (typeof version === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(version) && version >= BATCHLESS_SINCE) return `protocol version ${version} has no JSON-RPC batches; send one message per request.`;
  const ids = new Set<string>();
  for (const m of batch as Array<Record<string, unknown>>) {
    const { method, id } = m;
    // Lifecycle (2025-03-26): the initialization request MUST NOT be part of a JSON-RPC batch.
    if (method === 'initialize') return 'an initialize request must not be part of a batch.';
    if (typeof method !== 'string' || !('id' in m)) continue;
    const key = JSON.stringify(id);
    if (ids.has(key)) return `two requests in the batch share the id ${key.slice(0, 40)}; each request needs its own.`;
    ids.add(key);
  }
  return undefined;
}
