// `delegate token exchange`: a script or an agent hands a narrower token to a
// sub-agent (RFC 8693). It acts as a registered agent (its private_key_jwt
// key), trades a token it holds for one with an audience, scope and
// constraints no wider than the parent's, optionally naming the sub-agent
// that may exchange it in turn (`--for`, RFC 8693 may_act). The new token is
// printed on stdout; the authorization server refuses, with the bound named,
// anything that would widen the delegation. The token to narrow never comes
// from the command line, which other users of the machine can read
// (/proc/<pid>/cmdline): it comes from stdin (`--subject-token -`), a file
// (`--subject-token-file`), or DELEGATE_TOKEN / the stored sign-in, as gh takes
// its token from stdin (`--with-token`) or GH_TOKEN and gcloud from
// `--access-token-file`. A `--constraint` narrows only what it names: the
// other limits are the subject token's (read from it unverified; the
// authorization server judges), so that a limit left out is never asked for
// as "no limit". With no token given, the stored sign-in's is narrowed: the
// one for the agent on the ports (--agent-port) or at --agent-url, whose
// authorization server is then the one it was made at unless one is named.
import { readFile, stat } from 'node:fs/promises';
import { decodeJwt } from 'jose';
import { createClientAssertionSigner } from '../../agent/client-assertion.js';
import { DEFAULT_AGENT_CLIENT_ID } from '../../agent/identity.js';
import { urlsFor, type Paths } from '../../config.js';
import { NAMED_ON_THE_COMMAND_LINE, notARegularFile } from '../../regular-file.js';
import {
  CALENDAR_DETAIL_TYPE,
  CLIENT_ASSERTION_TYPE_JWT_BEARER,
  DATATYPE_FREEBUSY,
  GRANT_TYPE_TOKEN_EXCHANGE,
  SCOPE_FREEBUSY_READ,
  TOKEN_TYPE_ACCESS_TOKEN,
  calendarDetailFor,
  canonicalResource,
  handOffBeyondDepthDescription,
  parseScope,
  type AuthorizationDetail,
  type CalendarDetail,
} from '../../delegation/index.js';
import { readAgentPrivateKey } from '../agent-key.js';
import { hostIsLoopback, parseIssuerUrl } from '../args.js';
import { CommandFailed, EXIT_OK, UsageError } from '../errors.js';
import type { CliIo } from '../io.js';
import type { AgentAccessArgs } from './agent-access.js';
import { delegateCommandLine } from './mcp-config.js';

export interface TokenExchangeArgs {
  paths: Paths;
  /** The authorization server: --issuer or --auth-port, else the default (unless signInIssuer names one). */
  issuer: string;
  /**
   * With --agent-url and no authorization server named: the one its stored sign-in was made at, if one is stored, to
   * use instead of `issuer` (the default port's server is not that deployment's). Read after the subject token.
   */
  signInIssuer?: () => Promise<string | undefined>;
  audience: string;
  scope?: string;
  constraints: string[];
  /** `--subject-token`: only `-` (stdin) is taken; any other value is a token on the command line, refused. */
  subjectToken?: string;
  /** `--subject-token-file`: a file holding the token to narrow. Neither given: DELEGATE_TOKEN or the stored token. */
  subjectTokenFile?: string;
  /** Acting agent and its key (default: CalendarAgent and its key in the data directory). */
  as: string;
  keyFile?: string;
  forAgent?: string;
  json: boolean;
  /** The caller's stored token for CalendarAgent, when no subject token is given (storedSubjectToken). */
  storedToken: () => Promise<string>;
}

/** A calendar detail's longest lookahead, as the authorization server reads one (src/delegation/constraints.ts parseCalendarDetail). */
const MAX_LOOKAHEAD_DAYS = 366;

/** Said when a token is given on the command line: where it is visible to every user of the machine. */
export const SUBJECT_TOKEN_ON_COMMAND_LINE =
  '--subject-token takes only - (read the token from stdin): a token on the command line can be read by other users of this machine. Use --subject-token -, --subject-token-file FILE, or DELEGATE_TOKEN.';

export async function tokenExchangeCommand(args: TokenExchangeArgs, io: CliIo): Promise<number> {
  // Judged first, before any file is read or request sent.
  if (args.keyFile === undefined && args.as !== DEFAULT_AGENT_CLIENT_ID) throw new UsageError(withoutKey(args.as));
  if (args.subjectToken !== undefined && args.subjectToken !== '-') throw new UsageError(SUBJECT_TOKEN_ON_COMMAND_LINE);
  if (args.subjectToken !== undefined && args.subjectTokenFile !== undefined) throw new UsageError('Give the token to narrow once: --subject-token - or --subject-token-file, not both.');
  const audience = canonicalResource(args.audience);
  if (!audience) throw new UsageError('--audience must be an absolute http(s) URL.');
  const asked = parseConstraints(args.constraints);
  // The AS takes a scope only as RFC 6749 §3.3 writes it (tokens, one space apart): what a shell hands over
  // (`--scope "freebusy:read "`, tabs, doubled spaces) is written that way here, and one naming no scope is bad usage.
  const scope = args.scope === undefined ? undefined : args.scope.split(/[ \t\r\n]+/).filter(Boolean).join(' ');
  if (scope === '') throw new UsageError('--scope names no scope; give one, such as --scope freebusy:read, or leave it out.');
  const subject = await subjectToken(args, io);
  const parent = subjectDetail(subject, audience);
  const detail = exchangeDetail(audience, scope, asked, parent);
  const issuer = (await args.signInIssuer?.()) ?? args.issuer;
  const key = await readAgentPrivateKey(args.keyFile ?? args.paths.agentKey);
  const sign = createClientAssertionSigner(args.as, key.jwk, issuer);

  const metadata = await fetchJson(`${issuer}/.well-known/oauth-authorization-server`);
  const tokenEndpoint = typeof metadata.token_endpoint === 'string' ? metadata.token_endpoint : `${issuer}/token`;
  const body = new URLSearchParams({
    grant_type: GRANT_TYPE_TOKEN_EXCHANGE,
    subject_token: subject,
    subject_token_type: TOKEN_TYPE_ACCESS_TOKEN,
    requested_token_type: TOKEN_TYPE_ACCESS_TOKEN,
    resource: audience,
    client_id: args.as,
    client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
    client_assertion: await sign(io.now()),
  });
  if (scope) body.set('scope', scope);
  if (detail) body.set('authorization_details', JSON.stringify([detail]));
  if (args.forAgent) body.set('may_act', args.forAgent);

  let res: Response;
  try {
    res = await fetch(tokenEndpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body, signal: AbortSignal.timeout(10_000) });
  } catch {
    throw notAnswered(issuer);
  }
  const answer = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) {
    const error = String(answer.error ?? res.status);
    const refused = `The exchange was refused (${error}): ${String(answer.error_description ?? 'no reason given')}`;
    if (error === 'invalid_authorization_details') throw new CommandFailed(`${refused}${wideningNote(asked, parent)}`);
    // Our authorization server's word for an assertion naming no client that signs with a key (src/authz/client-auth.ts
    // checkAssertion: no such client, or one that does not authenticate with private_key_jwt), where a key that is not
    // the agent's is "not valid for this client". Found in review (s33deleg): `--as nosuch` was told to add a kid.
    if (error === 'invalid_client' && answer.error_description === NO_SUCH_AGENT) throw new CommandFailed(`${refused} ${notRegistered(args.as, issuer, io)}`);
    if (error === 'invalid_client' && key.kidFromThumbprint) {
      throw new CommandFailed(
        `${refused} ${keyName(args)} has no kid, so it was named by its RFC 7638 thumbprint ${key.jwk.kid}; if ${args.as} was registered under another kid, add that kid to the key file.`,
      );
    }
    if (args.forAgent && answer.error_description === handOffBeyondDepthDescription(1, 2)) throw new CommandFailed(`${refused}${noHelperNote(subject)}`);
    throw new CommandFailed(refused);
  }
  io.stdout.write(args.json ? `${JSON.stringify(answer)}\n` : `${String(answer.access_token)}\n`);
  return EXIT_OK;
}

/**
 * `--as` another agent than CalendarAgent without `--key`: bad usage, before anything is read or sent. Found in review
 * (s33deleg): the exchange was signed with CalendarAgent's key in the data directory, under the other agent's name,
 * and refused by the authorization server as "not valid for this client" (exit 1).
 */
function withoutKey(agent: string): string {
  return `--as ${agent} needs --key FILE, the private key ${agent} was registered with (the data directory's agent key is ${DEFAULT_AGENT_CLIENT_ID}'s, CalendarAgent's).`;
}

/** invalid_client's description from delegate's authorization server for an assertion naming no agent that signs with a key. */
const NO_SUCH_AGENT = 'Client authentication failed.';

function notRegistered(agent: string, issuer: string, io: CliIo): string {
  return `No agent ${agent} that signs with a key is registered at ${issuer}: check --as, or have the agent registered there first (\`${delegateCommandLine(['agents', 'register', '--help'], io.env)}\` says how).`;
}

/** The limits `--constraint` names, each with the option as given (to name it in a refusal). Nothing else. */
interface AskedConstraints {
  calendars?: { value: string[]; given: string };
  lookahead_days?: { value: number; given: string };
}

/** `--constraint calendars=work,home` and `--constraint lookahead_days=7`, judged before anything is read or sent. */
function parseConstraints(constraints: string[]): AskedConstraints {
  const asked: AskedConstraints = {};
  for (const c of constraints) {
    const [key, value] = c.split('=', 2);
    const calendars = key === 'calendars' && value ? value.split(',').map((s) => s.trim()).filter(Boolean) : [];
    if (calendars.length > 0) asked.calendars = { value: calendars, given: c };
    else if (key === 'lookahead_days' && value && /^\d+$/.test(value)) asked.lookahead_days = { value: lookaheadDays(value, c), given: c };
    else throw new UsageError(`--constraint takes calendars=NAME[,NAME…] or lookahead_days=N, not ${c}.`);
  }
  return asked;
}

/**
 * A lookahead the authorization server can take: 1 to 366 days. Found in review (s33deleg): `lookahead_days=0` was sent
 * and refused there (exit 1), where README counts a malformed value as bad usage (exit 2), nothing sent.
 */
function lookaheadDays(value: string, given: string): number {
  const days = Number(value);
  if (days < 1 || days > MAX_LOOKAHEAD_DAYS) throw new UsageError(`--constraint lookahead_days takes a whole number of days from 1 to ${MAX_LOOKAHEAD_DAYS}, not ${given}.`);
  return days;
}

/**
 * The calendar detail the subject token carries for the audience, read without verifying it: only to fill in the
 * limits no `--constraint` names. The authorization server verifies the token and judges the request; a token
 * that cannot be read here is sent as it is, for the server to refuse.
 */
function subjectDetail(token: string, audience: string): CalendarDetail | undefined {
  try {
    const details = decodeJwt(token).authorization_details;
    return Array.isArray(details) ? calendarDetailFor(details as AuthorizationDetail[], audience) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The one RFC 9396 calendar detail to ask for, or none when no constraint is given (the server then issues the
 * narrower of the subject token's and the grant's). It is the subject token's detail with only the given limits
 * replaced: a limit not given stays as the token has it, since an absent member means "no limit" (all calendars,
 * any lookahead), which would widen the delegation. Its actions are the token's; `--scope` is judged as the scope.
 */
function exchangeDetail(audience: string, scope: string | undefined, asked: AskedConstraints, parent: CalendarDetail | undefined): Record<string, unknown> | undefined {
  if (asked.calendars === undefined && asked.lookahead_days === undefined) return undefined;
  const base: Record<string, unknown> = parent
    ? { ...parent, locations: [audience] }
    : { type: CALENDAR_DETAIL_TYPE, locations: [audience], actions: scope ? parseScope(scope) : [SCOPE_FREEBUSY_READ], datatypes: [DATATYPE_FREEBUSY] };
  return {
    ...base,
    ...(asked.calendars ? { calendars: asked.calendars.value } : {}),
    ...(asked.lookahead_days ? { lookahead_days: asked.lookahead_days.value } : {}),
  };
}

/**
 * What a person does when `--for` is refused because the delegation allows no helper agent: the consent page's "No —
 * only CalendarAgent itself", which a first consent preselects. Only a new consent allows one; a sign-in the grant
 * already covers shows no consent page, so the grant is ended first.
 */
function noHelperNote(subject: string): string {
  const grant = readGrantId(subject);
  return (
    ' The delegation allows no helper agent (on the consent page: "No — only CalendarAgent itself"). To allow one, end it' +
    `${grant ? ` (\`${delegateCommandLine(['grants', 'revoke', grant])}\`)` : ''} and sign in again, choosing "Yes — one helper agent".`
  );
}

function readGrantId(token: string): string | undefined {
  try {
    const grant = decodeJwt(token).grant_id;
    return typeof grant === 'string' && /^[\w-]+$/.test(grant) ? grant : undefined;
  } catch {
    return undefined;
  }
}

/** Which given `--constraint` asks for more than the subject token allows, to name it after the server's reason. */
function wideningNote(asked: AskedConstraints, parent: CalendarDetail | undefined): string {
  if (!parent) return '';
  const wider: string[] = [];
  if (asked.calendars && parent.calendars !== undefined && asked.calendars.value.some((c) => !parent.calendars!.includes(c))) wider.push(asked.calendars.given);
  if (asked.lookahead_days && parent.lookahead_days !== undefined && asked.lookahead_days.value > parent.lookahead_days) wider.push(asked.lookahead_days.given);
  if (wider.length === 0) return '';
  return ` ${wider.length === 1 ? 'The constraint that widens it' : 'The constraints that widen it'}: --constraint ${wider.join(' and --constraint ')}.`;
}

function keyName(args: TokenExchangeArgs): string {
  return args.keyFile ?? 'The agent key';
}

async function subjectToken(args: TokenExchangeArgs, io: CliIo): Promise<string> {
  if (args.subjectToken === '-') {
    if (!io.readAll) throw new CommandFailed('No standard input to read the token from.');
    const token = (await io.readAll()).trim();
    if (token === '') throw new UsageError('--subject-token -: no token on standard input.');
    return token;
  }
  if (args.subjectTokenFile !== undefined) return readTokenFile(args.subjectTokenFile);
  return args.storedToken();
}

/** The token in a file, which, like a key file, others may not read (a token they can read is theirs to use). */
async function readTokenFile(file: string): Promise<string> {
  let text: string;
  try {
    const info = await stat(file);
    const kind = notARegularFile(info, 'a token file', NAMED_ON_THE_COMMAND_LINE);
    if (kind !== undefined) throw new CommandFailed(`The token file ${file} is ${kind}.`);
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      throw new CommandFailed(`The token file ${file} is readable by other users (mode ${(info.mode & 0o777).toString(8)}); make it 0600.`);
    }
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (error instanceof CommandFailed) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new CommandFailed(`The token file ${file} does not exist.`);
    throw new CommandFailed(`The token file ${file} cannot be read (${String((error as NodeJS.ErrnoException).code ?? 'error')}).`);
  }
  const token = text.trim();
  if (token === '') throw new UsageError(`--subject-token-file ${file}: the file holds no token.`);
  return token;
}

async function fetchJson(url: string): Promise<Record<string, unknown>> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    return res.ok ? ((await res.json()) as Record<string, unknown>) : {};
  } catch {
    throw notAnswered(new URL(url).origin);
  }
}

/**
 * No authorization server answered: what to do about it. Found in review (regress21a): with no servers running it
 * said only that the server "did not answer". Unlike find-slot and login, the exchange starts no stack of its own (it
 * acts as an agent registered with a running server), so one on this machine is started, or the right one named.
 */
function notAnswered(issuer: string): CommandFailed {
  const what = hostIsLoopback(new URL(issuer).hostname)
    ? `Start delegate's servers (\`${delegateCommandLine(['serve'])}\`), or name the running one with --auth-port or --issuer.`
    : 'Check that it runs and that --issuer names it.';
  return new CommandFailed(`The authorization server at ${issuer} did not answer. ${what}`);
}

/**
 * The stored sign-in's token (for the agent on `access`'s ports, or at its --agent-url) as `delegate token` reads it,
 * and where none is stored, `token`'s failure: the `delegate login` of this run's data directory, ports and profile, and
 * a usable sign-in this profile holds for another agent, with this command run for it by --agent-url (nothingStoredFailure).
 * Found in review (s33deleg): on other ports than the defaults, `token exchange` said only "Run `delegate login` first",
 * which, followed, signed in at the default ports' servers while the delegation stood at the others.
 */
export async function storedSubjectToken(access: AgentAccessArgs, io: CliIo): Promise<string> {
  const { validAccessToken } = await import('../../client/credentials.js');
  const { isClientError } = await import('../../client/errors.js');
  const { damagedCacheFailure, isDamagedCache, nothingStoredFailure, profilePaths, refuseUnusableServers } = await import('./agent-access.js');
  try {
    return await validAccessToken({ agentUrl: access.agentUrl ?? urlsFor(access.ports, access.host).agentUrl, files: profilePaths(io, access.profile), now: () => io.now() });
  } catch (error) {
    if (!isClientError(error, 'AUTHORIZATION_REQUIRED')) throw error;
    // As `token` checks first: servers on these ports that a sign-in there could not use (exit 1, saying why).
    await refuseUnusableServers(access, io);
    if (isDamagedCache(error)) throw await damagedCacheFailure(error, access, io, true);
    throw await nothingStoredFailure(error, access, io);
  }
}

/**
 * The authorization server the stored sign-in for the agent at `agentUrl` was made at (the token cache's discovery, as
 * validAccessToken reads it), when it is an issuer this command can name; undefined when none is stored or the cache
 * cannot be read (said where the token is read).
 */
export async function storedSignInIssuer(agentUrl: string, access: AgentAccessArgs, io: CliIo): Promise<string | undefined> {
  const { TokenCache } = await import('../../client/cache.js');
  const { profilePaths } = await import('./agent-access.js');
  try {
    const data = await new TokenCache({ files: profilePaths(io, access.profile), now: () => io.now() }).read();
    const issuer = data.discovery[canonicalResource(agentUrl) ?? agentUrl]?.authorizationServerUrl;
    return issuer === undefined ? undefined : parseIssuerUrl(issuer);
  } catch {
    return undefined;
  }
}
