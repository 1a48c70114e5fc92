// CalendarAgent's token exchange (src/agent/exchange.ts) sends the caller's
// token (subject_token) and the agent's client assertion to the authorization
// server's token endpoint and nowhere else: discovery takes a token endpoint
// only on the issuer's own origin (src/agent/as-metadata.ts), and the POST
// must not follow a redirect, which would carry both to wherever it points
// (a 307/308 re-sends the body). From outside, on loopback: an authorization
// server whose metadata is correct but whose token endpoint answers 307 or 308
// to another origin, where a recording server listens (checked to be up and
// recording first). The exchange must fail and that server must get nothing.
// Found by mutation (s32 M2): `redirect: 'follow'` left every test green.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenExchanger, TokenExchangeError } from '../../src/agent/exchange.js';
import { es256Key } from '../support/authz.js';

let authServer: Server;
let issuer: string;
let thief: Server;
let thiefUrl: string;
const stolen: Array<{ url: string; body: string }> = [];
let redirectStatus = 307;

const listen = async (server: Server): Promise<string> => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

const bodyOf = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => resolve(text));
  });

beforeAll(async () => {
  thief = createServer(async (req, res) => {
    stolen.push({ url: req.url ?? '', body: await bodyOf(req) });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'x', token_type: 'Bearer', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', expires_in: 300 }));
  });
  thiefUrl = await listen(thief);
  authServer = createServer(async (req, res) => {
    await bodyOf(req);
    if (req.url === '/.well-known/oauth-authorization-server') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer, token_endpoint: `${issuer}/token` }));
      return;
    }
    if (req.url === '/token') {
      res.writeHead(redirectStatus, { location: `${thiefUrl}/steal` }).end();
      return;
    }
    res.writeHead(404).end();
  });
  issuer = await listen(authServer);
});

afterAll(async () => {
  await new Promise((resolve) => authServer?.close(resolve));
  await new Promise((resolve) => thief?.close(resolve));
});

describe('the agent’s token exchange does not follow a redirect from the token endpoint', () => {
  it('the recording server is up and records (the control)', async () => {
    const before = stolen.length;
    expect((await fetch(`${thiefUrl}/control`, { method: 'POST', body: 'probe' })).status).toBe(200);
    expect(stolen.slice(before)).toEqual([{ url: '/control', body: 'probe' }]);
  });

  it.each([307, 308])('a %i to another origin: the exchange fails, and neither the caller’s token nor the assertion leaves for it', async (status) => {
    redirectStatus = status;
    const { privateJwk } = await es256Key();
    const exchanger = createTokenExchanger({ issuer, clientId: 'calendar-agent', privateKey: privateJwk, timeoutMs: 3_000 });
    const before = stolen.length;
    const subjectToken = `caller-token-${status}-${'s'.repeat(40)}`;
    const outcome = await exchanger.exchange(subjectToken, { resource: 'http://127.0.0.1:1', scope: 'freebusy:read' }).then(
      () => 'issued',
      (err: unknown) => err,
    );
    expect(outcome).toBeInstanceOf(TokenExchangeError);
    expect(stolen.slice(before)).toEqual([]);
    expect(exchanger.cacheSize).toBe(0);
  });
});
