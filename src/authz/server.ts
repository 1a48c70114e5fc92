// The authorization server as a fastify instance that never listens itself:
// OAuth 2.1 with PKCE, RFC 8414 metadata, RFC 7591 registration, RFC 8707
// resources, RFC 8693 exchange for agents, RFC 7009 revocation, and the
// owner's sign-in and consent pages.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { publishedDataDirectoryId } from '../data-directory-id.js';
import { createApp, type AppOptions } from '../http/app.js';
import { answerPreflight } from '../http/cors.js';
import { LONGEST_ACCESS_TOKEN_MS, type Store } from '../store/index.js';
import { registerAuthorize } from './authorize.js';
import { registerConsent } from './consent.js';
import { DEFAULT_LIFETIMES, endpointsFor, type AuthContext, type Lifetimes } from './context.js';
import { loadKeyRing } from './keys.js';
import { registerMetadata } from './metadata.js';
import { registerOwnerLogin } from './owner-login.js';
import { REGISTRATION_LIMITS, newClientBudget, registerRegistration } from './register.js';
import type { RateLimitRule } from './rate-limit.js';
import { registerRevocation } from './revoke.js';
import { sessionCookieName } from './session.js';
import { registerToken } from './token.js';
import { registerDeviceGrant } from './device.js';
import { registerIntrospection } from './introspect.js';
import { registerRevocationList } from './revocation-list.js';
import { ownerSignsInByLink, registerLogin } from './login.js';
import { registerGrantsPage } from './grants-page.js';
import { registerAuditEndpoint } from './audit-endpoint.js';
import { ClientDocuments, type ClientDocumentOptions } from './client-documents.js';

export interface AuthServerOptions {
  /** The issuer identifier: the server's base URL, no trailing slash. */
  issuer: string;
  store: Store;
  /** The owner's login key file (owner-key.json); without it the owner cannot sign in from the CLI. */
  ownerKeyPath?: string;
  /**
   * The data directory it runs from: with a loopback issuer, its identity goes with the metadata (DATA_DIRECTORY_HEADER,
   * src/data-directory-id.ts), so that a command of another data directory stops before it signs in.
   */
  dataDirectory?: string;
  now?: () => number;
  logger?: Logger;
  lifetimes?: Partial<Lifetimes>;
  /** Most exchange hops a new grant allows (default 2). */
  defaultMaxDepth?: number;
  /** Host header values accepted besides loopback. */
  extraHosts?: readonly string[];
  /** Reverse proxies whose X-Forwarded-For names the client (createApp's AppOptions.trustProxy); none by default. */
  trustProxy?: AppOptions['trustProxy'];
  /**
   * How often expired rows are swept (default 10 minutes), the first time soon after the server listens; 0: never
   * (tests that compare the database before and after a request).
   */
  sweepIntervalMs?: number;
  /** Device authorization requests stored per source in 10 minutes (default DEVICE_REQUEST_LIMIT; fuzz tests that start hundreds raise it). */
  deviceRequestLimit?: RateLimitRule;
  /**
   * New clients accepted per source in each window, by /register and from metadata documents together (default
   * REGISTRATION_LIMITS: 300 a minute, 3,000 a day); [] sets none.
   */
  registrationLimits?: readonly RateLimitRule[];
  /**
   * How metadata documents of URL client ids are fetched (client-documents.ts): which host names may resolve to
   * loopback or private addresses (none by default; for development and tests), and for tests a CA, a resolver,
   * the deadline and the size cap.
   */
  clientDocuments?: ClientDocumentOptions;
  /**
   * What runs delegate in the owner's shell, shell-quoted, as the commands the pages tell the owner to run start (e.g.
   * `node /opt/delegate/bin/delegate`; src/cli/invocation.ts): called when a page shows one. Default `delegate`, and
   * always at an issuer other than http loopback, whose pages anyone may read.
   */
  delegateCommand?: () => string;
}

/** Endpoints that browser-based clients call cross-origin (no cookies are involved). */
/** The endpoints a browser-based MCP client may call from another origin, each with the methods it takes (a preflight names only those). */
const CORS_PATHS = new Map([
  ['/token', 'POST, OPTIONS'],
  ['/register', 'POST, OPTIONS'],
  ['/revoke', 'POST, OPTIONS'],
  ['/introspect', 'POST, OPTIONS'],
  ['/.well-known/oauth-authorization-server', 'GET, OPTIONS'],
  ['/.well-known/jwks.json', 'GET, OPTIONS'],
]);

export async function buildAuthServer(options: AuthServerOptions): Promise<FastifyInstance> {
  const issuer = options.issuer.replace(/\/+$/, '');
  const now = options.now ?? Date.now;
  const lifetimes: Lifetimes = { ...DEFAULT_LIFETIMES, ...options.lifetimes };
  // A revoked grant stays on the revocation list this long after its revocation (src/store/sqlite.ts), longer if its
  // recorded tokens live longer: a token signed meanwhile must not outlive it.
  if (lifetimes.accessTokenSec * 1000 > LONGEST_ACCESS_TOKEN_MS) throw new Error(`Access tokens may live at most ${LONGEST_ACCESS_TOKEN_MS / 1000} s.`);
  // One budget for both ways a client is made: /register and a Client ID Metadata Document.
  const newClients = newClientBudget(options.registrationLimits ?? REGISTRATION_LIMITS, now);
  const keys = await loadKeyRing(options.store, now, lifetimes.accessTokenSec * 1000);
  const ctx: AuthContext = {
    issuer,
    endpoints: endpointsFor(issuer),
    store: options.store,
    keys,
    now,
    lifetimes,
    cookieName: sessionCookieName(issuer),
    secureCookies: issuer.startsWith('https:'),
    ownerKeyPath: options.ownerKeyPath,
    dataDirectoryId: await publishedDataDirectoryId(issuer, options.dataDirectory),
    defaultMaxDepth: options.defaultMaxDepth ?? 2,
    newClients,
    clientDocuments: new ClientDocuments(options.store, now, options.clientDocuments, newClients),
    // Only on a loopback issuer, whose pages the owner reads on this computer: published at an https URL, the pages
    // would show anyone this computer's paths (and its owner signs in there by no command).
    delegateCommand: (ownerSignsInByLink(issuer) ? options.delegateCommand : undefined) ?? (() => 'delegate'),
  };

  const app = createApp({ logger: options.logger, extraHosts: options.extraHosts, publicUrl: issuer, trustProxy: options.trustProxy });
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    const methods = CORS_PATHS.get(path);
    if (methods === undefined) return;
    reply.header('Access-Control-Allow-Origin', '*');
    if (req.method === 'OPTIONS') return answerPreflight(reply, methods);
  });
  for (const path of CORS_PATHS.keys()) app.options(path, async (_req, reply) => reply.code(204).send());

  registerMetadata(app, ctx);
  registerAuthorize(app, ctx);
  registerOwnerLogin(app, ctx);
  registerConsent(app, ctx);
  registerToken(app, ctx);
  registerDeviceGrant(app, ctx, options.deviceRequestLimit); // issue 5: RFC 8628
  registerRegistration(app, ctx);
  registerRevocation(app, ctx);
  registerIntrospection(app, ctx);
  registerRevocationList(app, ctx);
  registerLogin(app, ctx);
  registerGrantsPage(app, ctx);
  registerAuditEndpoint(app, ctx);

  // Expired codes, sessions, one-time ids and tokens are swept off the request path: once soon after the server
  // listens, then every sweepIntervalMs. The first matters most to the embedded stack of find-slot and login, which
  // lives about a second and never saw the 10-minute timer fire (found in review, s34year: 12 find-slot runs left 12
  // more refresh tokens, 24 access tokens and 12 one-time ids, none ever deleted). The timers are unref'd, and closing
  // the server ends a sweep in progress between two transactions, so neither holds a process open nor outlives its store.
  const sweepIntervalMs = options.sweepIntervalMs ?? 10 * 60_000;
  if (sweepIntervalMs > 0) {
    const closing = new AbortController();
    let sweeping: Promise<void> | undefined;
    const sweep = (): void => {
      if (sweeping || closing.signal.aborted) return; // one at a time: a backlog may outlast the interval
      sweeping = options.store
        .sweep(now(), closing.signal)
        .catch(() => {})
        .finally(() => (sweeping = undefined));
    };
    const sweeper = setInterval(sweep, sweepIntervalMs);
    sweeper.unref();
    let first: NodeJS.Timeout | undefined;
    // onListen runs once listen() has resolved; the timer lets its caller go on (the embedded stack starts the other
    // two servers) before the sweep's first transaction.
    app.addHook('onListen', (done) => {
      first = setTimeout(sweep, 0);
      first.unref();
      done();
    });
    app.addHook('onClose', async () => {
      clearInterval(sweeper);
      clearTimeout(first);
      closing.abort();
      await sweeping;
    });
  }
  return app;
}
