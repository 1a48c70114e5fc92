// The rounds of the load test (bench/load.ts): clients with their tokens
// calling find_slot for a while, and the memory phase, in which each round
// signs in clients of its own (a new registration, grant and token each) so
// that what the agent keeps per token or per client meets new keys in every
// round, as it would in a day of new users, and a reading of the agent's
// memory is taken before the first round and after each.
import { connectMcp, runCalls, signInClients, type FlowTarget, type LoadResult } from './mcp-load.js';

export const FIND_SLOT_ARGS = { duration: '30m' };

/** SDK clients for `tokens`, each calling find_slot for `seconds`; the clients are closed after. */
export async function callRound(agentUrl: string, tokens: readonly string[], seconds: number): Promise<LoadResult> {
  const clients = await Promise.all(tokens.map((t, i) => connectMcp(agentUrl, t, `load-client-${i}`)));
  try {
    return await runCalls(clients, 'find_slot', FIND_SLOT_ARGS, seconds);
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
    const result = await callRound(options.target.agentUrl, signedIn.map((c) => c.accessToken), options.roundSeconds);
    rounds.push({ result, after: await options.read() });
  }
  return { before, rounds };
}
