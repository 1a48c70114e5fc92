// CalendarAgent over stdio (MCP transports spec, "stdio"), for MCP clients
// that spawn their servers (Claude Desktop, Claude Code, editors): one
// McpServer for the life of the process, whose calls act under the token the
// caller supplies (the user's stored delegation, see `delegate serve-agent
// --stdio`). stdout carries the protocol and nothing else; a line that is no
// message an MCP server takes is answered with its JSON-RPC error (see
// stdio-transport.ts).
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { agentMcpDeps, createAgentMcpServer, type AgentRuntimeOptions } from './mcp.js';
import { StdioLineTransport } from './stdio-transport.js';

export interface StdioAgentOptions extends AgentRuntimeOptions {
  /** Tests: another transport than this process's stdin and stdout. */
  transport?: Transport;
}

export interface StdioAgent {
  /** Resolves when the client closes the connection (stdin ends). */
  closed: Promise<void>;
  close(): Promise<void>;
}

export async function serveAgentOverStdio(options: StdioAgentOptions): Promise<StdioAgent> {
  const server = createAgentMcpServer(agentMcpDeps(options));
  const transport = options.transport ?? new StdioLineTransport();
  const closed = new Promise<void>((resolve) => {
    server.server.onclose = () => resolve();
  });
  await server.connect(transport);
  if (!options.transport) {
    // The transport does not end the session at the end of stdin by itself.
    process.stdin.once('end', () => void server.close());
    process.stdin.once('close', () => void server.close());
  }
  return { closed, close: () => server.close() };
}
