// CalendarAgent as an MCP server, independent of how it is reached: the HTTP
// endpoint builds one for all its callers, each call acting under the
// caller's verified token, and a stdio transport one for the process with the
// user's cached token (issue 5). Either way the tool acts under the token the
// call carries and never under one of its own.
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  CallToolRequestSchema,
  InitializeRequestSchema,
  LATEST_PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
  type CallToolRequest,
  type CallToolResult,
} from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { JWK } from 'jose';
import { z } from 'zod';
import { canonicalResource } from '../delegation/index.js';
import type { AuditSink } from '../resource/audit.js';
import { resendingFetch, type ServersGone } from '../client/servers-gone.js';
import { DEFAULT_CALENDAR_TIMEOUT_MS } from './calendar-client.js';
import { createTokenExchanger, type TokenExchanger } from './exchange.js';
import { guardTool, recordRefusedBeforeTool, type ToolGuardOptions, type ToolHandler } from './guard.js';
import type { ReauthorizeAdvice } from './delegation.js';
import { createListBusyHandler, listBusyInputShape, listBusyOutputShape } from './list-busy.js';
import { FIND_SLOT_TOOL, createFindSlotHandler, findSlotInputShape, findSlotOutputShape, type CallerToken, type FindSlotDeps, type ToolExtra, type ToolLogger } from './tool.js';
import { AGENT_SCOPE_POLICY, LIST_BUSY_TOOL } from './tool-scopes.js';
import { AGENT_RESOURCE_NAME } from './metadata.js';

export const AGENT_SERVER_INFO = Object.freeze({ name: 'calendar-agent', title: AGENT_RESOURCE_NAME, version: '0.1.0' });

/** Tools only, and a list that never changes. */
const CAPABILITIES = Object.freeze({ tools: Object.freeze({ listChanged: false }) });

const INSTRUCTIONS =
  "CalendarAgent finds free time in the user's calendar. It sees only when the user is busy, never what their events are. " +
  "Call find_slot with a duration (for example 30m); it searches the user's working hours (by default Monday to Friday, 09:00 to 17:00) " +
  "in the next 7 days, in the calendar owner's time zone, unless you give a window or a zone. " +
  'It also takes working hours, a step, buffers, a minimum notice, a limit and the calendars to count. ' +
  'list_busy lists the busy times of a window, without details; it needs its own permission.';

/** What a call needs of the request it came in (over HTTP): its id, sent on the call's onward requests, and its logger. */
export interface CallContext {
  requestId: string;
  /** Its lines carry the request's id (reqId). */
  logger: ToolLogger;
}

/** What the agent's tools need; the same for every server the agent builds, whatever the transport. */
export interface AgentMcpDeps extends FindSlotDeps {
  /** The agent's /mcp URL, named as the resource in audit records (default: the caller token's audience). */
  resourceUrl?: string;
  /** Where every tool call is recorded; none means they are not. */
  audit?: AuditSink;
  /**
   * For a server that answers many callers (over HTTP, one server for every request): the request each call came
   * in, whose id and logger the call uses. The server then also keeps nothing of an initialize request: what one
   * client says of itself is never known while another's requests are answered.
   */
  callContext?: (extra: ToolExtra) => CallContext | undefined;
}

export interface AgentRuntimeOptions {
  /** The authorization server. */
  issuer: string;
  /** The calendar backend (exchange target). */
  calendarUrl: string;
  /** The agent's client id at the AS, and its ES256 private JWK with kid. */
  clientId: string;
  privateKey: JWK;
  /** The delegation each call acts under: `bearerCallerToken` over HTTP, the user's cached token over stdio. */
  callerToken: CallerToken;
  now?: () => number;
  fetchFn?: typeof fetch;
  calendarTimeoutMs?: number;
  exchangeTimeoutMs?: number;
  logger?: ToolLogger;
  /** A token exchanger to share or to use instead of building one. */
  exchanger?: TokenExchanger;
  /** The agent's /mcp URL, for audit records. */
  resourceUrl?: string;
  /** Where every tool call is recorded (Store.appendAudit in the CLI). */
  audit?: AuditSink;
  /**
   * Told when the authorization server or the calendar backend refuses the
   * connection (over stdio: servers another process started have gone with
   * it): brings them back, and the exchange or the read is sent again.
   */
  serversGone?: ServersGone;
  /** What refusals tell the person to do to authorize again (over stdio: the `delegate login` to run). */
  reauthorize?: ReauthorizeAdvice;
}

/**
 * The tools' dependencies from the agent's settings. Build them once per
 * process and pass them to createAgentMcpServer for each server, so the
 * exchange cache is shared.
 */
export function agentMcpDeps(options: AgentRuntimeOptions): AgentMcpDeps {
  const calendarUrl = canonicalResource(options.calendarUrl);
  if (!calendarUrl) throw new Error(`The calendar URL ${options.calendarUrl} is not an absolute http(s) URL.`);
  const now = options.now ?? Date.now;
  const exchangeFetch = options.serversGone ? (resendingFetch(options.fetchFn ?? ((url, init) => fetch(url, init)), options.serversGone) as typeof fetch) : options.fetchFn;
  return {
    calendarUrl,
    exchanger:
      options.exchanger ??
      createTokenExchanger({
        issuer: options.issuer,
        clientId: options.clientId,
        privateKey: options.privateKey,
        now,
        ...(exchangeFetch ? { fetchFn: exchangeFetch } : {}),
        ...(options.exchangeTimeoutMs !== undefined ? { timeoutMs: options.exchangeTimeoutMs } : {}),
      }),
    // The guard and the tool both ask for the call's token: ask the source once per call.
    callerToken: oncePerCall(options.callerToken),
    now,
    ...(options.fetchFn ? { fetchFn: options.fetchFn } : {}),
    calendarTimeoutMs: options.calendarTimeoutMs ?? DEFAULT_CALENDAR_TIMEOUT_MS,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.resourceUrl ? { resourceUrl: options.resourceUrl } : {}),
    ...(options.audit ? { audit: options.audit } : {}),
    ...(options.serversGone ? { serversGone: options.serversGone } : {}),
    ...(options.reauthorize ? { reauthorize: options.reauthorize } : {}),
  };
}

function guardOptions(deps: AgentMcpDeps): ToolGuardOptions {
  return {
    policy: AGENT_SCOPE_POLICY,
    callerToken: deps.callerToken,
    ...(deps.resourceUrl ? { resource: deps.resourceUrl } : {}),
    ...(deps.audit ? { audit: deps.audit } : {}),
    ...(deps.logger ? { logger: deps.logger } : {}),
    ...(deps.reauthorize ? { reauthorize: deps.reauthorize } : {}),
    ...(deps.requestId !== undefined ? { requestId: deps.requestId } : {}),
  };
}

/**
 * A tool's handler built for each call, with the id of the request it came in (over HTTP: callContext; else given
 * in deps), or else (over stdio: no incoming request) a fresh id, which the call's exchange, calendar read and audit
 * report send as X-Request-Id and its warnings carry as reqId, so that the servers' lines of one call can be found
 * together. Found by the s18 helpers: the stdio agent's onward requests reached the AS and the backend with fresh,
 * unrelated ids.
 */
function perCall<I>(deps: AgentMcpDeps, build: (deps: AgentMcpDeps) => ToolHandler<I>): ToolHandler<I> {
  if (deps.requestId !== undefined) return build(deps);
  return (input, extra) => {
    const context = deps.callContext?.(extra);
    if (context) return build({ ...deps, ...context })(input, extra);
    const requestId = randomUUID();
    const logger = deps.logger;
    const tagged = (level: keyof ToolLogger) => (obj: object, msg: string) => logger![level]({ ...obj, reqId: requestId }, msg);
    const forCall: AgentMcpDeps = { ...deps, requestId, ...(logger ? { logger: { warn: tagged('warn'), error: tagged('error') } } : {}) };
    return build(forCall)(input, extra);
  };
}

function oncePerCall(source: CallerToken): CallerToken {
  const seen = new WeakMap<ToolExtra, ReturnType<CallerToken>>();
  return (extra) => {
    if (!seen.has(extra)) seen.set(extra, source(extra));
    return seen.get(extra)!;
  };
}

/**
 * One JSON Schema validator for every server the agent builds. The SDK would
 * otherwise build a new Ajv instance (with its formats) for each server, that
 * is for each HTTP request, which was a tenth of the agent's time per call; it
 * only validates elicitation answers, which the agent never asks for.
 */
let sharedValidator: AjvJsonSchemaValidator | undefined;

/**
 * The tools' argument and result schemas as zod objects, built once. Given a
 * raw shape, the SDK builds a new object schema at each registration, that is
 * for each HTTP request, and zod compiles a new schema's parser again on its
 * first use.
 */
const FIND_SLOT_INPUT = z.object(findSlotInputShape);
const FIND_SLOT_OUTPUT = z.object(findSlotOutputShape);
const LIST_BUSY_INPUT = z.object(listBusyInputShape);
const LIST_BUSY_OUTPUT = z.object(listBusyOutputShape);

export function createAgentMcpServer(deps: AgentMcpDeps): McpServer {
  sharedValidator ??= new AjvJsonSchemaValidator();
  const server = new McpServer(AGENT_SERVER_INFO, {
    jsonSchemaValidator: sharedValidator,
    instructions: INSTRUCTIONS,
    // No capabilities here: the SDK would set its tools handlers at once, before they can be wrapped (below); they are
    // registered once the tools are.
    // The tool takes four short strings; anything much larger is abuse.
    maxToolInputElements: 64,
  });
  const findSlot = perCall(deps, (d) => guardTool(FIND_SLOT_TOOL, guardOptions(d), createFindSlotHandler(d)));
  const listBusy = perCall(deps, (d) => guardTool(LIST_BUSY_TOOL, guardOptions(d), createListBusyHandler(d)));
  // The SDK sets its tools/call handler at the first registerTool (with no tools capability given to its constructor); it is wrapped as it is set, so that the calls it
  // refuses before a tool runs are recorded too (recordRefusedBeforeTool). setRequestHandler is public, the handler
  // is not; the server's own method is back once both tools are registered.
  const protocol = server.server as unknown as { setRequestHandler: (schema: unknown, handler: SdkToolCallHandler) => void };
  let wrapped = false;
  protocol.setRequestHandler = (schema, handler) => {
    wrapped ||= schema === CallToolRequestSchema;
    Object.getPrototypeOf(protocol).setRequestHandler.call(protocol, schema, schema === CallToolRequestSchema ? refusalsRecorded(deps, handler) : handler);
  };
  server.registerTool(
    FIND_SLOT_TOOL,
    {
      title: 'Find a free slot',
      description:
        "Finds the first free time slots of the given duration in the user's calendar, during working hours. " +
        'Returns the slots with their time zone, and says so when there is none.',
      inputSchema: FIND_SLOT_INPUT,
      outputSchema: FIND_SLOT_OUTPUT,
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    },
    (input, extra) => findSlot(input, extra),
  );
  server.registerTool(
    LIST_BUSY_TOOL,
    {
      title: 'List busy times',
      description:
        'Lists when the user is busy in a window (merged busy times, earliest first), without saying what the events are. ' +
        'Needs the busy:read permission.',
      inputSchema: LIST_BUSY_INPUT,
      outputSchema: LIST_BUSY_OUTPUT,
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    },
    (input, extra) => listBusy(input, extra),
  );
  delete (protocol as { setRequestHandler?: unknown }).setRequestHandler;
  if (!wrapped) throw new Error('The MCP SDK did not set its tools/call handler when the tools were registered: calls it refuses would go unrecorded.');
  // registerTool merges `tools: { listChanged: true }` into the capabilities, whatever the constructor
  // said. The tool list never changes, and stateless /mcp has no stream to send the notification on.
  server.server.registerCapabilities(CAPABILITIES);
  if (deps.callContext) answerInitializeStatelessly(server);
  return server;
}

type SdkToolCallHandler = (request: CallToolRequest, extra: ToolExtra) => Promise<CallToolResult>;

/** The SDK's tools/call handler, and a refused call's record where the guard of a tool did not make one. */
function refusalsRecorded(deps: AgentMcpDeps, handler: SdkToolCallHandler): SdkToolCallHandler {
  return async (request, extra) => {
    const result = await handler(request, extra);
    if (!result.isError) return result;
    const tool = request.params.name.slice(0, 200);
    return perCall(deps, (d) => (input, ex) => recordRefusedBeforeTool(tool, guardOptions(d), input, ex, result))(request.params.arguments, extra);
  };
}

/**
 * The SDK's answer to initialize (the version asked for when it supports it,
 * else its latest; the capabilities, the server's name and the instructions),
 * without what its own handler also does: keep the client's capabilities and
 * name on the server, for the session. A server that answers many callers has
 * no session; read later, they would be another caller's.
 */
function answerInitializeStatelessly(server: McpServer): void {
  server.server.setRequestHandler(InitializeRequestSchema, (request) => ({
    protocolVersion: SUPPORTED_PROTOCOL_VERSIONS.includes(request.params.protocolVersion) ? request.params.protocolVersion : LATEST_PROTOCOL_VERSION,
    capabilities: CAPABILITIES,
    serverInfo: AGENT_SERVER_INFO,
    instructions: INSTRUCTIONS,
  }));
}
