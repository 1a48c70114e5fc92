// The quick path of find-slot and busy: with a cached, unexpired token, one
// MCP session with CalendarAgent written out by hand — initialize,
// notifications/initialized, tools/call, the minimum the lifecycle allows —
// over node:http, without the SDK. Why: the SDK's Client builds several
// hundred zod schemas as it loads, which costs more than Node's own start-up
// (docs/internals.md, "Start-up of find-slot"). Whatever is not a plain
// answer (no usable token, a refusal, a protocol version we do not speak, a
// lost connection) returns undefined, and the caller runs the full session
// (session.ts), which refreshes, steps up, signs in and says what went wrong;
// a tool's JSON-RPC error and a timeout are final, so the tool is not called
// twice and a hung agent is not waited for twice.
import { canonicalResource } from '../delegation/resource.js';
import { TokenCache, isExpired, tokensFor } from './cache.js';
import { requestTimedOut } from './bounded-fetch.js';
import { ClientError, noAnswerInTime } from './errors.js';
import { answerMessages, postMessage } from './mcp-post.js';
import type { SessionOptions } from './session.js';
import type { ToolResult } from './tool-results.js';

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * The MCP protocol versions this client speaks, newest first: the SDK's
 * (LATEST_PROTOCOL_VERSION and SUPPORTED_PROTOCOL_VERSIONS in its types.js,
 * which a unit test compares with these), written here because importing
 * them would load the SDK's schemas.
 */
export const PROTOCOL_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05', '2024-10-07'] as const;

/** The tool's result, or undefined when the full session must take over. */
export async function quickToolCall(options: SessionOptions, name: string, args: Record<string, unknown>): Promise<ToolResult | undefined> {
  // DELEGATE_TOKEN's refusals get their own message, and a caller's fetchFn must see every request: both take the full session.
  if (options.envToken !== undefined || options.fetchFn !== undefined) return undefined;
  const token = await cachedAccessToken(options);
  if (token === undefined) return undefined;
  const url = new URL(options.agentUrl);
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  const post = async (message: Record<string, unknown>) => {
    const answer = await postMessage(url, JSON.stringify({ jsonrpc: '2.0', ...message }), headers, timeoutMs);
    if (answer.status < 200 || answer.status > 299) return undefined;
    if (answer.sessionId !== undefined) headers['mcp-session-id'] = answer.sessionId;
    return answerMessages(answer);
  };
  try {
    const clientInfo = options.clientInfo ?? { name: 'delegate-cli', version: '0' };
    const init = responseTo(await post({ id: 0, method: 'initialize', params: { protocolVersion: PROTOCOL_VERSIONS[0], capabilities: {}, clientInfo } }), 0);
    const version = (init?.result as { protocolVersion?: unknown } | undefined)?.protocolVersion;
    if (typeof version !== 'string' || !(PROTOCOL_VERSIONS as readonly string[]).includes(version)) return undefined;
    headers['mcp-protocol-version'] = version;
    if ((await post({ method: 'notifications/initialized' })) === undefined) return undefined;
    const call = responseTo(await post({ id: 1, method: 'tools/call', params: { name, arguments: args } }), 1);
    if (call?.error !== undefined) {
      const error = call.error as { code?: unknown; message?: unknown };
      throw new ClientError('TOOL_FAILED', oneLine(`MCP error ${String(error.code)}: ${String(error.message)}`));
    }
    return typeof call?.result === 'object' && call.result !== null ? (call.result as ToolResult) : undefined;
  } catch (error) {
    if (error instanceof ClientError) throw error;
    // node:http rejects with an AbortError whose cause is the reason (it was taken for a lost connection, and the
    // full session waited for the hung agent a second time: found in review, s25faults).
    const timedOut = requestTimedOut(error);
    if (timedOut) throw noAnswerInTime(options.agentUrl, timedOut.ms, timedOut.url, error);
    return undefined;
  }
}

/** The cached access token for the agent, if there is one and it has not expired; a cache that cannot be read is the full session's to report. */
async function cachedAccessToken(options: SessionOptions): Promise<string | undefined> {
  const resource = canonicalResource(options.agentUrl);
  if (!resource) return undefined;
  try {
    const data = await new TokenCache({ files: options.files, now: options.now }).read();
    const issuer = data.discovery[resource]?.authorizationServerUrl;
    const tokens = issuer === undefined ? undefined : tokensFor(data, issuer, resource);
    return tokens && !isExpired(tokens, options.now()) ? tokens.access_token : undefined;
  } catch {
    return undefined;
  }
}

/** The JSON-RPC response with this id among the messages, if any. */
function responseTo(messages: unknown[] | undefined, id: number): { result?: unknown; error?: unknown } | undefined {
  const found = messages?.find((m) => typeof m === 'object' && m !== null && (m as { id?: unknown }).id === id);
  return found as { result?: unknown; error?: unknown } | undefined;
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}
