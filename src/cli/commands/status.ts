// `delegate status [--json]`: who is signed in, for which agent, under which
// grant, with which scopes, until when — read from the profile's token cache
// (or DELEGATE_TOKEN, which takes precedence) without asking any server, but for
// one brief look at the ports when nothing is stored (servers published at an
// https URL are signed in at by that URL; servers of another data directory
// refuse the sign-in it advises, and it says so).
// Exit code 0 when a usable delegation is there, 4 when none is (nothing
// stored, every stored delegation has ended, or DELEGATE_TOKEN cannot be
// read or has expired), as `gh auth status` fails when its credential cannot
// be used. A token cache that cannot be read (damaged, or not to be opened)
// is one more such state, exit 4 with or without --json (README's exit
// codes); --json tells it in the document, never an empty stdout. With --agent-url, only that agent's delegations count (found
// by the URL signed in at, or by the audience of one delegation alone); the
// port options and --agent-url also go into the `delegate login` it advises.
import { decodeJwt } from 'jose';
import { delegateToken, profileFromEnv, systemTimeZone, urlsFor, DEFAULT_HOST, DEFAULT_PORTS, DEFAULT_PROFILE, type Ports } from '../../config.js';
import { printableClipped } from '../../terminal-text.js';
import { namedClientClipped, shownClipped, shownItems } from '../shown.js';
import { storedSignIns, type EndedStoredDelegation, type StoredDelegation } from '../../client/credentials.js';
import { SCOPE_DESCRIPTIONS } from '../../delegation/scopes.js';
import { isBearerToken } from '../../delegation/tokens.js';
import { endedReason, isClientError, type ClientError } from '../../client/errors.js';
import { CommandFailed, EXIT_AUTH_REQUIRED, EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { instantLine } from '../output.js';
import { profilePaths } from './agent-access.js';
import { storedAgentKey } from '../stored-agent.js';
import { NotReplaceableError, refuseUnreplaceable } from '../../client/private-files.js';

export interface StatusArgs {
  json: boolean;
  profile?: string;
  /** The servers' ports, for the `delegate login` it advises (default: the default ports). */
  ports?: Ports;
  /** CalendarAgent's URL (--agent-url): only its delegations are shown and counted, and the advice names it. */
  agentUrl?: string;
}

export async function statusCommand(args: StatusArgs, io: CliIo): Promise<number> {
  const profile = args.profile ?? profileFromEnv(io.env) ?? DEFAULT_PROFILE;
  const paths = profilePaths(io, args.profile);
  const envToken = delegateToken(io.env);
  let cacheError: string | undefined;
  /** Whether cacheError advises signing in again (a damaged cache, which `login` keeps aside): see withProfileLogin. */
  let cacheAdvisesLogin = false;
  let stored: Shown[];
  let ended: EndedStoredDelegation[] = [];
  let signedInAt = args.agentUrl; // the URL the advice names: the one signed in at, when --agent-url named its audience
  try {
    const signIns = await storedSignIns(paths, () => io.now());
    ({ delegations: stored, ended } = signIns);
    if (args.agentUrl !== undefined) {
      // By the URL the sign-in was made for (the cache's key), or else by the audience the agent's metadata named, which
      // may be a parent of it (found in review, regress20c: an agent at …/mcp whose metadata names its origin was not
      // shown; regress20e: nor was it found by that origin, which status showed it under).
      const { key, byAudience } = storedAgentKey(args.agentUrl, signIns);
      [stored, ended] = [stored.filter((d) => d.agentUrl === key), ended.filter((d) => d.agentUrl === key)];
      if (byAudience) signedInAt = key;
    }
  } catch (error) {
    // An unreadable cache holds no sign-in this command can show; it is named and left as it is.
    if (!isClientError(error)) throw error;
    const said = await withProfileLogin(error, args, io);
    // A script reading --json gets the document even so, saying why no sign-in shows, whether the
    // cache is damaged or cannot be opened (EACCES, EISDIR: found in two reviews, stdout was empty).
    // Without --json the same states, the same exit: no usable sign-in, 4, as README's table says (found
    // in review, s26: one that could not be opened was exit 1 here and 4 with --json); DELEGATE_TOKEN,
    // which takes precedence over the cache, still speaks for itself.
    if (args.json || envToken !== undefined) {
      cacheError = said;
      cacheAdvisesLogin = advisesLogin(error);
      stored = [];
    } else {
      throw new CommandFailed(said, EXIT_AUTH_REQUIRED);
    }
  }
  const now = io.now();
  // A cache that a rename cannot replace (a symbolic link, a file mounted on its own) renews nothing: an expired access
  // token there is not renewable, nor its sign-in usable, in the text, in --json and in the exit code alike (found in
  // review, s31fix2: only the text said so, --json said usable, exit 0, and `token` then failed). Looked at only then.
  const expiredRenewable = (d: Shown) => d.renewable && d.expiresAt !== undefined && d.expiresAt <= now;
  const notRenewedWhy = stored.some(expiredRenewable) ? await unreplaceable(paths.tokenCache) : undefined;
  if (notRenewedWhy !== undefined) stored = stored.map((d) => (expiredRenewable(d) ? { ...d, renewable: false, usable: false, notRenewedWhy } : d));
  const source = envToken !== undefined ? 'DELEGATE_TOKEN' : stored.length > 0 ? 'token cache' : 'none';
  const env = envToken !== undefined ? envTokenView(envToken) : undefined;
  const usable = env !== undefined ? env.readable && (env.expiresAt === undefined || Date.parse(env.expiresAt) > now) : stored.some((d) => d.usable);
  const code = usable ? EXIT_OK : EXIT_AUTH_REQUIRED;

  if (args.json) {
    io.stdout.write(
      `${JSON.stringify({
        profile,
        source,
        tokenCache: paths.tokenCache,
        tokenCacheReadable: cacheError === undefined,
        ...(cacheError !== undefined ? { tokenCacheError: cacheError } : {}),
        ...(env ? { environmentToken: env } : {}),
        delegations: stored.map((d) => jsonView(d, now)),
        ...(ended.length > 0 ? { ended: ended.map(endedJsonView) } : {}),
      })}\n`,
    );
    return code;
  }

  const zone = systemTimeZone(io.env);
  const lines: string[] = [`Profile ${profile} (${paths.tokenCache})`];
  if (env !== undefined) {
    lines.push('Using DELEGATE_TOKEN from the environment; stored sign-ins are ignored while it is set.');
    if (!env.readable) lines.push('  token cannot be read: it is not an access token from delegate (a JWT), so CalendarAgent will refuse it');
    if (env.expiresAt) lines.push(`  token for ${env.audience !== undefined ? shownClipped(env.audience) : 'an unknown audience'}, ${Date.parse(env.expiresAt) > now ? 'valid until' : 'expired at'} ${instantLine(Date.parse(env.expiresAt), zone)}`);
  }
  const login = await loginCommand({ ...args, ...(signedInAt !== undefined ? { agentUrl: signedInAt } : {}) }, io);
  // A delegation made at a deployment's https URL is signed in again at that URL, not by this machine's ports (noticed by
  // the regress20e fixes: plain `status` advised `delegate login` by ports for it).
  const loginFor = async (agentUrl: string): Promise<string> =>
    args.agentUrl === undefined && agentUrl.startsWith('https:') ? loginCommand({ ...args, agentUrl }, io) : login;
  // login refuses while DELEGATE_TOKEN is set, so advice to run it says so (found in review, regress21a: "Run `delegate
  // login`", which then stopped with "first unset DELEGATE_TOKEN").
  const advised = (command: string): string => (env === undefined ? `\`${command}\`` : `\`${command}\` once DELEGATE_TOKEN is unset`);
  if (cacheError !== undefined) {
    // Beside DELEGATE_TOKEN (without it, the cache's error ended the command above): what was found, not "none is
    // stored" (found in review, s26new: a cache that could not be opened read as an empty one).
    // Its advice to run `delegate login` holds once DELEGATE_TOKEN is unset, as the other lines' (advised): login refuses
    // while it is set (found in review, s26new2).
    lines.push(`Stored sign-ins cannot be shown: ${cacheError}${cacheAdvisesLogin ? ' (Unset DELEGATE_TOKEN before signing in: while it is set, `delegate login` refuses.)' : ''}`);
  } else if (stored.length === 0 && ended.length === 0) {
    const none = `no delegation${args.agentUrl !== undefined ? ` for ${args.agentUrl}` : ''} is stored`;
    const first = await firstLogin(args, io, login, paths.home);
    const run = advised(first.login);
    // Not "not signed in" beside a token in use: the token speaks for someone.
    const line = env === undefined ? `Not signed in: ${none}. Run ${run}.` : `Besides it, ${none}; to sign in and store one, run ${run}.`;
    lines.push(first.refusedBy === undefined ? line : `${line} ${first.refusedBy}`);
  }
  // A delegation whose renewal the authorization server refused: as `token` and `find-slot` say it, with when.
  for (const d of ended) {
    lines.push('');
    lines.push(agentHeading(d));
    lines.push(`  issuer            ${shownClipped(d.issuer)}`);
    lines.push(
      `  delegation        ended: the authorization server refused to renew it at ${instantLine(d.refusedAt, zone)} ` +
        `(${endedReason({ error: d.error, ...(d.errorDescription !== undefined ? { error_description: d.errorDescription } : {}) })}); sign in again with ${advised(await loginFor(d.agentUrl))}`,
    );
  }
  for (const d of stored) {
    lines.push('');
    // Headed by the URL signed in at, which --agent-url names (found in review, regress20e: headed by the audience, a
    // parent of it, which --agent-url did not find); the audience on a line of its own when it is another.
    // Every value below but the times came from the deployment signed in at (its metadata, its client registration,
    // its tokens and token responses), which may be anyone's: each is shown through shownClipped, so none can act on
    // the terminal (found in review, regress21e: only the account's name was, and a resource_name, claims, a scope or an
    // authorization detail holding an OSC or CSI sequence retitled the window and coloured the lines).
    lines.push(agentHeading(d));
    if (d.resource !== d.agentUrl) lines.push(`  audience          ${shownClipped(d.resource)}`);
    // By name when the server said at sign-in (found in review, regress21a: only the opaque id, where `grants show` names the account).
    const user = d.user !== undefined ? shownClipped(d.user, 100) : undefined;
    const who = d.userName !== undefined ? `${shownClipped(d.userName, 100)}${user !== undefined ? ` (${user})` : ''}` : (user ?? 'unknown');
    lines.push(`  signed in as      ${who} at ${shownClipped(d.issuer)}`);
    const clientId = d.clientId !== undefined ? shownClipped(d.clientId, 100) : undefined;
    // The name quoted, as `grants` and `audit` name a client (namedClient): anyone may register any name, another client's id in it.
    lines.push(`  client            ${d.clientName ? namedClientClipped(d.clientName, d.clientId ?? 'unknown') : (clientId ?? 'unknown')}`);
    lines.push(`  grant             ${d.grantId !== undefined ? shownClipped(d.grantId, 100) : 'unknown'}`);
    for (const [i, scope] of d.scopes.entries()) {
      lines.push(`  ${i === 0 ? 'scopes  ' : '        '}          ${shownClipped(scope, 100)}: ${SCOPE_DESCRIPTIONS[scope] ?? shownClipped(scope, 100)}`);
    }
    for (const detail of d.authorizationDetails) {
      const { actions, locations } = (detail ?? {}) as { actions?: unknown; locations?: unknown };
      lines.push(`  through it        ${shownItems(actions).join(', ')} at ${shownItems(locations).join(', ')}`);
    }
    const signInAgain = `; sign in again with ${advised(await loginFor(d.agentUrl))}`;
    // A cache that a rename cannot replace is not renewed (found in review, s31fix: a symbolic link's status said
    // "renewed without you on next use" while every refresh was refused, nothing sent): said as the refresh says it.
    const expired = d.expiresAt !== undefined && d.expiresAt <= now;
    const renewal = expired && d.notRenewedWhy !== undefined ? `; not renewed here: ${d.notRenewedWhy}` : expired && d.renewable ? '; renewed without you on next use' : undefined;
    const ended = d.delegationEndsAt !== undefined && d.delegationEndsAt <= now;
    if (d.expiresAt !== undefined) {
      lines.push(
        d.expiresAt > now
          ? `  access token      valid until ${instantLine(d.expiresAt, zone)}`
          : `  access token      expired at ${instantLine(d.expiresAt, zone)}${renewal ?? (ended ? '' : signInAgain)}`,
      );
    }
    if (d.signInEndsAt !== undefined && !ended) {
      lines.push(`  sign-in           ${d.signInEndsAt > now ? `until ${instantLine(d.signInEndsAt, zone)}` : `ended ${instantLine(d.signInEndsAt, zone)}${signInAgain}`}`);
    }
    if (d.delegationEndsAt !== undefined) {
      lines.push(`  delegation        ${ended ? `ended ${instantLine(d.delegationEndsAt, zone)}${signInAgain}` : `until ${instantLine(d.delegationEndsAt, zone)}, unless revoked`}`);
    }
  }
  io.stdout.write(`${lines.join('\n')}\n`);
  return code;
}

/** "CalendarAgent at https://…/mcp": the agent by the name its metadata gave, if any, and the URL signed in at. */
function agentHeading(d: { resourceName: string | undefined; agentUrl: string }): string {
  return `${d.resourceName ? shownClipped(d.resourceName, 100) : 'Agent'} at ${shownClipped(d.agentUrl)}`;
}

function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

function jsonView(d: Shown, now: number) {
  return {
    agent: d.resourceName ?? null,
    agentUrl: d.agentUrl,
    resource: d.resource,
    issuer: d.issuer,
    user: d.user ?? null,
    userName: d.userName ?? null,
    clientId: d.clientId ?? null,
    grantId: d.grantId ?? null,
    scopes: d.scopes,
    accessTokenExpiresAt: iso(d.expiresAt) ?? null,
    accessTokenValid: d.expiresAt === undefined || d.expiresAt > now,
    delegationEndsAt: iso(d.delegationEndsAt) ?? null,
    signInEndsAt: iso(d.signInEndsAt) ?? null,
    renewable: d.renewable,
    usable: d.usable,
    ...(d.notRenewedWhy !== undefined ? { notRenewedWhy: d.notRenewedWhy } : {}),
    authorizationDetails: d.authorizationDetails,
  };
}

function endedJsonView(d: EndedStoredDelegation) {
  return {
    agent: d.resourceName ?? null,
    agentUrl: d.agentUrl,
    resource: d.resource,
    issuer: d.issuer,
    refusedAt: iso(d.refusedAt),
    error: d.error,
    errorDescription: d.errorDescription ?? null,
    renewable: false,
    usable: false,
  };
}

/** What DELEGATE_TOKEN says about itself (never the token); `readable: false` when it is not a JWT (delegate's servers accept nothing else). */
function envTokenView(token: string): { readable: boolean; audience?: string; user?: string; expiresAt?: string } {
  if (!isBearerToken(token)) return { readable: false };
  try {
    const claims = decodeJwt(token);
    const audience = Array.isArray(claims.aud) ? claims.aud[0] : claims.aud;
    return {
      readable: true,
      ...(audience ? { audience } : {}),
      ...(claims.sub ? { user: claims.sub } : {}),
      ...(claims.exp ? { expiresAt: new Date(claims.exp * 1000).toISOString() } : {}),
    };
  } catch {
    return { readable: false };
  }
}

/**
 * The `delegate login` for this command's profile (--profile or DELEGATE_PROFILE, unless the default): found by the s18
 * helpers, `status --profile work` said plain `delegate login`, which signs in to the default profile. With the ports
 * or the agent's URL status was given, as every other command's advice (status took no ports until stop 20, so its
 * advice never named them). Every line that advises a sign-in names it (an ended delegation's too, not plain `delegate login`).
 * And with the data directory (DELEGATE_HOME, or the XDG directories when set), as token, find-slot and busy name it
 * (sameSetupCommandLine): the shell that ran status has it in its environment only if it was exported, and found in
 * review (s30), after `DELEGATE_HOME=$H delegate status` the advised `delegate login`, typed as printed, signed in to
 * the default data directory.
 */
async function loginCommand(args: StatusArgs, io: CliIo): Promise<string> {
  const { sameSetupCommandLine } = await import('./mcp-config.js');
  const where = { ports: args.ports ?? DEFAULT_PORTS, ...(args.agentUrl !== undefined ? { agentUrl: args.agentUrl } : {}) };
  return sameSetupCommandLine({ ...where, ...(args.profile !== undefined ? { profile: args.profile } : {}) }, io, ['login']);
}

/**
 * The `delegate login` for a first sign-in: by --agent-url at the servers on the ports when they are published at an
 * https URL (stack.ts publishedAgentUrl, one brief look), with the data directory as token and find-slot advise it
 * there; else `login`. Found in review (regress20g): plain status on a deployment's data directory advised `delegate
 * login`, which stops there with exit 1. And when the servers on the ports run from another data directory than
 * `home` (stack.ts runsFromOtherDataDirectory, one look, creating nothing), `refusedBy` says that this login stops
 * there and what to do: found in review (s31fault), status of a DELEGATE_HOME where nothing is stored advised a
 * `delegate login …` that the servers of another data directory on its ports refuse with exit 1.
 */
async function firstLogin(args: StatusArgs, io: CliIo, login: string, home: string): Promise<{ login: string; refusedBy?: string }> {
  if (args.agentUrl !== undefined) return { login };
  const { loadStack } = await import('../contracts.js');
  const { sameSetupCommandLine } = await import('./mcp-config.js');
  const ports = args.ports ?? DEFAULT_PORTS;
  const stack = await loadStack();
  // What answers on the ports does not change what status reports: a port another user holds is no advice.
  const [published, otherDirectory] = await Promise.all([
    stack.publishedAgentUrl({ ports, host: DEFAULT_HOST }).catch(() => undefined),
    stack.runsFromOtherDataDirectory(urlsFor(ports, DEFAULT_HOST).issuer, home).catch(() => false),
  ]);
  if (published !== undefined) {
    return { login: sameSetupCommandLine({ ports, agentUrl: printableClipped(published, 200), ...(args.profile !== undefined ? { profile: args.profile } : {}) }, io, ['login']) };
  }
  if (!otherDirectory) return { login };
  return {
    login,
    refusedBy:
      `It stops with exit 1 while the delegate servers on ${DEFAULT_HOST} ports ${ports.auth}, ${ports.calendar} and ${ports.agent} run from another data directory than this one (${home}): ` +
      'stop them first, or give it other ports (--auth-port, --calendar-port, --agent-port); or set DELEGATE_HOME to their data directory to use the sign-ins stored there.',
  };
}

/** A damaged cache's finding with that `delegate login` (the client's words name plain `delegate login`); any other error as it is. */
/**
 * Whether withProfileLogin's text for `error` advises `delegate login`: decided by the error, not by reading the text
 * for "`delegate " (found in review, s27rev4: once hints named the command that runs this delegate, such as
 * `node …/bin/delegate`, the note that login refuses beside DELEGATE_TOKEN was dropped).
 */
function advisesLogin(error: ClientError): boolean {
  return isClientError(error, 'CACHE_CORRUPT') && error.detail !== undefined;
}

async function withProfileLogin(error: ClientError, args: StatusArgs, io: CliIo): Promise<string> {
  if (!advisesLogin(error)) return error.message;
  return `${error.detail} It was left as it is; \`${await loginCommand(args, io)}\` keeps it aside and signs in again.`;
}

/** A stored delegation as status shows it: with why it is not renewed here, when its cache cannot be saved over. */
type Shown = StoredDelegation & { notRenewedWhy?: string };

/** Why the token cache at `path` cannot be renewed here (a symbolic link, a mount point: refuseUnreplaceable); else undefined. */
async function unreplaceable(path: string): Promise<string | undefined> {
  try {
    await refuseUnreplaceable(path);
    return undefined;
  } catch (error) {
    if (!(error instanceof NotReplaceableError)) return undefined;
    return `the token cache is a ${error.kind}, which cannot be saved over (mount or link its directory instead)`;
  }
}
