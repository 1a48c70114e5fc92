// `delegate serve` and its single-part siblings: run the servers in this
// process until Ctrl-C, with structured logs on stderr. `serve` runs all
// three; serve-auth, serve-calendar and serve-agent one each, so the parts
// can run as separate processes that share the data directory. --log-level
// (or DELEGATE_LOG_LEVEL) sets how much the JSON log lines say.
import type { FastifyInstance } from 'fastify';
import { DEFAULT_PORTS, urlsFor, type LogLevelName } from '../../config.js';
import type { Store } from '../../store/index.js';
import { createLogger } from '../../http/logging.js';
import type { ServeAgentOptions, ServeAllOptions, ServeAuthOptions, ServeCalendarOptions } from '../contracts.js';
import { EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { whileStarting } from '../start-lock.js';
import { agentIdentity, bootstrap, buildAgent, buildAuth, buildCalendar, closeAll, lazyStoreAudit, listen, openDataStore, recordedBindings, storeAudit } from '../servers.js';

function logger(level: LogLevelName) {
  return createLogger(level);
}

/** Waits for Ctrl-C, then stops everything that was started. */
async function runUntilInterrupted(io: CliIo, close: () => Promise<void>, lines: string[]): Promise<number> {
  for (const line of lines) io.stderr.write(`${line}\n`);
  io.stderr.write('Press Ctrl-C to stop.\n');
  const signal = await io.untilInterrupted();
  io.stderr.write(`Stopping (${signal})…\n`);
  await close();
  return EXIT_OK;
}

export async function serveAll(options: ServeAllOptions, io: CliIo): Promise<number> {
  const urls = urlsFor(options.ports, options.host);
  const log = logger(options.logLevel);
  const store = openDataStore(options.paths);
  const started: FastifyInstance[] = [];
  try {
    // From the check of what runs on this data directory until the servers listen, no other process starts any (src/cli/start-lock.ts).
    await whileStarting(options.paths, () => io.now(), async () => {
      await bootstrap(store, options.paths, urls, io.now());
      const parts: Array<[FastifyInstance, string, number]> = [
        [await buildAuth(store, options.paths, urls.issuer, log), 'authorization server', options.ports.auth],
        [await buildCalendar(store, options.paths, urls.calendarUrl, urls.issuer, log), 'calendar backend', options.ports.calendar],
        [await buildAgent(options.paths, urls, log, storeAudit(store), options.calendarTimeoutMs), 'CalendarAgent', options.ports.agent],
      ];
      for (const [app, name, port] of parts) {
        await listen(app, name, options.host, port);
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
  ]);
}

export async function serveAuth(options: ServeAuthOptions, io: CliIo): Promise<number> {
  const store = openDataStore(options.paths);
  const apps: FastifyInstance[] = [];
  let urls = { issuer: options.issuer ?? '', calendarUrl: options.calendarUrl ?? '', agentUrl: options.agentUrl ?? '' };
  try {
    await whileStarting(options.paths, () => io.now(), async () => {
      urls = await resourceUrlsFor(store, options);
      await bootstrap(store, options.paths, urls, io.now());
      apps.push(await buildAuth(store, options.paths, urls.issuer, logger(options.logLevel)));
      await listen(apps[0]!, 'authorization server', options.host, options.port);
    });
  } catch (error) {
    await closeAll(apps, store);
    throw error;
  }
  return runUntilInterrupted(io, () => closeAll(apps, store), [
    `authorization server  ${urls.issuer}`,
    `issues tokens for     ${urls.agentUrl} and ${urls.calendarUrl}`,
  ]);
}

/**
 * The addresses serve-auth runs with: its issuer, and the resources it issues
 * tokens for. --issuer, --calendar-url and --agent-url, else those this data
 * directory's CalendarAgent is bound to (a restart without them keeps the split
 * servers that run working; found in review, it re-bound the agent to the
 * default ports), else the defaults for --host and --port.
 */
async function resourceUrlsFor(store: Store, options: ServeAuthOptions): Promise<{ issuer: string; calendarUrl: string; agentUrl: string }> {
  const defaults = urlsFor({ ...DEFAULT_PORTS, auth: options.port }, options.host);
  const given = options.issuer !== undefined && options.calendarUrl !== undefined && options.agentUrl !== undefined;
  const recorded = given ? undefined : await recordedBindings(store, (await agentIdentity(options.paths)).clientId);
  // A recorded address on another host than this start's (--host) is not where its servers will be now: found in
  // review, `serve-auth --host 127.0.0.2` on a directory used on 127.0.0.1 bound CalendarAgent to the old host.
  const onThisHost = (url: string | undefined, like: string) => (url !== undefined && new URL(url).hostname === new URL(like).hostname ? url : undefined);
  return {
    issuer: options.issuer ?? thisServersIssuer(recorded?.issuer, defaults.issuer) ?? defaults.issuer,
    calendarUrl: options.calendarUrl ?? onThisHost(recorded?.calendarUrl, defaults.calendarUrl) ?? defaults.calendarUrl,
    agentUrl: options.agentUrl ?? onThisHost(recorded?.agentUrl, defaults.agentUrl) ?? defaults.agentUrl,
  };
}

/**
 * The issuer on record, when it names this server: its scheme and port (--port), and its host (--host), or
 * `localhost` for a loopback --host, since this server answers that name too (src/http/app.ts). Found in review
 * (s18): `serve-auth --issuer http://localhost:<port>` restarted without --issuer took http://127.0.0.1:<port>;
 * with the split calendar backend and CalendarAgent running it was refused, naming addresses that had not changed,
 * and with them stopped it re-bound the agent to the new issuer, so the parts started again as before failed
 * every call, and no token issued before verified (their `iss`). An issuer on another port or host is a move,
 * which the defaults and the checks before re-binding (bootstrap) handle.
 */
function thisServersIssuer(recorded: string | undefined, like: string): string | undefined {
  if (recorded === undefined) return undefined;
  const [was, now] = [new URL(recorded), new URL(like)];
  if (was.protocol !== now.protocol || was.port !== now.port) return undefined;
  const sameHost = was.hostname === now.hostname || (was.hostname === 'localhost' && (now.hostname === '127.0.0.1' || now.hostname === '[::1]'));
  return sameHost ? recorded : undefined;
}

export async function serveCalendar(options: ServeCalendarOptions, io: CliIo): Promise<number> {
  const store = openDataStore(options.paths);
  let app: FastifyInstance | undefined;
  try {
    app = await buildCalendar(store, options.paths, options.resourceUrl, options.issuer, logger(options.logLevel));
    await listen(app, 'calendar backend', options.host, options.port);
  } catch (error) {
    await closeAll(app ? [app] : [], store);
    throw error;
  }
  const apps = [app];
  return runUntilInterrupted(io, () => closeAll(apps, store), [
    `calendar backend      ${options.resourceUrl}`,
    `accepts tokens from   ${options.issuer}`,
  ]);
}

export async function serveAgent(options: ServeAgentOptions, io: CliIo): Promise<number> {
  // The store only for the audit log (the agent's tool calls are recorded with the AS's events), opened when first needed.
  const log = lazyStoreAudit(options.paths);
  const urls = { issuer: options.issuer, calendarUrl: options.calendarUrl, agentUrl: options.resourceUrl };
  const app = await buildAgent(options.paths, urls, logger(options.logLevel), log.audit, options.calendarTimeoutMs);
  const stop = async () => {
    await closeAll([app]);
    log.close();
  };
  try {
    await listen(app, 'CalendarAgent', options.host, options.port);
  } catch (error) {
    await stop();
    throw error;
  }
  return runUntilInterrupted(io, stop, [
    `CalendarAgent (MCP)   ${options.resourceUrl}`,
    `authorization server  ${options.issuer}`,
    `calendar backend      ${options.calendarUrl}`,
  ]);
}
