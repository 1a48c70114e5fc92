// The token exchange client against an authorization server stand-in on a
// real loopback port: the RFC 8693 request it sends, its private_key_jwt
// assertion (RFC 7523), its cache of exchanged tokens and its typed errors.
// (The end-to-end test in agent-e2e.test.ts runs it against the real server.)
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { createApp, type FormBody } from '../../src/http/app.js';
import { createTokenExchanger, TokenExchangeError } from '../../src/agent/exchange.js';
import { loadOrCreateAgentKey, type AgentIdentity } from '../../src/agent/identity.js';
import { listen } from './support.js';

interface StubAs {
  issuer: string;
  requests: FormBody[];
  close(): Promise<void>;
}

type Answer = (form: FormBody) => { status: number; body: unknown } | Promise<{ status: number; body: unknown }>;

async function stubAs(agent: AgentIdentity, answer: Answer, metadata?: (issuer: string) => unknown): Promise<StubAs> {
  const app = createApp();
  const requests: FormBody[] = [];
  let issuer = '';
  app.get('/.well-known/oauth-authorization-server', async () => metadata?.(issuer) ?? { issuer, token_endpoint: `${issuer}/token` });
  app.post('/token', async (req, reply) => {
    const form = req.body as FormBody;
    requests.push(form);
    // Check the client assertion the way the real AS will (RFC 7523 §3).
    const assertion = String(form.client_assertion);
    const { payload } = await jwtVerify(assertion, await importJWK(agent.publicJwk, 'ES256'), {
      issuer: agent.clientId,
      subject: agent.clientId,
      audience: issuer,
      algorithms: ['ES256'],
    });
    expect(decodeProtectedHeader(assertion)).toMatchObject({ alg: 'ES256', kid: agent.publicJwk.kid });
    expect(typeof payload.jti).toBe('string');
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(300);
    const { status, body } = await answer(form);
    return reply.code(status).send(body);
  });
  issuer = await listen(app);
  return { issuer, requests, close: () => app.close() };
}

const okToken = (expiresIn = 300) => ({
  status: 200,
  body: {
    access_token: `calendar-token-${Math.random()}`,
    issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    token_type: 'Bearer',
    expires_in: expiresIn,
    scope: 'freebusy:read',
  },
});

const request = { resource: 'http://127.0.0.1:8411', scope: 'freebusy:read' };

let dir: string;
let agent: AgentIdentity;
let as: StubAs | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-exchange-'));
  agent = await loadOrCreateAgentKey(join(dir, 'agent-key.json'));
});
afterEach(async () => {
  await as?.close();
  as = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('createTokenExchanger', () => {
  it('sends an RFC 8693 request authenticated with private_key_jwt, to the discovered token endpoint', async () => {
    as = await stubAs(agent, () => okToken());
    const exchanger = createTokenExchanger({ issuer: as.issuer, clientId: agent.clientId, privateKey: agent.privateJwk });
    const token = await exchanger.exchange('user-token', request);
    expect(token.scope).toBe('freebusy:read');
    expect(token.accessToken).toMatch(/^calendar-token-/);
    expect(as.requests).toHaveLength(1);
    expect(as.requests[0]).toMatchObject({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: 'user-token',
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      resource: 'http://127.0.0.1:8411',
      scope: 'freebusy:read',
      client_id: 'calendar-agent',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    });
  });

  it('reuses an exchanged token until 30 s before it expires, then exchanges again', async () => {
    as = await stubAs(agent, () => okToken(300));
    let clock = 1_800_000_000_000;
    const exchanger = createTokenExchanger({ issuer: as.issuer, clientId: agent.clientId, privateKey: agent.privateJwk, now: () => clock });
    const first = await exchanger.exchange('user-token', request);
    clock += 269_000;
    expect(await exchanger.exchange('user-token', request)).toEqual({ ...first, cached: true });
    expect(as.requests).toHaveLength(1);
    clock += 2_000; // now 29 s before expiry
    const second = await exchanger.exchange('user-token', request);
    expect(second.accessToken).not.toBe(first.accessToken);
    expect(as.requests).toHaveLength(2);
  });

  it('keeps one cached token per caller token, and shares one request between concurrent calls', async () => {
    as = await stubAs(agent, () => okToken());
    const exchanger = createTokenExchanger({ issuer: as.issuer, clientId: agent.clientId, privateKey: agent.privateJwk });
    const [a, b] = await Promise.all([exchanger.exchange('user-token', request), exchanger.exchange('user-token', request)]);
    expect(a).toEqual(b);
    const other = await exchanger.exchange('another-user-token', request);
    expect(other.accessToken).not.toBe(a.accessToken);
    expect(as.requests).toHaveLength(2);
    exchanger.forget('user-token', request);
    await exchanger.exchange('user-token', request);
    expect(as.requests).toHaveLength(3);
  });

  it('bounds its cache', async () => {
    as = await stubAs(agent, () => okToken());
    const exchanger = createTokenExchanger({ issuer: as.issuer, clientId: agent.clientId, privateKey: agent.privateJwk, cacheCapacity: 5 });
    for (let i = 0; i < 12; i++) await exchanger.exchange(`user-token-${i}`, request);
    expect(exchanger.cacheSize).toBe(5);
  });

  it('does not cache a token that lives less than the margin', async () => {
    as = await stubAs(agent, () => okToken(10));
    const exchanger = createTokenExchanger({ issuer: as.issuer, clientId: agent.clientId, privateKey: agent.privateJwk });
    await exchanger.exchange('user-token', request);
    await exchanger.exchange('user-token', request);
    expect(as.requests).toHaveLength(2);
    expect(exchanger.cacheSize).toBe(0);
  });

  it('maps a refusal to a typed error carrying the RFC code', async () => {
    as = await stubAs(agent, () => ({ status: 400, body: { error: 'invalid_target', error_description: 'The grant does not cover that resource.' } }));
    const exchanger = createTokenExchanger({ issuer: as.issuer, clientId: agent.clientId, privateKey: agent.privateJwk });
    const error = await exchanger.exchange('user-token', request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenExchangeError);
    expect(error).toMatchObject({ code: 'invalid_target', serverDescription: 'The grant does not cover that resource.' });
    expect(exchanger.cacheSize).toBe(0);
  });

  it('maps an unknown error code to server_error, and a body that is not a token response to invalid_response', async () => {
    let answer: { status: number; body: unknown } = { status: 400, body: { error: 'something_new' } };
    as = await stubAs(agent, () => answer);
    const exchanger = createTokenExchanger({ issuer: as.issuer, clientId: agent.clientId, privateKey: agent.privateJwk });
    await expect(exchanger.exchange('t', request)).rejects.toMatchObject({ code: 'server_error' });
    answer = { status: 200, body: { access_token: 'x', token_type: 'N_A', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' } };
    await expect(exchanger.exchange('t', request)).rejects.toMatchObject({ code: 'invalid_response' });
    answer = { status: 502, body: 'Bad gateway' };
    await expect(exchanger.exchange('t', request)).rejects.toMatchObject({ code: 'server_error' });
  });

  it('refuses metadata that names another issuer or a token endpoint elsewhere, so the caller token stays home', async () => {
    as = await stubAs(agent, () => okToken(), () => ({ issuer: 'http://evil.example', token_endpoint: 'http://evil.example/token' }));
    let exchanger = createTokenExchanger({ issuer: as.issuer, clientId: agent.clientId, privateKey: agent.privateJwk });
    await expect(exchanger.exchange('user-token', request)).rejects.toMatchObject({ code: 'invalid_response' });
    await as.close();
    as = await stubAs(agent, () => okToken(), (issuer) => ({ issuer, token_endpoint: 'http://evil.example/token' }));
    exchanger = createTokenExchanger({ issuer: as.issuer, clientId: agent.clientId, privateKey: agent.privateJwk });
    await expect(exchanger.exchange('user-token', request)).rejects.toMatchObject({ code: 'invalid_response' });
    expect(as.requests).toHaveLength(0);
  });

  it('reports an authorization server that is down, or too slow, as unreachable within the timeout', async () => {
    const down = createTokenExchanger({ issuer: 'http://127.0.0.1:9', clientId: agent.clientId, privateKey: agent.privateJwk });
    await expect(down.exchange('user-token', request)).rejects.toMatchObject({ code: 'unreachable' });

    as = await stubAs(agent, () => new Promise((resolve) => setTimeout(() => resolve(okToken()), 2_000)));
    const slow = createTokenExchanger({ issuer: as.issuer, clientId: agent.clientId, privateKey: agent.privateJwk, timeoutMs: 200 });
    const started = Date.now();
    const error = await slow.exchange('user-token', request).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'unreachable' });
    expect((error as Error).message).toMatch(/within 200 ms/);
    expect(Date.now() - started).toBeLessThan(1_500);
  });
});
