// Refusals on the access line (found in review, s35logs): CalendarAgent's and the calendar backend's 401/403/400, and
// the authorization server's refusal pages, were logged as `request completed` with a status only. Each refusal's
// access line, the one with the response's X-Request-Id, now names its RFC error code and its reason, as the body
// does, and no token. And who made the request: the user, client, grant and actor a verified token names, and what
// an /mcp request asked. The three servers as the CLI builds them, logging at info.
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postForm } from '../support/oauth-flow.js';
import { initializeBody, mcpHeaders, rawRequest, type RawResponse } from '../agent/http.js';
import { refusedSoon, startStack, userAndCalendarToken, userTokens, type Stack, type UserTokens } from '../security/stack.js';

let stack: Stack;
let user: UserTokens;
let calendarToken: string;

beforeAll(async () => {
  stack = await startStack({ logs: true, logLevel: 'info' });
  ({ user, calendarToken } = await userAndCalendarToken(stack));
}, 30_000);
afterAll(async () => stack?.close());

/** The access line of `res` (by its X-Request-Id): exactly one. */
function accessLine(res: RawResponse): Record<string, unknown> {
  const id = res.headers['x-request-id'];
  const lines = stack.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.reqId === id);
  expect(lines.map((l) => l.msg)).toEqual(['request completed']);
  return lines[0]!;
}

const toolCall = (name: string) => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: {} } });
const mcp = (token: string, body = toolCall('find_slot')) =>
  rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(token, { 'mcp-protocol-version': '2025-06-18' }), body });
const freebusy = (token: string, query = `from=${new Date().toISOString()}&to=${new Date(Date.now() + 3_600_000).toISOString()}`) =>
  rawRequest({ port: stack.ports.calendar, path: `/freebusy?${query}`, headers: { Authorization: `Bearer ${token}` } });

/** `res` is refused with `status` and `error`, and its access line names the body's error and reason, and no token. */
function expectLogged(res: RawResponse, status: number, error: string | undefined, tokens: string[]): void {
  expect(res.status, res.text).toBe(status);
  const body = res.json() as { error: string; error_description: string };
  if (error !== undefined) expect(body.error).toBe(error);
  const line = accessLine(res);
  expect(line).toMatchObject({ level: 30, res: { statusCode: status }, error: body.error, reason: body.error_description });
  for (const token of tokens) expect(JSON.stringify(line)).not.toContain(token.split('.')[1]!);
}

describe('refusals on the access line', () => {
  it('CalendarAgent: a revoked token, a token for another audience (401 invalid_token), list_busy without busy:read (403 insufficient_scope)', async () => {
    const narrow = await userTokens(stack, { scope: 'slots:find' });
    expectLogged(await mcp(narrow.accessToken, toolCall('list_busy')), 403, 'insufficient_scope', [narrow.accessToken]);
    expectLogged(await mcp(calendarToken), 401, 'invalid_token', [calendarToken]);
    const revoked = await userTokens(stack);
    expect((await postForm(`${stack.issuer}/revoke`, { token: revoked.refreshToken, client_id: revoked.clientId })).status).toBe(200);
    // Once the revocation list reaches the agent (while it has not, the token still works, by design).
    expectLogged(await refusedSoon(() => mcp(revoked.accessToken, initializeBody)), 401, 'invalid_token', [revoked.accessToken]);
  });

  it('the calendar backend: a token for another audience (401), a malformed window (400)', async () => {
    expectLogged(await freebusy(user.accessToken), 401, 'invalid_token', [user.accessToken]);
    expectLogged(await freebusy(calendarToken, 'from=yesterday'), 400, 'invalid_request', [calendarToken]);
  });

  it('the authorization server: a refusal page (400) and an OAuth refusal', async () => {
    const page = await rawRequest({ port: stack.ports.auth, path: '/login/owner' });
    expect(page.status).toBe(400);
    const line = accessLine(page);
    expect(line).toMatchObject({ error: 'invalid_request', reason: expect.stringContaining('This sign-in link is incomplete') });
    const refused = await rawRequest({ port: stack.ports.auth, method: 'POST', path: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=password' });
    expectLogged(refused, 400, undefined, []);
  });
});

// Found in review (s35logs): /mcp and /freebusy lines named no user, client or grant, and a find_slot that failed
// (200, isError) looked like a tools/list; a refused /token request named no client.
describe('who made the request, on the access line', () => {
  it('one find_slot: the agent’s /mcp line names the user, client, grant, method and tool; the backend’s /freebusy line (same id) the user, grant and actor', async () => {
    const id = `who-${Math.random().toString(36).slice(2, 10)}`;
    const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'find_slot', arguments: { duration: '30m' } } });
    const res = await rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(user.accessToken, { 'mcp-protocol-version': '2025-06-18', 'x-request-id': id }), body: call });
    expect(res.status).toBe(200);
    const failed = (res.json() as { result?: { isError?: boolean } }).result?.isError === true;
    const lines = stack.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.reqId === id && l.msg === 'request completed');
    const at = (path: string) => lines.find((l) => (l.req as { path: string }).path === path);
    expect(at('/mcp')).toMatchObject({ user: decodeJwt(user.accessToken).sub, client: user.clientId, grant: user.grantId, method: 'tools/call', tool: 'find_slot', res: { statusCode: 200 } });
    expect(at('/mcp')!.tool_error).toBe(failed ? true : undefined);
    expect(at('/mcp')!.actor).toBeUndefined(); // the client's own token: no agent acts yet
    expect(at('/freebusy')).toMatchObject({ user: decodeJwt(user.accessToken).sub, grant: user.grantId, actor: stack.agent.clientId });
    expect(JSON.stringify(lines)).not.toContain(user.accessToken.split('.')[1]!);
    expect(JSON.stringify(at('/mcp'))).not.toContain('30m'); // never the arguments
  });

  it('a find_slot that failed (200, isError) says so: tool_error', async () => {
    const res = await mcp(user.accessToken); // no duration: the tool answers with an error result
    expect(res.status).toBe(200);
    expect((res.json() as { result: { isError: boolean } }).result.isError).toBe(true);
    expect(accessLine(res)).toMatchObject({ method: 'tools/call', tool: 'find_slot', tool_error: true, grant: user.grantId });
  });

  it('a refused refresh names the client that asked', async () => {
    const refused = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: 'dlg_rt_not-a-real-one', client_id: user.clientId });
    expect(refused.status).toBe(400);
    const line = stack.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request completed' && (l.req as { path: string }).path === '/token').at(-1);
    expect(line).toMatchObject({ client: user.clientId, grant_type: 'refresh_token', error: 'invalid_grant', res: { statusCode: 400 } });
  });
});
