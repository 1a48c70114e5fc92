// CalendarAgent's HTTP server (docs/internals.md): its protected resource
// metadata (RFC 9728) and its MCP endpoint over stateless Streamable HTTP,
// behind the bearer check, which consults the revocation list and each
// tool's scope. buildAgentServer never listens; callers (the CLI, tests) do.
import type { FastifyInstance } from 'fastify';
import type { JWK, JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import { canonicalResource, protectedResourceMetadataUrl, type AccessTokenClaims } from '../delegation/index.js';
import { publishedDataDirectoryId } from '../data-directory-id.js';
import { createApp, type AppOptions } from '../http/app.js';
import type { AuditSink } from '../resource/audit.js';
import { createBearerVerifier, type TokenHeader } from '../resource/bearer.js';
import { attachRevocationList, createRevocationList, type RevocationList } from '../resource/revocations.js';
import type { TokenExchanger } from './exchange.js';
import { unreachedCalendar } from './delegation.js';
import { agentMcpDeps, createAgentMcpServer } from './mcp.js';
import { httpRequestOf, registerMcpEndpoint } from './mcp-http.js';
import { AGENT_RESOURCE_NAME, registerProtectedResourceMetadata } from './metadata.js';
import { bearerCallerToken } from './tool.js';
import { AGENT_SCOPE_POLICY } from './tool-scopes.js';

export interface AgentServerOptions {
  /** Canonical /mcp URL, e.g. http://127.0.0.1:8412/mcp: the audience of the tokens it accepts. */
  resourceUrl: string;
  /** The authorization server. */
  issuer: string;
  /** The calendar backend (exchange target). */
  calendarUrl: string;
  /** Its client id at the AS ("calendar-agent"). */
  clientId: string;
  /** ES256 private JWK with kid, for private_key_jwt. */
  privateKey: JWK;
  now?: () => number;
  logger?: Logger;
  /** Tests: verification keys instead of discovery. */
  keys?: JWTVerifyGetKey;
  fetchFn?: typeof fetch;
  /** Time allowed for the calendar backend to answer one find_slot. */
  calendarTimeoutMs?: number;
  /** Time allowed for each request to the authorization server. */
  exchangeTimeoutMs?: number;
  /**
   * The revocation list (src/resource/revocations.ts) that refuses revoked
   * grants and tokens; by default one that polls the issuer, started and
   * stopped with this server. `false` turns it off: only for tests whose
   * issuer is a bare key.
   */
  revocations?: RevocationList | false;
  /** Where every tool call is recorded (Store.appendAudit in the CLI); none means they are not. */
  audit?: AuditSink;
  /** Host header values accepted besides loopback (a server published under another name). */
  extraHosts?: readonly string[];
  /** Reverse proxies whose X-Forwarded-For names the client (createApp's AppOptions.trustProxy); none by default. */
  trustProxy?: AppOptions['trustProxy'];
  /** Tests and embedders: a token exchanger to use instead of building one. */
  exchanger?: TokenExchanger;
  /**
   * The data directory it runs from: with a loopback resource URL, its identity goes with the metadata
   * (DATA_DIRECTORY_HEADER, src/data-directory-id.ts), as the authorization server's does.
   */
  dataDirectory?: string;
}

export async function buildAgentServer(options: AgentServerOptions): Promise<FastifyInstance> {
  const resourceUrl = canonicalResource(options.resourceUrl);
  if (!resourceUrl) throw new Error(`The agent's resource URL ${options.resourceUrl} is not an absolute http(s) URL.`);
  const now = options.now ?? Date.now;
  const fetchFn = options.fetchFn ?? fetch;

  const app = createApp({
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.extraHosts ? { extraHosts: options.extraHosts } : {}),
    ...(options.trustProxy ? { trustProxy: options.trustProxy } : {}),
    publicUrl: resourceUrl,
    // Only as published: by another loopback name, its metadata would name a resource other than the URL used (RFC 9728 §3.3).
    answersOnlyAsPublished: AGENT_RESOURCE_NAME,
    // A client sent to a wrong path (/mcp/, /, /sse) is told the right one. Found in review (s31mcp): the MCP SDK
    // pointed at http://127.0.0.1:8412/mcp/ got a bare "No such endpoint." where the localhost alias's 421 names the URL.
    notFoundNames: `${AGENT_RESOURCE_NAME}'s MCP endpoint is ${resourceUrl}.`,
  });
  registerProtectedResourceMetadata(app, resourceUrl, options.issuer, await publishedDataDirectoryId(resourceUrl, options.dataDirectory));

  const revocations =
    options.revocations === false ? undefined : (options.revocations ?? createRevocationList({ issuer: options.issuer, fetchFn, now, logger: app.log }));
  const verify = createBearerVerifier({
    issuer: options.issuer,
    audience: resourceUrl,
    now,
    fetchFn,
    ...(options.keys ? { keys: options.keys } : {}),
    // As the calendar backend's (src/calendar/server.ts).
    ...(revocations ? { reject: (claims: AccessTokenClaims, header: TokenHeader) => revocations.check(claims, header.kid) } : {}),
  });
  if (revocations) attachRevocationList(app, revocations, verify);
  const toolDeps = agentMcpDeps({
    issuer: options.issuer,
    calendarUrl: options.calendarUrl,
    clientId: options.clientId,
    privateKey: options.privateKey,
    callerToken: bearerCallerToken,
    now,
    ...(options.fetchFn ? { fetchFn: options.fetchFn } : {}),
    logger: app.log,
    ...(options.calendarTimeoutMs !== undefined ? { calendarTimeoutMs: options.calendarTimeoutMs } : {}),
    ...(options.exchangeTimeoutMs !== undefined ? { exchangeTimeoutMs: options.exchangeTimeoutMs } : {}),
    ...(options.exchanger ? { exchanger: options.exchanger } : {}),
    resourceUrl,
    ...(options.audit ? { audit: options.audit } : {}),
  });

  await registerMcpEndpoint(app, {
    resourceUrl,
    resourceMetadataUrl: protectedResourceMetadataUrl(resourceUrl),
    verify,
    scopes: AGENT_SCOPE_POLICY,
    unreached: (claims) => unreachedCalendar(claims, options.calendarUrl),
    // One server for every request. The tools log through the request's logger, so their lines carry its reqId;
    // their onward requests (the token exchange, the calendar read) carry it as X-Request-Id, so the AS's and the
    // backend's lines do too.
    server: createAgentMcpServer({ ...toolDeps, callContext: httpRequestOf }),
    ...(options.audit ? { audit: options.audit } : {}),
  });
  return app;
}
