// An --agent-url naming CalendarAgent by another loopback name than the one it is published at (localhost for
// 127.0.0.1): CalendarAgent answers 421 naming its URL (DNS rebinding, src/agent/server.ts), and the CLI says what it
// said, in one line. Found in review (s30ux): the line carried the SDK's wording and the raw JSON body around it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, serveInNewHome, stopServeAndRemove, type Running } from './run.js';

let home: string;
let ports: string[];
let serve: Running;

beforeAll(async () => {
  ({ home, ports, serve } = await serveInNewHome('delegate-e2e-misnamed-'));
}, 60_000);
afterAll(() => stopServeAndRemove(serve, home));

describe('an --agent-url naming CalendarAgent by another loopback name', () => {
  it.each([['login', '--no-browser'], ['find-slot', '--duration', '30m', '--no-browser']])('%s: one line with the URL it is published at, exit 1', async (...command) => {
    const misnamed = `http://localhost:${ports[5]}/mcp`;
    const run = await runCli([...command, '--agent-url', misnamed], home);
    expect([run.code, run.stdout]).toEqual([1, '']);
    expect(run.stderr).toBe(`delegate: CalendarAgent at ${misnamed} answered HTTP 421: CalendarAgent is published as http://127.0.0.1:${ports[5]}/mcp; connect to that URL.\n`);
  });
});
