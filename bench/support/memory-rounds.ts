// The rounds of the load test (bench/load.ts): clients with their tokens
// calling find_slot for a while, and the memory phase, in which each round
// signs in clients of its own (a new registration, grant and token each) so
// that what the agent keeps per token or per client meets new keys in every
// round, as it would in a day of new users, and a reading of the agent's
// memory is taken before the first round and after each.
//
// The first round (the warm-up) also passes `fill` more distinct tokens
// through the agent, one call each: what it keeps per token is bounded (the
// exchanged-token cache holds DEFAULT_EXCHANGE_CACHE_CAPACITY), and a bound
// shows only once it is reached. Before that, each new token costs the agent
// a cache entry (about 6 KB, measured), which a bounded cache and an
// unbounded one share; after it, a new token must replace an entry, and a
// heap that still grows with new tokens is a leak.
import { postForm } from '../../test/support/oauth-flow.js';
import { connectMcp, foundSlot, runCalls, signInClients, type FlowTarget, type LoadResult, type SignedInClient } from './mcp-load.js';

export const FIND_SLOT_ARGS = { duration: '30m' };

/** SDK clients for `tokens`, each calling find_slot for `seconds`; the clients are closed after. */
export async function callRound(agentUrl: string, tokens: readonly string[], seconds: number, more?: { minCalls: number; capSeconds: number }): Promise<LoadResult> {
  const clients = await Promise.all(tokens.map((t, i) => connectMcp(agentUrl, t, `load-client-${i}`)));
  try {
    return await runCalls(clients, 'find_slot', FIND_SLOT_ARGS, seconds, foundSlot, more);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

export interface MemoryRoundsOptions<R> {
  target: FlowTarget;
  /** Clients signed in anew for each round. */
  clients: number;
  rounds: number;
  roundSeconds: number;
  /** The agent's memory now (the load test forces a GC first); taken before the first round and after each. */
  read(): Promise<R>;
  /** Distinct tokens the warm-up round passes through the agent besides its clients' own, one call each (default 0). */
  fill?: number;
  /** The rounds after the warm-up go on past `roundSeconds` until each has made this many calls, for at most `capSeconds`. */
  judged?: { minCalls: number; capSeconds: number };
}

export interface MemoryRounds<R> {
  before: R;
  rounds: Array<{ result: LoadResult; after: R }>;
}

export async function memoryRounds<R>(options: MemoryRoundsOptions<R>): Promise<MemoryRounds<R>> {
  const before = await options.read();
  const rounds: MemoryRounds<R>['rounds'] = [];
  for (let r = 0; r < options.rounds; r++) {
    const signedIn = await signInClients(options.target, options.clients);
    if (r === 0 && (options.fill ?? 0) > 0) await fillAgent(options.target, signedIn, options.fill!);
    const result = await callRound(options.target.agentUrl, signedIn.map((c) => c.accessToken), options.roundSeconds, r === 0 ? undefined : options.judged);
    rounds.push({ result, after: await options.read() });
  }
  return { before, rounds };
}

/**
 * `count` distinct access tokens, each used for one find_slot call: the clients' token families refreshed in turn
 * (each refresh rotates the family and gives a new access token), a few families at a time. Throws on any refusal or
 * any call that finds no slot: a warm-up that did not happen would make the verdict after it meaningless.
 */
export async function fillAgent(target: FlowTarget, clients: readonly SignedInClient[], count: number, parallel = 5): Promise<void> {
  const families = clients.map((c) => ({ ...c }));
  if (families.length === 0) throw new Error('the warm-up needs at least one signed-in client');
  const lanes = Math.min(parallel, families.length);
  let left = count;
  // Each lane refreshes only its own families (index ≡ lane mod lanes), one request at a time: a family is never
  // refreshed twice at once, which the authorization server would take for a replay.
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      const own = families.filter((_, i) => i % lanes === lane);
      for (let k = 0; left > 0; k++) {
        left--;
        const f = lane + (k % own.length) * lanes;
        const family = families[f]!;
        const answer = await postForm(`${target.issuer}/token`, { grant_type: 'refresh_token', refresh_token: family.refreshToken, client_id: family.clientId });
        if (answer.status !== 200) throw new Error(`the warm-up's refresh was refused: ${answer.status} ${String(answer.body.error)}`);
        family.refreshToken = String(answer.body.refresh_token);
        const client = await connectMcp(target.agentUrl, String(answer.body.access_token), `load-fill-${f}`);
        try {
          const result = await client.callTool({ name: 'find_slot', arguments: FIND_SLOT_ARGS });
          if (result.isError || !foundSlot(result)) throw new Error(`the warm-up's call found no slot: ${JSON.stringify(result.content).slice(0, 200)}`);
        } finally {
          await client.close();
        }
      }
    }),
  );
}
