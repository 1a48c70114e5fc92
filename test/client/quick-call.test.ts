// The quick tool call against the SDK's own MCP server on a loopback port,
// with a real token cache: a cached, unexpired token gets the tool's result
// in one session (three POSTs, the token on each); no token, an expired
// one, a refusal or nothing listening hand over to the full session
// (undefined); a tool's JSON-RPC error is final. And its protocol versions
// are the SDK's.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { TokenCache } from '../../src/client/cache.js';
import { isClientError } from '../../src/client/errors.js';
import { PROTOCOL_VERSIONS, quickToolCall } from '../../src/client/quick-call.js';
import type { SessionOptions } from '../../src/client/session.js';

const ISSUER = 'http://127.0.0.1:1';
let server: Server | undefined;
let seen: Array<{ method: string | undefined; headers: IncomingHttpHeaders }>;
let home: string;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-quick-'));
});

afterEach(async () => {
  await stopServer();
  await rm(home, { recursive: true, force: true });
});

async function stopServer(): Promise<void> {
  const running = server;
  server = undefined;
  if (!running) return;
  running.closeAllConnections();
  await new Promise((resolve) => running.close(resolve));
}

/** An MCP server with the tool `echo`, stateless; 401 without `Bearer good`; a JSON-RPC error for a call of `rpc_error`. */
async function startServer(): Promise<string> {
  seen = [];
  server = createServer(async (req, res) => {
    seen.push({ method: req.method, headers: req.headers });
    if (req.headers.authorization !== 'Bearer good') {
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: number; method?: string; params?: { name?: string } };
    if (body.method === 'tools/call' && body.params?.name === 'rpc_error') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: body.id, error: { code: -32602, message: 'Invalid params' } }));
      return;
    }
    const mcp = new McpServer({ name: 'test', version: '1' });
    mcp.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text }], structuredContent: { text } }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => void transport.close().then(() => mcp.close()));
    await mcp.connect(transport);
    await transport.handleRequest(req, res, body);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}/mcp`;
}

function sessionFor(agentUrl: string, overrides: Partial<SessionOptions> = {}): SessionOptions {
  return { agentUrl, files: { tokenCache: join(home, 'tokens.json'), tokenLock: join(home, 'tokens.lock'), ownerKey: join(home, 'owner-key.json') }, now: () => Date.now(), ...overrides };
}

async function cacheToken(agentUrl: string, accessToken: string, expiresAt: number): Promise<void> {
  await new TokenCache({ files: { tokenCache: join(home, 'tokens.json'), tokenLock: join(home, 'tokens.lock') }, now: () => Date.now() }).update((data) => {
    data.discovery[agentUrl] = { authorizationServerUrl: ISSUER } as (typeof data.discovery)[string];
    data.tokens[ISSUER] = { [agentUrl]: { access_token: accessToken, token_type: 'Bearer', expires_at: expiresAt, issuer: ISSUER, resource: agentUrl, obtained_at: Date.now() } };
  });
}

describe('quickToolCall', () => {
  it('speaks the protocol versions the SDK speaks', () => {
    expect(PROTOCOL_VERSIONS[0]).toBe(LATEST_PROTOCOL_VERSION);
    expect([...PROTOCOL_VERSIONS]).toEqual(SUPPORTED_PROTOCOL_VERSIONS);
  });

  it('calls the tool with the cached token in one session of three POSTs', async () => {
    const url = await startServer();
    await cacheToken(url, 'good', Date.now() + 600_000);
    const result = await quickToolCall(sessionFor(url), 'echo', { text: 'hi' });
    expect(result?.structuredContent).toEqual({ text: 'hi' });
    expect(seen.map((r) => r.method)).toEqual(['POST', 'POST', 'POST']);
    expect(seen.every((r) => r.headers.authorization === 'Bearer good')).toBe(true);
    expect(seen[1]!.headers['mcp-protocol-version']).toBe(LATEST_PROTOCOL_VERSION);
  });

  it.each([
    ['no token is cached', async () => undefined],
    ['the token has expired', async (url: string) => cacheToken(url, 'good', Date.now() - 1_000)],
    ['the agent refuses the token', async (url: string) => cacheToken(url, 'revoked', Date.now() + 600_000)],
  ])('hands over to the full session when %s', async (_, arrange) => {
    const url = await startServer();
    await arrange(url);
    expect(await quickToolCall(sessionFor(url), 'echo', { text: 'hi' })).toBeUndefined();
    expect(seen.filter((r) => r.headers.authorization === 'Bearer good')).toEqual([]);
  });

  it('hands over when nothing listens, and when DELEGATE_TOKEN is set', async () => {
    const url = await startServer();
    await cacheToken(url, 'good', Date.now() + 600_000);
    expect(await quickToolCall(sessionFor(url, { envToken: 'good' }), 'echo', { text: 'hi' })).toBeUndefined();
    expect(seen).toEqual([]);
    await stopServer();
    expect(await quickToolCall(sessionFor(url), 'echo', { text: 'hi' })).toBeUndefined();
  });

  it('fails once with TOOL_FAILED on a JSON-RPC error, without handing over', async () => {
    const url = await startServer();
    await cacheToken(url, 'good', Date.now() + 600_000);
    const error = await quickToolCall(sessionFor(url), 'rpc_error', {}).catch((e: unknown) => e);
    expect(isClientError(error, 'TOOL_FAILED')).toBe(true);
    expect((error as Error).message).toBe('MCP error -32602: Invalid params');
    expect(seen).toHaveLength(3);
  });
});
