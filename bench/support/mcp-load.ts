// The MCP side of the load test and the find_slot benchmark: users' MCP
// clients signed in through the real OAuth flow (RFC 7591 registration, the
// owner's sign-in link, /authorize, the consent form, /token with PKCE), the
// SDK's Client over StreamableHTTPClientTransport carrying each one's bearer
// token, and a loop that keeps every client calling a tool, one call at a
// time each, until a deadline, recording each call's outcome and each
// successful call's latency.
import { performance } from 'node:perf_hooks';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ownerApproves, redeemCode, type FlowTarget } from '../../test/support/owner-flow.js';

const REDIRECT = 'http://127.0.0.1:43127/callback';

export interface SignedInClient {
  clientId: string;
  accessToken: string;
  refreshToken: string;
}

export type { FlowTarget };

/** One MCP client through the whole authorization code flow: registration, sign-in, consent, code + PKCE for a token. */
export async function signInClient(target: FlowTarget, index: number, scope = 'slots:find'): Promise<SignedInClient> {
  const state = `load-${index}`;
  const approved = await ownerApproves(target, { scope, state, redirectUri: REDIRECT });
  if (approved.params.get('state') !== state) throw new Error(`client ${index}: consent gave no code for this request`);
  const token = await redeemCode(target, approved, {}, REDIRECT);
  if (token.status !== 200) throw new Error(`client ${index}: code redemption failed with ${String(token.body.error)}`);
  return { clientId: approved.clientId, accessToken: String(token.body.access_token), refreshToken: String(token.body.refresh_token) };
}

/** `count` distinct clients, a few sign-ins at a time. */
export async function signInClients(target: FlowTarget, count: number, parallel = 5): Promise<SignedInClient[]> {
  const clients: SignedInClient[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, count) }, async () => {
      for (let i = next++; i < count; i = next++) clients[i] = await signInClient(target, i);
    }),
  );
  return clients;
}

/** An SDK client connected (initialize done) to `url`, sending `token` as its bearer token on every request. */
export async function connectMcp(url: string, token: string | undefined, name: string): Promise<Client> {
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  const client = new Client({ name, version: '1.0.0' });
  await client.connect(transport);
  return client;
}

export interface LoadResult {
  /** Calls made: answered or not. */
  calls: number;
  /** Calls answered with the tool's success shape (`isOk`); the only ones throughput and latencies count. */
  ok: number;
  /** calls − ok: a throw, an isError result, or an answer without the success shape. */
  errors: number;
  /** The first few error messages, for the report (never a token). */
  errorSamples: string[];
  seconds: number;
  /** The latency of each ok call, in milliseconds. */
  latenciesMs: number[];
}

/** find_slot's success shape (src/agent/tool.ts): structured content saying a slot was found. */
export function foundSlot(result: Record<string, unknown>): boolean {
  const structured = result.structuredContent as { found?: unknown } | undefined;
  return typeof structured === 'object' && structured !== null && structured.found === true;
}

/** Ok calls per second. */
export function throughput(result: LoadResult): number {
  return result.seconds > 0 ? result.ok / result.seconds : 0;
}

/**
 * Every client calls `tool` with `args` one call after another until
 * `seconds` have passed; all clients at once. A call is ok when it answers,
 * not with isError, and `isOk` holds for its result (by default find_slot's
 * success shape: a failed call, answered fast, must not count as throughput).
 */
export async function runCalls(
  clients: readonly Client[],
  tool: string,
  args: Record<string, unknown>,
  seconds: number,
  isOk: (result: Record<string, unknown>) => boolean = foundSlot,
  /** Go on past `seconds` until this many calls are made, for at most `capSeconds` in all (a slow machine's round still judges as many calls). */
  more: { minCalls: number; capSeconds: number } = { minCalls: 0, capSeconds: seconds },
): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  const errorSamples: string[] = [];
  let calls = 0;
  let errors = 0;
  const failed = (why: string) => {
    errors++;
    if (errorSamples.length < 5) errorSamples.push(why.slice(0, 200));
  };
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const cap = started + Math.max(seconds, more.capSeconds) * 1000;
  const goOn = () => {
    const now = performance.now();
    return now < deadline || (calls < more.minCalls && now < cap);
  };
  await Promise.all(
    clients.map(async (client) => {
      while (goOn()) {
        const t0 = performance.now();
        calls++;
        try {
          const result = await client.callTool({ name: tool, arguments: args });
          const ms = performance.now() - t0;
          if (result.isError) {
            failed((result.content as Array<{ type: string; text?: string }>).find((c) => c.type === 'text')?.text ?? 'tool error');
          } else if (!isOk(result)) {
            failed(`an answer without the success shape: ${JSON.stringify(result.structuredContent ?? null)}`);
          } else {
            latenciesMs.push(ms);
          }
        } catch (error) {
          failed(String((error as Error)?.message ?? error));
        }
      }
    }),
  );
  return { calls, ok: latenciesMs.length, errors, errorSamples, seconds: (performance.now() - started) / 1000, latenciesMs };
}

/** The p-th percentile (0–100) by the nearest-rank method. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}
