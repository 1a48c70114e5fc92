// Which scope each of CalendarAgent's tools needs, and what a client should
// ask for first. The HTTP endpoint refuses a tools/call whose scope the token
// lacks with the MCP authorization spec's scope challenge (403
// insufficient_scope) before the tool runs; the tools check again for
// transports without that gate (stdio). Pure.
import { SCOPE_BUSY_READ, SCOPE_FIND_SLOT, missingFrom } from '../delegation/index.js';
import { FIND_SLOT_TOOL } from './tool.js';

export const LIST_BUSY_TOOL = 'list_busy';

export interface ToolScopePolicy {
  /** Every scope of the agent; a token must hold at least one. */
  supported: readonly string[];
  /** What a client asks for the first time (named in 401 challenges and as the protected resource metadata's scopes_supported, so step-up asks for the rest only when needed). */
  initial: readonly string[];
  /** The scopes each tool needs. */
  tools: Readonly<Record<string, readonly string[]>>;
}

export const AGENT_SCOPE_POLICY: ToolScopePolicy = Object.freeze({
  supported: Object.freeze([SCOPE_FIND_SLOT, SCOPE_BUSY_READ]),
  initial: Object.freeze([SCOPE_FIND_SLOT]),
  tools: Object.freeze({
    [FIND_SLOT_TOOL]: Object.freeze([SCOPE_FIND_SLOT]),
    [LIST_BUSY_TOOL]: Object.freeze([SCOPE_BUSY_READ]),
  }),
});

/**
 * The scopes a tool needs; none for a name that is no tool of the policy.
 * Own entries only: a caller names the tool, and `toString` or `constructor`
 * must not find Object.prototype's.
 */
export function toolScopes(policy: ToolScopePolicy, tool: string): readonly string[] {
  return Object.hasOwn(policy.tools, tool) ? policy.tools[tool]! : [];
}

/** The scopes `tools` need that `held` lacks, in a stable order. */
export function missingToolScopes(policy: ToolScopePolicy, tools: readonly string[], held: readonly string[]): string[] {
  const needed = [...new Set(tools.flatMap((t) => toolScopes(policy, t)))];
  return missingFrom(needed, held);
}

/**
 * The scope a step-up challenge names (MCP authorization, "Scope Challenge
 * Handling", the recommended approach): the token's scopes at this agent
 * together with the ones the request needs, so re-authorizing loses nothing.
 */
export function challengeScope(policy: ToolScopePolicy, held: readonly string[], needed: readonly string[]): string {
  const relevant = held.filter((s) => policy.supported.includes(s));
  const all = new Set([...relevant, ...needed]);
  // The agent's own order, so the same need always reads the same.
  return [...policy.supported.filter((s) => all.has(s)), ...[...all].filter((s) => !policy.supported.includes(s))].join(' ');
}
