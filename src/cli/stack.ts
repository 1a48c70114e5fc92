// The embedded stack: find-slot and login use the servers that are running
// on the configured ports, and when none is, start all three in this process
// for the length of the command (same ports, same data directory), so one
// command works on a fresh machine. The servers' code is imported only then,
// by the one process holding the data directory's start lock.
import type { FastifyInstance } from 'fastify';
import { join } from 'node:path';
import { urlsFor, type Urls } from '../config.js';
import { ForeignListenerError, refuseForeignListener } from '../http/listener-owner.js';
import type { Stack, StackOptions } from './contracts.js';
import { CommandFailed, serverNamed } from './errors.js';
import { whileStarting } from './start-lock.js';
import { openServerLog, SERVER_LOG_FILE, serverLog, type ServerLog } from './server-log.js';
import { printableClipped } from '../terminal-text.js';
import { badPortText } from '../bad-ports.js';
import { canonicalResource, isAnyLoopbackHost, protectedResourceMetadataUrl } from '../delegation/resource.js';
import { sameSetupCommandLine } from './commands/mcp-config.js';
import { DATA_DIRECTORY_HEADER, dataDirectoryId } from '../data-directory-id.js';

/** Each probe waits longer than the one before: a busy machine may answer slowly, but a port nobody listens on refuses at once. */
const PROBE_TIMEOUTS_MS = [1500, 4000, 8000];
/** refusePublishedPorts' one look, after a command has failed: a server that does not answer by then is taken for not published. */
const GLANCE_MS = 300;
/**
 * How long servers found half there may stay as they are before that is the
 * error: another process is stopping its embedded stack (each server finishes
 * the answers in flight first, src/http/graceful-close.ts, up to 3 s, one
 * after the other). Every change seen (one more server gone) starts the wait
 * anew, up to SETTLE_CAP_MS in all.
 */
const SETTLE_WAIT_MS = 10_000;
const SETTLE_CAP_MS = 30_000;
const SETTLE_POLL_MS = 100;
/** How the advice to move elsewhere names the port options. */
const PORT_OPTIONS = 'with --auth-port, --calendar-port and --agent-port';

type ProbeResult = 'up' | 'down' | 'foreign' | 'silent';

/**
 * What a port answered: nothing (down), no answer in time (silent), or a response, JSON or not, with the data directory
 * identity it sent (the servers' DATA_DIRECTORY_HEADER), if any.
 */
type Answer = 'down' | 'silent' | { ok: boolean; body: Record<string, unknown> | undefined; dataDirectory?: string };

interface Part {
  name: string;
  port: number;
  url: string;
}

/** The three parts' states, and the issuer the authorization server answers with when it is delegate's. */
interface Probed {
  states: ProbeResult[];
  issuer?: string;
  /** Why a part is judged foreign, when it says something that can be named. */
  why: Array<string | undefined>;
  /**
   * CalendarAgent's public https URL when the ports hold delegate's servers published behind a reverse proxy
   * (serve-agent --url https://…, its metadata naming the issuer the authorization server answers with): delegate's,
   * but not reachable as the loopback URLs this command uses.
   */
  publishedAt?: string;
  /**
   * The authorization server is delegate's but runs from another data directory than this command's: the identity it
   * sends (src/data-directory-id.ts) is not this one's.
   */
  otherDataDirectory?: boolean;
}

/**
 * The servers on the configured ports, started in this process when none
 * answers. Other delegate commands may be doing the same at this moment
 * (commands run in parallel, each finding nothing): the one holding the data
 * directory's start lock (src/cli/start-lock.ts) looks again and starts them;
 * the others wait for the lock or for its servers to answer, and use them.
 * Servers caught half there (another command's stack closing, a serve command
 * starting) are waited for while they keep changing, the lock let go between
 * looks; if they stop altogether, this process starts its own. Every wait is
 * bounded: past it, what stands in the way is the error.
 */
export async function ensureStack(options: StackOptions): Promise<Stack> {
  const urls = urlsFor(options.ports, options.host);
  const parts = partsOf(options, urls);
  // A look first, without the lock: servers that run are used at once.
  const first = await probeAll(parts, urls, options.paths.home);
  if (judge(parts, first, true, options) === 'running') return foundStack(urls, first);
  const settle: Settle = { seen: '', changedAt: 0 };
  let ready: Probed | undefined;
  for (;;) {
    const found = await whileStarting(options.paths, Date.now, () => findOrStart(options, urls, parts, settle), {
      ready: async () => {
        ready = await probeAll(parts, urls, options.paths.home);
        return ready.states.every((s) => s === 'up');
      },
      started: () => foundStack(urls, ready),
    });
    if (found !== 'settling') return found;
    // The wait for servers half there is spent without the lock: the one missing may be a serve command that needs it
    // before it listens (found in review, s28race: serve-auth started just after find-slot sat blocked through the
    // whole wait, and find-slot then failed naming the authorization server it had kept from starting).
    await new Promise((resolve) => setTimeout(resolve, SETTLE_POLL_MS));
  }
}

/** How long servers found half there have stayed as they are: kept across the looks, each taken under the lock. */
interface Settle {
  /** When the wait ends whatever changes: SETTLE_CAP_MS after the first look under the lock. */
  cap?: number;
  /** The states the last look found, and when they were first found so. */
  seen: string;
  changedAt: number;
}

/**
 * Under the start lock, one look: the servers running, ours once none runs, or 'settling' when only some answer and
 * the wait for them (`settle`) is not over; the caller lets go of the lock before it looks again.
 */
async function findOrStart(options: StackOptions, urls: Urls, parts: Part[], settle: Settle): Promise<Stack | 'settling'> {
  const probed = await probeAll(parts, urls, options.paths.home);
  const states = probed.states.join();
  settle.cap ??= Date.now() + SETTLE_CAP_MS;
  if (states !== settle.seen) [settle.seen, settle.changedAt] = [states, Date.now()];
  const mayWait = Date.now() < Math.min(settle.changedAt + SETTLE_WAIT_MS, settle.cap);
  const verdict = judge(parts, probed, mayWait, options);
  if (verdict === 'running') return foundStack(urls, probed);
  if (verdict === 'settling') return verdict;
  try {
    return await startEmbedded(options, urls, parts);
  } catch (error) {
    // Something that does not take the start lock (serve-calendar or serve-agent alone, an older delegate) bound a port between our probe and our listen.
    if (!(error instanceof PortTaken)) throw error;
    if (!mayWait) throw new CommandFailed(error.message);
    return 'settling';
  }
}

/**
 * Servers another process runs: this one uses them and has nothing to close.
 * Their issuer is the one the authorization server answers with (serve-auth
 * --issuer may name it otherwise than http://<host>:<auth-port>).
 */
function foundStack(urls: Urls, probed?: Probed): Stack {
  return { embedded: false, urls: probed?.issuer !== undefined ? { ...urls, issuer: probed.issuer } : urls, close: async () => {} };
}

function partsOf(options: Pick<StackOptions, 'ports'>, urls: Urls): Part[] {
  return [
    { name: 'authorization server', port: options.ports.auth, url: `${urls.issuer}/.well-known/oauth-authorization-server` },
    { name: 'calendar backend', port: options.ports.calendar, url: `${urls.calendarUrl}/.well-known/oauth-protected-resource` },
    // At the root: CalendarAgent answers there too, also when published at another path than /mcp (serve-agent --url;
    // found in review, regress19a).
    { name: 'CalendarAgent', port: options.ports.agent, url: `${new URL(urls.agentUrl).origin}/.well-known/oauth-protected-resource` },
  ];
}

/**
 * Probes the three ports at once, then judges each answer. CalendarAgent is
 * delegate's when its metadata names its own URL. The authorization server is
 * delegate's when it answers with the issuer http://<host>:<auth-port>, or
 * with the issuer that this CalendarAgent's metadata (RFC 9728) names: the one
 * every command discovers and signs in with anyway (serve-auth --issuer
 * http://localhost:<port>: found in review, `login` called it another program
 * while find-slot worked). What answers on a port another user holds was
 * refused before any request (refuseForeignListener), as before. An authorization server that says which data
 * directory it runs from (DATA_DIRECTORY_HEADER) is compared with `home`, this command's, looked at without creating it.
 */
async function probeAll(parts: Part[], urls: Urls, home: string): Promise<Probed> {
  const [ours, ...answers] = await Promise.all([dataDirectoryId(home), ...parts.map(probePart)]);
  const [auth, calendar, agent] = answers as [Answer, Answer, Answer];
  const agentState = judged(agent, (b) => b.resource === urls.agentUrl);
  const agentNames = agentState === 'up' && typeof agent === 'object' ? firstIssuer(agent.body) : undefined;
  const answered = answeredIssuer(auth);
  const issuerOk = (issuer: unknown) => issuer === urls.issuer || (agentNames !== undefined && issuer === agentNames);
  const authState = judged(auth, (b) => issuerOk(b.issuer));
  const why: Probed['why'] = [undefined, undefined, undefined];
  if (authState === 'foreign' && answered !== undefined) {
    const expected = agentNames !== undefined && agentNames !== urls.issuer ? `${agentNames}, which CalendarAgent names` : urls.issuer;
    // What answered is another program's text: shown with its control characters escaped, and cut short (found in
    // review: an issuer holding ESC and CR sequences wiped the line and printed a forged success message).
    why[0] = `it answers with the issuer ${printableClipped(answered, 200)}, not ${printableClipped(expected, 200)}`;
  }
  const published = publishedClaim(agent);
  return {
    states: [authState, judged(calendar, (b) => b.resource !== undefined), agentState],
    ...(authState === 'up' && answered !== undefined ? { issuer: answered } : {}),
    why,
    ...(published !== undefined && answered === published.issuer ? { publishedAt: published.resource } : {}),
    ...(authState === 'up' && typeof auth === 'object' && auth.dataDirectory !== undefined && auth.dataDirectory !== ours ? { otherDataDirectory: true } : {}),
  };
}

/** The issuer an authorization server's metadata names, when it answered with some. */
function answeredIssuer(auth: Answer): string | undefined {
  return typeof auth === 'object' && auth.ok && typeof auth.body?.issuer === 'string' ? auth.body.issuer : undefined;
}

/**
 * What CalendarAgent's metadata says when it is published behind a reverse proxy: its https resource, and the issuer it
 * names, which the authorization server on the ports must answer with for the servers to be delegate's.
 */
function publishedClaim(agent: Answer): { resource: string; issuer: string } | undefined {
  if (typeof agent !== 'object' || !agent.ok) return undefined;
  const resource = httpsResource(agent.body?.resource);
  const issuer = firstIssuer(agent.body);
  return resource !== undefined && issuer !== undefined ? { resource, issuer } : undefined;
}

/**
 * `value` when it is an https URL as delegate publishes one (no credentials, query, fragment or trailing slash, the
 * URL parser's own spelling), else undefined: what another program on the port answers is quoted only when it is a
 * bare URL, not free text dressed as one (found in review, regress19a).
 */
function httpsResource(value: unknown): string | undefined {
  // canonicalResource keeps a query as written; a published resource has none (RFC 8707 §2).
  const bare = typeof value === 'string' && value.startsWith('https://') && !value.includes('?') && canonicalResource(value) === value;
  return bare ? value : undefined;
}

function judged(answer: Answer, isOurs: (body: Record<string, unknown>) => boolean): ProbeResult {
  if (answer === 'down' || answer === 'silent') return answer;
  return answer.ok && answer.body !== undefined && isOurs(answer.body) ? 'up' : 'foreign';
}

function firstIssuer(body: Record<string, unknown> | undefined): string | undefined {
  const servers = body?.authorization_servers;
  return Array.isArray(servers) && typeof servers[0] === 'string' ? servers[0] : undefined;
}

/**
 * Servers on these ports published behind an https reverse proxy, refused as ensureStack refuses them, after one look
 * and without starting anything: for a command that had nothing to ask them (find-slot with nothing stored and nobody
 * to sign in), whose advice would otherwise name these ports (found in review, regress20c: exit 4 and `delegate login
 * --auth-port …`, which then stopped with exit 1 naming --agent-url).
 */
export async function refusePublishedPorts(options: StackOptions): Promise<void> {
  const published = await publishedAgentUrl(options);
  if (published !== undefined) throw publishedElsewhere(published, options);
}

/**
 * CalendarAgent's https URL when the servers on these ports are delegate's published behind a reverse proxy (as
 * probeAll's publishedAt), after one look and without starting anything; else undefined. For advice that would name
 * these ports (status, mcp-config: found in review, regress20g).
 */
export async function publishedAgentUrl(options: Pick<StackOptions, 'ports' | 'host'>): Promise<string | undefined> {
  const urls = urlsFor(options.ports, options.host);
  const [auth, , agent] = partsOf(options, urls) as [Part, Part, Part];
  // Only what publishedAt needs, each asked once and briefly: the command has failed already, and a port that does not
  // answer at once is not a published server (found in review, regress20e: a listener that never answered held
  // find-slot for the probe's 1.5 + 4 + 8 s before its exit 4). CalendarAgent first: without its https resource, the
  // authorization server is not asked at all.
  const published = publishedClaim(await probeOnce(refusedIfForeign(agent), GLANCE_MS));
  if (published === undefined) return undefined;
  return answeredIssuer(await probeOnce(refusedIfForeign(auth), GLANCE_MS)) === published.issuer ? published.resource : undefined;
}

/**
 * Found at stop 19: servers behind an https reverse proxy were called "another program". Since stop 20 the commands
 * reach such a deployment by its URL (--agent-url), never by these ports: what tokens name is the URL. The advice is
 * the command that was run, with its required options (found in review, regress20c: login and busy were told
 * `delegate find-slot --agent-url …`), its profile and its data directory, as other advice names them
 * (sameSetupCommandLine; found in review, regress20e: typed where DELEGATE_HOME is not set, the line signed in to
 * another data directory). A command that takes no --agent-url (serve-agent --stdio) is not told to take one.
 */
function publishedElsewhere(publishedAt: string, options: StackOptions): CommandFailed {
  const published = printableClipped(publishedAt, 200);
  const found = `delegate's servers on these ports are published behind an https reverse proxy (CalendarAgent at ${published}), and are reached by that URL, not by their ports`;
  const otherwise = "To use servers on this machine's loopback instead, run this command with another data directory (DELEGATE_HOME) and other ports (--auth-port, --calendar-port, --agent-port).";
  const { rerun } = options;
  if (rerun === undefined) {
    return new CommandFailed(`${found}. This command finds servers by their ports only (it takes no --agent-url): connect your MCP client to ${published} itself, which signs in there. ${otherwise}`);
  }
  const line = sameSetupCommandLine({ ports: options.ports, agentUrl: published, ...(rerun.profile !== undefined ? { profile: rerun.profile } : {}) }, rerun, rerun.words);
  return new CommandFailed(`${found}: give it with --agent-url, as in \`${line}\` (or connect an MCP client to it). ${otherwise}`);
}

/**
 * 'running' when all three answer; 'absent' when none listens; 'settling'
 * when only some listen and `mayWait` (another process starting or stopping
 * its servers); otherwise a message saying what is wrong.
 */
function judge(parts: Part[], probed: Probed, mayWait: boolean, options: StackOptions): 'running' | 'absent' | 'settling' {
  const { states } = probed;
  const named = (wanted: ProbeResult) => parts.filter((_, i) => states[i] === wanted);
  if (probed.publishedAt !== undefined) throw publishedElsewhere(probed.publishedAt, options);
  const [foreign] = named('foreign');
  if (foreign) {
    const why = probed.why[parts.indexOf(foreign)];
    throw new CommandFailed(
      `Port ${foreign.port} is used by another program, not delegate's ${foreign.name}${why ? ` (${why})` : ''}. Choose other ports ${PORT_OPTIONS}.`,
    );
  }
  if (probed.otherDataDirectory) throw otherDataDirectory(options);
  const [silent] = named('silent');
  if (silent) throw new CommandFailed(`${serverNamed(silent.name, true)} on port ${silent.port} accepts connections but does not answer.`);
  if (states.every((s) => s === 'up')) return 'running';
  if (states.every((s) => s === 'down')) return 'absent';
  if (mayWait) return 'settling';
  const missing = named('down').map((p) => `${serverNamed(p.name)} (port ${p.port})`);
  throw new CommandFailed(
    `Some of delegate's servers are running but not ${missing.join(' and ')}. Start ${missing.length > 1 ? 'them' : 'it'}, or stop the others and let this command start all three.`,
  );
}

/**
 * delegate's servers on the ports run from another data directory: they trust another owner key and hold other
 * sign-ins, so the owner's link could only fail there, after the CLI had registered a client and written a key and
 * tokens into its own directory (found in review, regress21a: a 403 page blaming the link, and the whole login timeout).
 * Their directory is not named: the servers do not send it, so that no path goes over HTTP to other users.
 */
function otherDataDirectory(options: StackOptions): CommandFailed {
  const { auth, calendar, agent } = options.ports;
  return new CommandFailed(
    `The delegate servers on ${options.host} ports ${auth}, ${calendar} and ${agent} run from another data directory than this command's (${options.paths.home}): ` +
      `this command cannot sign in there or use them. Stop them, run this command with DELEGATE_HOME set to their data directory, or choose other ports ${PORT_OPTIONS}.`,
  );
}

/**
 * Before this command's refresh token goes to the authorization server at `issuer` (find-slot's and busy's fast path,
 * `token`, which do not probe the servers first): exit 1 with otherDataDirectory's line when that server is on this
 * machine's loopback and says it runs from another data directory. Found in review (regress21e): such a server refused
 * the refresh with invalid_client ("Unknown client"), and the CLI then deleted its client registration and tokens, still
 * valid for its own directory's servers, before it said anything. One look at the server's metadata (as probeAll's),
 * only then: a valid access token goes to the agent without it. Another user's listener on the port is refused before
 * anything is sent (refusedIfForeign); an issuer off loopback, a server that sends no identity (older, https issuer),
 * or one that does not answer is not judged here: the refresh goes on as before and fails, or not, on its own.
 * One look, with the first probe's timeout only (1.5 s): a server that is slow to answer its metadata is slow to answer
 * the refresh too, which has its own timeout, and the retries probeAll makes for a busy machine held a refresh 13.5 s
 * before it was even sent to a stopped server (seen in CI: test/e2e/refresh-interrupted.test.ts took 178 s, each case
 * waiting out the probe before its refresh left; the case waits 15 s for it).
 * Also after a command has failed for want of a sign-in that it would advise making at these ports (find-slot's and
 * busy's fast path, `token`: src/cli/commands/agent-access.ts refuseSignInHere), which such a server would refuse.
 */
export async function refuseOtherDataDirectoryAt(options: StackOptions, issuer: string): Promise<void> {
  if (await runsFromOtherDataDirectory(issuer, options.paths.home)) throw otherDataDirectory(options);
}

/**
 * Whether the authorization server at `issuer`, on this machine's loopback, says it runs from another data directory
 * than `home` (refuseOtherDataDirectoryAt's one look; also the administrator's commands', src/cli/served-elsewhere.ts).
 * False for an issuer off loopback, a server that sends no identity or does not answer; another user's listener on the
 * port is refused (CommandFailed) before anything is sent.
 */
export async function runsFromOtherDataDirectory(issuer: string, home: string): Promise<boolean> {
  return (await dataDirectoryAt(issuer, home)) === 'other';
}

/**
 * Which data directory the authorization server at `issuer`, on this machine's loopback, says it runs from: `home`
 * ('this') or another ('other'); undefined for an issuer off loopback, a server that sends no identity or does not
 * answer (one look, as runsFromOtherDataDirectory's). Another user's listener on the port is refused (CommandFailed)
 * before anything is sent.
 */
export async function dataDirectoryAt(issuer: string, home: string): Promise<'this' | 'other' | undefined> {
  const url = loopbackHttpUrl(issuer);
  if (url === undefined || url.pathname !== '/') return undefined;
  return dataDirectorySaid({ name: 'authorization server', port: Number(url.port || 80), url: `${url.origin}/.well-known/oauth-authorization-server` }, home);
}

/**
 * Which data directory the resource server (the calendar backend, CalendarAgent) published at `resourceUrl`, on this
 * machine's loopback, says it runs from, with its protected resource metadata (RFC 9728): as dataDirectoryAt says for
 * the authorization server, for a serve command that finds that server's port taken (src/cli/commands/serve.ts).
 */
export async function resourceDataDirectoryAt(name: string, resourceUrl: string, home: string): Promise<'this' | 'other' | undefined> {
  const url = loopbackHttpUrl(resourceUrl);
  if (url === undefined) return undefined;
  return dataDirectorySaid({ name, port: Number(url.port || 80), url: protectedResourceMetadataUrl(url.href) }, home);
}

/** `value` parsed, when it is a plain http URL on this machine's loopback (whose server's identity may be asked for). */
function loopbackHttpUrl(value: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  return url.protocol === 'http:' && isAnyLoopbackHost(url.hostname) ? url : undefined;
}

/** One look at `part`'s metadata: the data directory identity it sends, compared with `home`'s. */
async function dataDirectorySaid(part: Part, home: string): Promise<'this' | 'other' | undefined> {
  refusedIfForeign(part);
  const [ours, answer] = await Promise.all([dataDirectoryId(home), probeOnce(part, PROBE_TIMEOUTS_MS[0]!)]);
  if (typeof answer !== 'object' || !answer.ok || answer.dataDirectory === undefined) return undefined;
  return answer.dataDirectory === ours ? 'this' : 'other';
}

class PortTaken extends Error {}

async function startEmbedded(options: StackOptions, urls: Urls, parts: readonly Part[]): Promise<Stack> {
  const servers = await import('./servers.js');
  const store = await servers.openDataStore(options.paths);
  const started: FastifyInstance[] = [];
  // The data directory exists once the store is open.
  let log: ServerLog | undefined;
  try {
    log = options.logger === undefined && options.logLevel !== undefined && options.logLevel !== 'silent' ? await openServerLog(options.paths.home, options.logLevel) : undefined;
  } catch (error) {
    await servers.closeAll([], store);
    throw new CommandFailed(`The servers' log ${join(options.paths.home, SERVER_LOG_FILE)} cannot be opened: ${(error as Error).message}`);
  }
  const logger = options.logger ?? log?.logger;
  const closeLog = () => log?.close();
  /** A port found taken, while these servers start, is one another process took: ensureStack looks at it again. */
  const taken = (error: unknown): unknown => (error instanceof CommandFailed && /already in use/.test(error.message) ? new PortTaken(error.message) : error);
  try {
    // Looked at before setup writes anything (a move of CalendarAgent ends delegations), as for serve.
    const move = await servers.bootstrap(store, options.paths, urls, Date.now(), false, { host: options.host, parts }).catch((error: unknown) => {
      throw taken(error);
    });
    if (move) options.notice?.(servers.agentMoveNotice(move));
    const apps = [
      // Each server's lines name it, as under `serve` (src/cli/commands/serve.ts).
      await servers.buildAuth(store, options.paths, urls.issuer, logger && serverLog(logger, 'auth')),
      await servers.buildCalendar(store, options.paths, urls.calendarUrl, urls.issuer, logger && serverLog(logger, 'calendar')),
      await servers.buildAgent(options.paths, urls, logger && serverLog(logger, 'agent'), servers.storeAudit(store)),
    ];
    for (const [i, app] of apps.entries()) {
      try {
        await servers.listen(app, parts[i]!.name, options.host, parts[i]!.port);
      } catch (error) {
        await app.close().catch(() => {});
        throw taken(error);
      }
      started.push(app);
    }
  } catch (error) {
    await servers.closeAll(started, store);
    closeLog();
    throw error;
  }
  return {
    embedded: true,
    urls,
    close: async () => {
      await servers.closeAll(started, store);
      closeLog();
    },
  };
}

/** `part`, once it is known that no other user of this machine holds its port (else the command stops, nothing sent). */
function refusedIfForeign(part: Part): Part {
  try {
    refuseForeignListener(part.url);
  } catch (error) {
    if (error instanceof ForeignListenerError) throw new CommandFailed(error.message);
    throw error;
  }
  return part;
}

async function probePart(part: Part): Promise<Answer> {
  refusedIfForeign(part);
  for (const timeout of PROBE_TIMEOUTS_MS) {
    const result = await probeOnce(part, timeout);
    if (result !== 'silent') return result;
  }
  return 'silent';
}

/** Nothing listens (down), no answer in time (silent), or what answered: its status and its JSON body, if any. */
async function probeOnce(part: Part, timeoutMs: number): Promise<Answer> {
  let res: Response;
  try {
    res = await fetch(part.url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code === 'ECONNREFUSED') return 'down';
    // Refused by fetch itself, with nothing sent (src/bad-ports.ts): not a server that accepts and does not answer (found
    // in review, s30). The port options refuse such a port (parsePort); this is for one that came another way.
    if (cause?.message === 'bad port') throw new CommandFailed(`${serverNamed(part.name, true)} cannot be on port ${part.port}: ${badPortText(part.port)}. Choose other ports ${PORT_OPTIONS}.`);
    return 'silent';
  }
  try {
    const body: unknown = await res.json();
    return { ok: res.ok, body: typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : undefined, ...dataDirectoryOf(res) };
  } catch {
    return { ok: res.ok, body: undefined };
  }
}

/** The data directory identity a response sent (only the servers' metadata sends one, src/data-directory-id.ts). */
function dataDirectoryOf(res: Response): { dataDirectory?: string } {
  const sent = res.headers.get(DATA_DIRECTORY_HEADER);
  return sent === null ? {} : { dataDirectory: sent };
}
