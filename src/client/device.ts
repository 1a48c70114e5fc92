// Signing in with the device authorization grant (RFC 8628), for when the
// browser cannot reach this computer's loopback listener: discover the
// authorization server from CalendarAgent (RFC 9728, RFC 8414), register a
// client that may use the grant if the cached one may not, ask for a device
// code, show the person where to go and which code to check, and poll the
// token endpoint at the interval the server sets (slower after slow_down, or
// an answer of a server in trouble, 5xx, which it survives twice in a row)
// until they decide, the code expires or --login-timeout passes, whichever
// comes first. The tokens go into the cache like those of a browser sign-in, into room on disk taken before each poll
// that may redeem the device code and given back when the answer brings none (and revoked if they still cannot be
// saved), so that nothing is held on disk while the person decides.
import { discoverOAuthServerInfo, registerClient } from '@modelcontextprotocol/sdk/client/auth.js';
import { checkResourceAllowed, resourceUrlFromServerUrl } from '@modelcontextprotocol/sdk/shared/auth-utils.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { canonicalResource } from '../delegation/resource.js';
import { OWNER_ASSERTION_PARAMETER } from '../delegation/tokens.js';
import { TokenCache, emptyCache, roomForSignIn, setClient, setSignInWithClient, type ReplacedSignIn, type ReservedCacheWrite, type StoredClient, type TokenCacheData } from './cache.js';
import { signInHold } from './held-signals.js';
import { ClientError, foreignResourceMetadata, isClientError, loginTimedOut, wrongAccount } from './errors.js';
import { DataDirectoriesSaid, loginLinkFor, ownerLoginApplies, ownerTokenAssertion } from './owner-login.js';
import { CLIENT_METADATA, REGISTERED_REDIRECT_URI, storedTokensFrom } from './provider.js';
import { clientIsUnknown } from './registration-check.js';
import { RequestsMet } from './requests-met.js';
import { resendingFetch } from './servers-gone.js';
import { isUserName } from './token-notes.js';
import { retireReplacedSignIns, revokeReplacedSignIn, signInNotKept } from './revocation.js';
import type { SessionOptions } from './session.js';

export const GRANT_TYPE_DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';

/** What the person is shown: where to go, and the code the page must show. */
export interface DeviceCodePrompt {
  /** The page to open: the owner's sign-in link onto it when that applies (good once, until the code expires), else verification_uri_complete. */
  link: string;
  verificationUri: string;
  verificationUriComplete: string | undefined;
  userCode: string;
  expiresAt: number;
}

export interface DeviceLoginOptions extends SessionOptions {
  presentDeviceCode: (prompt: DeviceCodePrompt) => Promise<void>;
  /** Waits between polls (tests pass a faster clock). */
  sleep?: (ms: number) => Promise<void>;
}

interface DeviceAuthorizationResponse {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete?: string;
  expires_in: number;
  interval?: number;
}

export async function deviceLogin(options: DeviceLoginOptions): Promise<void> {
  const resource = canonicalResource(options.agentUrl);
  if (!resource) throw new ClientError('AGENT_UNAVAILABLE', `${options.agentUrl} is not an http(s) URL.`);
  // A poll left unanswered because the servers went away (with the command that started them) is sent again once they are back: the device code waits in the database.
  const fetchFn: FetchLike = resendingFetch(options.fetchFn ?? fetch, options.serversGone);
  const sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  // A sign-in saved after this moment by another process was made at the same time as this one (revokeReplacedSignIn).
  const startedAt = options.now();
  const cache = new TokenCache({ files: options.files, now: options.now });

  // The SDK's discovery takes a request that failed underneath (nobody listening, a certificate not trusted) for no
  // metadata there: the first such failure is kept, and is what the person is told (found in review, regress20c: a
  // deployment that was down, or whose certificate was not trusted, "publishes no metadata"). A document its schemas
  // refuse is said in one line with its address (requests-met.ts).
  const met = new RequestsMet();
  // Which data directory the authorization server runs from, as its metadata says on the way (the owner's link is for this one's alone).
  const said = new DataDirectoriesSaid();
  const info = await discoverOAuthServerInfo(options.agentUrl, { fetchFn: met.observe(said.observe(fetchFn)) }).catch((error: unknown) => {
    throw met.unreadable(error) ?? error;
  });
  const unreached = met.unreached;
  const sentResource = resourceToRequest(options.agentUrl, info.resourceMetadata?.resource);
  const issuer = info.authorizationServerUrl;
  const metadata = info.authorizationServerMetadata as (Record<string, unknown> & { issuer?: string; token_endpoint?: string }) | undefined;
  if (!metadata && unreached !== undefined) throw unreached; // session.ts asClientError says it as the browser sign-in does
  if (!metadata || metadata.issuer?.replace(/\/$/, '') !== issuer.replace(/\/$/, '')) {
    throw new ClientError('AUTHORIZATION_FAILED', `The authorization server ${issuer} publishes no metadata for itself (RFC 8414), so the device sign-in cannot start.`);
  }
  const endpoint = typeof metadata.device_authorization_endpoint === 'string' ? metadata.device_authorization_endpoint : undefined;
  if (!endpoint || !metadata.token_endpoint) {
    throw new ClientError('AUTHORIZATION_FAILED', `The authorization server ${issuer} does not offer the device sign-in (RFC 8628). Use --no-browser or --redirect-port instead.`);
  }

  const { client, forgotten } = await deviceClient(cache, issuer, metadata, fetchFn);
  // A full disk stops the sign-in here, before any device code is asked for: the person is not sent to approve a
  // sign-in that could not be kept. The room is given back at once: each poll takes its own (below).
  await (await roomForSignIn(cache)).release();
  const asked = options.now();
  const device = await postForm<DeviceAuthorizationResponse>(fetchFn, endpoint, {
    client_id: client.client_id,
    resource: sentResource,
    // The scopes to ask for (login keeps and adds, session.ts loginScope); else the server's default for the resource.
    ...(options.scope !== undefined ? { scope: options.scope } : {}),
  });
  const started = options.now();
  const expiresAt = started + device.expires_in * 1000;
  const complete = device.verification_uri_complete;
  // The owner's link is shown: every poll then proves it is the owner's CLI, and the authorization server issues
  // tokens only if the owner approved (login CSRF; src/authz/owner-proof.ts). Only at the authorization server of this
  // data directory, as its metadata says: one of another (a colleague's `serve`, reached by --agent-url) refused every
  // poll's assertion after the person had approved there with their own account (found in review, s33team).
  const serverDataDirectory = complete !== undefined ? await said.of(issuer, options.files.ownerKey) : undefined;
  const ownerLink = complete !== undefined && ownerLoginApplies(issuer, new URL(complete), options.agentUrl, serverDataDirectory);
  // It is opened on another device, maybe minutes later (found in review: a 2-minute link while the CLI waited 10), so it
  // lasts as long as the device code: until the code's expiry counted from before the request, never past the server's.
  const link = complete
    ? await loginLinkFor({ authorizationUrl: new URL(complete), issuer, agentUrl: options.agentUrl, serverDataDirectory, ownerKeyPath: options.files.ownerKey, now: options.now, until: asked + device.expires_in * 1000 })
    : device.verification_uri;
  await options.presentDeviceCode({ link, verificationUri: device.verification_uri, verificationUriComplete: complete, userCode: device.user_code, expiresAt });

  // --login-timeout bounds the wait as it does for the browser; without it, the code's own lifetime does.
  const givesUpAt = options.loginTimeoutMs !== undefined ? started + options.loginTimeoutMs : Infinity;
  let intervalMs = Math.max(1, device.interval ?? 5) * 1000;
  let troubled = 0;
  const signals = signInHold(options.signInSignals);
  try {
    for (;;) {
      await sleep(Math.max(0, Math.min(intervalMs, givesUpAt - options.now())));
      if (options.now() >= givesUpAt && givesUpAt < expiresAt) throw loginTimedOut(options.loginTimeoutMs!);
      if (options.now() >= expiresAt) throw new ClientError('LOGIN_TIMEOUT', 'The device code expired before the sign-in was approved. Run the command again for a new code.');
      const poll: Record<string, string> = { grant_type: GRANT_TYPE_DEVICE_CODE, device_code: device.device_code, client_id: client.client_id, resource: sentResource };
      // A fresh one each poll: the server spends each assertion's jti.
      if (ownerLink) poll[OWNER_ASSERTION_PARAMETER] = await ownerTokenAssertion(options.files.ownerKey, metadata.token_endpoint, options.now);
      // The room for the tokens before the poll that may redeem the device code, as a refresh takes it before
      // spending its refresh token: with none, nothing is redeemed. Taken for this poll only, and given back unless
      // its answer was written into it: held for the whole wait (minutes), it was left behind as a temp file by a
      // Ctrl-C or a SIGTERM meanwhile, which end the process without a word (found in review, s26).
      const room = await roomForSignIn(cache);
      let answer: Response;
      let body: Record<string, unknown>;
      // From the poll that may redeem the device code until what it brings is saved, an ending signal waits (a second
      // Ctrl-C or SIGTERM does not): ended in between, the process lost an approved sign-in's tokens, issued and never stored
      // (found in review, s26). Between polls nothing is held, and a signal ends the command at once.
      let replaced: ReplacedSignIn | undefined;
      signals.hold();
      try {
        try {
          answer = await fetchFn(metadata.token_endpoint, formInit(poll));
          body = (await answer.json().catch(() => ({}))) as Record<string, unknown>;
          if (answer.ok) replaced = await saveTokens(cache, room, { issuer, resource, sentResource, info, body, client, now: options.now() }, fetchFn);
        } finally {
          await room.release();
        }
        if (answer.ok) {
          // Before the hold ends, as the browser sign-in does (found in review, s26new2). Tokens of a registration the
          // server has forgotten are dead already: nothing to revoke.
          const notRevoked = await revokeReplacedSignIn(replaced?.clientId === forgotten ? undefined : replaced, fetchFn, startedAt, cache, options.logoutCommand);
          if (notRevoked !== undefined) options.replacedNotRevoked?.(notRevoked);
        }
      } finally {
        signals.release();
      }
      if (answer.ok) {
        await retireReplacedSignIns(cache, resource, fetchFn, startedAt);
        return;
      }
      troubled = serverInTrouble(answer.status, body.error) ? troubled + 1 : 0;
      if (troubled > 0 && troubled < SERVER_TROUBLE_LIMIT) {
        intervalMs += 5000; // as for slow_down: a server in trouble is asked less often
        continue;
      }
      switch (body.error) {
        case 'authorization_pending':
          continue;
        case 'slow_down':
          intervalMs += 5000; // RFC 8628 §3.5
          continue;
        case 'access_denied':
          throw new ClientError('ACCESS_DENIED', 'Access was denied on the device sign-in page.');
        case 'expired_token':
          throw new ClientError('LOGIN_TIMEOUT', 'The device code expired before the sign-in was approved. Run the command again for a new code.');
        default:
          if (ownerLink) {
            const refused = wrongAccount(body.error, body.error_description);
            if (refused) throw refused;
          }
          throw new ClientError('AUTHORIZATION_FAILED', `The authorization server answered ${String(body.error ?? `HTTP ${answer.status}`)}${typeof body.error_description === 'string' ? `: ${body.error_description}` : '.'}`);
      }
    }
  } finally {
    options.loginSettled?.();
  }
}

/**
 * How many answers in a row from a server in trouble end the wait (the last one said as the failure). RFC 8628 §3.5
 * lets the device poll until the code expires, and the authorization server answers a redemption that raced a consent
 * 500 "try again" with the code still good (GrantChangedError), so one such answer is no reason to stop (found in
 * review, s21: the first ended the sign-in). But a full or read-only disk answers the same until someone frees it,
 * which waiting out the code's 10 minutes in silence would not show: three in a row (some 30 s at the intervals
 * they lengthen) is a failure to say.
 */
const SERVER_TROUBLE_LIMIT = 3;

/** A poll's answer from a server that could not decide it now: a 5xx, or temporarily_unavailable (RFC 6749 §4.1.2.1's code, which servers send from the token endpoint too). */
function serverInTrouble(status: number, error: unknown): boolean {
  return status >= 500 || error === 'temporarily_unavailable';
}

/**
 * The resource indicator to ask for (RFC 8707), which the MCP authorization
 * spec wants in the device request and in the token request alike: the one
 * the agent's protected resource metadata names, if that metadata is the
 * agent's own. RFC 9728 §3.3: metadata whose `resource` is not the
 * identifier it was fetched for must not be used, or a server on one port
 * gets the person to authorize a token for another agent. The same check as
 * the browser sign-in's (the SDK's selectResourceURL): same origin, and the
 * agent's path within the one named.
 */
function resourceToRequest(agentUrl: string, named: string | undefined): string {
  const own = canonicalResource(agentUrl)!;
  if (named === undefined) return own;
  let allowed = false;
  try {
    allowed = checkResourceAllowed({ requestedResource: resourceUrlFromServerUrl(agentUrl), configuredResource: named });
  } catch {
    // not a URL: refused below
  }
  if (!allowed) throw foreignResourceMetadata(agentUrl, named);
  return named;
}

/**
 * The cached registration if it may use the device grant and the server knows it; else a new one (RFC 7591) that may,
 * cached for next time. With the id of the cached one when the server no longer knows it.
 */
async function deviceClient(cache: TokenCache, issuer: string, metadata: Record<string, unknown>, fetchFn: FetchLike): Promise<{ client: StoredClient; forgotten?: string }> {
  const cached = (await cache.read()).clients[issuer] as (StoredClient & { grant_types?: string[] }) | undefined;
  let forgotten: string | undefined;
  // Kept only if the server still knows it (a server whose database was replaced answers invalid_client).
  if (cached && cached.grant_types?.includes(GRANT_TYPE_DEVICE_CODE)) {
    if (!(await clientIsUnknown(metadata.token_endpoint as string | undefined, cached, REGISTERED_REDIRECT_URI, fetchFn))) return { client: cached };
    forgotten = cached.client_id;
  }
  if (typeof metadata.registration_endpoint !== 'string') {
    throw new ClientError('AUTHORIZATION_FAILED', `The authorization server ${issuer} offers no registration, so this CLI cannot use the device sign-in there.`);
  }
  const registered = await registerClient(issuer, { metadata: metadata as never, clientMetadata: { ...CLIENT_METADATA, redirect_uris: [...CLIENT_METADATA.redirect_uris] }, fetchFn });
  const stored: StoredClient = { ...registered, issuer };
  await cache.update((data) => setClient(data, issuer, stored));
  return { client: stored, ...(forgotten !== undefined ? { forgotten } : {}) };
}

async function saveTokens(
  cache: TokenCache,
  room: ReservedCacheWrite,
  at: { issuer: string; resource: string; sentResource: string; info: Awaited<ReturnType<typeof discoverOAuthServerInfo>>; body: Record<string, unknown>; client: StoredClient; now: number },
  fetchFn: FetchLike,
): Promise<ReplacedSignIn | undefined> {
  const { body } = at;
  if (typeof body.access_token !== 'string' || typeof body.token_type !== 'string') {
    throw new ClientError('AUTHORIZATION_FAILED', 'The authorization server answered the device sign-in without a token.');
  }
  const entry = storedTokensFrom(
    {
      access_token: body.access_token,
      token_type: body.token_type,
      ...(typeof body.refresh_token === 'string' ? { refresh_token: body.refresh_token } : {}),
      ...(typeof body.scope === 'string' ? { scope: body.scope } : {}),
      ...(typeof body.expires_in === 'number' ? { expires_in: body.expires_in } : {}),
    },
    { issuer: at.issuer, resource: at.sentResource, now: at.now },
    {
      ...(typeof body.refresh_token_expires_in === 'number' ? { refreshExpiresAt: at.now + body.refresh_token_expires_in * 1000 } : {}),
      ...(typeof body.delegation_expires_in === 'number' ? { delegationExpiresAt: at.now + body.delegation_expires_in * 1000 } : {}),
      ...(Array.isArray(body.authorization_details) ? { authorizationDetails: body.authorization_details as never } : {}),
      ...(isUserName(body.user_name) ? { userName: body.user_name } : {}),
    },
  );
  const save = (data: TokenCacheData): ReplacedSignIn | undefined => {
    data.discovery[at.resource] = {
      authorizationServerUrl: at.issuer,
      ...(at.info.resourceMetadata ? { resourceMetadata: at.info.resourceMetadata } : {}),
      ...(at.info.authorizationServerMetadata ? { authorizationServerMetadata: at.info.authorizationServerMetadata } : {}),
    };
    // With the client they were issued to, in the same change (found in review, s26: a sign-in running at the same
    // time stored its own registration in between, and the cache then held these tokens beside that client).
    return setSignInWithClient(data, at.resource, entry, at.client);
  };
  try {
    return await cache.updateInto(room, save);
  } catch (error) {
    if (!isClientError(error, 'CACHE_IO')) throw error;
    // Issued, but not saved all the same: revoked (RFC 7009), not left standing with nothing here to end it.
    const unsaved = emptyCache();
    save(unsaved);
    throw await signInNotKept(error, unsaved, at.issuer, at.resource, fetchFn);
  }
}

function formInit(params: Record<string, string>): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(params),
    signal: AbortSignal.timeout(15_000),
  };
}

async function postForm<T>(fetchFn: FetchLike, url: string, params: Record<string, string>): Promise<T> {
  const res = await fetchFn(url, formInit(params));
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) {
    throw new ClientError('AUTHORIZATION_FAILED', `The authorization server refused the device sign-in: ${String(body.error ?? `HTTP ${res.status}`)}${typeof body.error_description === 'string' ? ` (${body.error_description})` : ''}`);
  }
  return body as T;
}
