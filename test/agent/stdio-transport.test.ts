// CalendarAgent's stdio transport, line by line, as an MCP client's process
// pipe feeds it: the real agent MCP server behind it, raw lines in, raw lines
// out. Every line that is no message the server takes gets its JSON-RPC error,
// naming the request's id when one can be read, and the session goes on; a
// batch is answered as one array up to protocol 2025-03-26 and refused
// request by request from 2025-06-18. (The SDK's StdioServerTransport answers
// none of these lines, and ends the session on a line over its limit.)
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StdioAgent } from '../../src/agent/stdio.js';
import { MAX_BATCH_MESSAGES } from '../../src/agent/json-rpc-batch.js';
import type { StdioLineTransport } from '../../src/agent/stdio-transport.js';
import { stdioAgentWithoutDelegation } from '../support/stdio-agent.js';

type Answer = { jsonrpc?: string; id?: string | number; result?: Record<string, unknown>; error?: { code: number; message: string } };

const LINE_LIMIT = 16_384;

let input: PassThrough;
let transport: StdioLineTransport;
let agent: StdioAgent;
let lines: string[];
let waiters: Array<() => void>;
/** How often a tool asked for the delegation to act under: once per call that ran. */
let tokenAsked: number;

beforeEach(async () => {
  input = new PassThrough();
  const output = new PassThrough();
  lines = [];
  waiters = [];
  tokenAsked = 0;
  let partial = '';
  output.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    for (let end = partial.indexOf('\n'); end !== -1; end = partial.indexOf('\n')) {
      lines.push(partial.slice(0, end));
      partial = partial.slice(end + 1);
    }
    waiters.splice(0).forEach((wake) => wake());
  });
  ({ agent, transport } = await stdioAgentWithoutDelegation({ input, output, lineLimit: LINE_LIMIT, onTokenAsked: () => tokenAsked++ }));
});

afterEach(async () => {
  await agent.close();
});

/** Writes raw text to the agent's stdin. */
function send(text: string): void {
  input.write(text);
}

/** The next line the agent writes, parsed (each answer must be one JSON value on one line). */
async function next(): Promise<unknown> {
  const deadline = Date.now() + 5_000;
  while (lines.length === 0) {
    if (Date.now() > deadline) throw new Error('no answer within 5 s');
    await new Promise<void>((resolve) => {
      waiters.push(resolve);
      setTimeout(resolve, 100);
    });
  }
  return JSON.parse(lines.shift()!) as unknown;
}

const request = (id: string | number, method: string, params: Record<string, unknown> = {}) => ({ jsonrpc: '2.0', id, method, params });

async function initialize(protocolVersion: string): Promise<Answer> {
  send(`${JSON.stringify(request(0, 'initialize', { protocolVersion, capabilities: {}, clientInfo: { name: 'line-test', version: '0' } }))}\n`);
  const answer = (await next()) as Answer;
  expect(answer.result?.protocolVersion).toBe(protocolVersion);
  send(`${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`);
  return answer;
}

/** A ping answered proves the session goes on, and that nothing else was written before its answer. */
async function expectAlive(id: number): Promise<void> {
  send(`${JSON.stringify(request(id, 'ping'))}\n`);
  expect(await next()).toEqual({ jsonrpc: '2.0', id, result: {} });
}

describe('initialize', () => {
  it('declares tools without listChanged: the list never changes (the SDK would say true)', async () => {
    const answer = await initialize('2025-11-25');
    expect(answer.result?.capabilities).toEqual({ tools: { listChanged: false } });
  });
});

describe('lines that are no message', () => {
  beforeEach(() => initialize('2025-11-25'));

  it('a line that is not JSON: the parse error, with no id, and the session goes on', async () => {
    send('{"jsonrpc": "2.0", "id": 1, "method": "ping"\n');
    const answer = (await next()) as Answer;
    expect(answer).toEqual({ jsonrpc: '2.0', error: { code: -32700, message: expect.stringMatching(/^Parse error/) } });
    await expectAlive(2);
  });

  it('a request that is no JSON-RPC 2.0 request: Invalid Request, under its id, so the client stops waiting', async () => {
    send(`${JSON.stringify({ jsonrpc: '1.0', id: 'abc', method: 'ping' })}\n`);
    expect(await next()).toEqual({ jsonrpc: '2.0', id: 'abc', error: { code: -32600, message: expect.stringMatching(/^Invalid Request/) } });
    send(`${JSON.stringify({ jsonrpc: '2.0', id: 7, method: 42 })}\n`);
    expect(await next()).toMatchObject({ id: 7, error: { code: -32600 } });
    // An id no answer may carry (MCP's ids are strings and integers) is no id to read.
    send(`${JSON.stringify({ jsonrpc: '2.0', id: 1.5, method: 'ping', params: 3 })}\n`);
    expect(await next()).toEqual({ jsonrpc: '2.0', error: { code: -32600, message: expect.any(String) } });
    // No id to read (JSON-RPC 2.0 §5's own example, and a bare value): the error has none.
    send('{"foo": "boo"}\n42\n');
    expect(await next()).toEqual({ jsonrpc: '2.0', error: { code: -32600, message: expect.any(String) } });
    expect(await next()).toEqual({ jsonrpc: '2.0', error: { code: -32600, message: expect.any(String) } });
    await expectAlive(3);
  });

  it('a malformed response is never answered (JSON-RPC answers requests only)', async () => {
    send(`${JSON.stringify({ id: 9, result: {} })}\n`);
    await expectAlive(4);
  });

  it('blank lines are skipped; a CRLF ending is taken, its CR not counted against the limit', async () => {
    send('\n   \r\n');
    send(`${JSON.stringify(request(5, 'ping'))}\r\n`);
    expect(await next()).toEqual({ jsonrpc: '2.0', id: 5, result: {} });
    const fits = JSON.stringify(request(6, 'ping', { padding: '' }));
    send(`${JSON.stringify(request(6, 'ping', { padding: 'y'.repeat(LINE_LIMIT - fits.length) }))}\r\n`);
    expect(await next()).toEqual({ jsonrpc: '2.0', id: 6, result: {} });
  });

  it('a character split across chunks, byte by byte, is read whole', async () => {
    const bytes = Buffer.from(`${JSON.stringify(request('zürich-€-𝄞', 'ping'))}\n`, 'utf8');
    for (const byte of bytes) input.write(Buffer.from([byte]));
    expect(await next()).toEqual({ jsonrpc: '2.0', id: 'zürich-€-𝄞', result: {} });
  });

  it('a second start is refused (it would read every line twice)', async () => {
    await expect(transport.start()).rejects.toThrow(/started already/);
    await expectAlive(7);
  });

  it('a line over the limit is read past and refused, in pieces or whole, and the session goes on', async () => {
    const long = JSON.stringify(request(6, 'ping', { padding: 'x'.repeat(LINE_LIMIT) }));
    // In pieces: refused once the limit is passed, the rest of the line skipped as it comes.
    send(long.slice(0, 1000));
    send(long.slice(1000, LINE_LIMIT + 100));
    expect(await next()).toEqual({ jsonrpc: '2.0', error: { code: -32600, message: expect.stringContaining(`longer than ${LINE_LIMIT} bytes`) } });
    send(`${long.slice(LINE_LIMIT + 100)}\n`);
    await expectAlive(7);
    // Whole, with the next message in the same chunk.
    send(`${long}\n${JSON.stringify(request(8, 'ping'))}\n`);
    expect(await next()).toMatchObject({ error: { code: -32600 } });
    expect(await next()).toEqual({ jsonrpc: '2.0', id: 8, result: {} });
    // A line exactly at the limit is taken, whole or with its LF in the next chunk; one byte more is not.
    const fits = JSON.stringify(request(10, 'ping', { padding: '' }));
    const atLimit = JSON.stringify(request(10, 'ping', { padding: 'y'.repeat(LINE_LIMIT - fits.length) }));
    expect(Buffer.byteLength(atLimit)).toBe(LINE_LIMIT);
    send(`${atLimit}\n`);
    expect(await next()).toEqual({ jsonrpc: '2.0', id: 10, result: {} });
    send(atLimit);
    send('\n');
    expect(await next()).toEqual({ jsonrpc: '2.0', id: 10, result: {} });
    send(`${atLimit.slice(0, -1)} }`);
    send('\n');
    expect(await next()).toMatchObject({ error: { code: -32600, message: expect.stringContaining('longer than') } });
    await expectAlive(11);
  });
});

describe('batches', () => {
  it('protocol 2025-11-25 has none: each request in one is refused by its id, one line each, and nothing runs', async () => {
    await initialize('2025-11-25');
    send(`${JSON.stringify([request(1, 'ping'), request('two', 'tools/call', { name: 'find_slot', arguments: { duration: '30m' } }), { jsonrpc: '2.0', method: 'notifications/initialized' }])}\n`);
    const answers = [(await next()) as Answer, (await next()) as Answer];
    expect(answers.map((a) => a.id)).toEqual([1, 'two']);
    for (const a of answers) expect(a.error).toEqual({ code: -32600, message: expect.stringContaining('protocol version 2025-11-25 has no JSON-RPC batches') });
    await expectAlive(3);
  });

  it('a batch read before the answer to initialize is judged by the version asked for (or the latest, for one the server does not know)', async () => {
    const init = (id: number, protocolVersion: string) => JSON.stringify(request(id, 'initialize', { protocolVersion, capabilities: {}, clientInfo: { name: 'line-test', version: '0' } }));
    // One chunk: the initialize and a batch right behind it, before any answer is written.
    send(`${init(0, '2099-01-01')}\n${JSON.stringify([request(1, 'ping')])}\n`);
    const answers = [(await next()) as Answer, (await next()) as Answer];
    const byId = new Map(answers.map((a) => [a.id, a]));
    expect(byId.get(0)?.result?.protocolVersion).toBe('2025-11-25');
    expect(byId.get(1)?.error).toEqual({ code: -32600, message: expect.stringContaining('protocol version 2025-11-25 has no JSON-RPC batches') });
  });

  it('a second initialize (a mistake of the client) does not change the version of the session: still no batches', async () => {
    await initialize('2025-11-25');
    send(`${JSON.stringify(request(1, 'initialize', { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'again', version: '0' } }))}\n`);
    await next();
    send(`${JSON.stringify([request(2, 'ping')])}\n`);
    expect(await next()).toMatchObject({ id: 2, error: { code: -32600, message: expect.stringContaining('2025-11-25 has no JSON-RPC batches') } });
  });

  it('protocol 2025-06-18 has none either; a batch of notifications only gets one error with no id', async () => {
    await initialize('2025-06-18');
    send(`${JSON.stringify([{ jsonrpc: '2.0', method: 'notifications/initialized' }])}\n`);
    expect(await next()).toEqual({ jsonrpc: '2.0', error: { code: -32600, message: expect.stringContaining('2025-06-18 has no JSON-RPC batches') } });
    await expectAlive(2);
  });

  it('protocol 2025-03-26: a batch is answered as one array, its malformed members by errors inside it', async () => {
    await initialize('2025-03-26');
    send(
      `${JSON.stringify([
        request(1, 'ping'),
        { jsonrpc: '2.0', method: 'notifications/initialized' },
        request(2, 'tools/call', { name: 'find_slot', arguments: { duration: '30m' } }),
        { foo: 'boo' },
        request(3, 'tools/list'),
      ])}\n`,
    );
    const answer = (await next()) as Answer[];
    expect(Array.isArray(answer)).toBe(true);
    expect(answer).toHaveLength(4);
    const byId = new Map(answer.map((a) => [a.id, a]));
    expect(byId.get(1)).toEqual({ jsonrpc: '2.0', id: 1, result: {} });
    // The tool ran, and said it has no delegation to act under.
    expect(byId.get(2)?.result).toMatchObject({ isError: true });
    expect(tokenAsked).toBe(1);
    expect((byId.get(3)?.result?.tools as Array<{ name: string }>).map((t) => t.name)).toEqual(['find_slot', 'list_busy']);
    expect(byId.get(undefined)).toEqual({ jsonrpc: '2.0', error: { code: -32600, message: expect.any(String) } });
    await expectAlive(4);
  });

  it('protocol 2025-03-26: notifications only get nothing back; an empty batch, an initialize inside one and a repeated id are refused', async () => {
    await initialize('2025-03-26');
    send(`${JSON.stringify([{ jsonrpc: '2.0', method: 'notifications/initialized' }])}\n`);
    await expectAlive(1);
    send('[]\n');
    expect(await next()).toEqual({ jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request: an empty batch.' } });
    send(`${JSON.stringify([request(2, 'ping'), request(3, 'initialize', { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'x', version: '0' } })])}\n`);
    expect([await next(), await next()]).toEqual([
      { jsonrpc: '2.0', id: 2, error: { code: -32600, message: expect.stringContaining('initialize request must not be part of a batch') } },
      { jsonrpc: '2.0', id: 3, error: { code: -32600, message: expect.stringContaining('initialize request must not be part of a batch') } },
    ]);
    send(`${JSON.stringify([request(4, 'ping'), request(4, 'tools/list')])}\n`);
    expect([await next(), await next()]).toEqual([
      { jsonrpc: '2.0', id: 4, error: { code: -32600, message: expect.stringContaining('share the id 4') } },
      { jsonrpc: '2.0', id: 4, error: { code: -32600, message: expect.stringContaining('share the id 4') } },
    ]);
    await expectAlive(5);
  });
  it('protocol 2025-03-26: requests answered at once with errors (unknown methods) make one array, written once', async () => {
    await initialize('2025-03-26');
    send(`${JSON.stringify([request(1, 'no/such/method'), request(2, 'nor/this')])}\n`);
    const answer = (await next()) as Answer[];
    expect(answer.map((a) => [a.id, a.error?.code])).toEqual([
      [1, -32601],
      [2, -32601],
    ]);
    // Nothing else was written before the next answer: not the array twice.
    await expectAlive(3);
  });

  it('protocol 2025-03-26: a batch whose request is cancelled is written without it (the SDK answers no cancelled request)', async () => {
    await initialize('2025-03-26');
    // One chunk: the cancellation is read before the tool's handler has run.
    send(
      `${JSON.stringify([request(1, 'tools/call', { name: 'find_slot', arguments: { duration: '30m' } }), request(2, 'ping')])}\n` +
        `${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1, reason: 'test' } })}\n`,
    );
    expect(await next()).toEqual([{ jsonrpc: '2.0', id: 2, result: {} }]);
    await expectAlive(3);
  });

  it('a request whose id a batch request not answered yet holds is refused; the batch keeps its answer', async () => {
    await initialize('2025-03-26');
    send(`${JSON.stringify([request(20, 'tools/call', { name: 'find_slot', arguments: { duration: '30m' } })])}\n${JSON.stringify(request(20, 'ping'))}\n`);
    expect(await next()).toEqual({ jsonrpc: '2.0', id: 20, error: { code: -32600, message: expect.stringContaining('belongs to a request not answered yet') } });
    const batch = (await next()) as Answer[];
    expect(batch).toHaveLength(1);
    expect(batch[0]).toMatchObject({ id: 20, result: { isError: true } });
    expect(tokenAsked).toBe(1);
  });

  it('a refused batch answers its requests only, never the responses in it', async () => {
    await initialize('2025-11-25');
    send(`${JSON.stringify([{ jsonrpc: '2.0', id: 0, result: {} }, { jsonrpc: '2.0', id: 7, error: { code: 1, message: 'x' } }, request(8, 'ping')])}\n`);
    expect(await next()).toMatchObject({ id: 8, error: { code: -32600 } });
    await expectAlive(9);
  });

  it(`protocol 2025-03-26: a batch of more than ${MAX_BATCH_MESSAGES} messages is refused, as on /mcp, and nothing runs`, async () => {
    await initialize('2025-03-26');
    const calls = Array.from({ length: MAX_BATCH_MESSAGES + 1 }, (_, i) => request(i + 1, 'tools/call', { name: 'find_slot', arguments: { duration: '30m' } }));
    send(`${JSON.stringify(calls)}\n`);
    const answers: unknown[] = [];
    for (const _ of calls) answers.push(await next());
    expect(answers.map((a) => (a as Answer).id)).toEqual(calls.map((c) => c.id));
    for (const a of answers) expect((a as Answer).error).toEqual({ code: -32600, message: expect.stringContaining(`more than ${MAX_BATCH_MESSAGES} messages`) });
    await expectAlive(1000);
    expect(tokenAsked).toBe(0);
  });
});


// The same screen as /mcp (src/agent/mcp-requests.ts; the HTTP side is in
// test/security/requests.test.ts): what the SDK would pass through or answer
// with -32603 is answered as MCP and JSON-RPC 2.0 say.
describe('requests as MCP says to take them', () => {
  /** A -32602 under `id`, with a short message on one line (never the schema library's dump). */
  const invalidParams = (id: number | string, message: RegExp) => ({ jsonrpc: '2.0', id, error: { code: -32602, message: expect.stringMatching(message) } });

  it.each([
    ['a tools/call without params', { jsonrpc: '2.0', id: 1, method: 'tools/call' }, /^Invalid params for tools\/call: params is missing/],
    ['a tools/call whose arguments are an array', request(1, 'tools/call', { name: 'find_slot', arguments: ['x'] }), /^Invalid params for tools\/call: params\.arguments must be an object\.$/],
    ['a tools/call whose name is a number', request(1, 'tools/call', { name: 5 }), /^Invalid params for tools\/call: params\.name must be a string\.$/],
    ['a tools/list whose cursor is a number', request(1, 'tools/list', { cursor: 5 }), /^Invalid params for tools\/list: params\.cursor must be a string\.$/],
    ['an initialize without params', { jsonrpc: '2.0', id: 1, method: 'initialize' }, /^Invalid params for initialize: params is missing/],
    ['an initialize without clientInfo', request(1, 'initialize', { protocolVersion: '2025-11-25', capabilities: {} }), /^Invalid params for initialize: params\.clientInfo is missing/],
  ])('%s: -32602 Invalid params under its id, a short message, nothing runs (the SDK: -32603 with a zod dump)', async (_name, message, text) => {
    await initialize('2025-11-25');
    send(`${JSON.stringify(message)}\n`);
    const answer = (await next()) as Answer;
    expect(answer).toEqual(invalidParams(1, text));
    expect(answer.error!.message.length).toBeLessThan(120);
    expect(tokenAsked).toBe(0);
    await expectAlive(2);
  });

  it.each(['nope', 'toString', 'constructor', '__proto__', 'hasOwnProperty', 'Find_Slot'])('a tools/call for %s: -32602 "Unknown tool", not a result with isError', async (name) => {
    await initialize('2025-11-25');
    send(`${JSON.stringify(request('u', 'tools/call', { name, arguments: {} }))}\n`);
    expect(await next()).toEqual({ jsonrpc: '2.0', id: 'u', error: { code: -32602, message: `Unknown tool: ${name}` } });
    expect(tokenAsked).toBe(0);
  });

  it('an unknown tool name is quoted back printable and bounded', async () => {
    await initialize('2025-11-25');
    send(`${JSON.stringify(request(1, 'tools/call', { name: `a\u0000b\u202e${'x'.repeat(500)}` }))}\n`);
    const answer = (await next()) as Answer;
    expect(answer.error).toEqual({ code: -32602, message: `Unknown tool: a\\u{0}b\\u{202e}${'x'.repeat(60)}…` });
  });

  it('task metadata is ignored (the agent declares no tasks capability): the call runs and is answered normally', async () => {
    await initialize('2025-11-25');
    send(`${JSON.stringify(request(1, 'tools/call', { name: 'find_slot', arguments: { duration: '30m' }, task: { ttl: 60000 } }))}\n`);
    // The tool ran, and said it has no delegation to act under (the SDK: -32603 "does not support task creation").
    expect(await next()).toMatchObject({ id: 1, result: { isError: true, content: [{ type: 'text', text: expect.stringContaining('no delegation') }] } });
    expect(tokenAsked).toBe(1);
    // Not only on tools/call: the SDK refused task metadata on every request.
    send(`${JSON.stringify(request(2, 'tools/list', { task: { ttl: 1 } }))}\n${JSON.stringify(request(3, 'ping', { task: 'junk' }))}\n`);
    expect(((await next()) as Answer).result?.tools).toHaveLength(2);
    expect(await next()).toEqual({ jsonrpc: '2.0', id: 3, result: {} });
  });

  it('a tools/list with a cursor: -32602, since the agent never issues one; without, the whole list', async () => {
    await initialize('2025-11-25');
    for (const cursor of ['abc', '']) {
      send(`${JSON.stringify(request(1, 'tools/list', { cursor }))}\n`);
      expect(await next()).toEqual(invalidParams(1, /^Invalid params for tools\/list: unknown cursor/));
    }
    send(`${JSON.stringify(request(2, 'tools/list'))}\n`);
    const answer = (await next()) as Answer;
    expect((answer.result?.tools as Array<{ name: string }>).map((t) => t.name)).toEqual(['find_slot', 'list_busy']);
    expect(answer.result?.nextCursor).toBeUndefined();
  });

  it('protocol 2025-03-26: a refused request of a batch is answered inside its array', async () => {
    await initialize('2025-03-26');
    send(`${JSON.stringify([request(1, 'ping'), request(2, 'tools/call', { name: 'nope' }), request(3, 'tools/list', { cursor: 'x' })])}\n`);
    const answer = (await next()) as Answer[];
    expect(answer).toHaveLength(3);
    const byId = new Map(answer.map((a) => [a.id, a]));
    expect(byId.get(1)).toEqual({ jsonrpc: '2.0', id: 1, result: {} });
    expect(byId.get(2)?.error).toEqual({ code: -32602, message: 'Unknown tool: nope' });
    expect(byId.get(3)?.error?.code).toBe(-32602);
    await expectAlive(4);
  });

  it('a malformed initialize sets no protocol version: the next one does', async () => {
    send(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize' })}\n`);
    expect(await next()).toMatchObject({ id: 1, error: { code: -32602 } });
    await initialize('2025-03-26');
    // 2025-03-26 has batches: the session took its version from the good initialize.
    send(`${JSON.stringify([request(2, 'ping')])}\n`);
    expect(await next()).toEqual([{ jsonrpc: '2.0', id: 2, result: {} }]);
  });
});
