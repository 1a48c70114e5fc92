// A real authorization server for tests: a fresh data directory and SQLite
// store, the local bootstrap (owner, calendar resource, CalendarAgent), an
// owner login key and an agent key, listening on a free loopback port.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { Logger } from 'pino';
import { buildAgentServer } from '../../src/agent/server.js';
import { DATA_DIRECTORY_HEADER, dataDirectoryId } from '../../src/data-directory-id.js';
import { bootstrapLocal, buildAuthServer, type AuthServerOptions, type Lifetimes } from '../../src/authz/index.js';
import type { RevocationList } from '../../src/resource/revocations.js';
import { openStore, type Store } from '../../src/store/index.js';
import { freePort } from './ports.js';

export interface TestAuthz {
  issuer: string;
  agentUrl: string;
  calendarUrl: string;
  home: string;
  store: Store;
  app: FastifyInstance;
  ownerJwk: JWK;
  agent: { clientId: string; privateJwk: JWK };
  ownerId: string;
  /**
   * The CLI's data directory `home` is this server's, as `serve` shares one: the owner key is written into it (0600),
   * and the server's metadata says it runs from it (DATA_DIRECTORY_HEADER), so that the CLI signs in there as the owner.
   */
  shareDataDirectory(home: string): Promise<void>;
  close(): Promise<void>;
}

export interface TestAuthzOptions {
  lifetimes?: Partial<Lifetimes>;
  now?: () => number;
  agentPort?: number;
  calendarPort?: number;
  /** Port to listen on (a free one by default). */
  port?: number;
  /** The server's logger (none by default). */
  logger?: Logger;
  /** Open registrations per source address (the server's defaults unless given). */
  registrationLimits?: AuthServerOptions['registrationLimits'];
  /** How the server fetches client metadata documents (a test's CA, resolver, hosts allowed on loopback). */
  clientDocuments?: AuthServerOptions['clientDocuments'];
  /** Reverse proxies whose X-Forwarded-For names the client (none unless given). */
  trustProxy?: AuthServerOptions['trustProxy'];
  /** Called with the new data directory once its database is set up, before the server listens. */
  beforeListen?: (home: string) => void;
}

export async function es256Key(): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'ES256' }, publicJwk: { ...publicJwk, kid, alg: 'ES256' } };
}

export async function startTestAuthz(options: TestAuthzOptions = {}): Promise<TestAuthz> {
  const home = mkdtempSync(join(tmpdir(), 'delegate-authz-'));
  const port = options.port ?? (await freePort());
  const issuer = `http://127.0.0.1:${port}`;
  const agentUrl = `http://127.0.0.1:${options.agentPort ?? (await freePort())}/mcp`;
  const calendarUrl = `http://127.0.0.1:${options.calendarPort ?? (await freePort())}`;
  const store = openStore(join(home, 'delegate.db'));
  const owner = await es256Key();
  writeFileSync(join(home, 'owner-key.json'), JSON.stringify(owner.privateJwk), { mode: 0o600 });
  const agentKey = await es256Key();
  const now = options.now ?? Date.now;
  const { owner: ownerUser } = await bootstrapLocal(
    store,
    {
      issuer,
      ownerName: 'owner',
      operator: { name: 'Test Operator', contact: 'ops@example.test' },
      softwareVersion: '0.0.0-test',
      timeZone: 'Europe/Berlin',
      demoCalendarPath: join(process.cwd(), 'fixtures', 'owner.ics'),
      calendarUrl,
      agentUrl,
      agentClientId: 'calendar-agent',
      agentPublicJwk: agentKey.publicJwk as Record<string, unknown>,
    },
    now(),
  );
  options.beforeListen?.(home);
  const app = await buildAuthServer({ issuer, store, ownerKeyPath: join(home, 'owner-key.json'), now, lifetimes: options.lifetimes, ...(options.logger ? { logger: options.logger } : {}), ...(options.registrationLimits ? { registrationLimits: options.registrationLimits } : {}), ...(options.clientDocuments ? { clientDocuments: options.clientDocuments } : {}), ...(options.trustProxy ? { trustProxy: options.trustProxy } : {}) });
  // What the metadata says of the data directory: the one a test shares with the CLI (shareDataDirectory), once it does.
  let sharedDataDirectory: string | undefined;
  app.addHook('onSend', async (request, reply, payload) => {
    if (sharedDataDirectory !== undefined && request.url.startsWith('/.well-known/')) reply.header(DATA_DIRECTORY_HEADER, sharedDataDirectory);
    return payload;
  });
  await app.listen({ port, host: '127.0.0.1' });
  return {
    issuer,
    agentUrl,
    calendarUrl,
    home,
    store,
    app,
    ownerJwk: owner.privateJwk,
    agent: { clientId: 'calendar-agent', privateJwk: agentKey.privateJwk },
    ownerId: ownerUser.id,
    shareDataDirectory: async (clientHome) => {
      writeFileSync(join(clientHome, 'owner-key.json'), JSON.stringify(owner.privateJwk), { mode: 0o600 });
      sharedDataDirectory = await dataDirectoryId(clientHome);
    },
    close: async () => {
      await app.close();
      store.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Registers another agent (as an administrator would) with a fresh key; returns its credentials. */
export async function registerTestAgent(authz: TestAuthz, clientId: string, resourceUrl: string): Promise<{ clientId: string; privateJwk: JWK }> {
  const { registerAgent } = await import('../../src/authz/index.js');
  const key = await es256Key();
  await registerAgent(
    authz.store,
    authz.issuer,
    {
      clientId,
      resourceUrl,
      scopes: ['helper:use'],
      jwks: { keys: [key.publicJwk as Record<string, unknown>] },
      downstream: [],
      profile: { name: clientId, softwareId: `test/${clientId}`, softwareVersion: '1', operator: { name: 'Test', contact: 'test@example.test' }, description: 'A test agent.', limitations: [] },
    },
    Date.now(),
  );
  return { clientId, privateJwk: key.privateJwk };
}

/** The login assertion the CLI would sign as the local owner. */
export async function ownerAssertion(
  ownerJwk: JWK,
  issuer: string,
  overrides: { expSec?: number; jti?: string; aud?: string; iss?: string; next?: string; /** signed as `delegate approve` signs its link (another app's request) */ approval?: boolean; /** iat this many seconds from now (exp counts from it) */ iatOffsetSec?: number; /** the key's id in the header, as the CLI names its key */ kid?: string } = {},
): Promise<string> {
  const key = (await importJWK(ownerJwk, 'ES256')) as CryptoKey;
  const now = Math.floor(Date.now() / 1000) + (overrides.iatOffsetSec ?? 0);
  // As the CLI signs it: for the one page (`next`) its link continues to.
  return new SignJWT({
    ...(overrides.next === undefined ? {} : { next_sha256: createHash('sha256').update(overrides.next, 'utf8').digest('base64url') }),
    ...(overrides.approval ? { approval: true } : {}),
  })
    .setProtectedHeader(overrides.kid === undefined ? { alg: 'ES256' } : { alg: 'ES256', kid: overrides.kid })
    .setIssuer(overrides.iss ?? 'delegate-cli')
    .setSubject('owner')
    .setAudience(overrides.aud ?? issuer)
    .setJti(overrides.jti ?? crypto.randomUUID() + crypto.randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + (overrides.expSec ?? 60))
    .sign(key);
}

/** The owner's sign-in link to `next` (a path on the issuer), signed for it as the CLI signs it. */
export async function ownerLink(target: { issuer: string; ownerJwk: JWK }, next: string, overrides: Parameters<typeof ownerAssertion>[2] = {}): Promise<string> {
  const assertion = await ownerAssertion(target.ownerJwk, target.issuer, { next, ...overrides });
  return `${target.issuer}/login/owner?assertion=${encodeURIComponent(assertion)}&next=${encodeURIComponent(next)}`;
}

/** CalendarAgent for a test authorization server, listening on the agent URL the server was set up with; `revocations`, the list it follows (its own by default). */
export async function listenAgentFor(authz: TestAuthz, now?: () => number, revocations?: RevocationList): Promise<FastifyInstance> {
  const agent = await buildAgentServer({
    resourceUrl: authz.agentUrl,
    issuer: authz.issuer,
    calendarUrl: authz.calendarUrl,
    clientId: authz.agent.clientId,
    privateKey: authz.agent.privateJwk,
    ...(now ? { now } : {}),
    ...(revocations ? { revocations } : {}),
  });
  await agent.listen({ port: Number(new URL(authz.agentUrl).port), host: '127.0.0.1' });
  return agent;
}

/** A stand-in calendar backend on an ephemeral loopback port: every read is free (no busy time, Europe/Berlin). */
export async function listenFreeCalendar(): Promise<Server> {
  const calendar = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ timeZone: 'Europe/Berlin', busy: [] }));
  });
  await new Promise<void>((resolve) => calendar.listen(0, '127.0.0.1', resolve));
  return calendar;
}
