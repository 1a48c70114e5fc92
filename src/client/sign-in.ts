// The slow path of a session: sign in through the browser. The loopback
// listener is bound first; the SDK's auth() with our provider discovers the
// authorization server from the agent's 401 (refusing one whose metadata does
// not list PKCE S256, pkce-support.ts), registers if needed and builds
// the authorization URL; the user gets the listener's /start, which sends
// their browser on to the owner's sign-in link (bringing back first servers that went away with another command:
// servers-gone.ts), or the plain URL; they approve, and the browser brings the code back to the listener;
// finishAuth() redeems it, once whatever the answer (code-redemption.ts), into room on disk taken before (a full disk
// redeems nothing; tokens issued and still not saved are revoked), and a new connection uses the new token; only then
// does the browser's page say "Signed in" (loopback.ts finished). When the
// browser ran on another computer, the address it ended on may be pasted
// instead (readPastedRedirect), raced against the listener. Loaded
// only when needed, so the cached fast path does not load any of this.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError, auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { OAuthError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { roomForSignIn, tokensFor, type TokenCache } from './cache.js';
import { signInHold } from './held-signals.js';
import { CodeRedemption } from './code-redemption.js';
import { boundedFetch } from './bounded-fetch.js';
import { AgentAnswerDeadline, connectAndUse } from './connect.js';
import { DEFAULT_REQUEST_TIMEOUT_MS } from './quick-call.js';
import { ClientError, isClientError, wrongAccount } from './errors.js';
import { refusedAtOnce, startLoopbackListener, type LoopbackListener } from './loopback.js';
import { DataDirectoriesSaid, loadOrCreateOwnerKey, loginLinkFor, ownerLoginApplies, ownerTokenAssertion } from './owner-login.js';
import { CacheOAuthProvider } from './provider.js';
import { RequestsMet } from './requests-met.js';
import { bringBackIfGone, START_CHECK_TIMEOUT_MS } from './servers-gone.js';
import { refuseForeignListener } from '../http/listener-owner.js';
import { retireReplacedSignIns, revokeReplacedSignIn, signInNotKept } from './revocation.js';
import type { SessionOptions } from './session.js';
import { TokenResponseNotes } from './token-notes.js';

/** A sign-in's first initialize may hold this many bounded requests (the agent's 401, its resource metadata, the authorization server's, the client's registration or check, and room): its backstop is that many bounds. */
const SIGN_IN_BACKSTOP_REQUESTS = 6;

/** How long to wait for the browser unless told otherwise. */
export const DEFAULT_LOGIN_TIMEOUT_MS = 5 * 60_000;

/** Signs in through the browser, then runs `use` on a client connected with the new token. */
export async function signInAndUse<T>(
  options: SessionOptions & {
    presentLoginUrl: (url: string) => Promise<void>;
    /** Step-up: the scope the agent asked for (its 403 insufficient_scope challenge), asked for at once. */
    scope?: string;
  },
  cache: TokenCache,
  resource: string,
  baseFetch: FetchLike,
  use: (client: Client) => Promise<T>,
): Promise<T> {
  // A sign-in saved after this moment by another process was made at the same time as this one (revokeReplacedSignIn).
  const startedAt = options.now();
  const notes = new TokenResponseNotes(options.now);
  // The code is presented once; the token endpoint's first answer is what the person gets.
  const redemption = new CodeRedemption();
  // An answer the SDK's schemas refuse is said with the address it came from, a server not reached as such (requests-met.ts).
  const met = new RequestsMet();
  // Which data directory the authorization server runs from, as its metadata says on the way (the owner's link is for this one's alone).
  const said = new DataDirectoriesSaid();
  const fetchFn = met.observe(said.observe(redemption.observe(notes.observe(baseFetch))));
  // Bound before anything can send the browser to it (RFC 8252 §7.3).
  const listener = await startLoopbackListener({
    timeoutMs: options.loginTimeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS,
    awaitOutcome: true, // the browser's page says "Signed in" once the tokens are saved
    ...(options.redirectPort !== undefined ? { port: options.redirectPort } : {}),
  });
  const stopReading = new AbortController();
  try {
    let asked = 0;
    // Set once the owner's link is shown: the code's redemption then proves it is the owner's CLI, and the
    // authorization server issues tokens only if the owner approved (login CSRF; src/authz/owner-proof.ts).
    let ownerLink = false;
    const provider = new CacheOAuthProvider({
      cache,
      snapshot: await cache.read(),
      resource,
      now: options.now,
      redirectUrl: listener.redirectUrl,
      ignoreCachedTokens: true,
      // Discover afresh from the agent's 401 (a cached authorization server may be the reason we are here), in
      // memory only: the cached entry stays on disk until the new one replaces it, so a login ended half-way
      // (Ctrl-C, a kill) leaves the previous sign-in usable.
      ignoreCachedDiscovery: true,
      notes,
      codeRedemption: redemption,
      // A server whose database was replaced refuses a forgotten client only in the browser, where we cannot see it.
      checkCachedClient: fetchFn,
      discoveryUnreached: () => met.unreached,
      ownerAssertion: async (tokenEndpoint) => (ownerLink ? ownerTokenAssertion(options.files.ownerKey, tokenEndpoint.href, options.now) : undefined),
      onAuthorizationUrl: async (url, context) => {
        if (++asked > 1) {
          // Any MCP server reached by --agent-url, not only CalendarAgent. The sign-in stays stored: an agent that
          // cannot check tokens for a moment (its authorization server's keys out of reach) takes it once it can.
          throw new ClientError(
            'AUTHORIZATION_FAILED',
            `The agent at ${options.agentUrl} refused the token the authorization server has just issued for it. ` +
              `The sign-in stays stored, for when the agent takes it; \`delegate logout --agent-url ${options.agentUrl}\` revokes it.`,
          );
        }
        // Only at the authorization server of this data directory, as its metadata (fetched by this discovery) says: one
        // of another (a colleague's `serve`, reached by --agent-url) signs its users in with their own accounts, and
        // no owner key is made for it (found in review, s33team).
        const serverDataDirectory = await said.of(context.issuer, options.files.ownerKey);
        ownerLink = ownerLoginApplies(context.issuer, url, options.agentUrl, serverDataDirectory);
        if (ownerLink) {
          // The owner's link is a bearer credential: it never goes on a command line (xdg-open's, the browser's),
          // which any user can read. The listener's /start, which answers only this user, sends the browser on to it.
          await loadOrCreateOwnerKey(options.files.ownerKey); // a key problem shows now, not in the browser
          // A request the server refuses at once (a scope the agent does not offer, say) is said now, not after the
          // browser's round trip. Never asked of another user's program on the server's port.
          refuseForeignListener(context.issuer, { fresh: true });
          const refused = await refusedAtOnce(url, context, options.fetchFn ?? fetch, START_CHECK_TIMEOUT_MS);
          if (refused !== undefined) throw refused;
          listener.expect(context, async () => {
            // The servers may have gone while the person took their time: with the command that started them in its
            // process (the embedded stack), which has since exited. They are brought back on the same ports before
            // the browser is sent there, as a device sign-in's poll brings them back (found in review, s28race #2).
            // Who holds the port is looked up now, before anything is sent there and again before the link is given,
            // not taken from the fetch guard's note of a moment ago: the servers may have gone since, and another
            // user's program taken their port (found in review, s28new).
            refuseForeignListener(context.issuer, { fresh: true });
            if (options.serversGone) await bringBackIfGone(context.issuer, boundedFetch(options.fetchFn ?? fetch, START_CHECK_TIMEOUT_MS), options.serversGone, options.dataDirectoryId);
            refuseForeignListener(context.issuer, { fresh: true });
            return loginLinkFor({ authorizationUrl: url, issuer: context.issuer, agentUrl: options.agentUrl, serverDataDirectory, ownerKeyPath: options.files.ownerKey, now: options.now });
          });
          await options.presentLoginUrl(listener.startUrl);
        } else {
          listener.expect(context);
          await options.presentLoginUrl(url.href);
        }
        if (options.readPastedRedirect) void readPasted(options, listener, stopReading.signal);
      },
    });

    // The agent's answer is bounded on its own; the discovery and registration the SDK does after its 401, inside
    // the same initialize, request by request (boundedFetch), with a wide backstop for the whole (connect.ts).
    const bound = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const agentAnswer = new AgentAnswerDeadline(options.agentUrl, bound);
    const first = new StreamableHTTPClientTransport(new URL(options.agentUrl), { authProvider: provider, fetch: agentAnswer.watch(fetchFn) });
    if (options.scope !== undefined) {
      // Step-up: the agent named the scope it needs, so the authorization asks for exactly that.
      const started = await auth(provider, { serverUrl: new URL(options.agentUrl), scope: options.scope, fetchFn });
      if (started !== 'REDIRECT') throw new ClientError('AUTHORIZATION_FAILED', 'The authorization server did not start a new authorization for the wider scope.');
    } else {
      try {
        return await connectAndUse(options.clientInfo, first, use, options.requestTimeoutMs, { signal: agentAnswer.signal, backstopMs: bound * SIGN_IN_BACKSTOP_REQUESTS });
      } catch (error) {
        if (!(error instanceof UnauthorizedError)) throw error;
      } finally {
        agentAnswer.stop();
      }
    }
    let code: string;
    try {
      code = await listener.waitForCode();
    } finally {
      stopReading.abort();
      options.loginSettled?.();
    }
    // The room for the tokens before the code is redeemed, as a refresh takes it before spending its refresh token:
    // a full disk stops the sign-in here, with nothing issued.
    const room = await roomForSignIn(cache);
    provider.saveTokensInto(room);
    // From the code's redemption until its tokens are saved, an ending signal waits (a second Ctrl-C or SIGTERM does not): ended
    // in between, the process lost the tokens, issued and never stored (found in review, s26).
    const signals = signInHold(options.signInSignals);
    signals.hold();
    try {
      try {
        await first.finishAuth(code);
      } catch (error) {
        // Issued, but not saved all the same (the cache grew past the room, a read-only remount): revoked, not left standing.
        const unsaved = provider.unsavedSignIn();
        if (unsaved && isClientError(error, 'CACHE_IO') && provider.issuer !== undefined) throw await signInNotKept(error, unsaved, provider.issuer, resource, fetchFn);
        // Otherwise nothing was issued, so there is nothing to store or revoke here. `error` is the token endpoint's
        // first answer: the provider ended the SDK's retry with it. Another account's approval is said so.
        throw (ownerLink && error instanceof OAuthError ? wrongAccount(error.errorCode, error.message) : undefined) ?? error;
      } finally {
        await room.release();
      }
      listener.finished(); // the browser's page says "Signed in" now, not after what follows
      // Before the hold ends: a signal held meanwhile ends the process at its release, and a sign-in replaced by this
      // one must not be left standing unsaid (found in review, s26new2).
      const notRevoked = await revokeReplacedSignIn(provider.replacedSignIn(), fetchFn, startedAt, cache, options.logoutCommand);
      if (notRevoked !== undefined) options.replacedNotRevoked?.(notRevoked);
    } finally {
      signals.release();
    }
    await retireReplacedSignIns(cache, resource, fetchFn, startedAt);
    const second = new StreamableHTTPClientTransport(new URL(options.agentUrl), { authProvider: provider, fetch: fetchFn });
    try {
      return await connectAndUse(options.clientInfo, second, use, options.requestTimeoutMs);
    } catch (error) {
      const replacing = await signInSavedSince(cache, provider, resource);
      if (!replacing) throw error;
      // A sign-in that ran at the same time saved its own tokens over these and revoked them (revokeReplacedSignIn):
      // the one saved last is the sign-in now, and this run goes on with it.
      const third = new StreamableHTTPClientTransport(new URL(options.agentUrl), { authProvider: replacing, fetch: fetchFn });
      return await connectAndUse(options.clientInfo, third, use, options.requestTimeoutMs);
    }
  } catch (error) {
    listener.finished(error);
    throw met.unreadable(error) ?? error;
  } finally {
    stopReading.abort();
    await listener.close();
  }
}

/**
 * When the tokens this sign-in saved were since replaced in the cache by another sign-in's (two `delegate login` at
 * once), a provider of the cache as it is now, which presents those and asks for no sign-in; undefined otherwise.
 */
async function signInSavedSince(cache: TokenCache, provider: CacheOAuthProvider, resource: string): Promise<CacheOAuthProvider | undefined> {
  const ours = provider.storedTokens();
  const issuer = provider.issuer;
  const data = await cache.read().catch(() => undefined);
  const kept = data === undefined || issuer === undefined ? undefined : tokensFor(data, issuer, resource);
  if (ours === undefined || kept === undefined || kept.access_token === ours.access_token || data!.discovery[resource]?.authorizationServerUrl !== issuer) return undefined;
  return new CacheOAuthProvider({ cache, snapshot: data!, resource, now: cache.now });
}

/** Reads pasted addresses until one is taken, the browser comes back by itself, or the wait ends. */
async function readPasted(options: SessionOptions, listener: LoopbackListener, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const line = await options.readPastedRedirect!(signal).catch(() => undefined);
    if (line === undefined || signal.aborted) return;
    if (line.trim() === '') continue;
    const refused = listener.submit(line);
    if (refused === undefined) return;
    options.pastedRedirectRefused?.(refused);
  }
}
