// The baseline of the find_slot benchmark: a bare fastify route on loopback
// that answers MCP's JSON-RPC over POST with JSON recorded from CalendarAgent
// (its initialize result and one find_slot result), with no token, no MCP
// server, no calendar: what HTTP, JSON and the client harness cost alone.
// Run as a child process: `bare-route.ts <recorded.json>`; prints its URL on
// stdout when it listens, and exits when its parent goes away.
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

interface Recorded {
  initialize: unknown;
  toolResult: unknown;
}

const recorded = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Recorded;
const app = Fastify({ logger: false });
app.post('/mcp', async (req, reply) => {
  const message = req.body as { id?: string | number; method?: string };
  // A notification (no id) is accepted with no body, as Streamable HTTP says.
  if (message.id === undefined) return reply.code(202).send();
  const result = message.method === 'initialize' ? recorded.initialize : message.method === 'tools/call' ? recorded.toolResult : {};
  return reply.header('Cache-Control', 'no-store').send({ jsonrpc: '2.0', id: message.id, result });
});
app.get('/mcp', async (_req, reply) => reply.code(405).header('Allow', 'POST').send());
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`${address}/mcp\n`);
process.on('disconnect', () => void app.close().then(() => process.exit(0)));
