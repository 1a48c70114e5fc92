// The CLI's node:http Streamable HTTP transport against the SDK's own MCP
// server on a loopback port (stateless, answering in JSON or in an event
// stream), driven by the SDK's Client: the handshake and a tool call work,
// the headers the spec asks for are sent, and a refusal comes back as the
// SDK transport's error with its status, its challenge told to the session.
import { getEventListeners } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { HttpClientTransport } from '../../src/client/http-transport.js';
import { eventStreamMessages } from '../../src/client/mcp-post.js';

let server: Server | undefined;
let seen: Array<{ method: string | undefined; headers: IncomingHttpHeaders }>;

async function stopServer(): Promise<void> {
  const running = server;
  server = undefined;
  if (!running) return;
  running.closeAllConnections(); // the client's kept-alive connections too
  await new Promise((resolve) => running.close(resolve));
}

afterEach(stopServer);

/** An MCP server with one tool, `echo`, answering every POST with a fresh stateless transport; 401 without the bearer token. */
async function startServer(json: boolean): Promise<URL> {
  seen = [];
  server = createServer(async (req, res) => {
    seen.push({ method: req.method, headers: req.headers });
    if (req.headers.authorization !== 'Bearer good') {
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token", scope="slots:find"', 'content-type': 'application/json' });
      res.end('{"error":"invalid_token"}');
      return;
    }
    const mcp = new McpServer({ name: 'test', version: '1' });
    mcp.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text: `echo: ${text}` }] }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: json });
    res.on('close', () => void transport.close().then(() => mcp.close()));
    await mcp.connect(transport);
    await transport.handleRequest(req, res);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return new URL(`http://127.0.0.1:${(server!.address() as AddressInfo).port}/mcp`);
}

async function callEcho(url: URL, token: string, onResponse?: (status: number, header: string | undefined) => void): Promise<string> {
  const client = new Client({ name: 'test-client', version: '1' }, { capabilities: {} });
  const transport = new HttpClientTransport(url, { headers: { Authorization: `Bearer ${token}` }, timeoutMs: 5_000, ...(onResponse ? { onResponse } : {}) });
  try {
    await client.connect(transport);
    const result = await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
    return (result.content as Array<{ text: string }>)[0]!.text;
  } finally {
    await client.close();
  }
}

describe('HttpClientTransport', () => {
  it.each([
    ['JSON', true],
    ['an event stream', false],
  ])('initializes and calls a tool on a server answering in %s', async (_, json) => {
    const url = await startServer(json);
    expect(await callEcho(url, 'good')).toBe('echo: hi');
    // initialize, notifications/initialized, tools/call: POSTs only, each with the token; the version once negotiated.
    expect(seen.map((r) => r.method)).toEqual(['POST', 'POST', 'POST']);
    expect(seen.every((r) => r.headers.authorization === 'Bearer good')).toBe(true);
    expect(seen.every((r) => r.headers.accept === 'application/json, text/event-stream')).toBe(true);
    expect(seen[0]!.headers['mcp-protocol-version']).toBeUndefined();
    expect(seen[2]!.headers['mcp-protocol-version']).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  });

  it('fails a refused request with the status, and tells the session the challenge', async () => {
    const url = await startServer(true);
    const told: Array<[number, string | undefined]> = [];
    const error = await callEcho(url, 'bad', (status, header) => told.push([status, header])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamableHTTPError);
    expect((error as StreamableHTTPError).code).toBe(401);
    expect(told).toEqual([[401, 'Bearer error="invalid_token", scope="slots:find"']]);
  });

  // Found in review (s26): each send's bound kept its listener on the transport's closing signal for its whole 30 s,
  // answered or not: eleven requests within it printed MaxListenersExceededWarning, and the listeners piled up.
  it('keeps no listener on its closing signal once each answer is in: a dozen tool calls, no MaxListenersExceededWarning', async () => {
    const url = await startServer(false);
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => void (warning.name === 'MaxListenersExceededWarning' && warnings.push(warning));
    process.on('warning', onWarning);
    const client = new Client({ name: 'test-client', version: '1' }, { capabilities: {} });
    const transport = new HttpClientTransport(url, { headers: { Authorization: 'Bearer good' }, timeoutMs: 30_000 });
    const closing = (transport as unknown as { closing: AbortController }).closing.signal;
    try {
      await client.connect(transport);
      for (let i = 0; i < 12; i++) {
        const result = await client.callTool({ name: 'echo', arguments: { text: String(i) } });
        expect((result.content as Array<{ text: string }>)[0]!.text).toBe(`echo: ${i}`);
        expect(getEventListeners(closing, 'abort').length).toBeLessThanOrEqual(1);
      }
      expect(seen).toHaveLength(14); // initialize, notifications/initialized, twelve tools/call
      expect(getEventListeners(closing, 'abort')).toHaveLength(0);
      // A warning goes out on a later turn of the event loop.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await client.close();
    }
  });

  it('fails with the connection error when nothing listens', async () => {
    const url = await startServer(true);
    await stopServer();
    const error = await callEcho(url, 'good').catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('ECONNREFUSED');
  });
});

describe('eventStreamMessages', () => {
  it('keeps the data of message events, joining lines, and skips comments and other events', () => {
    const stream = ': comment\r\nevent: message\r\ndata: {"a":1}\r\n\r\nevent: ping\ndata: x\n\nid: 7\ndata: {"b":\ndata: 2}\n\n';
    expect(eventStreamMessages(stream)).toEqual(['{"a":1}', '{"b":\n2}']);
  });
});
