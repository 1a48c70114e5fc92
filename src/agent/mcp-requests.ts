// What CalendarAgent takes of the requests it serves, judged the same way on
// both of its transports (Streamable HTTP and stdio) before the MCP SDK sees
// a message. The SDK (1.32) answers a request that fails its method's schema
// with -32603 and a zod dump, an unknown tool with a successful result
// (isError), any request carrying task metadata with -32603 ("does not
// support task creation"), and a tools/list cursor with the whole list. Here:
// - task metadata is dropped from every request: the agent declares no tasks
//   capability, and MCP 2025-11-25 (Tasks, Behavior Requirements) says such a
//   receiver MUST process the request normally, ignoring it;
// - initialize, tools/list and tools/call are checked against the SDK's own
//   schemas: one that fails is -32602 Invalid params (JSON-RPC 2.0 §5.1; MCP
//   2025-11-25 Tools, Error Handling: a malformed request is a protocol error);
// - a tools/call for a name that is no own key of the agent's tool table is
//   -32602 "Unknown tool: <name>" (MCP Tools, Error Handling, from 2024-11-05
//   on, whose example this is);
// - a tools/list with a cursor is -32602: the agent lists every tool at once
//   and never issues a nextCursor, so no cursor is one it gave (MCP
//   Pagination: invalid cursors SHOULD get -32602).
// None of these rules differs between the protocol versions the SDK supports,
// so none needs the session's version (batchProblem, which does, is apart).
import {
  CallToolRequestSchema,
  InitializeRequestSchema,
  ListToolsRequestSchema,
  type JSONRPCErrorResponse,
  type JSONRPCMessage,
  type JSONRPCRequest,
} from '@modelcontextprotocol/sdk/types.js';

const INVALID_PARAMS = -32602;

/** The longest tool name or parameter path quoted back, in code points. */
const MAX_QUOTED = 64;

/** The methods whose params are checked here, by the SDK's schema for each. */
const SCHEMAS = {
  initialize: InitializeRequestSchema,
  'tools/list': ListToolsRequestSchema,
  'tools/call': CallToolRequestSchema,
} as const;

/** What to do with one message: hand it (perhaps rewritten) to the SDK, or answer it with this error. */
export type ScreenedMessage = { deliver: JSONRPCMessage } | { refuse: JSONRPCErrorResponse };

/**
 * One JSON-RPC message as the agent takes it. `tools` is the agent's tool
 * table: a name is a tool only if it is an own key of it (so `toString` or
 * `__proto__` never finds Object.prototype's). Notifications and responses
 * pass unchanged.
 */
export function screenMessage(message: JSONRPCMessage, tools: Readonly<Record<string, unknown>>): ScreenedMessage {
  if (!isRequest(message)) return { deliver: message };
  const request = withoutTaskMetadata(message);
  const schema = Object.hasOwn(SCHEMAS, request.method) ? SCHEMAS[request.method as keyof typeof SCHEMAS] : undefined;
  if (!schema) return { deliver: request };
  const parsed = schema.safeParse(request);
  if (!parsed.success) return refuse(request, `Invalid params for ${request.method}: ${problemOf(request, parsed.error.issues[0])}.`);
  const params = request.params as Record<string, unknown> | undefined;
  if (request.method === 'tools/call' && !Object.hasOwn(tools, params!.name as string)) {
    return refuse(request, `Unknown tool: ${quoted(params!.name as string)}`);
  }
  if (request.method === 'tools/list' && params?.cursor !== undefined) {
    return refuse(request, 'Invalid params for tools/list: unknown cursor; this server lists every tool in one page and issues no cursors.');
  }
  return { deliver: request };
}

function isRequest(message: JSONRPCMessage): message is JSONRPCRequest {
  return 'method' in message && 'id' in message;
}

/** The request without `params.task`, or the request itself when it carries none. */
function withoutTaskMetadata(request: JSONRPCRequest): JSONRPCRequest {
  const params = request.params;
  if (typeof params !== 'object' || params === null || Array.isArray(params) || !Object.hasOwn(params, 'task')) return request;
  const { task: _ignored, ...rest } = params as Record<string, unknown>;
  return { ...request, params: rest };
}

interface Issue {
  path: readonly PropertyKey[];
  expected?: unknown;
}

/** What is wrong, in a few words: where, and whether missing or of the wrong kind (never the schema library's dump). */
function problemOf(request: JSONRPCRequest, issue: Issue | undefined): string {
  if (!issue || issue.path.length === 0) return 'the request does not fit its schema';
  const where = quoted(issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replace(/\.\[/g, '['));
  let value: unknown = request;
  for (const key of issue.path) value = typeof value === 'object' && value !== null && Object.hasOwn(value, key) ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  const expected = typeof issue.expected === 'string' ? (issue.expected === 'record' ? 'object' : issue.expected) : undefined;
  if (value === undefined) return `${where} is missing${expected ? ` (expected ${article(expected)})` : ''}`;
  return expected ? `${where} must be ${article(expected)}` : `${where} is not valid`;
}

function article(kind: string): string {
  return /^[aeiou]/.test(kind) ? `an ${kind}` : `a ${kind}`;
}

/**
 * A caller's text made printable and short: control, format (bidi
 * overrides), private-use and unpaired surrogate code points written as
 * \u{…}, and at most MAX_QUOTED code points kept.
 */
function quoted(text: string): string {
  const points = [...text];
  const shown = points
    .slice(0, MAX_QUOTED)
    .map((c) => (/\p{C}/u.test(c) ? `\\u{${c.codePointAt(0)!.toString(16)}}` : c))
    .join('');
  return points.length > MAX_QUOTED ? `${shown}…` : shown;
}

function refuse(request: JSONRPCRequest, message: string): ScreenedMessage {
  return { refuse: { jsonrpc: '2.0', id: request.id, error: { code: INVALID_PARAMS, message } } };
}
