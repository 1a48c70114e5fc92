// `delegate token`: prints a valid access token for CalendarAgent on stdout,
// for scripts and other MCP clients (`--header "Authorization: Bearer
// $(delegate token)"`): DELEGATE_TOKEN if set, else the stored one, refreshed
// first when it has little life left. It never signs in: with nothing stored
// it fails with exit code 4. The one command that prints a token, by design.
// The agent is the one on the ports, or the one --agent-url names: each has
// its own tokens in the cache (keyed by issuer and resource), never the other's.
import { urlsFor } from '../../config.js';
import { validAccessToken } from '../../client/credentials.js';
import { isClientError } from '../../client/errors.js';
import { refreshSpentNothing } from '../../client/refresh.js';
import { EXIT_OK, errorText } from '../errors.js';
import type { CliIo } from '../io.js';
import {
  damagedCacheFailure,
  environmentToken,
  isDamagedCache,
  nothingStoredFailure,
  profilePaths,
  refreshChecked,
  refuseUnusableServers,
  withAgentAccess,
  type AgentAccessArgs,
} from './agent-access.js';

const TOKEN_WORDS = ['token'];

/**
 * A token that is still good needs no server; only a refresh does, so only
 * then are the servers made sure of. The refresh token is posted at most once
 * per run: the servers are looked for (and the refresh made again) only when
 * the first refresh reached no authorization server (nobody listening, or
 * another program on its port, which the look names); any other failure (a
 * refusal, a timeout, the token cache on a full disk, a lock held too long)
 * is the command's. Before a refresh, the authorization server on loopback is
 * asked which data directory it runs from: another one's is refused (exit 1)
 * with nothing sent and nothing changed in the token cache.
 */
async function storedToken(args: AgentAccessArgs, io: CliIo): Promise<string> {
  try {
    return await validAccessToken({
      agentUrl: args.agentUrl ?? urlsFor(args.ports, args.host).agentUrl,
      files: profilePaths(io, args.profile),
      now: () => io.now(),
      refreshNotSaved: (error) => io.stderr.write(errorText(error, args.debug)),
      // The servers are not looked at first: before a refresh, the authorization server is (regress21e).
      ...refreshChecked(args, io),
    });
  } catch (error) {
    // Servers on these ports published at an https URL are reached by that URL, not by a sign-in at the ports that the
    // advice below names (found in review, regress20e: exit 4 and `delegate login --auth-port …`, as find-slot said
    // before regress20c), and servers of another data directory refuse that sign-in (found in review, s31fault): checked
    // first, as find-slot's fast path checks (exit 1, naming --agent-url or the other data directory).
    if (isClientError(error, 'AUTHORIZATION_REQUIRED')) await refuseUnusableServers({ ...args, command: TOKEN_WORDS }, io);
    // A damaged cache is named with the `delegate login` of this run's ports and profile, as withAgentAccess names it.
    if (isDamagedCache(error)) throw await damagedCacheFailure(error, args, io, true);
    // Nothing stored: named the same way (found by the s18 helpers: this alone still said plain `delegate login`).
    if (isClientError(error, 'AUTHORIZATION_REQUIRED')) throw await nothingStoredFailure(error, { ...args, command: TOKEN_WORDS }, io);
    // Servers on this machine's ports may be looked for (and started); an agent given by its URL is not this machine's.
    if (!refreshSpentNothing(error) || args.agentUrl !== undefined) throw error;
  }
  return withAgentAccess({ ...args, mayPrompt: false, command: TOKEN_WORDS }, io, (session) => validAccessToken(session));
}

export async function tokenCommand(args: AgentAccessArgs, io: CliIo): Promise<number> {
  const token = environmentToken(io, args.agentUrl) ?? (await storedToken(args, io));
  io.stdout.write(`${token}\n`);
  return EXIT_OK;
}
