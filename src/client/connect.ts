// One MCP client connection to CalendarAgent over a given transport: connect
// (initialize), use, and close, whatever happens in between.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { FetchLike, Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { DEFAULT_REQUEST_TIMEOUT_MS } from './quick-call.js';

/**
 * A Client whose every request is bounded as the CLI's HTTP requests are (DEFAULT_REQUEST_TIMEOUT_MS), unless a call
 * says otherwise: the SDK's own default is 60 s, and an answer whose event stream opens and then stalls is waited
 * for by the SDK, not by the request that opened it (found in review, s25faults).
 */
class BoundedClient extends Client {
  constructor(
    info: { name: string; version: string },
    private readonly timeoutMs: number,
    private readonly initialize?: InitializeBound,
  ) {
    super(info, { capabilities: {} });
  }

  override request(...[request, schema, options]: Parameters<Client['request']>): ReturnType<Client['request']> {
    const bound = request.method === 'initialize' && this.initialize ? { timeout: this.initialize.backstopMs, signal: this.initialize.signal } : { timeout: this.timeoutMs };
    return super.request(request, schema, { ...bound, ...options });
  }
}

/**
 * The bound of an initialize that may carry a sign-in's discovery (the first connection of a sign-in: the agent's
 * 401, then the SDK asks the authorization server for its metadata and registers, each request bounded on its own
 * by boundedFetch): `signal`, the agent's own answer's bound (AgentAnswerDeadline), and a wide backstop for the
 * whole. Found in review (s25new3): one 30 s bound over the whole made a sign-in at an authorization server
 * answering each request in 8–10 s fail, and blamed CalendarAgent.
 */
export interface InitializeBound {
  signal: AbortSignal;
  backstopMs: number;
}

/**
 * Bounds only the agent's part of a request whose handling may go on to other servers: armed while a request to
 * `agentUrl` waits for its answer or streams its body, disarmed once the agent has answered 401 or 403 (the SDK then
 * turns to the authorization server) or failed; firing, it aborts `signal` as the SDK's own request timeout would.
 */
export class AgentAnswerDeadline {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  readonly signal = this.controller.signal;

  constructor(
    private readonly agentUrl: string,
    private readonly ms: number,
  ) {}

  watch(fetchFn: FetchLike): FetchLike {
    return async (url, init) => {
      const toAgent = new URL(String(url)).href === new URL(this.agentUrl).href;
      if (!toAgent) return fetchFn(url, init);
      this.arm();
      try {
        const res = await fetchFn(url, init);
        if (res.status === 401 || res.status === 403) this.stop();
        return res;
      } catch (error) {
        this.stop();
        throw error;
      }
    };
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    this.stop();
    // As the SDK's own timeout says it (its data the bound), so that the one line naming the agent says the same.
    this.timer = setTimeout(() => this.controller.abort(new McpError(ErrorCode.RequestTimeout, 'Request timed out', { timeout: this.ms })), this.ms);
    this.timer.unref();
  }
}

export async function connectAndUse<T>(
  clientInfo: { name: string; version: string } | undefined,
  transport: Transport,
  use: (client: Client) => Promise<T>,
  timeoutMs: number = DEFAULT_REQUEST_TIMEOUT_MS,
  initialize?: InitializeBound,
): Promise<T> {
  const client = new BoundedClient(clientInfo ?? { name: 'delegate-cli', version: '0' }, timeoutMs, initialize);
  try {
    await client.connect(transport);
    return await use(client);
  } finally {
    await client.close().catch(() => undefined);
  }
}
