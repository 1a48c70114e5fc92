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
// `--access-token-file`.
import { readFile, stat } from 'node:fs/promises';
import type { JWK } from 'jose';
import { createClientAssertionSigner } from '../../agent/client-assertion.js';
import type { Paths } from '../../config.js';
import {
  CALENDAR_DETAIL_TYPE,
  CLIENT_ASSERTION_TYPE_JWT_BEARER,
  DATATYPE_FREEBUSY,
  GRANT_TYPE_TOKEN_EXCHANGE,
  SCOPE_FREEBUSY_READ,
  TOKEN_TYPE_ACCESS_TOKEN,
  canonicalResource,
  parseScope,
} from '../../delegation/index.js';
import { CommandFailed, EXIT_OK, UsageError } from '../errors.js';
import type { CliIo } from '../io.js';

export interface TokenExchangeArgs {
  paths: Paths;
  issuer: string;
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
  /** The caller's stored token for CalendarAgent, when no subject token is given. */
  storedToken: () => Promise<string>;
}

/** Said when a token is given on the command line: where it is visible to every user of the machine. */
export const SUBJECT_TOKEN_ON_COMMAND_LINE =
  '--subject-token takes only - (read the token from stdin): a token on the command line can be read by other users of this machine. Use --subject-token -, --subject-token-file FILE, or DELEGATE_TOKEN.';

export async function tokenExchangeCommand(args: TokenExchangeArgs, io: CliIo): Promise<number> {
  // Judged first, before any file is read or request sent.
  if (args.subjectToken !== undefined && args.subjectToken !== '-') throw new UsageError(SUBJECT_TOKEN_ON_COMMAND_LINE);
  if (args.subjectToken !== undefined && args.subjectTokenFile !== undefined) throw new UsageError('Give the token to narrow once: --subject-token - or --subject-token-file, not both.');
  const audience = canonicalResource(args.audience);
  if (!audience) throw new UsageError('--audience must be an absolute http(s) URL.');
  const detail = constraintsDetail(audience, args.scope, args.constraints);
  const subject = await subjectToken(args, io);
  const key = await readAgentKey(args.keyFile ?? args.paths.agentKey);
  const sign = createClientAssertionSigner(args.as, key, args.issuer);

  const metadata = await fetchJson(`${args.issuer}/.well-known/oauth-authorization-server`);
  const tokenEndpoint = typeof metadata.token_endpoint === 'string' ? metadata.token_endpoint : `${args.issuer}/token`;
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
  if (args.scope) body.set('scope', args.scope);
  if (detail) body.set('authorization_details', JSON.stringify([detail]));
  if (args.forAgent) body.set('may_act', args.forAgent);

  let res: Response;
  try {
    res = await fetch(tokenEndpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body, signal: AbortSignal.timeout(10_000) });
  } catch {
    throw new CommandFailed(`The authorization server at ${args.issuer} did not answer.`);
  }
  const answer = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) {
    throw new CommandFailed(`The exchange was refused (${String(answer.error ?? res.status)}): ${String(answer.error_description ?? 'no reason given')}`);
  }
  io.stdout.write(args.json ? `${JSON.stringify(answer)}\n` : `${String(answer.access_token)}\n`);
  return EXIT_OK;
}

/** `--constraint calendars=work,home` and `--constraint lookahead_days=7` as one RFC 9396 calendar detail. */
function constraintsDetail(audience: string, scope: string | undefined, constraints: string[]): Record<string, unknown> | undefined {
  if (constraints.length === 0) return undefined;
  const detail: Record<string, unknown> = {
    type: CALENDAR_DETAIL_TYPE,
    locations: [audience],
    actions: scope ? parseScope(scope) : [SCOPE_FREEBUSY_READ],
    datatypes: [DATATYPE_FREEBUSY],
  };
  for (const c of constraints) {
    const [key, value] = c.split('=', 2);
    if (key === 'calendars' && value) detail.calendars = value.split(',').map((s) => s.trim()).filter(Boolean);
    else if (key === 'lookahead_days' && value && /^\d+$/.test(value)) detail.lookahead_days = Number(value);
    else throw new UsageError(`--constraint takes calendars=NAME[,NAME…] or lookahead_days=N, not ${c}.`);
  }
  return detail;
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

async function readAgentKey(file: string): Promise<JWK> {
  try {
    const jwk = JSON.parse(await readFile(file, 'utf8')) as JWK;
    if (typeof jwk.d !== 'string') throw new Error('not a private key');
    return jwk;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new CommandFailed(`The key file ${file} does not exist.`);
    throw new CommandFailed(`${file} does not hold the acting agent's private key.`);
  }
}

async function fetchJson(url: string): Promise<Record<string, unknown>> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    return res.ok ? ((await res.json()) as Record<string, unknown>) : {};
  } catch {
    throw new CommandFailed(`The authorization server at ${new URL(url).origin} did not answer.`);
  }
}
