// What the commands that talk to CalendarAgent share: make sure the servers
// are there (or start them in this process, docs/internals.md "The embedded
// stack"; find-slot and busy look only when the servers do not answer), and
// bring them back if they go away mid-run (another command started them and
// has exited), or, for an agent given by its URL (--agent-url: a deployment
// published at https URLs), none of that; then give the client session what
// it needs: the profile's token cache, DELEGATE_TOKEN when set, and how to show the person a sign-in link —
// on stderr on a line of its own, in the browser unless --no-browser, with a
// spinner on a terminal and, when the browser may be elsewhere, a prompt for
// the address it ended on. With nobody to ask (no terminal, no --no-browser)
// it never waits: it fails at once with exit code 4 and a hint.
import { delegateToken, isLogLevel, LOG_LEVELS, logLevelFromEnv, profileFromEnv, resolvePaths, urlsFor, withProfile, type Paths, type Ports, type Urls } from '../../config.js';
import { audienceIncludes, canonicalResource, resourceWithin } from '../../delegation/resource.js';
import { isBearerToken, unverifiedAudience, type UnverifiedAudience } from '../../delegation/tokens.js';
import { endedNotNoted, isClientError, isDelegationEnded, networkErrorCode, type ClientError } from '../../client/errors.js';
import type { ServersGone } from '../../client/servers-gone.js';
import { dataDirectoryId } from '../../data-directory-id.js';
import type { SessionOptions } from '../../client/session.js';
import { loadStack, type Stack, type StackOptions } from '../contracts.js';
import { parseProfile } from '../args.js';
import { CommandFailed, EXIT_AUTH_REQUIRED, UsageError, errorText } from '../errors.js';
import type { CliIo } from '../io.js';
import { isInteractive, startSpinner, stylesFor, type Spinner } from '../terminal.js';
import { packageVersion } from '../version.js';
import { printableClipped } from '../../terminal-text.js';

export interface AgentAccessArgs {
  ports: Ports;
  /**
   * CalendarAgent's MCP URL (--agent-url, DELEGATE_AGENT_URL): a deployment published at https URLs. No server of
   * this machine is started or probed; the authorization server is discovered from the agent (RFC 9728), and the
   * token cache's entries are those of this resource (cache.ts keys them by issuer and resource).
   */
  agentUrl?: string;
  /** The host the servers listen on and are reached at. */
  host: string;
  /** Open the sign-in link in a browser (else only print it, and wait). */
  browser: boolean;
  /** How long to wait for the browser (ms); the client's default when absent. */
  loginTimeoutMs?: number;
  /** The loopback listener's fixed port (for ssh -L). */
  redirectPort?: number;
  /** The profile whose token cache to use (--profile, else DELEGATE_PROFILE, else the default). */
  profile?: string;
  /** Whether this run may sign in at all; commands like `token` only use what is stored. */
  mayPrompt?: boolean;
  /** Sign in through the browser even without a terminal (a desktop app spawned us: nobody types, but a browser opens). */
  interactiveLogin?: boolean;
  /**
   * Go straight to the servers on the configured ports, and probe them (and
   * maybe start the embedded stack) only if that fails: for short, read-only
   * commands that may safely run twice (find-slot, busy).
   */
  serversFirst?: boolean;
  /**
   * What to suggest when nobody can sign in here (no terminal, no
   * --no-browser), in the command's own terms; the default suits find-slot.
   * `command` writes `delegate WORDS…` with this run's ports and profile.
   */
  noTerminalAdvice?: (command: CommandLine) => string;
  /**
   * This command's words with its required options (`find-slot --duration 30m`), for advice that names it run otherwise
   * (by an agent's URL); absent for a command that takes no --agent-url (serve-agent --stdio).
   */
  command?: readonly string[];
  debug: boolean;
}

/** `delegate WORDS…` as a person types it to reach the same servers (ports) and token cache (profile) as this run. */
export type CommandLine = (...words: string[]) => string;

/** For find-slot, which takes --no-browser and uses DELEGATE_TOKEN. */
const NO_TERMINAL_ADVICE = (command: CommandLine) =>
  `Run \`${command('login')}\` in a terminal first (or \`${command('login', '--device')}\` anywhere), pass --no-browser to print a sign-in link and wait for it, or set DELEGATE_TOKEN.`;

/**
 * DELEGATE_TOKEN when set, checked before any request: a value that cannot be
 * a bearer token is refused as CalendarAgent would refuse a bad one, with
 * exit code 4, instead of failing inside the HTTP client.
 */
export function environmentToken(io: CliIo, agentUrl?: string): string | undefined {
  const token = delegateToken(io.env);
  if (token !== undefined && !isBearerToken(token)) throw new CommandFailed(UNUSABLE_ENV_TOKEN, EXIT_AUTH_REQUIRED);
  if (token !== undefined && agentUrl !== undefined) refuseOtherAudience(token, agentUrl);
  return token;
}

/**
 * An agent given by its URL (--agent-url) gets DELEGATE_TOKEN only if the token may be for it: a JWT whose `aud` names
 * another agent is refused before anything is sent (found in review, regress20c: a token for one agent went to
 * whatever agent --agent-url named, and `token --agent-url` printed it as that agent's). Its audience is its resource
 * (RFC 8707, RFC 9068 §3): a parent of the agent's URL is its metadata's resource, which a sign-in may have been made
 * for. A JWT that names no audience, or names it otherwise than RFC 7519 §4.1.3 allows (a string or an array of
 * strings), cannot be told to be for this agent, and is refused too (found in review, regress20e: it was taken for an
 * opaque token and sent). An opaque token says nothing of its audience and is sent as before.
 */
function refuseOtherAudience(token: string, agentUrl: string): void {
  const said = unverifiedAudience(token);
  const agent = canonicalResource(agentUrl);
  if (said.kind === 'opaque' || agent === undefined) return;
  if (said.kind === 'audience') {
    const audiences = said.audiences;
    if (audienceIncludes(audiences, agent) || audiences.some((a) => resourceWithin(agent, a))) return;
  }
  throw new CommandFailed(`DELEGATE_TOKEN is ${audienceWords(said)} for CalendarAgent at ${agentUrl}; it was not sent. Unset it, or set a token for ${agentUrl}.`, EXIT_AUTH_REQUIRED);
}

/** What a JWT says of its audience, as refuseOtherAudience words it before "for CalendarAgent at …". */
function audienceWords(said: Exclude<UnverifiedAudience, { kind: 'opaque' }>): string {
  switch (said.kind) {
    case 'missing':
      return 'a JWT that names no audience (it has no `aud` claim), so it cannot be told to be';
    case 'malformed':
      return 'a JWT whose audience cannot be read (its `aud` claim is neither a string nor an array of strings, RFC 7519 §4.1.3), so it cannot be told to be';
    case 'audience':
      return said.audiences.length > 0 ? `for ${printableClipped(said.audiences.join(', '), 200)}, not` : 'a JWT for no audience (its `aud` claim is an empty list), not';
  }
}

export const UNUSABLE_ENV_TOKEN =
  'DELEGATE_TOKEN is not a usable access token: it has characters no bearer token has (RFC 6750 §2.1). Unset it to use your stored sign-in, or set a fresh one from `delegate token`.';

/** The profile in effect: --profile, else DELEGATE_PROFILE (checked as --profile is), else undefined for the default. */
export function effectiveProfile(io: Pick<CliIo, 'env'>, profile: string | undefined): string | undefined {
  const name = profile ?? profileFromEnv(io.env);
  if (name !== undefined) {
    try {
      parseProfile(name);
    } catch (error) {
      throw new UsageError(`DELEGATE_PROFILE: ${(error as Error).message}`);
    }
  }
  return name;
}

/** The data directory's files, with the profile's own token cache. */
export function profilePaths(io: CliIo, profile: string | undefined): Paths {
  return withProfile(resolvePaths(io.env), effectiveProfile(io, profile));
}

/**
 * The servers a command uses: those running on its ports, else the ones it
 * starts in its own process (ensureStack), which it closes when done. Other
 * commands may be using servers this one started, and this one servers
 * another started: when they stop answering (refused connections), the
 * session calls `gone`, which looks again and starts them here if none runs.
 */
export class ServersInUse {
  private started: Stack | undefined;
  private looking: Promise<Stack> | undefined;

  constructor(private readonly options: StackOptions) {}

  /** The servers answering on the ports, started here if none does; one look at a time. */
  ensure(): Promise<Stack> {
    this.looking ??= (async () => {
      const { ensureStack } = await loadStack();
      const stack = await ensureStack(this.options);
      if (stack.embedded) this.started = stack;
      return stack;
    })().finally(() => {
      this.looking = undefined;
    });
    return this.looking;
  }

  /**
   * After a failure whose advice names a sign-in at these ports (exit 4): ensureStack's exit-1 finding that such a
   * sign-in would meet instead, after one look each, starting and creating nothing. The servers published at an https
   * URL (stack.ts refusePublishedPorts), or an authorization server on the auth port that runs from another data
   * directory (refuseOtherDataDirectoryAt: found in review, s31fault, a cron job of another DELEGATE_HOME than `serve`'s
   * was told exit 4 and a `delegate login …` that stops with this very exit 1).
   */
  async refuseSignInHere(): Promise<void> {
    const { refusePublishedPorts, refuseOtherDataDirectoryAt } = await loadStack();
    await refusePublishedPorts(this.options);
    await refuseOtherDataDirectoryAt(this.options, urlsFor(this.options.ports, this.options.host).issuer);
  }

  /** ensureStack's exit-1 finding when the authorization server at `issuer` runs from another data directory (stack.ts refuseOtherDataDirectoryAt); starts nothing. */
  async refuseOtherDataDirectory(issuer: string): Promise<void> {
    const { refuseOtherDataDirectoryAt } = await loadStack();
    await refuseOtherDataDirectoryAt(this.options, issuer);
  }

  readonly gone: ServersGone = async () => {
    await this.ensure();
  };

  /** Closes the servers this process started, if any, once the requests they are answering are done. */
  async close(): Promise<void> {
    await this.started?.close();
  }
}

/** Where a command's session goes: the servers' URLs (undefined for an agent given by its URL: the rest of its deployment is not known here), and the profile's files. */
export interface AgentWhere {
  urls: Urls | undefined;
  paths: Paths;
}

/** The servers on this run's ports, and this command as it is run by an agent's URL instead (StackOptions.rerun). */
function serversOnPorts(args: AgentAccessArgs, io: CliIo, paths: Paths): ServersInUse {
  const rerun = args.command === undefined ? undefined : { words: args.command, env: io.env, ...(args.profile !== undefined ? { profile: args.profile } : {}) };
  // DELEGATE_LOG_LEVEL: the embedded servers, if this command starts them, log to a file (src/cli/server-log.ts). A
  // value that is no level is the serve commands' usage error; here, where no server is asked for, it is said in one
  // line and the servers log nothing: the command goes on.
  const level = logLevelFromEnv(io.env);
  if (level !== undefined && !isLogLevel(level)) {
    io.stderr.write(`delegate: warning: DELEGATE_LOG_LEVEL=${level.slice(0, 40)} is not a log level (${LOG_LEVELS.join(', ')}); servers this command starts itself log nothing.\n`);
  }
  const logLevel = level !== undefined && isLogLevel(level) ? { logLevel: level } : {};
  return new ServersInUse({ paths, ports: args.ports, host: args.host, notice: (line) => io.stderr.write(`${line}\n`), ...logLevel, ...(rerun !== undefined ? { rerun } : {}) });
}

/**
 * Before a failure whose advice names this run's ports (a sign-in by them): exit 1 when that sign-in could not be made
 * there, as find-slot's fast path says it (ServersInUse.refuseSignInHere): naming --agent-url instead when the servers
 * on those ports are published at an https URL, or saying that they run from another data directory. Nothing for an
 * agent given by its URL.
 */
export async function refuseUnusableServers(args: AgentAccessArgs, io: CliIo): Promise<void> {
  if (args.agentUrl === undefined) await serversOnPorts(args, io, profilePaths(io, args.profile)).refuseSignInHere();
}

/**
 * SessionOptions.beforeRefresh for a command that sends a stored refresh token without probing the servers on its ports
 * first (find-slot's and busy's fast path, `token`): the authorization server it goes to, when on loopback, must run
 * from this command's data directory (found in review, regress21e). Nothing for an agent given by its URL.
 */
export function refreshChecked(args: AgentAccessArgs, io: CliIo): Pick<SessionOptions, 'beforeRefresh'> {
  if (args.agentUrl !== undefined) return {};
  return { beforeRefresh: (issuer) => serversOnPorts(args, io, profilePaths(io, args.profile)).refuseOtherDataDirectory(issuer) };
}

/** CalendarAgent's URL, and its authorization server's when it is known before discovery (the servers on the ports). */
interface AgentTarget {
  agentUrl: string;
  issuer?: string;
}

/** Runs `work` with the stack up and a session configured for this user; stops an embedded stack after. */
export async function withAgentAccess<T>(args: AgentAccessArgs, io: CliIo, work: (session: SessionOptions, where: AgentWhere) => Promise<T>): Promise<T> {
  const paths = profilePaths(io, args.profile);
  const envToken = environmentToken(io, args.agentUrl); // before the servers are probed or started
  if (args.agentUrl !== undefined) {
    // A deployment published elsewhere (--agent-url): nothing on this machine's ports is its, so nothing there is
    // probed, started or brought back; a refused connection is the command's error.
    return useAgent(args, io, work, undefined, paths, envToken, undefined);
  }
  const servers = serversOnPorts(args, io, paths);
  try {
    if (args.serversFirst) {
      // The fast path: no probe of the three servers before the one request that matters; a sign-in, should one be
      // needed, looks first (the servers of another data directory are refused before anything is written).
      try {
        const urls = urlsFor(args.ports, args.host);
        const checks: ServerChecks = { beforeSignIn: async () => void (await servers.ensure()), beforeRefresh: (issuer) => servers.refuseOtherDataDirectory(issuer) };
        return await useAgent(args, io, work, urls, paths, envToken, servers.gone, checks);
      } catch (error) {
        // Authorization required and nobody to give it: the servers were not asked anything, and the advice names a
        // sign-in at these ports; where it could not be made (servers published at an https URL, named by that URL, or
        // servers of another data directory), exit 1 says why instead, as a probing run says it.
        if (error instanceof CommandFailed && error.exitCode === EXIT_AUTH_REQUIRED) await servers.refuseSignInHere();
        if (!mayMeanNoServers(error)) throw error;
        // Something else answers where the servers should be, or they answer unexpectedly: look as a probing run would,
        // which says what is wrong or starts the embedded stack, and try once more only if it started one.
        const stack = await servers.ensure();
        if (!stack.embedded) throw error;
        return await useAgent(args, io, work, stack.urls, paths, envToken, servers.gone);
      }
    }
    const stack = await servers.ensure();
    return await useAgent(args, io, work, stack.urls, paths, envToken, servers.gone);
  } finally {
    await servers.close();
  }
}

/**
 * Whether a failed run may have met no delegate servers at all (or another
 * program on their ports): the agent or its authorization server could not be
 * reached (nor, for a refresh, the AS) or answered unexpectedly, or the SDK
 * failed on what it found there.
 * Answers from delegate itself (a tool's error, a refusal, a denied sign-in)
 * are ClientErrors with other codes, or the CLI's own errors.
 */
function mayMeanNoServers(error: unknown): boolean {
  // A refresh the AS did not answer as an AS (an HTML page, a 501) may be another program on its port: the probe says which.
  if (isClientError(error)) return error.code === 'AGENT_UNAVAILABLE' || error.code === 'REFRESH_FAILED' || failedToConnect(error);
  return !(error instanceof CommandFailed || error instanceof UsageError);
}

/** Whether a connection failed underneath (ECONNREFUSED and the like), e.g. the refresh of an expired token at an absent AS; a file's error (the token cache on a full disk) is not one. */
function failedToConnect(error: unknown): boolean {
  return networkErrorCode(error) !== undefined;
}

/** What a run that has not probed the servers on its ports checks before it signs in or refreshes there. */
type ServerChecks = Pick<SessionOptions, 'beforeSignIn' | 'beforeRefresh'>;

async function useAgent<T>(
  args: AgentAccessArgs,
  io: CliIo,
  work: (session: SessionOptions, where: AgentWhere) => Promise<T>,
  urls: Urls | undefined,
  paths: Paths,
  envToken: string | undefined,
  serversGone: ServersGone | undefined,
  checks: ServerChecks = {},
): Promise<T> {
  // The servers on the ports name both; an agent given by its URL (--agent-url, when `urls` is undefined) names only itself.
  const target: AgentTarget = urls ?? { agentUrl: args.agentUrl! };
  // Someone can act on a link: a person at a terminal, or whoever asked for the link with --no-browser.
  const canSignIn = args.mayPrompt !== false && (!args.browser || isInteractive(io) || args.interactiveLogin === true);
  let spinner: Spinner | undefined;
  try {
    const session: SessionOptions = {
      agentUrl: target.agentUrl,
      files: paths,
      now: () => io.now(),
      clientInfo: { name: 'delegate-cli', version: packageVersion() },
      ...(serversGone !== undefined ? { serversGone, dataDirectoryId: () => dataDirectoryId(paths.home) } : {}),
      ...checks,
      loginSettled: () => spinner?.stop(),
      // The run goes on with the new tokens; the person learns that the stored sign-in is spent.
      refreshNotSaved: (error) => io.stderr.write(errorText(error, args.debug)),
      // Before the sign-in link, why the person is asked again; without the URLs, so that the link stays the first one printed.
      delegationEndedBeforeSignIn: (reason) =>
        io.stderr.write(`The delegation stored for CalendarAgent has ended: the authorization server refused to renew it (${reason}). Sign in again to go on.\n`),
      replacedNotRevoked: (line) => io.stderr.write(`delegate: ${line}\n`),
      logoutCommand: async () => (await commandLineFor(args, io))('logout'),
      cacheSetAside: (damaged, keptAs) =>
        io.stderr.write(`The token cache ${damaged} could not be read; it is kept as ${keptAs}, and a new one is written when you sign in.\n`),
    };
    if (envToken !== undefined) session.envToken = envToken;
    if (args.loginTimeoutMs !== undefined) session.loginTimeoutMs = args.loginTimeoutMs;
    if (args.redirectPort !== undefined) session.redirectPort = args.redirectPort;
    const paste = canSignIn && !args.browser && isInteractive(io) && io.readLine !== undefined;
    if (canSignIn) {
      session.presentLoginUrl = async (url) => {
        spinner = await presentLoginUrl(io, url, args.browser, paste);
      };
    }
    if (paste) {
      session.readPastedRedirect = (signal) => io.readLine!(signal);
      session.pastedRedirectRefused = (reason) => io.stderr.write(`${reason} Try again, or wait for the browser:\n`);
    }
    try {
      return await work(session, { urls, paths });
    } catch (error) {
      // A command that never signs in (token) says so and points to `delegate login`; the others say why nobody can sign in here.
      const neverSignsIn = args.mayPrompt === false;
      if (!canSignIn && envToken === undefined && isDamagedCache(error)) throw await damagedCacheFailure(error, args, io, neverSignsIn);
      if (!canSignIn && envToken === undefined && isDelegationEnded(error)) throw await endedFailure(error, args, io, neverSignsIn);
      if (!canSignIn && envToken === undefined && isClientError(error, 'AUTHORIZATION_REQUIRED')) {
        // With this run's ports: found in review (s18), the advice after the calendar moved said plain `delegate login`,
        // which, run as written on other ports than the defaults, signs in at other servers (or starts its own).
        const command = await commandLineFor(args, io);
        const what = /more permission/.test(error.message)
          ? `needs more permission than your delegation gives it${error.detail ? ` (it says: ${error.detail})` : ''}`
          : 'needs your authorization';
        const needs = `CalendarAgent at ${target.agentUrl} ${what}${target.issuer !== undefined ? ` (authorization server ${target.issuer})` : ''}`;
        const elsewhere = await otherSignIns(args, io, target.agentUrl);
        throw new CommandFailed(
          neverSignsIn
            ? `${needs}, and this command never signs in. Run \`${command('login')}\` first.${elsewhere}`
            : `${needs}, and nobody is here to give it: this is not an interactive terminal. ${(args.noTerminalAdvice ?? NO_TERMINAL_ADVICE)(command)}${elsewhere}`,
          EXIT_AUTH_REQUIRED,
        );
      }
      throw error;
    }
  } finally {
    spinner?.stop();
  }
}

/** Authorization required because the token cache cannot be read (and nobody may sign in to set it aside). */
export function isDamagedCache(error: unknown): error is ClientError & { cause: ClientError } {
  return isClientError(error, 'AUTHORIZATION_REQUIRED') && isClientError(error.cause, 'CACHE_CORRUPT');
}

/**
 * The failure for a damaged token cache where nobody signs in: the file named as the client found it, and the
 * `delegate login` that keeps it aside and signs in again, with this run's ports and profile, as the other advice
 * of this module (found in review, s18: this advice alone still said plain `delegate login`, which, run as written
 * on other ports than the defaults, signs in at other servers).
 */
export async function damagedCacheFailure(error: ClientError & { cause: ClientError }, args: AgentAccessArgs, io: CliIo, neverSignsIn: boolean): Promise<CommandFailed> {
  const command = await commandLineFor(args, io);
  // Where nobody can sign in, every way that needs no terminal too, as the advice for a missing sign-in gives them
  // (found by the s18 helpers: a person without a terminal was told only of the `delegate login` that needs one).
  const signsIn = neverSignsIn
    ? `\`${command('login')}\` keeps it aside and signs in again`
    : `\`${command('login')}\` in a terminal (or \`${command('login', '--device')}\` anywhere) keeps it aside and signs in again, ` +
      'as does this command with --no-browser, which prints a sign-in link and waits for it';
  const found = error.cause.detail === undefined ? error.message : `${error.cause.detail} It was left as it is; ${signsIn}.`;
  const why = neverSignsIn ? 'This command never signs in.' : 'Nobody can sign in here: this is not an interactive terminal.';
  return new CommandFailed(`${found} (${why})`, EXIT_AUTH_REQUIRED);
}

/**
 * The failure of a command that never signs in (token) where no delegation is stored: the client's finding and the
 * `delegate login` of this run's data directory, ports and profile (found by the s18 helpers: it said plain
 * `delegate login`, which, typed as written, signs in to the default profile at the default ports' servers); where
 * the stored one ended, endedFailure's words.
 */
export async function nothingStoredFailure(error: ClientError, args: AgentAccessArgs, io: CliIo): Promise<CommandFailed> {
  if (isDelegationEnded(error)) return endedFailure(error, args, io, true);
  if (error.detail === undefined) return new CommandFailed(error.message, EXIT_AUTH_REQUIRED);
  const login = (await commandLineFor(args, io))('login');
  const elsewhere = await otherSignIns(args, io, args.agentUrl ?? urlsFor(args.ports, args.host).agentUrl);
  return new CommandFailed(`${error.detail.replace(/\.$/, '')}, and this command never signs in. Run \`${login}\` first.${elsewhere}`, EXIT_AUTH_REQUIRED);
}

/**
 * Where a command finds no delegation stored for its agent, the usable ones this profile holds for other agents,
 * with this command run for one of them by its URL (--agent-url, the token cache's key), as ' …' to end the line;
 * '' when there is none. Noticed at stop 30: `delegate token` after `delegate login --auth-port 9100 --calendar-port
 * 9101 --agent-port 9102` named only a `delegate login` at the default ports, which signs in a second time, elsewhere.
 * The calendar backend's port is not in the cache, so the ports cannot be named: the URL reaches the agent whatever
 * they are (its servers must run). Read only on this failure's path; not for a command that takes no --agent-url.
 */
async function otherSignIns(args: AgentAccessArgs, io: CliIo, agentUrl: string): Promise<string> {
  const { storedDelegations } = await import('../../client/credentials.js');
  const here = canonicalResource(agentUrl) ?? agentUrl;
  let urls: string[];
  try {
    const stored = await storedDelegations(profilePaths(io, args.profile), () => io.now());
    if (stored.some((d) => d.agentUrl === here)) return '';
    urls = [...new Set(stored.filter((d) => d.usable).map((d) => d.agentUrl))];
  } catch {
    return ''; // a cache that cannot be read is another failure's, said where it is read
  }
  const [first] = urls;
  if (first === undefined || args.command === undefined) return '';
  const { sameSetupCommandLine } = await import('./mcp-config.js');
  const use = sameSetupCommandLine({ ports: args.ports, agentUrl: first, ...(args.profile !== undefined ? { profile: args.profile } : {}) }, io, args.command);
  const shown = urls.slice(0, 3).map((url) => printableClipped(url, 200));
  const named = urls.length === 1 ? `a sign-in for the agent at ${shown[0]}` : `sign-ins for ${urls.length} other agents (at ${shown.join(', ')}${urls.length > 3 ? ', …' : ''}; \`delegate status\` lists them)`;
  return ` This profile holds ${named}: \`${use}\` uses ${urls.length === 1 ? 'it' : 'the first'}.`;
}

/**
 * The failure where the stored delegation ended (the authorization server refused to renew it: revoked, expired,
 * replayed) and nobody signs in here: the client's finding, which says so and why, and the same advice as for a
 * missing sign-in, with this run's data directory, ports and profile (found in review: `delegate token` said "No
 * delegation … is stored", and find-slot "needs your authorization", neither saying that the sign-in had ended).
 */
async function endedFailure(error: ClientError & { detail: string }, args: AgentAccessArgs, io: CliIo, neverSignsIn: boolean): Promise<CommandFailed> {
  const command = await commandLineFor(args, io);
  const why = neverSignsIn
    ? `this command never signs in. Run \`${command('login')}\` to sign in again.`
    : `nobody is here to sign in again: this is not an interactive terminal. ${(args.noTerminalAdvice ?? NO_TERMINAL_ADVICE)(command)}`;
  const unsaid = endedNotNoted(error);
  return new CommandFailed(`${error.detail}, and ${why}${unsaid === undefined ? '' : ` ${unsaid}`}`, EXIT_AUTH_REQUIRED);
}

/**
 * `delegate WORDS…` with this run's data directory (DELEGATE_HOME or XDG directories, when set: `pathsEnvironment`),
 * ports and profile; loaded only on the error paths that advise a command, never on find-slot's way in. The data
 * directory too, since this advice is for a person at another terminal (this run had none, or was a script's), whose
 * environment need not name it (found in review, regress18: typed there, the line signed in to the default data
 * directory and left this run's token cache as it was).
 */
async function commandLineFor(args: AgentAccessArgs, io: CliIo): Promise<CommandLine> {
  const { sameSetupCommandLine } = await import('./mcp-config.js');
  return (...words) => sameSetupCommandLine(args, io, words);
}

/**
 * The sign-in link alone on its line, so that it can be copied or picked out
 * by a script; the browser is opened only after it is printed, since `open`
 * succeeds even where no browser exists.
 */
async function presentLoginUrl(io: CliIo, url: string, browser: boolean, paste: boolean): Promise<Spinner | undefined> {
  const styles = stylesFor(io);
  io.stderr.write(
    browser
      ? `${styles.bold('Sign in and approve in your browser.')} If no browser opened, open this link:\n`
      : `${styles.bold('To sign in and approve, open this link in a browser:')}\n`,
  );
  io.stderr.write(`${url}\n`);
  if (browser) await io.openBrowser(url);
  if (paste) {
    io.stderr.write(
      'Waiting for your approval… If the browser runs on another computer, it ends on an address starting with http://127.0.0.1 that does not load: paste that address here.\n',
    );
    return undefined;
  }
  return startSpinner(io, 'Waiting for your approval…');
}
