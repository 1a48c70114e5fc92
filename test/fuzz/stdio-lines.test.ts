// Fuzzing CalendarAgent's stdio transport (issue 6): sessions of generated
// lines (text that is not JSON, any JSON, JSON-RPC-shaped objects with wrong
// or right fields, batches of them, cancellations), cut into chunks at
// generated places, fed to the real agent MCP server behind the transport,
// after an initialize of a generated protocol version (or none). Whatever
// comes in: every line written is one JSON-RPC message, or a non-empty array
// of them where the session's version has batches; every answer's id is that of a
// request the client sent; each line that is not JSON gets its parse error
// and each over the limit its refusal; none is an internal error (-32603);
// and a ping sent last is answered (the
// session goes on, nothing hangs). FUZZ_RUNS and FUZZ_SEED as in
// http-endpoints.test.ts.
import { PassThrough } from 'node:stream';
import { JSONRPCMessageSchema } from '@modelcontextprotocol/sdk/types.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stdioAgentWithoutDelegation } from '../support/stdio-agent.js';
import { FUZZ_RUNS, fuzzParams, fuzzTimeout, junk } from './support.js';

const LINE_LIMIT = 2048;
const FINAL = 'fuzz-final-ping';
const VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05', '1999-01-01'] as const;

const id = () => fc.oneof(fc.integer({ min: -3, max: 40 }), fc.constantFrom('a', 'b', '', '0', FINAL), fc.constantFrom(null, 1.5, true, {}, [] as unknown[]));
const method = () => fc.oneof({ weight: 4, arbitrary: fc.constantFrom('ping', 'tools/list', 'tools/call', 'initialize', 'notifications/cancelled', 'notifications/initialized', 'no/such') }, { weight: 1, arbitrary: junk() }, { weight: 1, arbitrary: fc.constantFrom(1, null) });
const params = () =>
  fc.oneof(
    fc.constant({ name: 'find_slot', arguments: { duration: '30m' } }),
    id().map((requestId) => ({ requestId })),
    fc.constant({ protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'x', version: '0' } }),
    fc.jsonValue({ maxDepth: 2 }),
  );
/** A JSON-RPC-shaped object: each member present or not, right or wrong. */
const message = () =>
  fc.record(
    { jsonrpc: fc.constantFrom('2.0', '2.0', '2.0', '1.0', 2), id: id(), method: method(), params: params(), result: fc.jsonValue({ maxDepth: 1 }), error: fc.constantFrom({ code: 1, message: 'x' }, 'x') },
    { requiredKeys: [] },
  );
const line = () =>
  fc.oneof(
    { weight: 5, arbitrary: message().map((m) => JSON.stringify(m)) },
    { weight: 2, arbitrary: fc.array(message(), { maxLength: 5 }).map((b) => JSON.stringify(b)) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null') },
    { weight: 1, arbitrary: junk().map((t) => t.replace(/\n/g, ' ')) },
    { weight: 1, arbitrary: fc.integer({ min: LINE_LIMIT - 40, max: LINE_LIMIT + 40 }).map((n) => `{"jsonrpc":"2.0","id":3,"method":"ping","params":{"p":"${'x'.repeat(Math.max(0, n - 60))}"}}`) },
  );
const session = fc.record({
  version: fc.option(fc.constantFrom(...VERSIONS), { nil: undefined }),
  lines: fc.array(fc.tuple(line(), fc.constantFrom('\n', '\r\n')), { minLength: 1, maxLength: 8 }),
  cuts: fc.array(fc.nat(), { maxLength: 6 }),
});

/** The ids (as JSON) of what was sent that a server may answer: anything with an id but a response (a result or an error, and no method). */
function requestIds(sent: string[]): Set<string> {
  const ids = new Set<string>();
  for (const text of sent) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      continue;
    }
    for (const m of Array.isArray(value) ? value : [value]) {
      if (typeof m !== 'object' || m === null || !('id' in m)) continue;
      if (!('method' in m) && ('result' in m || 'error' in m)) continue;
      ids.add(JSON.stringify((m as { id: unknown }).id));
    }
  }
  return ids;
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

describe('fuzzing the stdio transport', () => {
  it(
    'every line written is a JSON-RPC message answering a request sent, and the session goes on',
    async () => {
      await fc.assert(
        fc.asyncProperty(session, async ({ version, lines, cuts }) => {
          const input = new PassThrough();
          const output = new PassThrough();
          let written = '';
          output.setEncoding('utf8').on('data', (chunk: string) => (written += chunk));
          const { agent } = await stdioAgentWithoutDelegation({ input, output, lineLimit: LINE_LIMIT });
          try {
            const sent: string[] = [];
            if (version) sent.push(JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'fuzz', version: '0' } } }));
            sent.push(...lines.map(([text]) => text));
            const text = `${sent.slice(0, version ? 1 : 0).map((t) => `${t}\n`).join('')}${lines.map(([t, end]) => `${t}${end}`).join('')}`;
            // Cut into chunks at generated places (some inside a multi-byte character).
            const bytes = Buffer.from(text, 'utf8');
            const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
            let from = 0;
            for (const cut of [...at, bytes.length]) {
              if (cut > from) input.write(bytes.subarray(from, cut));
              from = Math.max(from, cut);
            }
            // The last line of the session: a ping with an id no generated request holds (nor one waiting in a batch).
            input.write(`${JSON.stringify({ jsonrpc: '2.0', id: FINAL, method: 'ping' })}\n`);
            const deadline = Date.now() + 5_000;
            while (!written.includes(`"id":"${FINAL}"`) || !written.endsWith('\n')) {
              if (Date.now() > deadline) throw new Error(`the final ping was not answered; written:\n${written.slice(0, 2000)}`);
              await new Promise((resolve) => setTimeout(resolve, 5));
            }
            // Let answers still under way (a tool call) be written before judging.
            await new Promise((resolve) => setTimeout(resolve, 20));
            const sentIds = requestIds([...sent, JSON.stringify({ id: FINAL, method: 'ping' })]);
            // Each line that is not JSON gets one parse error, and each line over the limit one refusal.
            const tooLong = lines.filter(([t]) => Buffer.byteLength(t) > LINE_LIMIT).length;
            const notJson = lines.filter(([t]) => Buffer.byteLength(t) <= LINE_LIMIT && t.trim() !== '' && !parses(t)).length;
            const codes = written
              .split('\n')
              .filter((l) => l !== '')
              .flatMap((l) => [JSON.parse(l) as unknown].flat() as Array<{ error?: { code?: number; message?: string } }>);
            expect(codes.filter((m) => m.error?.code === -32700).length, 'parse errors').toBe(notJson);
            expect(codes.filter((m) => m.error?.message?.includes(`longer than ${LINE_LIMIT} bytes`)).length, 'lines over the limit').toBe(tooLong);
            // Malformed params, unknown tools and task metadata are the client's doing, never an internal error (mcp-requests.ts).
            expect(codes.filter((m) => m.error?.code === -32603).map((m) => m.error?.message), 'internal errors').toEqual([]);
            // The first initialize sets the session's version: the one asked for if the server knows it, else its latest (no batches).
            const batchless = version !== undefined && !['2025-03-26', '2024-11-05'].includes(version);
            for (const out of written.split('\n').filter((l) => l !== '')) {
              const value = JSON.parse(out) as unknown;
              if (Array.isArray(value)) {
                expect(batchless, `an array written in a ${version} session: ${out.slice(0, 300)}`).toBe(false);
                expect(value.length, 'an empty array written').toBeGreaterThan(0);
              }
              for (const m of Array.isArray(value) ? value : [value]) {
                expect(JSONRPCMessageSchema.safeParse(m).success, `not a JSON-RPC message: ${JSON.stringify(m).slice(0, 300)}`).toBe(true);
                const answer = m as { id?: unknown; method?: unknown };
                if ('id' in answer && answer.method === undefined) expect(sentIds.has(JSON.stringify(answer.id)), `an answer to no request sent: ${JSON.stringify(m).slice(0, 300)}`).toBe(true);
              }
            }
          } finally {
            await agent.close();
          }
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(FUZZ_RUNS),
  );
});
