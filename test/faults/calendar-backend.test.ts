// A calendar backend that is down (its port closed) or slow (a loopback
// server that takes the request and never answers): CalendarAgent, a real
// `delegate serve-agent` process with a short --calendar-timeout, answers
// find_slot with a one-line tool error, and stays up: once the backend is
// back, the next call succeeds in the same process. The CLI's find-slot says
// the same in one line on stderr and exits with code 1.
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { builtModule } from '../e2e/built.js';
import { approveInBrowser, killLeftovers, runCli, startCli, type Running } from '../e2e/run.js';
import { exchangeForCalendar, ready } from './support.js';

let root: string;
let home: string;
let ports: string[];
let calendarPort: number;
let authUrl: string;
let calendarUrl: string;
let agentUrl: string;
let authServer: Running;
let agentServer: Running;
let calendarServer: Running | undefined;
/** The user's access token for CalendarAgent, from `delegate token` (valid for 10 minutes). */
let userToken: string;

/** Starts `delegate serve-calendar` and waits until it has answered one real free/busy read (a cold start may take longer than the agent's 1 s). */
async function startCalendar(): Promise<Running> {
  const run = await ready(startCli(['serve-calendar', '--port', String(calendarPort), '--auth-url', authUrl], home));
  const exchanged = await exchangeForCalendar(home, authUrl, calendarUrl, userToken);
  expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
  const from = new Date().toISOString();
  const to = new Date(Date.now() + 86_400_000).toISOString();
  const read = await fetch(`${calendarUrl}/freebusy?from=${from}&to=${to}`, { headers: { authorization: `Bearer ${String(exchanged.body.access_token)}` } });
  expect(read.status).toBe(200);
  await read.body?.cancel();
  return run;
}

async function stopCalendar(): Promise<void> {
  calendarServer?.child.kill('SIGTERM');
  await calendarServer?.done;
  calendarServer = undefined;
}

/** A calendar backend that describes itself at once but holds every /freebusy request without answering. */
async function startHangingCalendar(): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/.well-known/oauth-protected-resource')) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ resource: calendarUrl, authorization_servers: [authUrl] }));
    }
    // Anything else is held until the server closes.
  });
  await new Promise<void>((resolve) => server.listen(calendarPort, '127.0.0.1', resolve));
  return server;
}

beforeAll(async () => {
  builtModule('cli/main.js');
  root = await mkdtemp(join(tmpdir(), 'delegate-faults-calendar-'));
  home = join(root, 'home');
  const [auth, agent] = [await freePort(), await freePort()];
  calendarPort = await freePort();
  ports = ['--auth-port', String(auth), '--calendar-port', String(calendarPort), '--agent-port', String(agent)];
  authUrl = `http://127.0.0.1:${auth}`;
  calendarUrl = `http://127.0.0.1:${calendarPort}`;
  agentUrl = `http://127.0.0.1:${agent}/mcp`;
  authServer = await ready(startCli(['serve-auth', '--port', String(auth), '--calendar-url', calendarUrl, '--agent-url', agentUrl], home));
  calendarServer = await ready(startCli(['serve-calendar', '--port', String(calendarPort), '--auth-url', authUrl], home));
  agentServer = await ready(
    startCli(['serve-agent', '--port', String(agent), '--auth-url', authUrl, '--calendar-url', calendarUrl, '--calendar-timeout', '1s'], home),
  );
  const login = startCli(['login', '--no-browser', ...ports], home);
  await approveInBrowser(await login.loginUrl);
  expect((await login.done).code).toBe(0);
  const token = await runCli(['token', ...ports], home);
  expect(token.code, token.stderr).toBe(0);
  userToken = token.stdout.trim();
}, 90_000);

afterAll(async () => {
  for (const server of [calendarServer, agentServer, authServer]) server?.child.kill('SIGTERM');
  await Promise.all([calendarServer?.done, agentServer?.done, authServer?.done]);
  killLeftovers();
  if (root) await rm(root, { recursive: true, force: true });
});

/** find_slot through the MCP SDK's client, with the user's token. */
async function callFindSlot(): Promise<CallToolResult> {
  const client = new Client({ name: 'faults-test', version: '0.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(agentUrl), { requestInit: { headers: { Authorization: `Bearer ${userToken}` } } }));
  try {
    return (await client.callTool({ name: 'find_slot', arguments: { duration: '30m' } })) as CallToolResult;
  } finally {
    await client.close();
  }
}

function toolErrorLine(result: CallToolResult): string {
  expect(result.isError).toBe(true);
  const text = (result.content as Array<{ type: string; text: string }>).map((c) => c.text).join('');
  expect(text.split('\n')).toHaveLength(1);
  return text;
}

function expectOneLineError(run: { code: number | null; stdout: string; stderr: string }, message: RegExp): void {
  expect(run.code, run.stderr).toBe(1);
  expect(run.stdout).toBe('');
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
  expect(run.stderr).toMatch(/^delegate: /);
  expect(run.stderr).toMatch(message);
  expect(run.stderr).not.toMatch(/\n\s+at /);
}

const findSlotCli = () => runCli(['find-slot', '--duration', '30m', '--json', ...ports], home);

describe('a calendar backend that is down or slow', () => {
  it('down: a one-line tool error naming the calendar, the CLI exits 1 with that same line, and the agent serves again once it is back', { timeout: 60_000 }, async () => {
    await stopCalendar();
    expect(toolErrorLine(await callFindSlot())).toBe(`The calendar at ${calendarUrl} could not be reached. Try again shortly.`);
    // The CLI goes straight to the agent (no probe on the fast path) and passes on its one line, which names the calendar.
    expectOneLineError(await findSlotCli(), new RegExp(`^delegate: The calendar at ${calendarUrl.replace(/[.]/g, '\\.')} could not be reached\\. Try again shortly\\.\n$`));

    calendarServer = await startCalendar();
    const again = await callFindSlot();
    expect(again.isError, JSON.stringify(again.content)).toBeFalsy();
    expect((again.structuredContent as { found: boolean }).found).toBe(true);
    expect(agentServer.child.exitCode).toBeNull(); // the same agent process throughout
  });

  it('slow: the tool gives up after the configured timeout with a one-line error, so does the CLI, and the next call succeeds once the backend answers', { timeout: 60_000 }, async () => {
    await stopCalendar();
    const hanging = await startHangingCalendar();
    try {
      // The hanging backend never answers: each of these ends only because the agent's timeout does.
      expect(toolErrorLine(await callFindSlot())).toBe('The calendar did not answer within 1 s. Try again shortly.');
      expectOneLineError(await findSlotCli(), /^delegate: The calendar did not answer within 1 s\. Try again shortly\.$/m);
    } finally {
      hanging.closeAllConnections();
      await new Promise((resolve) => hanging.close(resolve));
    }
    calendarServer = await startCalendar();
    const again = await callFindSlot();
    expect(again.isError, JSON.stringify(again.content)).toBeFalsy();
    expect((again.structuredContent as { found: boolean }).found).toBe(true);
    expect(agentServer.child.exitCode).toBeNull();
  });
});
