// Starting delegate's servers from the CLI: each part built from the data
// directory (store, keys, bootstrap) and listening on its address. Used by the
// serve commands and by the embedded stack that find-slot and login start.
// Imported lazily: nothing here may load on find-slot's fast path.
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { bootstrapLocal, buildAuthServer, type AgentMove, type AuthServerOptions } from '../authz/index.js';
import { buildAgentServer } from '../agent/server.js';
import { CALENDAR_DETAIL_TYPE, canonicalResource, protectedResourceMetadataUrl } from '../delegation/index.js';
import { loadOrCreateAgentKey, type AgentIdentity } from '../agent/identity.js';
import { buildCalendarServer } from '../calendar/server.js';
import { calendarLoaderFor, userCalendarsFromStore } from './calendar-backend.js';
import { cimdPrivateHostsFromEnv, demoCalendarPath, processEnv, systemTimeZone, systemUserName, type Env, type Paths } from '../config.js';
import type { AuditSink } from '../resource/audit.js';
import { openStore, StoreError, type Store } from '../store/index.js';
import { openCommandStore, setUpSigns } from './commands/admin-store.js';
import { statementIssuer } from './served-elsewhere.js';
import { CommandFailed, serverNamed } from './errors.js';
import { portHeldByAnotherUser } from '../http/listener-owner.js';
import { packageVersion } from './version.js';
import { printableClipped } from '../terminal-text.js';
import { delegateCommandLine, sameDataDelegateCommand } from './commands/mcp-config.js';

export interface RunningServer {
  name: string;
  url: string;
  app: FastifyInstance;
}

/** The store, opened once for every server of this process. */
export function openDataStore(paths: Paths): Promise<Store> {
  return openCommandStore(paths, 'write');
}

export function agentIdentity(paths: Paths): Promise<AgentIdentity> {
  return loadOrCreateAgentKey(paths.agentKey).catch((error: unknown) => {
    throw new CommandFailed(error instanceof Error ? error.message : String(error));
  });
}

/**
 * The administrator's first-start setup of a local installation: the owner
 * (the OS user running this), the calendar backend, and CalendarAgent bound
 * to its URL with its key. The caller holds the data directory's start lock
 * (src/cli/start-lock.ts) from here until its servers listen: the check of
 * refuseSecondAddress holds only while no other process sets up and starts
 * servers in between (two `serve` started at once on other ports both ran,
 * the later one's setup breaking the other's agent).
 */
/**
 * Sets the data directory up for this start. Returns the move when this start moved CalendarAgent to another URL,
 * which revokes every live grant for the old one (src/authz/agents.ts): said by the command that started the servers,
 * since the person would otherwise learn of it only as a new consent page (found in review, regress18c).
 */
export async function bootstrap(
  store: Store,
  paths: Paths,
  urls: { issuer: string; calendarUrl: string; agentUrl: string },
  now: number,
  /** Every URL was given on the command line (serve-auth --issuer, --calendar-url, --agent-url): a move asked for. */
  moveAsked = false,
  /** The ports the servers are to listen on: one they cannot is refused before anything is set up (refuseUnlistenablePorts). */
  listenOn?: { host: string; parts: readonly ListenPart[] },
): Promise<AgentMove | undefined> {
  const agent = await agentIdentity(paths);
  await refuseSecondAddress(store, paths, agent.clientId, urls, moveAsked);
  if (listenOn) await refuseUnlistenablePorts(listenOn.host, listenOn.parts);
  const owner = systemUserName();
  const { agentMove } = await bootstrapLocal(
    store,
    {
      issuer: urls.issuer,
      ownerName: owner,
      operator: { name: owner, contact: `${owner}@${safeHostName()}` },
      softwareVersion: packageVersion(),
      timeZone: systemTimeZone({}),
      demoCalendarPath: demoCalendarPath(),
      calendarUrl: urls.calendarUrl,
      agentUrl: urls.agentUrl,
      agentClientId: agent.clientId,
      agentPublicJwk: agent.publicJwk as Record<string, unknown>,
    },
    now,
  );
  return agentMove;
}

/** The line a start that moved CalendarAgent prints on stderr; `env` the shell's that ran it, whose person reads it. */
export function agentMoveNotice(move: AgentMove, env: Env = processEnv()): string {
  const ended =
    move.grantsRevoked === 0
      ? 'no delegation was given for the old address'
      : `${move.grantsRevoked === 1 ? 'the 1 delegation' : `the ${move.grantsRevoked} delegations`} given for the old address ended, and each app asks for approval again (\`${delegateCommandLine(['audit'], env)}\` lists them as grant_revoked)`;
  return `CalendarAgent moved from ${move.from} to ${move.to}: ${ended}.`;
}

/**
 * The addresses CalendarAgent is bound to in this data directory (the
 * authorization server its identity statement names, its MCP URL, the
 * calendar backend it reads), or undefined before the first setup.
 */
export async function recordedBindings(store: Store, agentClientId: string): Promise<{ issuer: string; agentUrl: string; calendarUrl?: string } | undefined> {
  const recorded = await store.clientById(agentClientId);
  if (!recorded?.resource) return undefined;
  const issuer = statementIssuer(recorded);
  if (issuer === undefined) return undefined;
  const calendarUrl = (await store.resourceByUrl(recorded.resource))?.downstream.find((d) => d.type === CALENDAR_DETAIL_TYPE)?.resource;
  return { issuer, agentUrl: recorded.resource, ...(calendarUrl !== undefined ? { calendarUrl } : {}) };
}

/**
 * Setting up on other addresses re-binds CalendarAgent (its address, its
 * identity statement's issuer, the calendar backend it reaches), which is
 * right when the old servers are gone and breaks them when they still run on
 * this data directory: their agent could no longer exchange a single token. So
 * refuse while the authorization server on record answers with this
 * directory's signing keys (another directory's servers on those ports do not
 * count), or does not answer at all (a hung server is still this directory's).
 * When it is gone but CalendarAgent or the calendar backend on record still
 * answers as bound to it (split servers, the authorization server being
 * restarted with other URLs: found in review, its agent then failed every
 * exchange and signing in again did not help), refuse too.
 */
async function refuseSecondAddress(store: Store, paths: Paths, agentClientId: string, urls: { issuer: string; calendarUrl: string; agentUrl: string }, moveAsked: boolean): Promise<void> {
  const recorded = await recordedBindings(store, agentClientId);
  if (!recorded) return;
  const { issuer, agentUrl, calendarUrl: calendar } = recorded;
  const unchanged =
    agentUrl === canonicalResource(urls.agentUrl) && issuer === urls.issuer && (calendar === undefined || canonicalResource(calendar) === canonicalResource(urls.calendarUrl));
  if (unchanged) return;
  // Servers on record at https URLs (behind a reverse proxy) that this process cannot reach: whether they run cannot be
  // told, so they are not moved unless the move was asked for (found in review, regress19a: without the proxy's CA,
  // find-slot on other ports moved a running deployment's CalendarAgent and ended every delegation).
  const unchecked = moveAsked ? undefined : await firstUnchecked([issuer, agentUrl, ...(calendar !== undefined ? [calendar] : [])]);
  if (unchecked) {
    throw new CommandFailed(
      `This data directory's servers are on record at https URLs (authorization server ${issuer}, CalendarAgent ${agentUrl}), and whether they run could not be checked: ${unchecked}. ` +
        `Let this command reach them (an https proxy's private CA: NODE_EXTRA_CA_CERTS), or use another data directory (DELEGATE_HOME); to move them, start delegate serve-auth with --issuer, --calendar-url and --agent-url.`,
    );
  }
  const published = await publishedKeyIds(issuer);
  const ours = new Set((await store.signingKeys()).map((k) => k.kid));
  if (published === 'silent' || published.some((kid) => ours.has(kid))) {
    throw new CommandFailed(
      `delegate is already serving the data directory ${paths.home}, with its authorization server at ${issuer} and CalendarAgent at ${agentUrl}` +
        `${published === 'silent' ? ' (it accepts connections but does not answer)' : ''}. Use the ports it runs on, or stop it before using other ports` +
        // Found in review (s28race #6): it read as if a `delegate serve` ran when the servers were a find-slot's.
        ` (a \`delegate serve\`, or a command such as find-slot or login that runs the servers while it lasts).`,
    );
  }
  // Keys that are not ours: the servers on the recorded addresses are another data directory's.
  if (published.length > 0) return;
  const running: string[] = [];
  if ((await boundResource(agentUrl, issuer)) !== 'absent') running.push(`CalendarAgent at ${agentUrl}`);
  if (calendar !== undefined && (await boundResource(calendar, issuer)) !== 'absent') running.push(`the calendar backend at ${calendar}`);
  if (running.length === 0) return;
  throw new CommandFailed(
    `delegate is already serving the data directory ${paths.home}: ${running.join(' and ')} ${running.length > 1 ? 'run' : 'runs'}, bound to the authorization server at ${issuer}. ` +
      `Use the addresses ${running.length > 1 ? 'they run' : 'it runs'} on, or stop ${running.length > 1 ? 'them' : 'it'} before using others.`,
  );
}

/**
 * Whether a resource server on record still runs bound to `issuer`: its
 * protected resource metadata (RFC 9728) names that resource and that
 * authorization server ('bound'), or it accepts connections but never answers
 * ('silent', counted as running, as for the authorization server).
 */
async function boundResource(resource: string, issuer: string): Promise<'bound' | 'silent' | 'absent'> {
  const body = await answeredJson(protectedResourceMetadataUrl(resource));
  if (body === 'silent') return 'silent';
  const named = typeof body?.resource === 'string' && canonicalResource(body.resource) === canonicalResource(resource);
  return named && Array.isArray(body?.authorization_servers) && body.authorization_servers.includes(issuer) ? 'bound' : 'absent';
}

/** The key ids an authorization server publishes: none when nothing (or something else) answers there; 'silent' when it accepts connections but never answers. */
export async function publishedKeyIds(issuer: string): Promise<string[] | 'silent'> {
  const body = await answeredJson(`${issuer}/.well-known/jwks.json`);
  if (body === 'silent') return 'silent';
  return Array.isArray(body?.keys) ? body.keys.map((k) => String((k as { kid?: unknown } | null)?.kid)) : [];
}

/**
 * What a server on record answers at `url`: its JSON body when it answers 200 ({} for any other answer, or one
 * that is not JSON), undefined when nothing listens, 'silent' when it accepts connections but answers in neither of two
 * tries (1.5 s, then 4 s: a busy machine may answer slowly).
 */
async function answeredJson(url: string): Promise<Record<string, unknown> | null | undefined | 'silent'> {
  for (const timeoutMs of [1500, 4000]) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
      return res.ok ? ((await res.json().catch(() => ({}))) as Record<string, unknown> | null) : {};
    } catch (error) {
      if ((error as { name?: string }).name !== 'TimeoutError') return undefined;
    }
  }
  return 'silent';
}

/**
 * Why the first https URL of `urls` that this process cannot reach could not be asked (a certificate it does not
 * trust, a name it cannot resolve, …), or undefined when each https one answers, refuses the connection (nothing
 * there) or times out (answeredJson counts that as running). Plain http URLs are loopback ones, checked as before.
 */
async function firstUnchecked(urls: readonly string[]): Promise<string | undefined> {
  for (const url of urls) {
    if (!url.startsWith('https://')) continue;
    try {
      await fetch(new URL('/', url), { signal: AbortSignal.timeout(1500), redirect: 'manual' }).then((res) => res.body?.cancel());
    } catch (error) {
      const { name, cause } = error as { name?: string; cause?: { code?: string; message?: string } };
      if (name === 'TimeoutError' || cause?.code === 'ECONNREFUSED') continue;
      return `${new URL(url).origin} answered no https request (${printableClipped(cause?.code ?? cause?.message ?? String(error), 120)})`;
    }
  }
  return undefined;
}

export async function buildAuth(
  store: Store,
  paths: Paths,
  issuer: string,
  logger?: Logger,
  extra: Pick<AuthServerOptions, 'sweepIntervalMs' | 'deviceRequestLimit' | 'registrationLimits' | 'clientDocuments' | 'trustProxy'> = {},
): Promise<FastifyInstance> {
  const clientDocuments = { privateHosts: cimdPrivateHostsFromEnv(processEnv()), ...extra.clientDocuments };
  // The commands the sign-in pages show run this very delegate, as the owner's shell can (s27mcp finding 2), on this
  // data directory (DELEGATE_HOME or XDG directories when not the default; s27hint). Only at a loopback issuer: at an
  // https-published one the pages say plain `delegate` (buildAuthServer).
  const delegateCommand = (): string => sameDataDelegateCommand(processEnv());
  return buildAuthServer({ issuer, store, ownerKeyPath: paths.ownerKey, dataDirectory: paths.home, ...(logger ? { logger } : {}), ...extra, clientDocuments, delegateCommand });
}

export async function buildCalendar(store: Store, paths: Paths, resourceUrl: string, issuer: string, logger?: Logger, trustProxy?: readonly string[]): Promise<FastifyInstance> {
  return buildCalendarServer({
    resourceUrl,
    issuer,
    dataDirectory: paths.home,
    ...(logger ? { logger } : {}),
    ...(trustProxy ? { trustProxy } : {}),
    calendarsFor: userCalendarsFromStore(store, paths),
    loader: calendarLoaderFor(store),
    audit: storeAudit(store),
  });
}

/** CalendarAgent; with an audit sink (storeAudit), every tool call goes on the audit log. */
export async function buildAgent(
  paths: Paths,
  urls: { issuer: string; calendarUrl: string; agentUrl: string },
  logger?: Logger,
  audit?: AuditSink,
  calendarTimeoutMs?: number,
  trustProxy?: readonly string[],
): Promise<FastifyInstance> {
  const identity = await agentIdentity(paths);
  return buildAgentServer({
    resourceUrl: urls.agentUrl,
    issuer: urls.issuer,
    calendarUrl: urls.calendarUrl,
    clientId: identity.clientId,
    privateKey: identity.privateJwk,
    dataDirectory: paths.home,
    ...(logger ? { logger } : {}),
    ...(audit ? { audit } : {}),
    ...(calendarTimeoutMs !== undefined ? { calendarTimeoutMs } : {}),
    ...(trustProxy ? { trustProxy } : {}),
  });
}

/** The resource servers' audit records, appended to the store's hash-chained log. */
export function storeAudit(store: Store): AuditSink {
  return async (record) => {
    await store.appendAudit(record, Date.now());
  };
}

/**
 * An audit sink for a process that needs the store for nothing else (serve-agent):
 * the store is opened at the first record, when the authorization server that
 * issued the token behind it has long set the database up.
 */
export function lazyStoreAudit(paths: Paths): { audit: AuditSink; close(): void } {
  let store: Store | undefined;
  return {
    audit: async (record) => {
      // openStore, whose StoreError (STORE_FULL, STORE_READ_ONLY) the withheld result names; a command's one-line
      // CommandFailed around it read as a passing failure (found in review: on a read-only data directory).
      // A database replaced or removed since (Store.replacedOnDisk) is let go: the records go to the one there now.
      if (store?.replacedOnDisk()) {
        store.close();
        store = undefined;
      }
      // Never a migration here: the authorization server of this version migrates at its start, and one of an older
      // version running on the database would go on with its own rules on the new schema (review s24upgrade).
      store ??= openStore(paths.db, { setUpBefore: setUpSigns(paths), beforeMigrate: (from) => refuseAuditMigration(paths, from) });
      await store.appendAudit(record, Date.now());
    },
    close: () => store?.close(),
  };
}

function refuseAuditMigration(paths: Paths, from: number): void {
  if (from === 0) return;
  throw new StoreError(
    'STORE_OPEN_FAILED',
    `The database ${paths.db} is at schema ${from}, older than this delegate's: start this version's authorization server on it (after stopping the older one) to upgrade it.`,
  );
}

/** How often a running server looks whether its database is still the one in the data directory (watchDatabase). */
export const DATABASE_WATCH_MS = 1_000;

/**
 * Resolves with the line to stop on once the database `store` opened at `path`, or its data directory, is replaced or
 * removed while the servers run (Store.replacedOnDisk; two stat calls a second, the timer unref'd); `stop` ends the
 * watch. Found in review (s22store): with the directory swapped for a copy (`mv $H $H.old; mv $H.copy $H`) or a
 * backup moved over the file, `grants revoke` (and `keys rotate`, `users add`) wrote to the new file and said it was
 * done, while the running servers went on with the old one and kept honouring the revoked grant. The sweep's timer
 * (10 minutes) is too slow for that: a revocation is to hold within moments.
 */
export function watchDatabase(store: Store, path: string): { replaced: Promise<string>; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  const replaced = new Promise<string>((resolve) => {
    timer = setInterval(() => {
      if (!store.replacedOnDisk()) return;
      clearInterval(timer);
      resolve(`The database ${path} was replaced or removed while the server ran; restart it.`);
    }, DATABASE_WATCH_MS);
    timer.unref();
  });
  return { replaced, stop: () => clearInterval(timer) };
}

/** The command that runs each part alone, for the line saying that this data directory's servers hold its port. */
const RUNS_ALONE: Readonly<Record<string, string>> = { 'authorization server': 'serve-auth', 'calendar backend': 'serve-calendar', CalendarAgent: 'serve-agent' };

/** Which data directory what holds a port runs from, as delegate's servers say it (src/data-directory-id.ts), or undefined when not known. */
export type HeldBy = () => Promise<'this' | 'other' | undefined>;

/**
 * Listens on host:port, turning a busy port into a message a person can act on. `heldBy`, when given, says which data
 * directory what holds the port runs from: this one's ('this'), another's ('other'), or not known (undefined), so that
 * the message says so rather than guessing.
 */
export async function listen(app: FastifyInstance, name: string, host: string, port: number, heldBy?: HeldBy): Promise<void> {
  try {
    await app.listen({ host, port });
  } catch (error) {
    throw await listenFailure(error, name, host, port, heldBy);
  }
}

/** A server part that is to listen: its name in messages, its port, and what to ask when the port is taken. */
export interface ListenPart {
  name: string;
  port: number;
  heldBy?: HeldBy;
}

/**
 * Refuses, as listen would, a port a part could not listen on now, before anything is written: setup (bootstrap) moves
 * CalendarAgent to a new --agent-port, which ends the delegations given for its old address. Found in review (s29):
 * `serve --agent-port X` with X taken moved the agent, ended the user's delegation, and only then was refused. Each
 * port is listened on and let go at once (a connection in that moment is dropped); the servers listen a moment later,
 * after setup, and a program that takes a port in between is still refused then.
 */
export async function refuseUnlistenablePorts(host: string, parts: readonly ListenPart[]): Promise<void> {
  for (const part of parts) {
    const probe = createServer((socket) => socket.destroy());
    try {
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.listen({ host, port: part.port }, () => resolve());
      });
    } catch (error) {
      throw await listenFailure(error, part.name, host, part.port, part.heldBy);
    } finally {
      await new Promise<void>((resolve) => probe.close(() => resolve()));
    }
  }
}

/** What a failed listen on host:port says: the port's holder when it is in use, else why it cannot be listened on. */
async function listenFailure(error: unknown, name: string, host: string, port: number, heldBy?: HeldBy): Promise<unknown> {
  const code = (error as { code?: string }).code;
  if (code === 'EADDRINUSE') {
    const held = portHeldByAnotherUser(host, port);
    if (held) return new CommandFailed(`${held}, so ${serverNamed(name)} cannot start: stop that program, or choose another port.`);
    // Found in review (s26race): `serve` started while a `find-slot` ran the servers in its own process asked "Is
    // delegate serve already running?", which it was not. Which process runs them is not known here (s26new3: the
    // first wording named only a command that stops when it ends, for a `delegate serve` too); s27ports: serve-agent
    // and serve-calendar still asked, their servers saying nothing of their data directory.
    const whose = heldBy ? await heldBy().catch(() => undefined) : undefined;
    if (whose === 'this') {
      const alone = RUNS_ALONE[name];
      return new CommandFailed(
        `Port ${port} is already in use by this data directory's servers, so ${serverNamed(name)} cannot start: they run in another delegate process (a \`delegate serve\`${alone ? ` or \`delegate ${alone}\`` : ''}, or a command such as find-slot or login that runs them while it lasts). Use those, run this again once they have stopped, or choose other ports.`,
      );
    }
    if (whose === 'other') {
      return new CommandFailed(`Port ${port} is already in use by delegate's servers of another data directory (another DELEGATE_HOME), so ${serverNamed(name)} cannot start. Stop them, or choose other ports.`);
    }
    return new CommandFailed(`Port ${port} is already in use, so ${serverNamed(name)} cannot start. Is delegate serve already running?`);
  }
  if (code === 'EACCES') return new CommandFailed(`${serverNamed(name, true)} may not listen on port ${port}.`);
  if (code === 'EADDRNOTAVAIL') return new CommandFailed(`${serverNamed(name, true)} cannot listen on ${host}: no such local address.`);
  // Found in review (s29): a link-local IPv6 address without its interface (fe80::1, not fe80::1%eth0) ended with
  // Node's "listen EINVAL: invalid argument fe80::1:43220".
  if (code === 'EINVAL') return new CommandFailed(`${serverNamed(name, true)} cannot listen on ${host}: the system does not take it as a local address to listen on (a link-local IPv6 address needs its interface, as in fe80::1%eth0).`);
  return error;
}

/** Closes servers in reverse order of starting (CalendarAgent's requests need the other two), each once the answers it has started are sent (src/http/graceful-close.ts); then the store. */
export async function closeAll(apps: readonly FastifyInstance[], store?: Store): Promise<void> {
  for (const app of [...apps].reverse()) await app.close().catch(() => {});
  store?.close();
}

function safeHostName(): string {
  try {
    return hostname() || 'localhost';
  } catch {
    return 'localhost';
  }
}


