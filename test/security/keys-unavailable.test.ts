// A valid token presented while the authorization server's signing keys
// cannot be fetched (the AS stopped, or its metadata or JWKS failing), at a
// resource server just started (CalendarAgent restarted, as after a reboot,
// and the calendar backend): refused, fail closed, but with 503
// temporarily_unavailable and Retry-After, as for a stale revocation list, and
// never invalid_token, which RFC 6750 §3.1 keeps for a token that is expired,
// revoked, malformed or invalid, and which makes a client throw the token
// away. The control: a token naming a key the AS does not publish is still
// 401 invalid_token while the AS answers.
import { createServer, type Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { SignJWT, decodeJwt, decodeProtectedHeader, importJWK, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAgent, buildCalendar, storeAudit } from '../../src/cli/servers.js';
import { initializeBody, mcpHeaders, rawRequest, type RawResponse } from '../agent/http.js';
import { es256Key } from '../support/authz.js';
import { exchangeAsAgent, startStack, userTokens, type Stack } from './stack.js';

const HOUR = 3_600_000;

let stack: Stack;
let agentToken: string;
let calendarToken: string;
let metadata: string;
/** The resource servers started by the tests, in place of the stack's. */
let fresh: FastifyInstance[] = [];
/** What listens on the AS's port once the AS is stopped. */
let standIn: Server | undefined;

beforeAll(async () => {
  stack = await startStack();
  agentToken = (await userTokens(stack)).accessToken;
  const exchanged = await exchangeAsAgent(stack, agentToken);
  expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
  calendarToken = String(exchanged.body.access_token);
  metadata = await (await fetch(`${stack.issuer}/.well-known/oauth-authorization-server`)).text();
});

afterAll(async () => {
  for (const app of fresh) await app.close();
  await closeStandIn();
  await stack?.close();
});

async function closeStandIn(): Promise<void> {
  const server = standIn;
  standIn = undefined;
  if (!server) return;
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

/** Stops the resource servers running and starts new ones on the same ports: they have fetched no key yet. */
async function restartResourceServers(): Promise<void> {
  for (const app of [stack.apps.agent, stack.apps.calendar, ...fresh]) await app.close();
  const urls = { issuer: stack.issuer, calendarUrl: stack.calendarUrl, agentUrl: stack.agentUrl };
  fresh = [await buildCalendar(stack.store, stack.paths, stack.calendarUrl, stack.issuer), await buildAgent(stack.paths, urls, undefined, storeAudit(stack.store))];
  await fresh[0]!.listen({ port: stack.ports.calendar, host: '127.0.0.1' });
  await fresh[1]!.listen({ port: stack.ports.agent, host: '127.0.0.1' });
}

const atAgent = (token: string) => rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(token), body: initializeBody });
const atCalendar = (token: string) => {
  const now = Date.now();
  const query = `from=${encodeURIComponent(new Date(now + HOUR).toISOString())}&to=${encodeURIComponent(new Date(now + 24 * HOUR).toISOString())}`;
  return rawRequest({ port: stack.ports.calendar, path: `/freebusy?${query}`, headers: { authorization: `Bearer ${token}` } });
};

/** The same claims as `token`, signed with a key the AS never published (a kid of its own). */
async function signedWithUnknownKey(token: string): Promise<string> {
  const stranger = await es256Key();
  return new SignJWT(decodeJwt(token))
    .setProtectedHeader({ ...decodeProtectedHeader(token), alg: 'ES256', kid: stranger.privateJwk.kid! })
    .sign((await importJWK(stranger.privateJwk, 'ES256')) as CryptoKey);
}

function expectUnavailable(res: RawResponse, where: string): void {
  expect(res.status, `${where}: ${res.text}`).toBe(503);
  expect(res.json(), where).toMatchObject({ error: 'temporarily_unavailable' });
  expect(String(res.headers['retry-after']), where).toMatch(/^[1-9]\d*$/);
  expect(res.headers['www-authenticate'], where).toBeUndefined();
  expect(res.text, where).not.toContain('invalid_token');
}

describe("a valid token while the authorization server's keys cannot be fetched (fail closed, not invalid_token)", () => {
  it('the tokens are good (the control)', async () => {
    await restartResourceServers();
    expect((await atAgent(agentToken)).status).toBe(200);
    expect((await atCalendar(calendarToken)).status).toBe(200);
  });

  it('a token signed with a key the AS does not publish is 401 invalid_token, at a server that has just fetched the keys', async () => {
    await restartResourceServers();
    for (const [where, res] of [
      ['CalendarAgent', await atAgent(await signedWithUnknownKey(agentToken))],
      ['calendar backend', await atCalendar(await signedWithUnknownKey(calendarToken))],
    ] as const) {
      expect(res.status, where).toBe(401);
      expect(String(res.headers['www-authenticate']), where).toContain('error="invalid_token"');
      expect(res.json(), where).toMatchObject({ error: 'invalid_token', error_description: 'The token was signed with an unknown key.' });
    }
  });

  // Each case leaves the AS stopped and puts on its port what the case names (nothing: connection refused).
  it.each([
    ['the AS stopped (connection refused)', undefined],
    ['its metadata answering 500', (path: string) => (path.startsWith('/.well-known/oauth-authorization-server') ? [500, '{"error":"server_error"}'] : [404, '{}'])],
    ['its JWKS answering 500', (path: string) => (path.startsWith('/.well-known/oauth-authorization-server') ? [200, metadata] : [500, '{"error":"server_error"}'])],
    ['its JWKS answering what is not JSON', (path: string) => (path.startsWith('/.well-known/oauth-authorization-server') ? [200, metadata] : [200, '<html>maintenance</html>'])],
  ] as Array<[string, ((path: string) => [number, string]) | undefined]>)('%s: 503 temporarily_unavailable with Retry-After at both resource servers', async (_name, answer) => {
    await stack.apps.auth.close();
    await closeStandIn();
    if (answer) {
      const server = createServer((req, res) => {
        const [status, body] = answer(req.url ?? '/');
        res.writeHead(status, { 'content-type': 'application/json' }).end(body);
      });
      await new Promise<void>((resolve) => server.listen(stack.ports.auth, '127.0.0.1', resolve));
      standIn = server;
    }
    await restartResourceServers();
    expectUnavailable(await atAgent(agentToken), 'CalendarAgent');
    expectUnavailable(await atCalendar(calendarToken), 'calendar backend');
    // Not once and then invalid_token: asked again, the same.
    expectUnavailable(await atAgent(agentToken), 'CalendarAgent, again');
  });
});
