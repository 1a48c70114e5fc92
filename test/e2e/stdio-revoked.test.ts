// Found in review s27mcp (finding 3): over stdio, the first tool call after
// `delegate grants revoke` answered only "The calendar refused access: The
// delegation behind this token has been revoked.", from the calendar token
// the agent had cached, with no word of how to recover; only the next call,
// whose exchange the authorization server refused, said to run
// `delegate login`. Now the first refused call exchanges once more and gives
// that advice. The real stdio agent, spawned by the MCP SDK's
// StdioClientTransport; the grant revoked with the CLI.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connectStdioAgent, loginApproved, runCli, serveInNewHome, stopServeAndRemove, type Running } from './run.js';

let home: string | undefined;
let ports: string[];
let serve: Running | undefined;

beforeEach(async () => {
  ({ home, ports, serve } = await serveInNewHome('delegate-e2e-stdio-revoked-'));
}, 60_000);

afterEach(async () => {
  await stopServeAndRemove(serve, home);
});

describe('serve-agent --stdio after `delegate grants revoke`', () => {
  it('answers the first call with the advice to run `delegate login`, as every later call does', async () => {
    await loginApproved(ports, home!);
    const agent = await connectStdioAgent(ports, home!, 'stdio-revoked-test');
    const call = () => agent.client.callTool({ name: 'find_slot', arguments: { duration: '30m' } }, undefined, { timeout: 60_000 });
    const textOf = (result: Awaited<ReturnType<typeof call>>) => (result.content as Array<{ type: string; text: string }>).map((c) => c.text).join('\n');
    try {
      // A call that works: the agent now holds a calendar token exchanged for this delegation.
      const before = await call();
      expect(before.isError, JSON.stringify(before.content)).toBeFalsy();

      const grants = JSON.parse((await runCli(['grants', 'list', '--json'], home!)).stdout) as Array<{ id: string }>;
      expect(grants.length).toBeGreaterThan(0);
      for (const g of grants) expect((await runCli(['grants', 'revoke', g.id], home!)).code).toBe(0);

      const first = await call();
      expect(first.isError).toBe(true);
      const firstText = textOf(first);
      expect(firstText).toMatch(/would not let CalendarAgent act on this delegation/);
      expect(firstText).toMatch(/Run `.*delegate login.*` in a terminal, then ask again\./);
      expect(firstText).toContain(`DELEGATE_HOME=${home}`);
      // The next call says the same.
      const second = await call();
      expect(second.isError).toBe(true);
      expect(textOf(second)).toBe(firstText);
      expect(agent.stderr()).not.toMatch(/eyJ[\w-]+\.[\w-]+\./); // no token in the agent's log
    } finally {
      await agent.client.close();
    }
  }, 120_000);
});

