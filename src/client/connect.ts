// One MCP client connection to CalendarAgent over a given transport: connect
// (initialize), use, and close, whatever happens in between.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
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
  ) {
    super(info, { capabilities: {} });
  }

  override request(...[request, schema, options]: Parameters<Client['request']>): ReturnType<Client['request']> {
    return super.request(request, schema, { timeout: this.timeoutMs, ...options });
  }
}

export async function connectAndUse<T>(
  clientInfo: { name: string; version: string } | undefined,
  transport: Transport,
  use: (client: Client) => Promise<T>,
  timeoutMs: number = DEFAULT_REQUEST_TIMEOUT_MS,
): Promise<T> {
  const client = new BoundedClient(clientInfo ?? { name: 'delegate-cli', version: '0' }, timeoutMs);
  try {
    await client.connect(transport);
    return await use(client);
  } finally {
    await client.close().catch(() => undefined);
  }
}
