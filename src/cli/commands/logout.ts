// `delegate logout`: revokes the profile's stored tokens at their
// authorization server (RFC 7009; revoking the refresh token, or delegate's
// access token, which names its grant, ends the delegation, its grant, with
// every token derived from it), then deletes the token cache. Without a refresh
// token, an opaque access token of another server is revoked alone, and the
// command says its delegation may stand. Refuses while DELEGATE_TOKEN is set, as
// gh does: that token is not ours to forget. A cache it cannot read is kept
// aside whole (as login keeps it) and the command says what that leaves.
// With --agent-url, only that agent's sign-in is revoked and forgotten, and
// no server of this machine is started for it; a sign-in whose delegation
// another kept sign-in uses is forgotten without a revocation, which would
// end that one too. The tokens of a sign-in another replaced (two logins at
// once), kept because their revocation failed then, are revoked and forgotten
// with the rest, and said as they are.
import { delegateToken, urlsFor, type Paths } from '../../config.js';
import { logout, storedSignIns, type LogoutResult } from '../../client/credentials.js';
import { TokenCache } from '../../client/cache.js';
import { isClientError } from '../../client/errors.js';
import { CommandFailed, EXIT_ERROR, EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { resendingFetch } from '../../client/servers-gone.js';
import { isLoopbackUrl, sameOriginOrLoopbackAlias } from '../../delegation/resource.js';
import { issuerOnRecord } from '../served-elsewhere.js';
import { withStore } from './admin-store.js';
import { profilePaths, ServersInUse, type AgentAccessArgs } from './agent-access.js';
import { storedAgentKey } from '../stored-agent.js';
import { shown } from '../shown.js';
import { delegateCommandLine } from './mcp-config.js';

export async function logoutCommand(args: AgentAccessArgs, io: CliIo): Promise<number> {
  if (delegateToken(io.env) !== undefined) {
    throw new CommandFailed(`DELEGATE_TOKEN is set, and it is what delegate uses. Unset it first; to sign out its delegation, run \`${delegateCommandLine(['logout'], io.env)}\` without it.`);
  }
  const paths = profilePaths(io, args.profile);
  let stored;
  try {
    stored = await storedSignIns(paths, () => io.now());
  } catch (error) {
    if (!isClientError(error, 'CACHE_CORRUPT')) throw error;
    // Signed out here all the same, the file kept whole, never overwritten; but nothing in it can be revoked.
    const keptAs = await new TokenCache({ files: paths, now: () => io.now() }).setAsideDamaged();
    // Another process (a login) dealt with it first: log out of what is there now.
    if (keptAs === undefined) return logoutCommand(args, io);
    throw new CommandFailed(
      `The token cache ${paths.tokenCache} could not be read, so none of its tokens could be revoked at the server: they stay valid there until they expire ` +
        `(\`${delegateCommandLine(['grants', 'list'], io.env)}\` shows what is delegated, \`${delegateCommandLine(['grants', 'revoke'], io.env)}\` ends it). It is kept aside as ${keptAs}; this computer is signed out.`,
    );
  }
  // With --agent-url, only that agent's sign-in is revoked and forgotten (as `gh auth logout --hostname`); the rest stays.
  // By the cache's key, the URL signed in at, as logout() forgets it; or else by the audience, which may be a parent of
  // it, when one delegation alone is for it (found in review, regress20e: status showed it under that audience).
  const selected = args.agentUrl === undefined ? undefined : storedAgentKey(args.agentUrl, stored);
  const forAgent = (agentUrl: string) => selected === undefined || agentUrl === selected.key;
  const where = selected === undefined ? { files: paths, now: () => io.now() } : { files: paths, now: () => io.now(), agentUrl: selected.key };
  const named = selected?.byAudience ? selected.key : args.agentUrl;
  const notSignedIn = named === undefined ? 'Not signed in' : `Not signed in at ${named}`;
  const forgotten = named === undefined ? `Deleted ${paths.tokenCache}.` : `Forgot the sign-in for ${named} in ${paths.tokenCache}.`;
  if (!stored.delegations.some((d) => forAgent(d.agentUrl)) && !stored.pending.some((p) => forAgent(p.agentUrl))) {
    // Only the note that a delegation ended (its renewal refused) may be left: nothing to revoke, but the note goes, as a sign-out's cache does.
    const removed = stored.ended.some((d) => forAgent(d.agentUrl)) && (await logout(where)).removed;
    io.stderr.write(removed ? `${notSignedIn}: the stored delegation had ended already, nothing to revoke. ${forgotten}\n` : `${notSignedIn}: nothing to do.\n`);
    return EXIT_OK;
  }
  // The authorization server must be up to hear the revocation; an embedded one is started for it (again, if the one
  // in use goes away). Only for a delegation from an authorization server on this machine's loopback: one published at
  // an https URL is a deployment elsewhere, and nothing of this machine is started for it (found at stop 20: a logout
  // on a computer signed in only to a deployment set up servers, an owner and keys in its data directory).
  // And only for the one on the ports it was given (found in review, regress20c: any loopback issuer, such as another
  // stack's on other ports or a remote agent's metadata naming one, set up and started servers on these ports).
  const onThesePorts = urlsFor(args.ports, args.host).issuer;
  const local = args.agentUrl === undefined && [...stored.delegations, ...stored.pending].some((d) => sameOriginOrLoopbackAlias(d.issuer, onThesePorts));
  const servers = local ? new ServersInUse({ paths, ports: args.ports, host: args.host }) : undefined;
  // Why the servers could not be started (another user's program on the agent's port, say) is kept: a revocation at
  // their authorization server that then gets no answer failed for that reason, which is said instead of the
  // connection's (found in review, s25docs: it said only "cannot reach http://127.0.0.1:8410/revoke").
  let notStarted: unknown;
  await servers?.ensure().catch((error: unknown) => {
    notStarted = error;
  });
  const gone = servers && (() => servers.gone().catch((error: unknown) => {
    notStarted = error;
    throw error;
  }));
  let result;
  try {
    result = await logout({ ...where, fetchFn: resendingFetch(fetch, gone) });
  } finally {
    await servers?.close();
  }
  // A delegation whose authorization server did not answer, when that server is this data directory's own (on other
  // ports than this command's, so not started for it): ended in the store it keeps, as `grants revoke` ends one.
  const endedHere = await endInThisStore(paths, result.failed, io);
  result.failed = result.failed.filter((f) => !endedHere.has(f));
  const standing = result.revoked.filter((r) => !r.delegationEnded);
  // The resource and issuer as the deployment's metadata named them: escaped, as status shows them (review regress21e).
  for (const r of result.revoked) {
    // A sign-in another replaced, whose revocation had failed then (client/cache.ts PendingRevocation).
    const which = r.replaced ? ' of a sign-in replaced at the same time' : '';
    io.stderr.write(shown`Revoked the ${r.delegationEnded ? 'delegation' : 'access token'}${which} for ${r.resource} at ${r.issuer}.\n`);
  }
  // Its revocation would have ended the other sign-in's delegation too, signing it out (client/credentials.ts sameDelegation).
  for (const r of result.kept) {
    io.stderr.write(shown`Kept the delegation${r.grantId === undefined ? '' : ` (grant ${r.grantId})`} at ${r.issuer}: the sign-in for ${r.heldBy} uses it too; \`${delegateCommandLine(['logout', '--agent-url', r.heldBy], io.env)}\` ends it.\n`);
  }
  for (const [f, revokedNow] of endedHere) {
    const which = f.replaced ? ' of a sign-in replaced at the same time' : '';
    io.stderr.write(
      revokedNow
        ? shown`Revoked the delegation${which} for ${f.resource} in this computer's data directory: its authorization server ${f.issuer} is not running, and its servers refuse the delegation's tokens when they start.\n`
        : shown`The delegation${which} for ${f.resource} had ended already (this computer's data directory says so; its authorization server ${f.issuer} is not running).\n`,
    );
  }
  if (result.removed) io.stderr.write(`${forgotten}\n`);
  else if (result.notDeleted !== undefined) {
    // Said beside what was revoked (above) and what could not be (below): the command fails (exit 1) either way.
    io.stderr.write(`delegate: The token cache ${paths.tokenCache} could not be deleted: ${result.notDeleted}. Delete it yourself (unmount it first if it is a file mounted on its own).\n`);
  } else if (result.revoked.length === 0 && result.failed.length === 0) io.stderr.write(`${notSignedIn}: nothing to do.\n`);
  if (result.failed.length > 0) {
    const unstarted = notStarted instanceof Error ? notStarted.message : undefined;
    const forUnstarted = (f: (typeof result.failed)[number]) => unstarted !== undefined && f.unanswered && sameOriginOrLoopbackAlias(f.issuer, onThesePorts);
    const what = result.failed.map((f) => `${f.resource} (${f.replaced ? 'a sign-in replaced at the same time: ' : ''}${forUnstarted(f) ? "delegate's servers could not be started" : f.reason})`).join('; ');
    const why = unstarted !== undefined && result.failed.some(forUnstarted) ? ` ${unstarted}` : '';
    // Not "deleted" when the cache could not be (said above: found in review, s31fix2, two lines that disagreed).
    const here = result.notDeleted === undefined ? 'The tokens are deleted from this computer, but could not' : `The tokens are still in ${paths.tokenCache} (above), and could not`;
    throw new CommandFailed(`${here} be revoked at the server for ${what}; they stay valid there until they expire.${why}`);
  }
  if (standing.length > 0) {
    // An opaque access token, of a server other than delegate's: its revocation may end that token alone.
    const what = standing.map((r) => r.resource).join('; ');
    throw new CommandFailed(`No refresh token was stored, and the access token does not name its delegation, so the delegation itself may stand at the server for ${what}.`);
  }
  return result.notDeleted === undefined ? EXIT_OK : EXIT_ERROR;
}

type Failed = LogoutResult['failed'][number];

/**
 * The failed revocations, among `failed`, that end in this data directory's store: the authorization server did not
 * answer, and it is this data directory's own (the issuer CalendarAgent's statement on record names, where its
 * servers were last bound), and the access token named a grant of the store issued to the same client. Ended there
 * (revokeGrant, recorded as `grants revoke` records it), as the server itself would have ended it: its revocation list
 * carries it to the resource servers when they run. Found in review (s30ux): after `login --auth-port 28470 …`, a
 * plain `delegate logout` (default ports: no servers started for another stack, regress20c) deleted the tokens and
 * left the 30-day delegation standing, with nothing to end it by but `grants list`. Whose issuer it is is read from
 * the database read-only first: it is opened to write (and so set up or upgraded, as every writing command does) only
 * for a delegation of its own (found in review, s30fix: a sign-in to another stack upgraded this directory's older
 * database, or set one up in an empty file). One that cannot be opened leaves the failures as they are.
 * Each one ended maps to whether this revoked it (false: it had ended already).
 */
async function endInThisStore(paths: Paths, failed: readonly Failed[], io: CliIo): Promise<Map<Failed, boolean>> {
  const ended = new Map<Failed, boolean>();
  const candidates = failed.filter((f) => f.unanswered && f.grantId !== undefined && f.clientId !== undefined && isLoopbackUrl(f.issuer));
  const ours = candidates.length === 0 ? undefined : await issuerOnRecord(paths.db);
  const own = candidates.filter((f) => ours !== undefined && sameOriginOrLoopbackAlias(f.issuer, ours));
  if (own.length === 0) return ended;
  try {
    await withStore(paths, async (store) => {
      for (const f of own) {
        const grant = await store.grantById(f.grantId!);
        if (grant === undefined || grant.clientId !== f.clientId) continue;
        const record = { event: 'grant_revoked', user: grant.userId, client: grant.clientId, grant: grant.id, resource: grant.resource, detail: { by: 'owner', via: 'logout', reason: 'its authorization server did not answer' } };
        ended.set(f, await store.revokeGrant(grant.id, io.now(), 'revoked at sign-out from the command line', record));
      }
    });
  } catch {
    // The store could not be opened or written: the revocation failed, as said below.
  }
  return ended;
}
