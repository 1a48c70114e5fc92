// guardTool (src/agent/guard.ts) when the tool it guards throws: the caller
// gets the guard's fixed text, never the exception's own message (which may
// quote the caller's arguments); the crash is logged at error level by name
// and stack frames, without that message; and the call is on the audit log as
// an error. A tool's own error result passes through as it is.
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { describe, expect, it } from 'vitest';
import { INTERNAL_TOOL_ERROR, guardTool } from '../../src/agent/guard.js';
import { FIND_SLOT_TOOL, type ToolExtra } from '../../src/agent/tool.js';
import { AGENT_SCOPE_POLICY } from '../../src/agent/tool-scopes.js';
import type { ResourceAuditRecord } from '../../src/resource/audit.js';

const claims = { iss: 'http://127.0.0.1:1', sub: 'usr_1', aud: 'http://127.0.0.1:2/mcp', client_id: 'cli_1', grant_id: 'grt_1', jti: 'jti-1', scope: 'slots:find busy:read', exp: 0, iat: 0 };
const extra = { authInfo: { token: 'the-token', clientId: 'cli_1', scopes: [], extra: { claims } } } as unknown as ToolExtra;

/** A guarded find_slot whose handler is `handler`, with the audit records and log lines it made. */
function guarded(handler: () => Promise<CallToolResult>) {
  const records: ResourceAuditRecord[] = [];
  const lines: Array<{ level: string; obj: object; msg: string }> = [];
  const logger = { warn: (obj: object, msg: string) => void lines.push({ level: 'warn', obj, msg }), error: (obj: object, msg: string) => void lines.push({ level: 'error', obj, msg }) };
  const tool = guardTool(FIND_SLOT_TOOL, { policy: AGENT_SCOPE_POLICY, callerToken: (e) => e.authInfo?.token, audit: async (record) => void records.push(record), logger }, handler);
  return { call: (input: unknown) => tool(input, extra), records, lines };
}

describe('a tool that throws (found in review s35fuzz: the SDK answered with the exception’s own message, as an ordinary tool error)', () => {
  it('answers the fixed internal-error text, logs the crash at error level without its message, and records the call as an error', async () => {
    const secret = 'Invalid time zone specified: Europe/Secret-Argument';
    const { call, records, lines } = guarded(async () => {
      throw new RangeError(secret);
    });
    const result = await call({ duration: '30m', timeZone: 'Europe/Secret-Argument' });
    expect(result).toEqual({ content: [{ type: 'text', text: INTERNAL_TOOL_ERROR }], isError: true });
    expect(lines.map((line) => [line.level, line.msg])).toEqual([['error', 'tool crashed']]);
    const logged = JSON.stringify(lines[0]!.obj);
    expect(logged).toContain('RangeError');
    expect(logged).toMatch(/guard\.test\.ts/); // a stack frame
    expect(logged).not.toContain('Secret-Argument');
    expect(records).toHaveLength(1);
    expect(records[0]!.event).toBe('tool_call');
    expect(records[0]!.detail).toMatchObject({ tool: FIND_SLOT_TOOL, outcome: 'error', message: INTERNAL_TOOL_ERROR });
  });

  it('a value thrown that is no Error: the same fixed text, logged by its type', async () => {
    const { call, lines } = guarded(() => Promise.reject('a string with Secret-Argument'));
    expect((await call({})).content).toEqual([{ type: 'text', text: INTERNAL_TOOL_ERROR }]);
    expect(JSON.stringify(lines[0]!.obj)).not.toContain('Secret-Argument');
  });

  it('the tool’s own error result is passed on as it is (the control)', async () => {
    const own: CallToolResult = { content: [{ type: 'text', text: 'duration must be at least 1 minute.' }], isError: true };
    const { call, records, lines } = guarded(async () => own);
    expect(await call({ duration: '0m' })).toEqual(own);
    expect(lines).toEqual([]);
    expect(records[0]!.detail).toMatchObject({ outcome: 'error', message: 'duration must be at least 1 minute.' });
  });
});
