// What every CalendarAgent tool call goes through, whatever the transport:
// the tool's scope is checked against the delegation it acts under, and the
// call is appended to the audit log (a `tool_call` record with the full actor
// chain, the grant, the resource and how it ended). A call that cannot be
// recorded does not return its result: the log is the account of what agents
// did for the user. A call that failed or was refused still says why (it
// carries no calendar data), and that it could not be recorded.
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { auditLogCannotRecord, auditRecord, boundedValue, saysCannotRecord, type AuditSink } from '../resource/audit.js';
import { callerDelegation, missingScopeMessage, type ReauthorizeAdvice } from './delegation.js';
import type { CallerToken, ToolExtra, ToolLogger } from './tool.js';
import type { ToolScopePolicy } from './tool-scopes.js';
import type { AccessTokenClaims } from '../delegation/index.js';

export interface ToolGuardOptions {
  policy: ToolScopePolicy;
  callerToken: CallerToken;
  /** Where tool calls are recorded; none means they are not. */
  audit?: AuditSink;
  /** The resource the record names: the agent's /mcp URL (default: the caller token's audience). */
  resource?: string;
  logger?: ToolLogger;
  /** What a refusal for a missing scope tells the person to do (default: authorize again). */
  reauthorize?: ReauthorizeAdvice;
  /** The call's id, handed to the audit sink with the record (a remote sink sends it as X-Request-Id). */
  requestId?: string;
}

export type ToolHandler<I> = (input: I, extra: ToolExtra) => Promise<CallToolResult>;

export function guardTool<I>(tool: string, options: ToolGuardOptions, handler: ToolHandler<I>): ToolHandler<I> {
  const needed = options.policy.tools[tool] ?? [];
  const run = (input: I, extra: ToolExtra) => withoutCrash(tool, options.logger, () => handler(input, extra));
  return async (input, extra) => {
    GUARDED.add(extra);
    const called = await callerDelegation(extra, options.callerToken);
    // No delegation: the tool itself says so; there is nobody to record the call for.
    if (!called.ok) return run(input, extra);
    const delegation = called.value;
    const refusal = missingScopeMessage(tool, delegation.scopes, needed, options.reauthorize);
    const result = refusal ? errorResult(refusal) : await run(input, extra);
    return recorded(tool, options, delegation.claims, input, result, refusal ? 'refused' : result.isError ? 'error' : 'ok');
  };
}

/** What a caller is told when a tool crashed: fixed, so that nothing of the exception (which may quote the input) leaves the agent. */
export const INTERNAL_TOOL_ERROR = 'The tool failed with an internal error. It was logged at CalendarAgent; try again later, or report it.';

/**
 * The handler's result, or INTERNAL_TOOL_ERROR when it threw. The tools answer every failure they know of (bad input,
 * a refused exchange, the calendar down) with an error result of their own (tool.ts, list-busy.ts): what throws is a
 * fault of the agent's code, not something the caller can mend. Found in review (s35fuzz): the SDK turned the
 * exception into an ordinary error result carrying its raw message, so a crash read as a tool error and its text
 * went to the caller. It is logged at error level by name, code and stack frames, without its message, which may
 * quote the caller's arguments (a time zone, a date); the audit record says `error` with the fixed text.
 */
async function withoutCrash(tool: string, logger: ToolLogger | undefined, call: () => Promise<CallToolResult>): Promise<CallToolResult> {
  try {
    return await call();
  } catch (err) {
    const { name, code, stack } = (err ?? {}) as { name?: unknown; code?: unknown; stack?: unknown };
    const frames = typeof stack === 'string' ? stack.split('\n').filter((line) => /^\s+at /.test(line)).map((line) => line.trim()) : [];
    logger?.error({ tool, err: { name: typeof name === 'string' ? name : typeof err, ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}), frames } }, 'tool crashed');
    return errorResult(INTERNAL_TOOL_ERROR);
  }
}

/** The calls the guard has seen (by their request's `extra`, which the MCP server hands the tool as it is). */
const GUARDED = new WeakSet<ToolExtra>();

/**
 * A tools/call the MCP layer refused before any tool ran (arguments its input schema refuses, or too many of them),
 * recorded as a refused call with the refusal, as guardTool records a missing scope; `result`
 * (that refusal) is what the caller is answered. A call the guard saw is its to record. Found in review (s33audit): a
 * find_slot whose duration was over 64 characters, sent with a valid token, left no record, though every tool call
 * at CalendarAgent is on the audit log.
 */
export async function recordRefusedBeforeTool(tool: string, options: ToolGuardOptions, input: unknown, extra: ToolExtra, result: CallToolResult): Promise<CallToolResult> {
  if (GUARDED.has(extra) || !result.isError) return result;
  const called = await callerDelegation(extra, options.callerToken);
  return called.ok ? recorded(tool, options, called.value.claims, input, result, 'refused') : result;
}

/**
 * `result` once its call is on the audit log (a `tool_call` record with the full actor chain, the grant, the
 * resource and how it ended); a call that cannot be recorded does not return its data.
 */
async function recorded(
  tool: string,
  options: ToolGuardOptions,
  claims: AccessTokenClaims,
  input: unknown,
  result: CallToolResult,
  outcome: 'ok' | 'error' | 'refused',
): Promise<CallToolResult> {
  if (!options.audit) return result;
  try {
    await options.audit(
      auditRecord('tool_call', claims, options.resource ?? audienceOf(claims.aud), {
        tool,
        outcome,
        arguments: boundedValue(input),
        ...(result.isError ? { message: firstText(result) } : {}),
      }),
      options.requestId !== undefined ? { requestId: options.requestId } : undefined,
    );
  } catch (err) {
    options.logger?.warn({ err: { name: (err as Error)?.name, message: (err as Error)?.message } }, 'tool call could not be audited');
    // A full or read-only store is named, and waiting does not mend it (found in review: "Try again shortly" there too;
    // and the note on a failed call named neither).
    const cannotRecord = auditLogCannotRecord(err);
    // Only data must not leave unrecorded. An error or a refusal carries none, and its own message (the backend
    // down, the permission to ask for) is what the person needs; withholding it left only "try again".
    if (result.isError) return withNote(result, unrecordedNote(allText(result), cannotRecord));
    // A record the authorization server refused as it is (400) is refused again: no "try again" (s24).
    const refused = err instanceof Error && err.name === 'AuditRecordRefusedError' ? err.message : undefined;
    const why = cannotRecord !== undefined ? `: ${cannotRecord}.` : refused !== undefined ? `: ${refused}` : '. Try again shortly.';
    return errorResult(`${tool} ran, but the call could not be recorded in the audit log, so its result is withheld${why}`);
  }
  return result;
}

/**
 * A failed call's note that the call could not be recorded: why, when a full or read-only store is the cause, unless
 * its message says that already (the calendar's read, or the token exchange, failed on the same full disk).
 */
function unrecordedNote(message: string, cannotRecord: string | undefined): string {
  if (cannotRecord === undefined) return 'This call could not be recorded in the audit log.';
  if (saysCannotRecord(message, cannotRecord)) return 'This call could not be recorded in the audit log either.';
  return `This call could not be recorded in the audit log: ${cannotRecord}.`;
}

function audienceOf(aud: string | string[]): string {
  return Array.isArray(aud) ? (aud[0] ?? '') : aud;
}

function errorResult(message: string): CallToolResult {
  return { content: [{ type: 'text', text: message }], isError: true };
}

/** An error result with `note` added to its first text (or as one, if it has none). */
function withNote(result: CallToolResult, note: string): CallToolResult {
  const content = result.content ?? [];
  const at = content.findIndex((c) => c.type === 'text');
  if (at < 0) return { ...result, content: [...content, { type: 'text', text: note }] };
  const first = content[at] as { type: 'text'; text: string };
  return { ...result, content: content.map((c, i) => (i === at ? { ...first, text: `${first.text} ${note}` } : c)) };
}

/** What the result's text says, all of it. */
function allText(result: CallToolResult): string {
  return (result.content ?? []).map((c) => (c.type === 'text' ? c.text : '')).join('\n');
}

function firstText(result: CallToolResult): string | undefined {
  const first = result.content?.[0];
  return first && first.type === 'text' ? first.text.slice(0, 500) : undefined;
}
