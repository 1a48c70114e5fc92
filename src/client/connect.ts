// One MCP client connection to CalendarAgent over a given transport: connect
// (initialize), use, and close, whatever happens in between.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';

export async function connectAndUse<T>(
  clientInfo: { name: string; version: string } | undefined,
  transport: Transport,
  use: (client: Client) => Promise<T>,
): Promise<T> {
  const client = new Client(clientInfo ?? { name: 'delegate-cli', version: '0' }, { capabilities: {} });
  try {
    await client.connect(transport);
    return await use(client);
  } finally {
    await client.close().catch(() => undefined);
  }
}
