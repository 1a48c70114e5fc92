// Mounts an MCP server on fastify as a stateless Streamable HTTP endpoint
// (MCP transports spec): POST carries JSON-RPC, GET and DELETE answer 405
// because a server without sessions offers no stream to resume or end. Each
// POST gets a fresh McpServer and transport that are closed with the
// response, so nothing outlives a request and memory stays flat.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { BearerVerifier } from '../resource/bearer.js';
import { authenticate, authInfoFrom, originAllowed, refuseOrigin, sendJsonRpcError } from './gate.js';

export interface McpHttpOptions {
  /** The canonical URL of the endpoint (its path is where it is mounted). */
  resourceUrl: string;
  /** RFC 9728 metadata URL named in every 401/403 challenge. */
  resourceMetadataUrl: string;
  verify: BearerVerifier;
  requiredScopes: readonly string[];
  /** Builds the MCP server that answers one request. */
  createServer: () => McpServer;
}

/** Marks a JSON body that did not parse, so the answer can be the JSON-RPC parse error the SDK would give. */
const UNPARSABLE = Symbol('unparsable JSON');

type AuthenticatedRequest = IncomingMessage & { auth?: AuthInfo };

export async function registerMcpEndpoint(app: FastifyInstance, options: McpHttpOptions): Promise<void> {
  const path = new URL(options.resourceUrl).pathname;

  await app.register(async (scope) => {
    // In this scope only: bodies reach the SDK as it expects them, and its own
    // checks (Accept, Content-Type, JSON-RPC shape, batch size) answer errors.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
      try {
        done(null, JSON.parse(body as string));
      } catch {
        done(null, UNPARSABLE);
      }
    });
    scope.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

    // Before the body is read: refuse foreign origins, then anyone without a good token.
    scope.addHook('onRequest', async (req, reply) => {
      if (!originAllowed(req, options.resourceUrl)) return refuseOrigin(reply);
      const bearer = await authenticate(req, reply, options.verify, options.requiredScopes, options.resourceMetadataUrl);
      if (!bearer) return reply; // answered with the challenge
      (req.raw as AuthenticatedRequest).auth = authInfoFrom(bearer, options.resourceUrl);
      return undefined;
    });

    scope.post(path, async (req, reply) => {
      if (req.body === UNPARSABLE) return sendJsonRpcError(reply, 400, -32700, 'Parse error: Invalid JSON');
      await serveOnce(req, reply, options.createServer);
    });

    const notAllowed = async (_req: FastifyRequest, reply: FastifyReply) =>
      sendJsonRpcError(reply.header('Allow', 'POST'), 405, -32000, 'Method not allowed: this server is stateless and offers no stream or session.');
    scope.get(path, notAllowed);
    scope.delete(path, notAllowed);
  });
}

async function serveOnce(req: FastifyRequest, reply: FastifyReply, createServer: () => McpServer): Promise<void> {
  const server = createServer();
  // No session ids: every request stands alone. JSON responses: one answer per POST, no stream to keep open.
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  reply.hijack();
  // Headers set by earlier hooks (nosniff, referrer policy) would be lost with fastify's reply.
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value !== undefined) reply.raw.setHeader(name, value as string | number | string[]);
  }
  reply.raw.setHeader('Cache-Control', 'no-store');
  reply.raw.on('close', () => {
    void transport.close();
    void server.close();
  });
  try {
    await server.connect(transport);
    await transport.handleRequest(req.raw, reply.raw, req.body);
  } catch (err) {
    req.log.error({ err: { name: (err as Error)?.name, message: (err as Error)?.message } }, 'MCP request failed');
    if (!reply.raw.headersSent) {
      reply.raw.writeHead(500, { 'Content-Type': 'application/json' });
      reply.raw.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal error' }, id: null }));
    }
  }
}
