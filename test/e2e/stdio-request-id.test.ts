// A request id across the stdio agent's onward requests: `delegate
// serve-agent --stdio` has no incoming request (and so no X-Request-Id) to
// pass on, so it gives each tool call a fresh id and sends it as X-Request-Id
// on the call's token exchange (/token), calendar read (/freebusy) and audit
// report (/audit): the servers' log lines of one call carry one id, and
// another call's another (test/http/request-id-hops.test.ts is the HTTP
// case). Found by the s18 helpers: each reached the AS and the backend with a
// fresh, unrelated id. The built CLI: `delegate serve` logging at debug, the
// stdio agent spawned by the real MCP SDK client.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { approveInBrowser, connectStdioAgent, killLeftovers, startCli, startServer } from './run.js';

type Line = { reqId?: string; msg?: string; req?: { method?: string; path?: string } };

let home: string;
let ports: string[];

beforeEach(async () => {
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-stdio-reqid-')), 'home');
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
});

afterEach(async () => {
  killLeftovers();
  await rm(join(home, '..'), { recursive: true, force: true });
});

describe('serve-agent --stdio and request ids', () => {
  it('each tool call’s exchange, calendar read and audit report carry one id of its own', { timeout: 90_000 }, async () => {
    const serve = await startServer(['serve', '--log-level', 'debug', ...ports], home);
    const login = startCli(['login', '--no-browser', ...ports], home);
    await approveInBrowser(await login.loginUrl);
    expect((await login.done).code).toBe(0);

    const { client, stderr: agentStderr } = await connectStdioAgent(ports, home, 'stdio-request-id-test');
    const before = serve.stderr().length;
    try {
      for (let i = 0; i < 2; i++) {
        const result = await client.callTool({ name: 'find_slot', arguments: { duration: '30m' } }, undefined, { timeout: 60_000 });
        expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
      }
    } finally {
      await client.close();
    }
    serve.child.kill('SIGTERM');
    const logged = (await serve.done).stderr
      .slice(before)
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Line)
      .filter((l) => l.msg === 'incoming request');
    const idsOf = (method: string, path: string) => logged.filter((l) => l.req?.method === method && l.req?.path === path).map((l) => l.reqId);

    const reads = idsOf('GET', '/freebusy');
    expect(reads, agentStderr()).toHaveLength(2);
    const [first, second] = reads as [string, string];
    expect(first).toEqual(expect.any(String));
    expect(second).toEqual(expect.any(String));
    expect(first).not.toBe(second);
    // The first call exchanges the user's token (the second finds the calendar token in the agent's cache), and both report.
    expect(idsOf('POST', '/token')).toContain(first);
    expect(idsOf('POST', '/audit')).toEqual([first, second]);
  });
});
