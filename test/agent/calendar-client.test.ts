// The agent's free/busy request against a calendar stand-in on a loopback
// port: what it sends, and a named error for every way the calendar can fail,
// both over node:http (what the agent uses) and through a fetch (what tests
// put in its way). (The end-to-end tests run it against the real calendar
// backend.)
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createApp } from '../../src/http/app.js';
import { fetchFreeBusy, CalendarError } from '../../src/agent/calendar-client.js';
import { explainReadFailure } from '../../src/agent/calendar-read.js';
import { AUDIT_LOG_CANNOT_RECORD, unrecordedReadDescription } from '../../src/resource/audit.js';
import { listen } from './support.js';

const window = { start: Date.parse('2026-12-01T00:00:00Z'), end: Date.parse('2026-12-08T00:00:00Z') };
let app: FastifyInstance | undefined;
const servers: Server[] = [];
afterEach(async () => {
  await app?.close();
  app = undefined;
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function calendar(answer: (query: Record<string, string>, auth: string | undefined) => Promise<{ status: number; body: unknown }> | { status: number; body: unknown }): Promise<string> {
  app = createApp();
  app.get('/freebusy', async (req, reply) => {
    const { status, body } = await answer(req.query as Record<string, string>, req.headers.authorization);
    return reply.code(status).send(body);
  });
  return listen(app);
}

describe.each([
  ['node:http', undefined],
  ['a fetch', fetch],
] as const)('fetchFreeBusy over %s', (_transport, fetchFn) => {
  const request = (calendarUrl: string, timeoutMs = 2_000) => ({ calendarUrl, accessToken: 'calendar-token', window, timeoutMs, ...(fetchFn ? { fetchFn } : {}) });

  it('asks for the window with the calendar token and reads busy intervals', async () => {
    let seen: { query: Record<string, string>; auth: string | undefined } | undefined;
    const url = await calendar((query, auth) => {
      seen = { query, auth };
      return { status: 200, body: { timeZone: 'Europe/Berlin', busy: [{ start: '2026-12-01T09:00:00Z', end: '2026-12-01T10:00:00Z' }] } };
    });
    const result = await fetchFreeBusy(request(url));
    expect(seen).toEqual({ query: { from: '2026-12-01T00:00:00.000Z', to: '2026-12-08T00:00:00.000Z' }, auth: 'Bearer calendar-token' });
    expect(result).toEqual({ timeZone: 'Europe/Berlin', busy: [{ start: Date.parse('2026-12-01T09:00:00Z'), end: Date.parse('2026-12-01T10:00:00Z') }] });
  });

  it.each([
    [401, 'refused'],
    [403, 'refused'],
    [400, 'rejected'],
    [500, 'failed'],
    [503, 'failed'],
  ])('names HTTP %i as %s, with the calendar\'s own description', async (status, code) => {
    const url = await calendar(() => ({ status, body: { error: 'x', error_description: 'Outside the window your grant allows.' } }));
    const error = await fetchFreeBusy(request(url)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CalendarError);
    expect(error).toMatchObject({ code, status });
    expect((error as Error).message).toContain('Outside the window your grant allows.');
  });

  // What the owner set up, and the owner alone can mend: the description as it is, and no advice to wait.
  it.each([
    [500, 'invalid_configuration', 'misconfigured', "The owner's settings (config.json) cannot be used: x. Fix the file, or remove it to search with the defaults."],
    [404, 'no_calendars', 'no_calendars', 'There are no calendars to check: add one with `delegate calendar add NAME FILE`, or `delegate calendar add NAME` for a feed (it asks for its address).'],
  ])('names HTTP %i %s as %s, its message the description alone, which the tool passes on without "Try again"', async (status, error, code, description) => {
    const url = await calendar(() => ({ status, body: { error, error_description: description } }));
    const failure = await fetchFreeBusy(request(url)).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code, status, message: description });
    expect(explainReadFailure(failure, undefined)).toBe(description);
  });

  // Found in review: the backend's own store full or read-only (its read could not be recorded) got "try again shortly".
  it.each(Object.values(AUDIT_LOG_CANNOT_RECORD))('a read the backend could not record because %s is unrecorded: named, and no advice to wait', async (why) => {
    const description = unrecordedReadDescription(why);
    const url = await calendar(() => ({ status: 500, body: { error: 'server_error', error_description: description } }));
    const failure = await fetchFreeBusy(request(url)).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 'unrecorded', status: 500 });
    expect(explainReadFailure(failure, undefined)).toBe(`The calendar failed (HTTP 500): ${description}`);
  });

  it('a failure that may pass (502 calendar_unavailable) keeps its advice to try again', async () => {
    const url = await calendar(() => ({ status: 502, body: { error: 'calendar_unavailable', error_description: "Calendar 'team': The feed could not be fetched." } }));
    const failure = await fetchFreeBusy(request(url)).catch((e: unknown) => e);
    expect(explainReadFailure(failure, undefined)).toBe("The calendar failed (HTTP 502): Calendar 'team': The feed could not be fetched. Try again shortly.");
  });

  it.each([
    [{ busy: [] }],
    [{ timeZone: 'Nowhere/Special', busy: [] }],
    [{ timeZone: 'UTC', busy: [{ start: 'soon', end: 'later' }] }],
    [{ timeZone: 'UTC', busy: [{ start: '2026-12-02T00:00:00Z', end: '2026-12-01T00:00:00Z' }] }],
    ['busy'],
  ])('refuses an answer that is not free/busy data: %j', async (body) => {
    const url = await calendar(() => ({ status: 200, body }));
    await expect(fetchFreeBusy(request(url))).rejects.toMatchObject({ code: 'invalid_response' });
  });

  it('reports a calendar that is down as unreachable', async () => {
    await expect(fetchFreeBusy(request('http://127.0.0.1:9'))).rejects.toMatchObject({ code: 'unreachable' });
  });

  it('gives up on a slow calendar within the timeout', async () => {
    const url = await calendar(() => new Promise((resolve) => setTimeout(() => resolve({ status: 200, body: { timeZone: 'UTC', busy: [] } }), 3_000)));
    const started = Date.now();
    await expect(fetchFreeBusy(request(url, 300))).rejects.toMatchObject({ code: 'timeout', message: 'The calendar did not answer within 300 ms.' });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  /** A backend that answers 200 and then does `rest` with the response (a raw server: fastify would finish the body). */
  async function rawBackend(rest: (res: ServerResponse) => void): Promise<string> {
    const server = createServer((_req, res) => rest(res));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }
  const FREE = JSON.stringify({ timeZone: 'UTC', busy: [] });

  it('reads a body that starts with a byte-order mark', async () => {
    const url = await rawBackend((res) => res.writeHead(200, { 'content-type': 'application/json' }).end(`\uFEFF${FREE}`));
    await expect(fetchFreeBusy(request(url))).resolves.toEqual({ timeZone: 'UTC', busy: [] });
  });

  it('names a body that stops halfway (the connection dropped) as not free/busy data', async () => {
    const url = await rawBackend((res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(FREE.length * 2) });
      res.write(FREE.slice(0, 10), () => res.destroy());
    });
    await expect(fetchFreeBusy(request(url))).rejects.toMatchObject({ code: 'invalid_response' });
  });

  it('gives up on a body that stops coming within the timeout', async () => {
    const url = await rawBackend((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(FREE.slice(0, 10)); // and nothing more (chunked, never ended)
    });
    await expect(fetchFreeBusy(request(url, 300))).rejects.toMatchObject({ code: 'timeout' });
  });

  // The agent's own path caps the body; a fetch a test puts in reads what it is given.
  it.runIf(fetchFn === undefined)('names a body larger than any free/busy answer (over 8 MiB) as not free/busy data', async () => {
    const url = await rawBackend((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"timeZone":"UTC","busy":[],"pad":"${'x'.repeat(9 * 1024 * 1024)}"}`);
    });
    await expect(fetchFreeBusy(request(url, 10_000))).rejects.toMatchObject({ code: 'invalid_response' });
  });

  it('does not follow a redirect: the calendar token goes to the calendar backend only', async () => {
    let elsewhereHit = false;
    const elsewhere = createApp();
    elsewhere.get('/freebusy', async () => {
      elsewhereHit = true;
      return { timeZone: 'UTC', busy: [] };
    });
    const elsewhereUrl = await listen(elsewhere);
    try {
      app = createApp();
      app.get('/freebusy', async (_req, reply) => reply.code(307).header('location', `${elsewhereUrl}/freebusy`).send({ error: 'moved' }));
      const url = await listen(app);
      await expect(fetchFreeBusy(request(url))).rejects.toMatchObject({ code: 'rejected', status: 307 });
      expect(elsewhereHit).toBe(false);
    } finally {
      await elsewhere.close();
    }
  });
  // Found in review "logs-faults": a backend that is not delegate's sent ESC, a bare CR and OSC … BEL in its
  // reasons, names and error_description, and the agent passed them on into the tool's result (which MCP clients
  // show) and so to find-slot's terminal.
  it('passes on no control character from the calendar: skipped and stale reasons and names, and an error description', async () => {
    const url = await calendar((query) =>
      query.to === '2026-12-08T00:00:00.000Z' // the window asked for first; one ms longer, the failure
        ? {
            status: 200,
            body: {
              timeZone: 'UTC',
              busy: [],
              skipped: [{ calendar: 'wo\u001b[2Krk', error_description: 'bad\rFAKE LINE \u001b[31mred' }],
              stale: [{ calendar: 'h\u001b]0;title\u0007ome', fetchedAt: '2026-01-01T00:00:00Z\u009b', error_description: 'st\u001b[1Aale' }],
            },
          }
        : { status: 500, body: { error: 'server_error', error_description: `x\u001b[31mRED\u001b[0m\n${'A'.repeat(1000)}` } },
    );
    const result = await fetchFreeBusy(request(url));
    expect(result.skipped).toEqual([{ calendar: 'wo\\e[2Krk', reason: 'bad\\rFAKE LINE \\e[31mred' }]);
    expect(result.stale).toEqual([{ calendar: 'h\\e]0;title\\u{0007}ome', fetchedAt: '2026-01-01T00:00:00Z\\u{009b}', reason: 'st\\e[1Aale' }]);

    const failing = await fetchFreeBusy({ ...request(url), window: { start: window.start, end: window.end + 1 } }).catch((e: unknown) => e);
    expect(failing).toMatchObject({ code: 'failed', status: 500 });
    const message = (failing as Error).message;
    expect(message).toMatch(/^The calendar failed \(HTTP 500\): x\\e\[31mRED\\e\[0m\\nA+…$/);
    expect(message).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(explainReadFailure(failing, undefined)).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });
});
