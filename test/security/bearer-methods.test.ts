// How the two resource servers (CalendarAgent's /mcp, the calendar backend's
// /freebusy) receive a bearer token, on the real stack with real tokens and
// the servers' logs captured at trace. The Authorization header is the one
// method taken: `access_token` in the URI query alone is ignored (OAuth 2.1
// draft-16 §5.1: "clients MUST NOT send the access token in a URI query
// parameter, and resource servers MUST ignore access tokens in a URI query
// parameter"), so the request is one with no token (401); beside a header it
// is refused with 400 invalid_request (RFC 6750 §2: "Clients MUST NOT use more
// than one method to transmit the token in each request"; §3.1), and the token
// reaches no log line; so is a form body carrying it beside a header at /mcp. A request with no token at
// all gets a challenge without an error code (RFC 6750 §3.1: "the resource
// server SHOULD NOT include an error code or other error information"), while
// its JSON body keeps an RFC error code (test/fuzz asks one of every 4xx).
// Found in review (s26): a header plus a query token was answered as the
// header alone (200), the query never read.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initializeBody, mcpHeaders, rawRequest, type RawResponse } from '../agent/http.js';
import { lastAuditSeq, auditSince, startStack, userAndCalendarToken, type Stack } from './stack.js';

let stack: Stack;
let userToken: string;
let calendarToken: string;
beforeAll(async () => {
  stack = await startStack({ logs: true });
  const tokens = await userAndCalendarToken(stack);
  userToken = tokens.user.accessToken;
  calendarToken = tokens.calendarToken;
}, 30_000);
afterAll(async () => stack?.close());

const agentMetadata = () => `http://127.0.0.1:${stack.ports.agent}/.well-known/oauth-protected-resource/mcp`;
const calendarMetadata = () => `${stack.calendarUrl}/.well-known/oauth-protected-resource`;

/** An MCP initialize at CalendarAgent: `query` after /mcp, the header's token (none: no header), the body and its type. */
function atMcp(query: string, token: string | undefined, body = initializeBody, contentType = 'application/json', method = 'POST'): Promise<RawResponse> {
  return rawRequest({ port: stack.ports.agent, method, path: `/mcp${query}`, headers: mcpHeaders(token, { 'Content-Type': contentType }), ...(method === 'POST' ? { body } : {}) });
}

/** A free/busy read for the next day: `extra` appended to the query, the header's token (none: no header). */
function atFreebusy(extra: string, token: string | undefined): Promise<RawResponse> {
  const from = encodeURIComponent(new Date(Date.now() + 3600_000).toISOString());
  const to = encodeURIComponent(new Date(Date.now() + 86_400_000).toISOString());
  return rawRequest({ port: stack.ports.calendar, path: `/freebusy?from=${from}&to=${to}${extra}`, headers: token ? { authorization: `Bearer ${token}` } : {} });
}

/** 400 invalid_request in the challenge (after resource_metadata) and in the body, never stored. */
function expectInvalidRequest(res: RawResponse, metadataUrl: string, what: string): void {
  expect([what, res.status]).toEqual([what, 400]);
  expect(String(res.headers['www-authenticate']), what).toMatch(new RegExp(`^Bearer resource_metadata="${metadataUrl.replace(/[.?]/g, '\\$&')}", error="invalid_request", error_description="[^"]*access_token[^"]*"`));
  expect(res.json(), what).toEqual({ error: 'invalid_request', error_description: expect.stringContaining('Authorization header') });
  expect(res.headers['cache-control'], what).toContain('no-store');
}

describe('access_token in the URI query (OAuth 2.1 §5.1, RFC 6750 §2)', () => {
  it('at CalendarAgent: beside a good header, encoded, empty, or on the 405 route: 400 invalid_request, never 200', async () => {
    const cases: Array<[string, string, string | undefined]> = [
      ['header and the same token in the query', `?access_token=${userToken}`, userToken],
      ['a good header, junk in the query', '?access_token=junk', userToken],
      ['the name percent-encoded', `?access%5Ftoken=${userToken}`, userToken],
      ['an empty value among others', '?x=1&access_token=&y=2', userToken],
    ];
    for (const [what, query, header] of cases) expectInvalidRequest(await atMcp(query, header), agentMetadata(), what);
    expectInvalidRequest(await atMcp(`?access_token=${userToken}`, userToken, '', 'application/json', 'GET'), agentMetadata(), 'GET /mcp');
  });

  it('at the calendar backend: beside a good header: 400 invalid_request, nothing read or recorded', async () => {
    const seq = await lastAuditSeq(stack);
    expectInvalidRequest(await atFreebusy(`&access_token=${calendarToken}`, calendarToken), calendarMetadata(), 'header and query');
    expectInvalidRequest(await atFreebusy('&access%5Ftoken=junk', calendarToken), calendarMetadata(), 'encoded name, junk value');
    expect(await auditSince(stack, seq)).toEqual([]);
  });

  it('the controls: the header alone, and a query that only mentions access_token, are answered as before', async () => {
    expect((await atMcp('', userToken)).status).toBe(200);
    expect((await atMcp('?x=access_token&access_tokens=1&Access_Token=1', userToken)).status).toBe(200);
    expect((await atFreebusy('', calendarToken)).status).toBe(200);
    expect((await atFreebusy('&x=access_token', calendarToken)).status).toBe(200);
  });
});

describe('access_token in a form-encoded body at /mcp (RFC 6750 §2.2, which /mcp does not take)', () => {
  it('beside a good header: 400 invalid_request naming the two methods, not 415', async () => {
    const res = await atMcp('', userToken, `access_token=${userToken}`, 'application/x-www-form-urlencoded');
    expect(res.status).toBe(400);
    expect(String(res.headers['www-authenticate'])).toMatch(/^Bearer resource_metadata="[^"]+", error="invalid_request", error_description="[^"]*header and in the request body/);
    expect(res.json()).toEqual({ error: 'invalid_request', error_description: expect.stringContaining('send it in the header only') });
  });

  it('alone: no token by a method taken here, so 401 with no error code in the challenge (RFC 6750 §3.1)', async () => {
    const res = await atMcp('', undefined, `access_token=${userToken}`, 'application/x-www-form-urlencoded');
    expect([res.status, res.headers['www-authenticate']]).toEqual([401, `Bearer resource_metadata="${agentMetadata()}", scope="slots:find"`]);
  });

  it('the control: a form body without access_token beside a good header is still the media type refused (415)', async () => {
    expect((await atMcp('', userToken, 'a=1', 'application/x-www-form-urlencoded')).status).toBe(415);
  });
});

describe('a request with no authentication at all (RFC 6750 §3.1)', () => {
  it('at CalendarAgent: 401, a challenge with no error code or description, a body with an RFC error code', async () => {
    for (const [what, res] of [
      ['no header', await atMcp('', undefined)],
      ['another scheme', await rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(undefined, { Authorization: 'Basic dXNlcjpwYXNz' }), body: initializeBody })],
      ['GET, no header', await atMcp('', undefined, '', 'application/json', 'GET')],
      // OAuth 2.1 §5.1: a token in the query is ignored, so the request has none.
      ['the token in the query alone', await atMcp(`?access_token=${userToken}`, undefined)],
    ] as const) {
      expect([what, res.status, res.headers['www-authenticate']]).toEqual([what, 401, `Bearer resource_metadata="${agentMetadata()}", scope="slots:find"`]);
      expect((res.json() as { error?: unknown }).error, what).toBe('invalid_token');
    }
  });

  it('at the calendar backend: 401, a challenge with no error code or description, a body with an RFC error code', async () => {
    for (const [what, res] of [
      ['no header', await atFreebusy('', undefined)],
      ['another scheme', await rawRequest({ port: stack.ports.calendar, path: '/freebusy?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z', headers: { authorization: 'Basic dXNlcjpwYXNz' } })],
      ['the token in the query alone', await atFreebusy(`&access_token=${calendarToken}`, undefined)],
    ] as const) {
      expect([what, res.status, res.headers['www-authenticate']]).toEqual([what, 401, `Bearer resource_metadata="${calendarMetadata()}"`]);
      expect((res.json() as { error?: unknown }).error, what).toBe('invalid_token');
    }
  });
});

describe('the logs', () => {
  it('hold no token sent in a query or a body, whole or in part, and record the refused requests by path', () => {
    const text = stack.logLines.join('\n');
    for (const token of [userToken, calendarToken]) {
      for (const part of token.split('.').filter((p) => p.length > 20)) expect(text).not.toContain(part);
    }
    expect(text).not.toMatch(/[?&]access(_|%5F)token=/i);
    const refused = stack.logLines.map((l) => JSON.parse(l) as { msg?: string; req?: { path?: string }; res?: { statusCode?: number } }).filter((l) => l.msg === 'request completed' && l.res?.statusCode === 400);
    expect(refused.map((l) => l.req?.path)).toEqual(expect.arrayContaining(['/mcp', '/freebusy']));
  });
});
