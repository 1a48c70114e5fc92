// Mounts an MCP server on fastify as a stateless Streamable HTTP endpoint
// (MCP transports spec): POST carries JSON-RPC, GET and DELETE answer 405
// because a server without sessions offers no stream to resume or end. One
// McpServer answers every POST, through McpPostTransport
// (mcp-post-transport.ts), which keeps each POST's requests apart from every
// other's; the answers are JSON (one per POST, no stream kept open). A
// tools/call for a tool whose scope the token lacks is refused here, before
// the tool runs, with the MCP authorization spec's scope challenge (403
// insufficient_scope naming the scopes to ask for); so is one whose token's
// delegation does not reach where the tools read (the calendar moved since it
// was approved), since only authorizing again mends that. Before that, an
// MCP-Protocol-Version the SDK does not support is refused with 400 (as the
// SDK would, but before a scope is judged), a form body carrying the token
// beside the header is refused as two methods (RFC 6750 §2), a batch must be
// one the protocol allows, and each message is screened as on stdio
// (mcp-requests.ts); a refused request is answered under its id. What the SDK's
// StreamableHTTPServerTransport checked of a POST is checked here, with its
// status codes and words (Accept, Content-Type, JSON-RPC shape).
//
// Each POST used to get a fresh McpServer and the SDK's transport, which turns
// Node's request into a Web Request and its Response back: those, and the
// server's construction and close, were about a third of the agent's CPU per
// call (README, Performance).
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { isJsonContentType } from '@modelcontextprotocol/sdk/shared/mediaType.js';
import {
  isInitializeRequest,
  JSONRPCMessageSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
  type JSONRPCErrorResponse,
  type JSONRPCMessage,
  type RequestInfo,
} from '@modelcontextprotocol/sdk/types.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import type { AccessTokenClaims } from '../delegation/index.js';
import { auditRecord, boundedValue, type AuditSink } from '../resource/audit.js';
import { BearerError, tokenInFormBody, type BearerVerifier } from '../resource/bearer.js';
import { batchProblem } from './json-rpc-batch.js';
import { screenMessage } from './mcp-requests.js';
import { authenticate, authInfoFrom, originAllowed, refuseBearer, refuseOrigin, sendJsonRpcError } from './gate.js';
import { challengeScope, missingToolScopes, toolScopes, type ToolScopePolicy } from './tool-scopes.js';
import { McpPostTransport } from './mcp-post-transport.js';
import { delegationLogFields, jsonRpcLogFields } from '../http/logging.js';
import type { ToolExtra } from './tool.js';

export interface McpHttpOptions {
  /** The canonical URL of the endpoint (its path is where it is mounted). */
  resourceUrl: string;
  /** RFC 9728 metadata URL named in every 401/403 challenge. */
  resourceMetadataUrl: string;
  verify: BearerVerifier;
  /** The agent's scopes: a token needs one of them; each tool needs its own. */
  scopes: ToolScopePolicy;
  /**
   * The MCP server that answers every request, connected here for the endpoint's life and closed with it. Its
   * tools find the request a call came in with httpRequestOf(extra): its logger and id, for their log lines and
   * onward requests. It must keep no state of one caller's for another (createAgentMcpServer with callContext).
   */
  server: McpServer;
  /**
   * Why a token's delegation does not reach what the tools read (unreachedCalendar), or undefined. A tools/call
   * under such a token is refused with the same scope challenge as a missing scope: the client authorizes again,
   * and the consent page asks the owner for the new address.
   */
  unreached?: (claims: AccessTokenClaims) => string | undefined;
  /** Where tool calls refused here for want of a scope or reach are recorded (calls that run are recorded by the tools). */
  audit?: AuditSink;
}

/** Marks a JSON body that did not parse, so the answer can be the JSON-RPC parse error the SDK would give. */
const UNPARSABLE = Symbol('unparsable JSON');

/** A POST's body as the server is to get it: each message screened, and the answers to the requests refused, by id (as JSON). */
interface ScreenedBody {
  /** Its JSON-RPC messages as the SDK's schema reads them, rewritten where the screen said so; none when a member is no JSON-RPC message. */
  messages: JSONRPCMessage[] | undefined;
  /** The messages handed to the server; the scope gate judges these. */
  delivered: unknown[];
  refusals: Map<string, JSONRPCErrorResponse>;
}

/** What a tool call needs of the HTTP request it came in: that request's id and logger (its lines carry the reqId). */
export interface HttpRequestContext {
  /** The caller's X-Request-Id when safe, else a fresh one (src/http/logging.ts): sent on the tools' onward requests. */
  requestId: string;
  logger: FastifyBaseLogger;
}

/** Each POST's context, by the requestInfo object its messages reach the server with (the SDK hands it on to the handlers as is). */
const requestContexts = new WeakMap<RequestInfo, HttpRequestContext>();

/** The HTTP request a tool call came in with, or undefined for a call that came otherwise (stdio, tests in memory). */
export function httpRequestOf(extra: ToolExtra): HttpRequestContext | undefined {
  return extra.requestInfo ? requestContexts.get(extra.requestInfo) : undefined;
}

type AuthenticatedRequest = IncomingMessage & { auth?: AuthInfo; screened?: ScreenedBody };

export async function registerMcpEndpoint(app: FastifyInstance, options: McpHttpOptions): Promise<void> {
  const path = new URL(options.resourceUrl).pathname;
  const transport = new McpPostTransport();
  await options.server.connect(transport);
  // Answers still being written finish first (src/http/graceful-close.ts); a call still running is cancelled.
  app.addHook('onClose', async () => options.server.close());

  await app.register(async (scope) => {
    // In this scope only: any body reaches the route, whose checks (as the SDK's transport made them:
    // Accept, Content-Type, JSON-RPC shape) answer errors; fastify's own would answer others.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
      try {
        done(null, JSON.parse(body as string));
      } catch {
        done(null, UNPARSABLE);
      }
    });
    scope.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

    // Before the body is read: refuse foreign origins, then anyone without a good token for this agent.
    scope.addHook('onRequest', async (req, reply) => {
      if (!originAllowed(req, options.resourceUrl)) return refuseOrigin(reply);
      const initial = options.scopes.initial.join(' ');
      // A 401 names the initial scope, and with it what an expired token held, as the 403 below names it: re-authorizing loses nothing.
      const bearer = await authenticate(req, reply, options.verify, [], options.resourceMetadataUrl, (held) => challengeScope(options.scopes, held, options.scopes.initial));
      if (!bearer) return reply; // answered with the challenge
      if (!bearer.scopes.some((s) => options.scopes.supported.includes(s))) {
        const refusal = new BearerError(403, 'insufficient_scope', `The token carries none of this agent's scopes; ask for ${initial}.`, challengeScope(options.scopes, bearer.scopes, options.scopes.initial));
        await refuseBearer(reply, options.resourceMetadataUrl, refusal);
        return reply;
      }
      (req.raw as AuthenticatedRequest).auth = authInfoFrom(bearer, options.resourceUrl);
      // Who asked, on the access line (found in review, s35logs: an /mcp line named no one).
      req.accessLog = { ...req.accessLog, ...delegationLogFields(bearer.claims) };
      return undefined;
    });

    // Once the body is read, before any tool runs: the protocol version must be one the SDK supports, a
    // batch one this protocol allows, and each message one the agent takes (all refused before the scopes
    // are judged, so no step-up is asked for and no refused call recorded for a request that would be
    // refused anyway); then each tools/call needs its tool's scope.
    scope.addHook('preHandler', async (req, reply) => {
      // The token was taken from the header (onRequest): the same in a form body too is two methods at once, refused
      // as such (tokenInFormBody, RFC 6750 §2) rather than as the media type this endpoint does not take (415).
      const inBody = tokenInFormBody(req.headers['content-type'], req.body);
      if (inBody) {
        await refuseBearer(reply, options.resourceMetadataUrl, inBody);
        return reply;
      }
      if (req.method !== 'POST' || req.body === UNPARSABLE) return undefined;
      // What was asked, on the access line: the method, and a tools/call's tool (never its arguments).
      req.accessLog = { ...req.accessLog, ...jsonRpcLogFields(req.body) };
      const unsupported = unsupportedVersion(req.body, req.headers['mcp-protocol-version']);
      if (unsupported) return sendJsonRpcError(reply, 400, -32000, unsupported);
      if (Array.isArray(req.body)) {
        // JSON-RPC 2.0 §6: an empty batch is one Invalid Request error (the SDK would answer 202 with nothing).
        const problem = req.body.length === 0 ? 'an empty batch' : batchProblem(req.body, req.headers['mcp-protocol-version']);
        if (problem) return sendJsonRpcError(reply, 400, -32600, `Invalid Request: ${problem}`);
      }
      const screened = screenBody(req.body, options.scopes.tools);
      (req.raw as AuthenticatedRequest).screened = screened;
      const calls = toolCalls(screened.delivered);
      if (calls.length === 0) return undefined;
      const auth = (req.raw as AuthenticatedRequest).auth!;
      const claims = auth.extra?.claims as AccessTokenClaims | undefined;
      const needed = calls.flatMap((c) => toolScopes(options.scopes, c.tool));
      const missing = missingToolScopes(options.scopes, calls.map((c) => c.tool), auth.scopes);
      if (missing.length > 0) {
        const refused = calls.filter((c) => toolScopes(options.scopes, c.tool).some((s) => missing.includes(s)));
        const description = `${[...new Set(refused.map((c) => c.tool))].join(', ')} needs the scope ${missing.join(' ')}, which this token does not carry.`;
        await auditRefused(req, options, claims, refused, { missing_scope: missing });
        await refuseBearer(reply, options.resourceMetadataUrl, new BearerError(403, 'insufficient_scope', description, challengeScope(options.scopes, auth.scopes, needed)));
        return reply;
      }
      // The scopes are there, but the delegation was approved for the calendar at an address the agent no longer
      // reads: the exchange would be refused (grant-exchange.ts). Over HTTP the MCP client can mend that itself by
      // authorizing again (MCP authorization, "Scope Challenge Handling"; RFC 6750 §3.1), where the consent page
      // asks the owner for the new address; a tool error would only tell a person to do it. Found in review: an
      // MCP client got "run `delegate login`", which re-approves only the delegate CLI's grant, not its own.
      const unreached = claims && needed.length > 0 ? options.unreached?.(claims) : undefined;
      if (unreached === undefined) return undefined;
      const refused = calls.filter((c) => toolScopes(options.scopes, c.tool).length > 0);
      await auditRefused(req, options, claims, refused, { unreached: true });
      // The same token always gets the same challenge, so a client that re-authorizes and is refused again stops.
      await refuseBearer(reply, options.resourceMetadataUrl, new BearerError(403, 'insufficient_scope', unreached, challengeScope(options.scopes, auth.scopes, needed)));
      return reply;
    });

    scope.post(path, async (req, reply) => {
      if (req.body === UNPARSABLE) return sendJsonRpcError(reply, 400, -32700, 'Parse error: Invalid JSON');
      return answerPost(req, reply, transport, (req.raw as AuthenticatedRequest).screened);
    });

    const notAllowed = async (_req: FastifyRequest, reply: FastifyReply) =>
      sendJsonRpcError(reply.header('Allow', 'POST'), 405, -32000, 'Method not allowed: this server is stateless and offers no stream or session.');
    // Routes that only refuse: another method (PUT) gets the shared 405 (src/http/app.ts), whose Allow names POST alone too.
    scope.get(path, { config: { refusesMethod: true } }, notAllowed);
    scope.delete(path, { config: { refusesMethod: true } }, notAllowed);
  });
}

/** Records tool calls refused by the gate (calls that run are recorded by the tools); a failing sink does not change the answer. */
async function auditRefused(
  req: FastifyRequest,
  options: McpHttpOptions,
  claims: AccessTokenClaims | undefined,
  refused: Array<{ tool: string; arguments: unknown }>,
  why: Record<string, unknown>,
): Promise<void> {
  if (!options.audit || !claims) return;
  try {
    for (const call of refused) {
      await options.audit(auditRecord('tool_call', claims, options.resourceUrl, { tool: call.tool, outcome: 'refused', ...why, arguments: boundedValue(call.arguments) }));
    }
  } catch (err) {
    req.log.warn({ err: { name: (err as Error)?.name } }, 'refused tool call could not be audited');
  }
}

/**
 * Why the MCP-Protocol-Version header is refused, or undefined: a version the
 * SDK does not support (Transports, Protocol Version Header: the server MUST
 * answer 400 Bad Request). Judged as the SDK's transport judges it, which
 * would do so too, but only after the scope gate here had asked for a
 * step-up: not for a body holding an initialize request (whose params
 * negotiate the version), and with the SDK's words.
 */
function unsupportedVersion(body: unknown, header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  // Several header lines reach the SDK joined, as the Fetch API joins them.
  const version = Array.isArray(header) ? header.join(', ') : header;
  if (SUPPORTED_PROTOCOL_VERSIONS.includes(version)) return undefined;
  if ((Array.isArray(body) ? body : [body]).some((m) => isInitializeRequest(m))) return undefined;
  // The SDK quotes the whole header; a header may be kilobytes long.
  const shown = version.length > 40 ? `${version.slice(0, 40)}…` : version;
  return `Bad Request: Unsupported protocol version: ${shown} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`;
}

/**
 * Each message of a body screened (mcp-requests.ts), as the SDK's schema
 * reads it (what the SDK's transport handed its server). A refused request
 * stays among the messages, so that its answer keeps its place, and is
 * answered with the refusal instead of reaching the server. A body with any
 * member that is no JSON-RPC message is refused whole (-32700), as the
 * SDK's transport did, and runs nothing.
 */
function screenBody(body: unknown, tools: Readonly<Record<string, unknown>>): ScreenedBody {
  const members = Array.isArray(body) ? body : [body];
  const refusals = new Map<string, JSONRPCErrorResponse>();
  const parsed: JSONRPCMessage[] = [];
  for (const member of members) {
    const read = JSONRPCMessageSchema.safeParse(member);
    if (!read.success) return { messages: undefined, delivered: members, refusals };
    parsed.push(read.data);
  }
  const delivered: unknown[] = [];
  const messages = parsed.map((message) => {
    const screened = screenMessage(message, tools);
    if ('refuse' in screened) {
      refusals.set(JSON.stringify(screened.refuse.id), screened.refuse);
      return message;
    }
    delivered.push(screened.deliver);
    return screened.deliver;
  });
  return { messages, delivered, refusals };
}

/** The tools/call requests among JSON-RPC messages. */
function toolCalls(messages: unknown[]): Array<{ tool: string; arguments: unknown }> {
  const calls: Array<{ tool: string; arguments: unknown }> = [];
  for (const m of messages) {
    if (typeof m !== 'object' || m === null) continue;
    const { method, params } = m as { method?: unknown; params?: { name?: unknown; arguments?: unknown } };
    if (method === 'tools/call' && typeof params?.name === 'string') calls.push({ tool: params.name, arguments: params.arguments });
  }
  return calls;
}

/** The SDK transport's words for a POST it cannot take (a JSON-RPC error without an id). */
const NOT_ACCEPTABLE = 'Not Acceptable: Client must accept both application/json and text/event-stream';
const UNSUPPORTED_MEDIA_TYPE = 'Unsupported Media Type: Content-Type must be application/json';
const INVALID_MESSAGE = 'Parse error: Invalid JSON-RPC message';

/**
 * Answers one POST as the SDK's StreamableHTTPServerTransport did in its
 * stateless JSON-response mode: the Accept and Content-Type checks first (406,
 * 415), then a body of JSON-RPC messages (else 400 -32700); a POST with no
 * request is 202 with no body, else 200 with the answers (the version header,
 * batch size and initialize-in-a-batch rules it also had are judged earlier,
 * in the preHandler hook).
 */
async function answerPost(req: FastifyRequest, reply: FastifyReply, transport: McpPostTransport, screened: ScreenedBody | undefined): Promise<FastifyReply> {
  reply.hijack();
  // Headers set by earlier hooks (the request id, nosniff, referrer policy) would be lost with fastify's reply.
  const headers: Record<string, string | number | string[]> = {};
  for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) headers[name] = value as string | number | string[];
  headers['cache-control'] = 'no-store';
  const send = (status: number, answer?: unknown): FastifyReply => {
    if (answer === undefined) {
      reply.raw.writeHead(status, headers).end();
      return reply;
    }
    const body = JSON.stringify(answer);
    headers['content-type'] = 'application/json';
    headers['content-length'] = Buffer.byteLength(body);
    reply.raw.writeHead(status, headers).end(body);
    return reply;
  };
  const refuse = (status: number, code: number, message: string) => send(status, { jsonrpc: '2.0', error: { code, message }, id: null });
  // The SDK read the headers through the Fetch API, which joins repeated lines with ", ".
  const accept = req.headers.accept;
  if (!accept?.includes('application/json') || !accept.includes('text/event-stream')) return refuse(406, -32000, NOT_ACCEPTABLE);
  if (!isJsonContentType(joinedHeader(req.raw.rawHeaders, 'content-type'))) return refuse(415, -32000, UNSUPPORTED_MEDIA_TYPE);
  const messages = screened?.messages;
  if (!messages) return refuse(400, -32700, INVALID_MESSAGE);
  const requestInfo: RequestInfo = { headers: req.headers };
  requestContexts.set(requestInfo, { requestId: req.id, logger: req.log });
  const auth = (req.raw as AuthenticatedRequest).auth;
  const refusals = screened.refusals;
  try {
    const posted = transport.post(messages, { requestInfo, ...(auth ? { authInfo: auth } : {}) }, (request) =>
      refusals.size > 0 ? refusals.get(JSON.stringify(request.id)) : undefined,
    );
    let answered = false;
    reply.raw.once('close', () => {
      if (!answered) posted.cancel();
    });
    const answers = await posted.answers;
    answered = true;
    // A tool that failed answers 200 with isError (MCP tools spec): the access line says so, or it reads as a success.
    if (answers.some(isToolError)) req.accessLog = { ...req.accessLog, tool_error: true };
    // A batch is answered with an array, even of one (JSON-RPC 2.0 §6; found in review, regress19d: a bare object).
    return send(answers.length === 0 ? 202 : 200, answers.length === 0 ? undefined : answers.length === 1 && !Array.isArray(req.body) ? answers[0] : answers);
  } catch (err) {
    req.log.error({ err: { name: (err as Error)?.name, message: (err as Error)?.message } }, 'MCP request failed');
    if (!reply.raw.headersSent) refuse(500, -32603, 'Internal error');
    return reply;
  }
}

/** Whether a JSON-RPC answer is a tool's result marked as an error. */
function isToolError(answer: unknown): boolean {
  const result = (answer as { result?: { isError?: unknown } } | undefined)?.result;
  return typeof result === 'object' && result !== null && result.isError === true;
}

/** A header's lines joined with ", " as the Fetch API joins them (Node keeps only the first Content-Type). */
function joinedHeader(rawHeaders: readonly string[], name: string): string | undefined {
  let joined: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length === name.length && rawHeaders[i]!.toLowerCase() === name) joined = joined === undefined ? rawHeaders[i + 1]! : `${joined}, ${rawHeaders[i + 1]!}`;
  }
  return joined;
}
