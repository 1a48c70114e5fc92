// The logging configuration itself (src/http/logging.ts): the redaction
// applied to every line hides every credential field wherever it sits,
// request URLs are logged without their query, each request carries an id
// (a caller's safe X-Request-Id, else a fresh one) that is echoed back and is on every line
// about the request, tool warnings included; and --log-level /
// DELEGATE_LOG_LEVEL are parsed as the serve commands' usage says. The full
// flow runs on the three real servers in this process, logging at trace.
import { Writable } from 'node:stream';
import { multistream } from 'pino';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLogLevel, serveLogLevel } from '../../src/cli/args.js';
import { runCli } from '../../src/cli/program.js';
import { LOG_LEVELS } from '../../src/config.js';
import { REFRESH_TOKEN_PREFIX } from '../../src/delegation/index.js';
import { REDACTION_CENSOR, SECRET_FIELDS } from '../../src/delegation/secrets.js';
import { createLogger, redactLine, requestIdFor } from '../../src/http/logging.js';
import { fakeIo } from '../cli/fake-io.js';
import { postForm } from '../support/oauth-flow.js';
import { runAuthorizationFlow, startTestStack, type FlowSecrets, type TestStack } from '../support/stack.js';

/** A destination stream that keeps every line pino writes. */
function capture(): { stream: Writable; text: () => string; lines: () => Array<Record<string, unknown>> } {
  let text = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  return {
    stream,
    text: () => text,
    lines: () =>
      text
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

const SECRET = 'S3CRET-value-that-must-not-be-logged';

describe('redaction by configuration', () => {
  it.each(SECRET_FIELDS)('hides %s at the top, one and two levels down', (field) => {
    const out = capture();
    const log = createLogger('trace', out.stream);
    log.info({ [field]: SECRET }, 'top');
    log.info({ body: { [field]: SECRET } }, 'nested');
    log.info({ outer: { inner: { [field]: SECRET } } }, 'deep');
    expect(out.text()).not.toContain(SECRET);
    expect(out.lines()).toHaveLength(3);
    expect(out.text().split(REDACTION_CENSOR).length - 1).toBe(3);
  });

  it('hides authorization codes in request parameters but keeps error codes', () => {
    const out = capture();
    const log = createLogger('trace', out.stream);
    log.info({ query: { code: SECRET }, body: { code: SECRET }, form: { code: SECRET } }, 'params');
    log.info({ req: { query: { code: SECRET } } }, 'nested params');
    log.warn({ code: 'invalid_grant', err: { code: 'FST_ERR_CTP_INVALID_JSON_BODY' } }, 'an error');
    expect(out.text()).not.toContain(SECRET);
    const [, , error] = out.lines();
    expect(error).toMatchObject({ code: 'invalid_grant', err: { code: 'FST_ERR_CTP_INVALID_JSON_BODY' } });
  });

  it('hides credential headers under any object', () => {
    const out = capture();
    const log = createLogger('trace', out.stream);
    log.info({ request: { headers: { authorization: `Bearer ${SECRET}`, cookie: `s=${SECRET}`, 'proxy-authorization': SECRET, accept: 'text/html' } } }, 'h');
    log.info({ res: { headers: { 'set-cookie': `s=${SECRET}` } } }, 'h');
    expect(out.text()).not.toContain(SECRET);
    expect(out.lines()[0]).toMatchObject({ request: { headers: { accept: 'text/html' } } });
  });

  it('hides credentials deeper down, inside arrays, in header names of any case, and in child loggers\' bindings', () => {
    const out = capture();
    const log = createLogger('trace', out.stream);
    log.info({ a: { b: { c: { d: { refresh_token: SECRET } } } } }, 'four levels down');
    log.info({ calls: [{ body: { code: SECRET } }, { client_secret: SECRET }] }, 'in an array');
    log.info({ upstream: { headers: { Authorization: `Bearer ${SECRET}`, DPoP: SECRET, Accept: 'application/json' } } }, 'header case');
    log.child({ token: SECRET }).info('a child logger');
    log.error({ err: Object.assign(new Error('refused'), { assertion: SECRET, code: 'invalid_client' }) }, 'an error object');
    expect(out.text()).not.toContain(SECRET);
    const lines = out.lines();
    expect(lines).toHaveLength(5);
    expect(lines[2]).toMatchObject({ upstream: { headers: { Accept: 'application/json' } } });
    expect(lines[4]).toMatchObject({ err: { code: 'invalid_client', message: 'refused' } });
    expect(out.text().split(REDACTION_CENSOR).length - 1).toBe(7);
  });

  it('hides credentials under other spellings of their names, and credential-shaped text inside strings', () => {
    const out = capture();
    const log = createLogger('trace', out.stream);
    const jwt = 'eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
    const refresh = `${REFRESH_TOKEN_PREFIX}${SECRET}`;
    log.info({ refreshToken: SECRET, clientSecret: SECRET, 'Access-Token': SECRET, privateJwk: { d: SECRET }, Headers: { 'Set-Cookie': SECRET } }, 'names');
    log.warn({ err: { message: `upstream said: invalid ${jwt}`, cause: { message: `spent ${refresh}` } } }, `refused bearer ${jwt}`);
    expect(out.text()).not.toContain(SECRET);
    expect(out.text()).not.toContain(jwt);
    expect(out.text()).not.toContain('c2lnbmF0dXJl');
    const [, warning] = out.lines();
    expect(warning).toMatchObject({ msg: `refused bearer ${REDACTION_CENSOR}`, err: { message: expect.stringContaining(`upstream said: invalid ${REDACTION_CENSOR}`) } });
  });

  it('never throws, however deep a log call nests, and keeps members named __proto__', () => {
    const out = capture();
    const log = createLogger('trace', out.stream);
    let deep: unknown = { token: SECRET };
    for (let i = 0; i < 3000; i++) deep = [deep];
    expect(() => log.info({ body: deep }, 'deep')).not.toThrow();
    expect(out.text()).not.toContain(SECRET);
    expect(out.lines()).toHaveLength(1);
    expect(redactLine('{"body":{"__proto__":{"a":1},"x":1}}\n')).toBe('{"body":{"__proto__":{"a":1},"x":1}}\n');
  });

  it("passes flush on to the stream, and refuses a pino multistream it could not redact", () => {
    let flushed = 0;
    const stream = Object.assign(capture().stream, { flush: (cb?: (err?: Error) => void) => (flushed++, cb?.()) });
    createLogger('info', stream).flush();
    expect(flushed).toBe(1);
    expect(() => createLogger('info', multistream([{ stream: capture().stream }]))).toThrow(/multistream/);
  });

  it('drops a line it cannot read rather than writing it unredacted', () => {
    const notice = JSON.parse(redactLine(`token=${SECRET} not json\n`)) as Record<string, unknown>;
    expect(JSON.stringify(notice)).not.toContain(SECRET);
    expect(notice).toMatchObject({ level: 50, msg: expect.stringContaining('dropped') });
    expect(redactLine('{"msg":"x","password":"p"}\n')).toBe('{"msg":"x","password":"[redacted]"}\n');
  });

  it('logs a request by its path: no query string, no fragment, no headers', () => {
    const out = capture();
    const log = createLogger('trace', out.stream);
    for (const url of [`/callback?code=${SECRET}&state=x`, `/login/owner?assertion=${SECRET}&next=%2Fauthorize`, `/authorize#${SECRET}`]) {
      log.info({ req: { id: 'r1', method: 'GET', url, headers: { authorization: SECRET } } }, 'incoming request');
    }
    expect(out.text()).not.toContain(SECRET);
    expect(out.lines().map((l) => (l.req as { path: string }).path)).toEqual(['/callback', '/login/owner', '/authorize']);
  });

  // Found in review (s35logs): an absolute-form target was logged as sent, user information and all, and a field
  // holding a redirect's URL with its code as written.
  it('logs an absolute-form target by its path, and cuts user information and credential parameters out of any text', () => {
    const out = capture();
    const log = createLogger('trace', out.stream);
    log.info({ req: { method: 'GET', url: `http://alice:${SECRET}@127.0.0.1:8410/token?code=${SECRET}` } }, 'incoming request');
    log.info({ req: { method: 'GET', url: `http://alice:${SECRET}@[bad/token` } }, 'unparsable');
    log.info(
      { location: `http://127.0.0.1:5555/cb?state=s1&code=${SECRET}&iss=x`, url: `https://bob:${SECRET}@feed.example/cal.ics`, form: `a=1&client_secret=${SECRET}`, note: `see ?Refresh-Token=${SECRET};x=2` },
      `redirected to http://u:${SECRET}@h/cb?access_token=${SECRET}`,
    );
    expect(out.text()).not.toContain(SECRET);
    const [target, unparsable, fields] = out.lines();
    expect((target!.req as { path: string }).path).toBe('/token');
    expect((unparsable!.req as { path: string }).path).toBe(`http://${REDACTION_CENSOR}@[bad/token`);
    expect(fields).toMatchObject({
      location: `http://127.0.0.1:5555/cb?state=s1&code=${REDACTION_CENSOR}&iss=x`,
      url: `https://${REDACTION_CENSOR}@feed.example/cal.ics`,
      form: `a=1&client_secret=${REDACTION_CENSOR}`,
      note: `see ?Refresh-Token=${REDACTION_CENSOR};x=2`,
      msg: `redirected to http://${REDACTION_CENSOR}@h/cb?access_token=${REDACTION_CENSOR}`,
    });
    // The controls: an address with no user information, other parameters, an e-mail address are as they were.
    expect(redactLine('{"msg":"http://127.0.0.1:8410/x?state=1&next=%2F a@b.example"}\n')).toBe('{"msg":"http://127.0.0.1:8410/x?state=1&next=%2F a@b.example"}\n');
  });
});

// Found in review (regress21c, high): the JWT pattern began a match at every `eyJ` and read on to the end of its
// base64url run, so a run of n `eyJ` cost n² steps (64 KiB: 1.9 s; a client could put one in a refusal's logged
// reason). No timing is asserted (the project's rule), the output is: the long lines below took the old pattern
// minutes (vitest's 30 s timeout fails a test that ran longer, even a synchronous one) and take this one milliseconds.
describe('redaction in time linear in the line', () => {
  const line = (msg: string) => `${JSON.stringify({ level: 30, msg })}\n`;
  const run = 'eyJ'.repeat(128 * 1024);
  it.each([
    ['a run of eyJ', run],
    ['a run of eyJ, a dot and a segment (a dot short of a JWT)', `${run}.x`],
  ])('leaves %s, 384 KiB holding no credential, as it was', (_name, msg) => {
    expect(redactLine(line(msg))).toBe(line(msg));
  });

  it.each([
    ['a run of ://', '://'.repeat(128 * 1024)],
    ['a run of &a', '&a'.repeat(192 * 1024)],
    ['a run of x://@', 'x://@'.repeat(64 * 1024)],
  ])('cuts URL credentials from %s in one pass', (_name, msg) => {
    expect(redactLine(line(msg)).length).toBeGreaterThanOrEqual(line(msg).length);
  });

  it('censors JWTs (with the base64url run each begins in) and refresh tokens, however many', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJl';
    const refresh = `${REFRESH_TOKEN_PREFIX}${SECRET}`;
    expect(redactLine(line(`abc${jwt} and x${refresh}.`))).toBe(line(`${REDACTION_CENSOR} and x${REDACTION_CENSOR}.`));
    expect(redactLine(line(`${jwt} `.repeat(10_000)))).toBe(line(`${REDACTION_CENSOR} `.repeat(10_000)));
    expect(redactLine(line('eyJa.'.repeat(3 * 10_000)))).toBe(line(`${REDACTION_CENSOR}.`.repeat(10_000)));
    expect(redactLine(line(`${REFRESH_TOKEN_PREFIX}`.repeat(10_000)))).toBe(line(REDACTION_CENSOR));
    expect(redactLine(line(`${refresh}${jwt}`))).toBe(line(REDACTION_CENSOR));
  });
});

describe('request ids', () => {
  it('keeps a caller’s short plain X-Request-Id and replaces anything else', () => {
    expect(requestIdFor({ 'x-request-id': 'abc-123_x.y:z' })).toBe('abc-123_x.y:z');
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    for (const bad of ['', 'a b', 'a\nb', 'x'.repeat(65), '-lead', 'ü', '"quoted"', 'a{"level":60}']) {
      expect(requestIdFor({ 'x-request-id': bad })).toMatch(uuid);
    }
    expect(requestIdFor({ 'x-request-id': ['a', 'b'] })).toMatch(uuid);
    expect(requestIdFor({})).toMatch(uuid);
  });
});

describe('--log-level and DELEGATE_LOG_LEVEL', () => {
  it('accepts each of pino’s levels, in any case, and refuses others', () => {
    for (const level of LOG_LEVELS) {
      expect(parseLogLevel(level)).toBe(level);
      expect(parseLogLevel(level.toUpperCase())).toBe(level);
    }
    expect(() => parseLogLevel('verbose')).toThrow(/one of trace, debug, info, warn, error, fatal, silent/);
  });

  it('takes the flag, else the environment, else debug under --debug, else info', () => {
    expect(serveLogLevel('warn', { DELEGATE_LOG_LEVEL: 'trace' }, true)).toBe('warn');
    expect(serveLogLevel(undefined, { DELEGATE_LOG_LEVEL: ' Error ' }, true)).toBe('error');
    expect(serveLogLevel(undefined, { DELEGATE_LOG_LEVEL: '' }, true)).toBe('debug');
    expect(serveLogLevel(undefined, {}, false)).toBe('info');
  });

  it.each(['serve', 'serve-auth', 'serve-calendar', 'serve-agent'])('%s: an unknown level is bad usage (exit 2) and --help lists the levels', async (command) => {
    const flag = fakeIo();
    expect(await runCli([command, '--log-level', 'loud'], flag)).toBe(2);
    expect(flag.err).toMatch(/--log-level.*one of trace, debug, info, warn, error, fatal, silent/);

    const env = fakeIo({ DELEGATE_LOG_LEVEL: 'loud', DELEGATE_HOME: '/nonexistent/never-created' });
    expect(await runCli([command], env)).toBe(2);
    expect(env.err).toMatch(/DELEGATE_LOG_LEVEL=loud is not a log level/);

    const help = fakeIo();
    expect(await runCli([command, '--help'], help)).toBe(0);
    expect(help.out.replace(/\s+/g, ' ')).toMatch(/--log-level <level> .*choices: "trace", "debug", "info", "warn", "error", "fatal", "silent"/);
  });
});

describe('a full flow logged at trace', () => {
  const out = capture();
  let stack: TestStack;
  let flow: FlowSecrets;
  const secrets: string[] = [];
  const echoed: Record<string, string | null> = {};

  beforeAll(async () => {
    stack = await startTestStack({ logger: createLogger('trace', out.stream) });
    flow = await runAuthorizationFlow(stack);
    const { issuer, agentUrl } = stack.urls;

    const client = new Client({ name: 'logging-test', version: '0.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(agentUrl), { requestInit: { headers: { Authorization: `Bearer ${flow.accessToken}` } } }));
    const found = (await client.callTool({ name: 'find_slot', arguments: { duration: '30m' } })) as CallToolResult;
    expect(found.isError).toBeFalsy();
    // With the calendar backend gone, the tool warns in the log: that line must carry the request's id too.
    await stack.calendar.close();
    const failed = (await client.callTool({ name: 'find_slot', arguments: { duration: '30m' } })) as CallToolResult;
    expect(failed.isError).toBe(true);
    await client.close();

    const refreshed = await postForm(`${issuer}/token`, { grant_type: 'refresh_token', refresh_token: flow.refreshToken, client_id: flow.clientId, resource: agentUrl });
    expect(refreshed.status).toBe(200);
    const safe = await fetch(`${issuer}/.well-known/oauth-authorization-server`, { headers: { 'X-Request-Id': 'caller-chosen-42' } });
    echoed.safe = safe.headers.get('x-request-id');
    const unsafe = await fetch(`${issuer}/token`, { method: 'POST', headers: { 'X-Request-Id': 'has space', 'content-type': 'application/json' }, body: '{not json' });
    echoed.unsafe = unsafe.headers.get('x-request-id');
    echoed.unsafeStatus = String(unsafe.status);
    const revoked = await postForm(`${issuer}/revoke`, { token: String(refreshed.body.refresh_token), client_id: flow.clientId });
    expect(revoked.status).toBe(200);
    secrets.push(
      flow.assertion,
      flow.code,
      flow.verifier,
      flow.csrf,
      ...flow.cookies,
      flow.accessToken,
      flow.refreshToken,
      String(refreshed.body.access_token),
      String(refreshed.body.refresh_token),
    );
  }, 30_000);

  afterAll(async () => {
    await stack?.close();
  });

  it('writes no secret of the flow, and no request URL with a query', () => {
    const text = out.text();
    expect(out.lines().length).toBeGreaterThan(20);
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(8);
      expect(text).not.toContain(secret);
    }
    expect(text).not.toMatch(/[?&](code|assertion|code_verifier|refresh_token|access_token)=/);
  });

  it('puts a request id on every line about a request, errors and tool warnings included', () => {
    const lines = out.lines();
    const aboutRequests = lines.filter((l) => 'req' in l || 'res' in l);
    expect(aboutRequests.length).toBeGreaterThan(10);
    for (const line of aboutRequests) expect(line.reqId, JSON.stringify(line)).toEqual(expect.any(String));
    const toolWarning = lines.find((l) => l.msg === 'calendar request failed' || l.msg === 'find_slot failed');
    expect(toolWarning, 'the tool logged why it failed').toBeDefined();
    expect(toolWarning!.reqId).toEqual(expect.any(String));
    const requestOfWarning = lines.find((l) => l.reqId === toolWarning!.reqId && l.msg === 'incoming request');
    expect((requestOfWarning?.req as { path?: string } | undefined)?.path).toBe('/mcp');
  });

  it('echoes the id in X-Request-Id: the caller’s when it is safe, a fresh one otherwise', () => {
    expect(echoed.safe).toBe('caller-chosen-42');
    expect(out.lines().some((l) => l.reqId === 'caller-chosen-42')).toBe(true);
    expect(echoed.unsafeStatus).toBe('400');
    expect(echoed.unsafe).toMatch(/^[0-9a-f-]{36}$/);
    expect(out.lines().filter((l) => l.reqId === echoed.unsafe).length).toBeGreaterThanOrEqual(2);
    expect(out.text()).not.toContain('has space');
  });
});

describe('access lines', () => {
  async function linesAt(level: 'info' | 'debug') {
    const { createApp } = await import('../../src/http/app.js');
    const out = capture();
    const app = createApp({ logger: createLogger(level, out.stream) });
    app.get('/ping', async () => ({ ok: true }));
    await app.ready();
    const res = await app.inject({ method: 'GET', url: '/ping?code=not-logged', headers: { host: '127.0.0.1' } });
    await app.close();
    return { res, lines: out.lines() };
  }

  it('at info, one line per request when it is answered: path, status, time and the request id', async () => {
    const { res, lines } = await linesAt('info');
    expect(res.statusCode).toBe(200);
    expect(lines.map((l) => l.msg)).toEqual(['request completed']);
    expect(lines[0]).toMatchObject({ reqId: res.headers['x-request-id'], req: { method: 'GET', path: '/ping' }, res: { statusCode: 200 } });
    expect(lines[0]!.responseTime).toEqual(expect.any(Number));
    expect(JSON.stringify(lines)).not.toContain('not-logged');
  });

  // Found in review (s35logs): a 500's access line was at info like any other, so alerting on level missed it.
  it('at error for a 5xx (the server failed), at info for a 4xx (the client did)', async () => {
    const { createApp, sendError } = await import('../../src/http/app.js');
    const out = capture();
    const app = createApp({ logger: createLogger('info', out.stream) });
    app.get('/broken', async () => {
      throw new Error('the calendar file is broken');
    });
    app.get('/unavailable', async (_req, reply) => sendError(reply, 503, 'temporarily_unavailable', 'Try again shortly.'));
    app.get('/refused', async (_req, reply) => sendError(reply, 403, 'insufficient_scope', 'Not yours.'));
    await app.ready();
    const levels: Record<string, unknown> = {};
    for (const path of ['/broken', '/unavailable', '/refused', '/nowhere']) {
      const res = await app.inject({ method: 'GET', url: path, headers: { host: '127.0.0.1' } });
      levels[`${path} ${res.statusCode}`] = out.lines().find((l) => l.reqId === res.headers['x-request-id'] && l.msg === 'request completed')?.level;
    }
    await app.close();
    expect(levels).toEqual({ '/broken 500': 50, '/unavailable 503': 50, '/refused 403': 30, '/nowhere 404': 30 });
  });

  it('at debug, also the line on arrival', async () => {
    const { lines } = await linesAt('debug');
    expect(lines.map((l) => l.msg)).toEqual(['incoming request', 'request completed']);
  });

  // Found at stop 21: each access line carried the id twice, as fastify's reqId and as req.id (the req serializer's).
  it('names the request id once, as reqId: no req.id', async () => {
    const { res, lines } = await linesAt('debug');
    const id = res.headers['x-request-id'] as string;
    for (const line of lines) {
      expect(line.reqId, JSON.stringify(line)).toBe(id);
      expect(line.req, JSON.stringify(line)).toEqual({ method: 'GET', path: '/ping', remoteAddress: '127.0.0.1' });
      expect(JSON.stringify(line).split(id)).toHaveLength(2);
    }
  });

  // Found in review: requests refused before routing (a malformed percent-encoding in the path) or by Node's HTTP
  // parser (headers over 16 KiB) were answered with an X-Request-Id that no log line at info carried.
  it('at info, one line too for a request refused before routing or by the HTTP parser, under the id the answer names', async () => {
    const { createApp } = await import('../../src/http/app.js');
    const { request } = await import('node:http');
    const out = capture();
    const app = createApp({ logger: createLogger('info', out.stream) });
    app.get('/ping', async () => ({ ok: true }));
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const get = (path: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; id: string | undefined; body: string }>((resolve, reject) => {
        request(`${base}${path}`, { headers }, (res) => {
          let body = '';
          res.on('data', (c) => (body += String(c)));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, id: res.headers['x-request-id'] as string | undefined, body }));
        })
          .on('error', reject)
          .end();
      });
    try {
      const badUrl = await get('/ping%zz?code=not-logged');
      const tooLarge = await get('/ping', { 'x-filler': 'a'.repeat(20_000) });
      for (const [res, status, msg] of [
        [badUrl, 400, 'request refused before routing'],
        [tooLarge, 431, 'request refused by the HTTP parser'],
      ] as const) {
        expect(res.status).toBe(status);
        expect(JSON.parse(res.body)).toMatchObject({ error: 'invalid_request' });
        expect(res.id).toMatch(/^[0-9a-f-]{36}$/);
        expect(out.lines().filter((l) => l.reqId === res.id)).toEqual([expect.objectContaining({ level: 30, msg, res: { statusCode: status } })]);
      }
      expect(out.text()).not.toContain('not-logged');
      expect(out.text()).not.toContain('aaaaaaaa');
    } finally {
      await app.close();
    }
  });
});

// The brief (s21): an operator auditing the authorization server needs who tried the sign-ins and who hit /register,
// and no access line said. Real servers on loopback ports; X-Forwarded-For is only a header here (203.0.113.7 is a
// documentation address, RFC 5737), so nothing leaves loopback.
describe('the client’s address on the access lines of the three servers', () => {
  const CLIENT = '203.0.113.7';

  /** The three servers of a stack logging at info into `out`, believing `trustProxy`'s X-Forwarded-For (none: no proxy). */
  async function stackLoggingTo(out: ReturnType<typeof capture>, trustProxy?: readonly string[]): Promise<TestStack> {
    return startTestStack({ logger: createLogger('info', out.stream), ...(trustProxy ? { trustProxy } : {}) });
  }

  /** One request to each server (the AS's /register among them), each with its own X-Request-Id: their access lines, by server. */
  async function accessLines(stack: TestStack, out: ReturnType<typeof capture>, headers: Record<string, string>): Promise<Record<string, Record<string, unknown> | undefined>> {
    const { issuer, calendarUrl, agentUrl } = stack.urls;
    const requests: Record<string, [string, RequestInit]> = {
      'authorization server /register': [
        `${issuer}/register`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ client_name: 'logged', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none', grant_types: ['authorization_code'] }),
        },
      ],
      'calendar backend': [`${calendarUrl}/.well-known/oauth-protected-resource`, {}],
      CalendarAgent: [`${new URL(agentUrl).origin}/.well-known/oauth-protected-resource/mcp`, {}],
    };
    const found: Record<string, Record<string, unknown> | undefined> = {};
    for (const [server, [url, init]] of Object.entries(requests)) {
      const id = `addr-${Object.keys(found).length}-${Math.random().toString(36).slice(2, 10)}`;
      const res = await fetch(url, { ...init, headers: { ...(init.headers as Record<string, string>), ...headers, 'x-request-id': id } });
      expect(res.status, server).toBeLessThan(300);
      await res.arrayBuffer();
      found[server] = out.lines().find((l) => l.reqId === id && l.msg === 'request completed');
    }
    return found;
  }

  it('with no proxy trusted (the default), the peer’s 127.0.0.1, and a forged X-Forwarded-For ignored', async () => {
    const out = capture();
    const stack = await stackLoggingTo(out);
    try {
      for (const headers of [{}, { 'x-forwarded-for': CLIENT }] as Array<Record<string, string>>) {
        for (const [server, line] of Object.entries(await accessLines(stack, out, headers))) {
          expect(line, server).toMatchObject({ req: { remoteAddress: '127.0.0.1' } });
        }
      }
      expect(out.text()).not.toContain(CLIENT);
    } finally {
      await stack.close();
    }
  }, 30_000);

  it('behind a trusted proxy on loopback (--trust-proxy loopback), the address its X-Forwarded-For names', async () => {
    const out = capture();
    const stack = await stackLoggingTo(out, ['loopback']);
    try {
      for (const [server, line] of Object.entries(await accessLines(stack, out, { 'x-forwarded-for': CLIENT }))) {
        expect(line, server).toMatchObject({ req: { remoteAddress: CLIENT } });
      }
      // The rightmost entry that is no trusted proxy's: one the client wrote before the proxy's own counts for nothing.
      for (const [server, line] of Object.entries(await accessLines(stack, out, { 'x-forwarded-for': `198.51.100.9, ${CLIENT}` }))) {
        expect(line, server).toMatchObject({ req: { remoteAddress: CLIENT } });
      }
      // Through the proxy with no header: the proxy's own address.
      for (const [server, line] of Object.entries(await accessLines(stack, out, {}))) {
        expect(line, server).toMatchObject({ req: { remoteAddress: '127.0.0.1' } });
      }
    } finally {
      await stack.close();
    }
  }, 30_000);

  it('on the lines of requests refused before routing or by the HTTP parser too, the peer’s, with no proxy trusted', async () => {
    const { createApp } = await import('../../src/http/app.js');
    const { request } = await import('node:http');
    const out = capture();
    const app = createApp({ logger: createLogger('info', out.stream) });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const idOf = (path: string, headers: Record<string, string>) =>
      new Promise<string>((resolve, reject) => {
        request(`${base}${path}`, { headers }, (res) => {
          res.resume();
          res.on('end', () => resolve(String(res.headers['x-request-id'])));
        })
          .on('error', reject)
          .end();
      });
    try {
      const badUrl = await idOf('/ping%zz', { 'x-forwarded-for': CLIENT });
      const tooLarge = await idOf('/ping', { 'x-forwarded-for': CLIENT, 'x-filler': 'a'.repeat(20_000) });
      for (const id of [badUrl, tooLarge]) expect(out.lines().find((l) => l.reqId === id)).toMatchObject({ req: { remoteAddress: '127.0.0.1' } });
    } finally {
      await app.close();
    }
  });

  it('goes through the redaction like the rest of the line: a credential-shaped X-Forwarded-For from a trusted proxy is cut out', async () => {
    const { createApp } = await import('../../src/http/app.js');
    const out = capture();
    const app = createApp({ logger: createLogger('info', out.stream), trustProxy: ['loopback'] });
    app.get('/ping', async () => ({ ok: true }));
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
    try {
      const res = await fetch(`${base}/ping`, { headers: { 'x-forwarded-for': jwt } });
      expect(res.status).toBe(200);
      expect(out.lines().find((l) => l.reqId === res.headers.get('x-request-id'))).toMatchObject({ req: { path: '/ping', remoteAddress: REDACTION_CENSOR } });
      expect(out.text()).not.toContain('c2lnbmF0dXJl');
    } finally {
      await app.close();
    }
  });
});
