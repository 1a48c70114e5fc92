// `delegate serve` and its single-part siblings: run the servers in this
// process until Ctrl-C, with structured logs on stderr. `serve` runs all
// three; serve-auth, serve-calendar and serve-agent one each, so the parts
// can run as separate processes that share the data directory. --log-level
// (or DELEGATE_LOG_LEVEL) sets how much the JSON log lines say.
import type { FastifyInstance } from 'fastify';
import { cimdPrivateHostsFromEnv, DEFAULT_PORTS, httpOrigin, urlsFor, type Env, type LogLevelName } from '../../config.js';
import { hostIsLoopback, LOOPBACK_PROXIES, refuseBadPortReachedDirectly } from '../args.js';
import type { Store } from '../../store/index.js';
import type { Logger } from 'pino';
import { createLogger } from '../../http/logging.js';
import type { ServeAgentOptions, ServeAllOptions, ServeAuthOptions, ServeCalendarOptions } from '../contracts.js';
import { CommandFailed, EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { dataDirectoryAt, resourceDataDirectoryAt } from '../stack.js';
import { whileStarting } from '../start-lock.js';
import { printable } from '../../terminal-text.js';
import { isBadPort } from '../../bad-ports.js';
import { issuerOnRecord } from '../served-elsewhere.js';
import { serverLog } from '../server-log.js';
import { agentIdentity, agentMoveNotice, bootstrap, buildAgent, buildAuth, buildCalendar, closeAll, lazyStoreAudit, listen, openDataStore, recordedBindings, type ListenPart, storeAudit, watchDatabase } from '../servers.js';

function logger(level: LogLevelName) {
  return createLogger(level);
}

/**
 * Waits for Ctrl-C, then stops everything that was started. With `watched`, a process holding the store stops too
 * when its database is replaced or removed (watchDatabase): one fatal log line naming it, then exit 1 with that line.
 */
async function runUntilInterrupted(io: CliIo, close: () => Promise<void>, lines: string[], watched?: { store: Store; path: string; log: Logger }): Promise<number> {
  for (const line of lines) io.stderr.write(`${line}\n`);
  io.stderr.write('Press Ctrl-C to stop.\n');
  const watch = watched && watchDatabase(watched.store, watched.path);
  const end = await Promise.race([io.untilInterrupted().then((signal) => ({ signal })), ...(watch ? [watch.replaced.then((replaced) => ({ replaced }))] : [])]);
  watch?.stop();
  if ('replaced' in end) {
    watched!.log.fatal({ database: watched!.path }, 'database replaced or removed while the server ran');
    await close();
    throw new CommandFailed(end.replaced);
  }
  io.stderr.write(`Stopping (${end.signal})…\n`);
  await close();
  return EXIT_OK;
}

/**
 * Where a server published under an https URL (a reverse proxy's) listens, for the proxy's configuration: the one
 * line, or none when it publishes its own http address.
 */
function listeningBehind(published: string, host: string, port: number): string[] {
  if (new URL(published).protocol !== 'https:') return [];
  const address = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return [`listening on          http://${address}:${port} (the reverse proxy forwards to it, paths unchanged)`];
}

/**
 * The reverse proxies a server believes X-Forwarded-For from: those --trust-proxy gives, else loopback's exactly when
 * it is published at an https URL and listens on loopback, the README's deployment, where that proxy runs on this
 * machine (found in review, regress20d: every request came from the proxy's 127.0.0.1, so one client on the Internet
 * spent every per-address budget, registrations and sign-in failures, for all). Else none: a server published at its
 * own http URL has no proxy, and a process of this machine could write the header to escape its limits; one off
 * loopback takes its proxy's address from --trust-proxy.
 */
export function trustedProxies(given: readonly string[] | undefined, published: string, host: string): readonly string[] {
  return given ?? (new URL(published).protocol === 'https:' && hostIsLoopback(host) ? [LOOPBACK_PROXIES] : []);
}

/** The line saying whose address the per-address limits count, for a server that is published at https or trusts a proxy. */
function clientAddressLines(published: string, trusted: readonly string[]): string[] {
  if (trusted.length > 0) {
    const proxies = trusted.map((entry) => (entry === LOOPBACK_PROXIES ? '127.0.0.0/8, ::1' : entry)).join(', ');
    return [`client addresses      the last X-Forwarded-For entry its proxy appends (proxies trusted: ${proxies})`];
  }
  if (new URL(published).protocol !== 'https:') return [];
  return ['client addresses      the proxy’s own, X-Forwarded-For ignored: every client counts as one (--trust-proxy names the proxy)'];
}

/**
 * The line saying that DELEGATE_CIMD_PRIVATE_HOSTS is in effect, for an authorization server started with it: it
 * loosens the refusal of client metadata documents on loopback addresses (SSRF), so the operator sees it at every start
 * (found in review, regress20g: nothing said so).
 */
function clientDocumentLines(env: Env): string[] {
  const hosts = cimdPrivateHostsFromEnv(env);
  if (hosts.length === 0) return [];
  return [`client metadata docs  fetched from loopback for ${printable(hosts.join(', '))} (DELEGATE_CIMD_PRIVATE_HOSTS)`];
}

/** For listen(): which data directory the authorization server at `issuer` (on the port found taken) runs from. */
function heldByAuthAt(issuer: string, home: string): () => Promise<'this' | 'other' | undefined> {
  return () => dataDirectoryAt(issuer, home);
}

/** For listen(): which data directory the calendar backend or CalendarAgent at `resourceUrl` (on the port found taken) runs from. */
function heldByResourceAt(name: string, resourceUrl: string, home: string): () => Promise<'this' | 'other' | undefined> {
  return () => resourceDataDirectoryAt(name, resourceUrl, home);
}

/**
 * Where serve-calendar and serve-agent ask what holds their port which data directory it runs from: their own URL when
 * it is a plain http one on that port (CalendarAgent answers only by the name it is published as), else
 * http://<host>:<port> with its path (published behind an https reverse proxy, it listens there).
 */
function onItsPort(published: string, host: string, port: number): string {
  const url = new URL(published);
  return url.protocol === 'http:' && Number(url.port || 80) === port ? published : `${httpOrigin(host, port)}${url.pathname}`;
}

export async function serveAll(options: ServeAllOptions, io: CliIo): Promise<number> {
  const urls = urlsFor(options.ports, options.host);
  const log = logger(options.logLevel);
  const store = await openDataStore(options.paths);
  const started: FastifyInstance[] = [];
  try {
    // From the check of what runs on this data directory until the servers listen, no other process starts any (src/cli/start-lock.ts).
    await whileStarting(options.paths, () => io.now(), async () => {
      const home = options.paths.home;
      // A port taken by delegate's servers is said to be, and whether they are this data directory's (each says).
      const ports: ListenPart[] = [
        { name: 'authorization server', port: options.ports.auth, heldBy: heldByAuthAt(urls.issuer, home) },
        { name: 'calendar backend', port: options.ports.calendar, heldBy: heldByResourceAt('calendar backend', urls.calendarUrl, home) },
        { name: 'CalendarAgent', port: options.ports.agent, heldBy: heldByResourceAt('CalendarAgent', urls.agentUrl, home) },
      ];
      // Looked at before setup writes anything (a move of CalendarAgent ends delegations): a refused serve leaves all as it was.
      const move = await bootstrap(store, options.paths, urls, io.now(), false, { host: options.host, parts: ports });
      if (move) io.stderr.write(`${agentMoveNotice(move)}\n`);
      const apps = [
        await buildAuth(store, options.paths, urls.issuer, serverLog(log, 'auth')),
        await buildCalendar(store, options.paths, urls.calendarUrl, urls.issuer, serverLog(log, 'calendar')),
        await buildAgent(options.paths, urls, serverLog(log, 'agent'), storeAudit(store), options.calendarTimeoutMs),
      ];
      for (const [i, app] of apps.entries()) {
        const { name, port, heldBy } = ports[i]!;
        await listen(app, name, options.host, port, heldBy);
        started.push(app);
      }
    });
  } catch (error) {
    await closeAll(started, store);
    throw error;
  }
  return runUntilInterrupted(io, () => closeAll(started, store), [
    `authorization server  ${urls.issuer}`,
    `calendar backend      ${urls.calendarUrl}`,
    `CalendarAgent (MCP)   ${urls.agentUrl}`,
    `data directory        ${options.paths.home}`,
    ...clientDocumentLines(io.env),
  ], { store, path: options.paths.db, log });
}

export async function serveAuth(options: ServeAuthOptions, io: CliIo): Promise<number> {
  // A --port browsers and fetch refuse is bad usage unless its issuer is no plain http URL on that port (a reverse
  // proxy's https one, given or on record): judged before anything is written, the issuer on record read read-only
  // (found in review, s30fix2: judged after the store was opened, a refusal had set up an empty delegate.db and
  // upgraded an older one).
  if (isBadPort(options.port)) {
    refuseBadPortReachedDirectly('serve-auth', options.port, options.issuer ?? (await httpsIssuerOnRecord(options.paths)) ?? defaultUrls(options).issuer);
  }
  const store = await openDataStore(options.paths);
  const apps: FastifyInstance[] = [];
  let urls = { issuer: options.issuer ?? '', calendarUrl: options.calendarUrl ?? '', agentUrl: options.agentUrl ?? '' };
  let trusted: readonly string[] = [];
  const log = logger(options.logLevel);
  try {
    await whileStarting(options.paths, () => io.now(), async () => {
      urls = await resourceUrlsFor(store, options);
      refuseBadPortReachedDirectly('serve-auth', options.port, urls.issuer);
      const heldBy = heldByAuthAt(httpOrigin(options.host, options.port), options.paths.home);
      const move = await bootstrap(store, options.paths, urls, io.now(), allUrlsGiven(options), { host: options.host, parts: [{ name: 'authorization server', port: options.port, heldBy }] });
      if (move) io.stderr.write(`${agentMoveNotice(move)}\n`);
      trusted = trustedProxies(options.trustProxy, urls.issuer, options.host);
      apps.push(await buildAuth(store, options.paths, urls.issuer, serverLog(log, 'auth'), { trustProxy: trusted }));
      // What holds its port, if it is this data directory's authorization server, says so (as for `serve`).
      await listen(apps[0]!, 'authorization server', options.host, options.port, heldBy);
    });
  } catch (error) {
    await closeAll(apps, store);
    throw error;
  }
  return runUntilInterrupted(io, () => closeAll(apps, store), [
    `authorization server  ${urls.issuer}`,
    ...listeningBehind(urls.issuer, options.host, options.port),
    `issues tokens for     ${urls.agentUrl} and ${urls.calendarUrl}`,
    ...clientAddressLines(urls.issuer, trusted),
    ...clientDocumentLines(io.env),
  ], { store, path: options.paths.db, log });
}

/**
 * The addresses serve-auth runs with: its issuer, and the resources it issues
 * tokens for. --issuer, --calendar-url and --agent-url, else those this data
 * directory's CalendarAgent is bound to when they name servers on this host
 * (onRecordHere; a restart without them keeps the split servers that run
 * working; found in review, it re-bound the agent to the default ports), else
 * the defaults for --host and --port.
 */
async function resourceUrlsFor(store: Store, options: ServeAuthOptions): Promise<{ issuer: string; calendarUrl: string; agentUrl: string }> {
  const defaults = defaultUrls(options);
  const recorded = allUrlsGiven(options) ? undefined : await recordedBindings(store, (await agentIdentity(options.paths)).clientId);
  return {
    issuer: options.issuer ?? onRecordHere(recorded?.issuer, defaults.issuer, 'this server') ?? defaults.issuer,
    calendarUrl: options.calendarUrl ?? onRecordHere(recorded?.calendarUrl, defaults.calendarUrl, 'its own server') ?? defaults.calendarUrl,
    agentUrl: options.agentUrl ?? onRecordHere(recorded?.agentUrl, defaults.agentUrl, 'its own server') ?? defaults.agentUrl,
  };
}

/**
 * The https issuer (a reverse proxy's) that CalendarAgent's statement on record names, read read-only: the one issuer
 * on record that serve-auth keeps wherever it listens (onRecordHere). Undefined for none, an http one, or a database
 * that is empty or cannot be read so.
 */
async function httpsIssuerOnRecord(paths: ServeAuthOptions['paths']): Promise<string | undefined> {
  const issuer = await issuerOnRecord(paths.db);
  return issuer?.startsWith('https://') ? issuer : undefined;
}

/** serve-auth's addresses when nothing gives them: those of --host, with --port for its own. */
function defaultUrls(options: ServeAuthOptions): { issuer: string; calendarUrl: string; agentUrl: string } {
  return urlsFor({ ...DEFAULT_PORTS, auth: options.port }, options.host);
}

/** Whether serve-auth was given every address it runs with: then nothing on record counts, and a move is asked for. */
function allUrlsGiven(options: ServeAuthOptions): boolean {
  return options.issuer !== undefined && options.calendarUrl !== undefined && options.agentUrl !== undefined;
}

/**
 * The --host for which a recorded `localhost` names the same server: 127.0.0.1, the address `localhost` resolves
 * to everywhere. Not [::1]: where /etc/hosts gives `localhost` no IPv6 address, a server
 * on [::1] that announced `http://localhost:<port>` was unreachable by that name, and whatever listened on
 * 127.0.0.1:<port> answered for it (found in review, regress18).
 */
const LOCALHOST_ADDRESS = '127.0.0.1';

/**
 * An address on record, when it names a server on this start's host (`like`, a default URL for --host): the same
 * host name, or `localhost` for --host 127.0.0.1 (LOCALHOST_ADDRESS), since the servers answer that name there too (src/http/app.ts).
 * For this server's own address (the issuer) also the same scheme and port (--port); the calendar backend's and
 * CalendarAgent's scheme and port are those of their own servers, which this start does not know, so theirs are kept
 * as recorded (that is the point: a restart without the flags keeps the split servers that run working).
 *
 * Found in review: `serve-auth --host 127.0.0.2` on a directory used on 127.0.0.1 bound CalendarAgent to the old
 * host's addresses (regress17b); `serve-auth --issuer http://localhost:<port>` restarted without --issuer took
 * http://127.0.0.1:<port> and was refused, or re-bound the agent to it (s18); and, the rule for the issuer being
 * looser than the one for the other two, a calendar backend or agent recorded at http://localhost:<port> was dropped
 * on the default --host, so the restart was refused while they ran there (s18). An address on another host (or, for
 * the issuer, port) is a move, which the defaults and the checks before re-binding (bootstrap) handle. An https
 * address on record is kept whatever --host and --port say.
 */
function onRecordHere(recorded: string | undefined, like: string, whose: 'this server' | 'its own server'): string | undefined {
  if (recorded === undefined) return undefined;
  const [was, now] = [new URL(recorded), new URL(like)];
  // An https URL is a reverse proxy's (the servers speak only http): it names the server wherever it listens, so a
  // restart without the flags keeps it (found in review, regress19a: it moved the agent to http://127.0.0.1:8412/mcp).
  if (was.protocol === 'https:') return recorded;
  if (whose === 'this server' && (was.protocol !== now.protocol || was.port !== now.port)) return undefined;
  const sameHost = was.hostname === now.hostname || (was.hostname === 'localhost' && now.hostname === LOCALHOST_ADDRESS);
  return sameHost ? recorded : undefined;
}

export async function serveCalendar(options: ServeCalendarOptions, io: CliIo): Promise<number> {
  const store = await openDataStore(options.paths);
  let app: FastifyInstance | undefined;
  const trusted = trustedProxies(options.trustProxy, options.resourceUrl, options.host);
  const log = logger(options.logLevel);
  try {
    app = await buildCalendar(store, options.paths, options.resourceUrl, options.issuer, serverLog(log, 'calendar'), trusted);
    // What holds its port, if it is delegate's, says which data directory it runs from (as for `serve`).
    await listen(app, 'calendar backend', options.host, options.port, heldByResourceAt('calendar backend', onItsPort(options.resourceUrl, options.host, options.port), options.paths.home));
  } catch (error) {
    await closeAll(app ? [app] : [], store);
    throw error;
  }
  const apps = [app];
  return runUntilInterrupted(io, () => closeAll(apps, store), [
    `calendar backend      ${options.resourceUrl}`,
    ...listeningBehind(options.resourceUrl, options.host, options.port),
    `accepts tokens from   ${options.issuer}`,
    ...clientAddressLines(options.resourceUrl, trusted),
  ], { store, path: options.paths.db, log });
}

export async function serveAgent(options: ServeAgentOptions, io: CliIo): Promise<number> {
  // The store only for the audit log (the agent's tool calls are recorded with the AS's events), opened when first needed.
  const log = lazyStoreAudit(options.paths);
  const urls = { issuer: options.issuer, calendarUrl: options.calendarUrl, agentUrl: options.resourceUrl };
  const trusted = trustedProxies(options.trustProxy, options.resourceUrl, options.host);
  const app = await buildAgent(options.paths, urls, serverLog(logger(options.logLevel), 'agent'), log.audit, options.calendarTimeoutMs, trusted);
  const stop = async () => {
    await closeAll([app]);
    log.close();
  };
  try {
    await listen(app, 'CalendarAgent', options.host, options.port, heldByResourceAt('CalendarAgent', onItsPort(options.resourceUrl, options.host, options.port), options.paths.home));
  } catch (error) {
    await stop();
    throw error;
  }
  return runUntilInterrupted(io, stop, [
    `CalendarAgent (MCP)   ${options.resourceUrl}`,
    ...listeningBehind(options.resourceUrl, options.host, options.port),
    `authorization server  ${options.issuer}`,
    `calendar backend      ${options.calendarUrl}`,
    ...clientAddressLines(options.resourceUrl, trusted),
  ]);
}
