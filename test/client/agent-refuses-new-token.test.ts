// An agent reached by --agent-url that refuses the token the authorization
// server has just issued for it: login ends with one line naming that agent
// by its URL (it may be any MCP server, not CalendarAgent), after one sign-in
// only. The real authorization server on an ephemeral loopback port; on the
// agent's port, an MCP endpoint that publishes its metadata (RFC 9728) and
// answers every request, with a token or without, 401.
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { logout } from '../../src/client/credentials.js';
import { ClientError } from '../../src/client/errors.js';
import { login } from '../../src/client/session.js';
import { protectedResourceMetadataUrl } from '../../src/delegation/resource.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, parseConsentForm } from '../support/oauth-flow.js';

let authz: TestAuthz;
let agent: Server;
let home: string;
let bearers: number;

beforeEach(async () => {
  authz = await startTestAuthz({});
  home = await mkdtemp(join(tmpdir(), 'delegate-agent-refuses-'));
  await authz.shareDataDirectory(home);
  bearers = 0;
  const metadataPath = new URL(protectedResourceMetadataUrl(authz.agentUrl)).pathname;
  agent = createServer((req, res) => {
    if (req.url === metadataPath) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return void res.end(JSON.stringify({ resource: authz.agentUrl, authorization_servers: [authz.issuer], scopes_supported: ['slots:find'] }));
    }
    if (req.headers.authorization?.startsWith('Bearer ')) bearers++;
    req.resume();
    res.writeHead(401, { 'WWW-Authenticate': `Bearer error="invalid_token", resource_metadata="${protectedResourceMetadataUrl(authz.agentUrl)}"` });
    res.end();
  });
  await new Promise<void>((resolve) => agent.listen(Number(new URL(authz.agentUrl).port), '127.0.0.1', resolve));
});

afterEach(async () => {
  await new Promise((resolve) => agent.close(resolve));
  await authz.close();
  await rm(home, { recursive: true, force: true });
});

it('names the agent that refused the new token by its URL, after one consent', async () => {
  let consents = 0;
  const approve = async (link: string) => {
    consents++;
    const browser = new Browser();
    const consent = await browser.follow(link);
    if (consent.location !== null) return void (await browser.get(consent.location));
    const answer = await browser.post(new URL('/consent', consent.url).href, { ...parseConsentForm(consent.html), decision: 'approve' });
    await browser.get(new URL(answer.location!, consent.url).href);
  };
  const files = { tokenCache: join(home, 'tokens.json'), tokenLock: join(home, 'tokens.lock'), ownerKey: join(home, 'owner-key.json') };
  const failure = await login({ agentUrl: authz.agentUrl, files, now: Date.now, loginTimeoutMs: 10_000, presentLoginUrl: async (url) => void approve(url) }).catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(ClientError);
  expect((failure as ClientError).message).toBe(
    `The agent at ${authz.agentUrl} refused the token the authorization server has just issued for it. ` +
      `The sign-in stays stored, for when the agent takes it; \`delegate logout --agent-url ${authz.agentUrl}\` revokes it.`,
  );
  expect(consents).toBe(1);
  expect(bearers).toBeGreaterThan(0); // the token was offered, and refused

  // As said: the sign-in is stored, and the command given revokes it at the authorization server.
  const stored = JSON.parse(await readFile(files.tokenCache, 'utf8')) as { tokens: Record<string, Record<string, { refresh_token: string }>> };
  expect(Object.keys(stored.tokens[authz.issuer] ?? {})).toEqual([authz.agentUrl]);
  const result = await logout({ files, now: Date.now, agentUrl: authz.agentUrl });
  expect(result.revoked).toEqual([expect.objectContaining({ issuer: authz.issuer })]);
  expect((await authz.store.listGrants()).map((g) => g.revokedAt !== null)).toEqual([true]);
});
