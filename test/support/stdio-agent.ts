// CalendarAgent over its stdio transport, in this process, on streams a test
// holds (its stdin and stdout), with no delegation to act under: a tool call
// answers that there is none, and nothing is contacted.
import type { Readable, Writable } from 'node:stream';
import { serveAgentOverStdio, type StdioAgent } from '../../src/agent/stdio.js';
import { StdioLineTransport } from '../../src/agent/stdio-transport.js';

export async function stdioAgentWithoutDelegation(options: {
  input: Readable;
  output: Writable;
  lineLimit: number;
  /** Called each time a tool asks for the delegation: once per call that ran. */
  onTokenAsked?: () => void;
}): Promise<{ agent: StdioAgent; transport: StdioLineTransport }> {
  const transport = new StdioLineTransport(options.input, options.output, options.lineLimit);
  const agent = await serveAgentOverStdio({
    issuer: 'http://127.0.0.1:9/',
    calendarUrl: 'http://127.0.0.1:9/calendar',
    clientId: 'agent_test',
    privateKey: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'd', kid: 'k' },
    callerToken: () => {
      options.onTokenAsked?.();
      return undefined;
    },
    transport,
  });
  return { agent, transport };
}
