// A request id across hops: an MCP call to CalendarAgent with X-Request-Id
// makes the agent's onward requests (the token exchange at the AS's /token,
// the read at the calendar backend's /freebusy) carry the same id, so the
// three servers' log lines of one call can be found together. Found in review
// "logs-faults": the AS and the backend logged fresh UUIDs, and nothing linked
// an agent's warning to the backend's line that explains it. The three real
// servers run in this process, logging at debug, with the real MCP SDK client.
// And the backend's lines about the owner's config.json (a key it does not
// read; a file it cannot use), which a request finds: found in review
// (s25faults), they were written with the server's logger, without the
// request's reqId.
import { rm, writeFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/http/logging.js';
import { runAuthorizationFlow, startTestStack, type FlowSecrets, type TestStack } from '../support/stack.js';

type Line = { reqId?: string; msg?: string; level?: number; req?: { path?: string; method?: string } };

let text = '';
const lines = (): Line[] =>
  text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Line);
let stack: TestStack;
let flow: FlowSecrets;

beforeAll(async () => {
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  stack = await startTestStack({ logger: createLogger('debug', stream) });
  flow = await runAuthorizationFlow(stack);
}, 30_000);

afterAll(async () => {
  await stack?.close();
});

/** One find_slot call through the real MCP client, every HTTP request of it sent with `requestId`. */
async function findSlotWith(requestId: string): Promise<CallToolResult> {
  const client = new Client({ name: 'request-id-test', version: '0.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(stack.urls.agentUrl), { requestInit: { headers: { Authorization: `Bearer ${flow.accessToken}`, 'X-Request-Id': requestId } } }),
  );
  try {
    return (await client.callTool({ name: 'find_slot', arguments: { duration: '30m' } })) as CallToolResult;
  } finally {
    await client.close();
  }
}

/** The paths of the incoming requests the servers logged under `reqId`. */
const pathsLoggedAs = (reqId: string) => lines().filter((l) => l.reqId === reqId && l.msg === 'incoming request').map((l) => `${l.req?.method} ${l.req?.path}`);

describe('a request id across the agent’s onward requests', () => {
  it('the caller’s X-Request-Id is on the AS’s exchange line and the calendar backend’s read line', async () => {
    const found = await findSlotWith('hop-check-1');
    expect(found.isError).toBeFalsy();
    expect(pathsLoggedAs('hop-check-1')).toEqual(expect.arrayContaining(['POST /mcp', 'POST /token', 'GET /freebusy']));
  });

  it('an id the agent does not take (not a safe token) is replaced by the agent’s own, and that one goes on', async () => {
    const before = lines().length;
    const found = await findSlotWith('has space');
    expect(found.isError).toBeFalsy();
    const fresh = lines().slice(before);
    expect(fresh.some((l) => l.reqId === 'has space')).toBe(false);
    const read = fresh.find((l) => l.msg === 'incoming request' && l.req?.path === '/freebusy');
    expect(read?.reqId).toEqual(expect.any(String));
    // The read's id is that of the /mcp request whose tool call made it.
    expect(pathsLoggedAs(read!.reqId!)).toEqual(expect.arrayContaining(['POST /mcp', 'GET /freebusy']));
  });
});

describe('the backend’s lines about the owner’s settings, found by a request', () => {
  afterAll(async () => {
    await rm(stack.paths.config, { force: true });
  });

  it('a key config.json has that is not read: the warning carries the request’s reqId', async () => {
    await writeFile(stack.paths.config, JSON.stringify({ timeZone: 'Europe/Berlin', tentatve: 'busy' }));
    const found = await findSlotWith('hop-settings-1');
    expect(found.isError).toBeFalsy();
    const warning = lines().filter((l) => l.msg?.includes('the key "tentatve" is not read'));
    expect(warning).toHaveLength(1);
    expect(warning[0]).toMatchObject({ level: 40, reqId: 'hop-settings-1' });
  });

  it('a config.json that cannot be used: the error line carries the request’s reqId', async () => {
    await writeFile(stack.paths.config, '{"timeZone": "Europe/Ber');
    const found = await findSlotWith('hop-settings-2');
    expect(found.isError).toBe(true);
    const error = lines().filter((l) => l.msg === 'the owner settings cannot be used');
    expect(error).toHaveLength(1);
    expect(error[0]).toMatchObject({ level: 50, reqId: 'hop-settings-2' });
  });
});
