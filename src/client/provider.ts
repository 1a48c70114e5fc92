// The SDK's OAuthClientProvider for the delegate CLI, backed by the token
// cache: it describes the CLI as a public loopback client (RFC 8252), keeps
// the PKCE verifier and `state` in memory, and persists what auth() learns
// (discovery state, client registration, tokens) in tokens.json. Everything
// comes from discovery on the agent's 401; no authorization server is named here.
import { randomBytes } from 'node:crypto';
import { selectClientAuthMethod, type AddClientAuthentication, type OAuthClientProvider, type OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { GRANT_TYPE_AUTHORIZATION_CODE, OWNER_ASSERTION_PARAMETER } from '../delegation/tokens.js';
import { deleteTokens, setClient, setSignInWithClient, tokensFor, type ReplacedSignIn, type ReservedCacheWrite, type StoredClient, type StoredTokens, type TokenCache, type TokenCacheData } from './cache.js';
import { CodeRedemption } from './code-redemption.js';
import { ClientError, isClientError } from './errors.js';
import { pkceRefusal } from './pkce-support.js';
import { clientIsUnknown } from './registration-check.js';
import type { TokenResponseExtras, TokenResponseNotes } from './token-notes.js';

/** The redirect URI the CLI registers: any port at request time, RFC 8252 §7.3. */
export const REGISTERED_REDIRECT_URI = 'http://127.0.0.1/callback';

export const CLIENT_METADATA: Readonly<OAuthClientMetadata> = Object.freeze({
  client_name: 'delegate CLI',
  // A native app on the user's computer, redirecting to loopback (OpenID Connect Registration §2; MCP SEP-837).
  application_type: 'native',
  redirect_uris: [REGISTERED_REDIRECT_URI],
  // The device grant (RFC 8628) for `delegate login --device`, where the browser cannot reach the loopback listener.
  grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
});

/** What the browser must bring back for the login to count. */
export interface AuthorizationRequestContext {
  /** The `state` sent in the authorization URL. */
  state: string;
  /** The authorization server's issuer identifier, which RFC 9207 `iss` must equal. */
  issuer: string;
  /** Whether the server promised `iss` in every response (RFC 9207 §3), so that its absence is an error. */
  requireIss: boolean;
}

export interface CacheOAuthProviderOptions {
  cache: TokenCache;
  /** The cache as read at start; the provider keeps it current as it writes. */
  snapshot: TokenCacheData;
  /** The MCP server's canonical URL: the cache key for its tokens and discovery state. */
  resource: string;
  now: () => number;
  /** The live loopback listener's callback URL (http://127.0.0.1:<port>/callback). */
  redirectUrl?: string;
  /** Sends the user to the authorization URL; without it, a needed login is an error. */
  onAuthorizationUrl?: (url: URL, context: AuthorizationRequestContext) => Promise<void>;
  /** Present no cached access token (a login the user asked for), until new tokens are saved. */
  ignoreCachedTokens?: boolean;
  /**
   * Present no cached discovery state (and so no issuer) until this provider
   * saves a new one: discovery starts afresh, while the entry on disk stays
   * until the new one replaces it, so a run ended half-way leaves the cached
   * sign-in usable by the next command.
   */
  ignoreCachedDiscovery?: boolean;
  /** Extras of token responses that the SDK's parsing drops (see token-notes.ts). */
  notes?: TokenResponseNotes;
  /**
   * Ask the authorization server, once, whether it still knows a cached client
   * registration before it is used (registration-check.ts), and register anew
   * if it does not; with the fetch to ask through.
   */
  checkCachedClient?: FetchLike;
  /**
   * The owner assertion to add to an authorization_code token request
   * (OWNER_ASSERTION_PARAMETER), for the token endpoint it goes to; undefined
   * adds none. Set by a sign-in that may go through the owner's link
   * (sign-in.ts), which answers only once it has shown that link.
   */
  ownerAssertion?: (tokenEndpoint: URL) => Promise<string | undefined>;
  /**
   * Keeps each authorization code to one presentation (code-redemption.ts);
   * given by a sign-in that notes the token endpoint's first answer through
   * its observe(), so that the person gets that answer. A fresh one otherwise.
   */
  codeRedemption?: CodeRedemption;
  /**
   * Go on at an authorization server that publishes no metadata, at the
   * endpoints the SDK guesses (/authorize, /token, /register), as the MCP
   * spec of 2025-03-26 allowed. Only for the conformance client's back-compat
   * scenario; the CLI refuses such a server (pkce-support.ts). A server whose
   * metadata lacks S256 is refused either way.
   */
  legacyMetadataFallback?: boolean;
  /**
   * The failure (nobody listening, a certificate not trusted) that kept
   * discovery from the authorization server's metadata, if one did: the SDK
   * takes it for no metadata there, and this is said instead.
   */
  discoveryUnreached?: () => unknown;
}

export class CacheOAuthProvider implements OAuthClientProvider {
  private readonly options: CacheOAuthProviderOptions;
  private data: TokenCacheData;
  private verifier: string | undefined;
  private lastState: string | undefined;
  private savedTokens = false;
  private savedDiscovery = false;
  private readonly redemption: CodeRedemption;
  /** Registrations known to their server in this run: checked once, or just made. */
  private readonly checkedClients = new Set<string>();
  /** Registrations their server no longer knows (clientInformation): tokens issued to them are dead already, and not revoked. */
  private readonly forgottenClients = new Set<string>();
  /** Why the server discovery found may not be used (pkce-support.ts), said when the SDK next asks for a client. */
  private refusedServer: unknown;
  private tokenRoom: ReservedCacheWrite | undefined;
  private unsaved: TokenCacheData | undefined;
  /** The registration last handed to the SDK, or saved by it: the client a code is redeemed as, whose tokens these are. */
  private ownClient: StoredClient | undefined;
  private replaced: ReplacedSignIn | undefined;

  constructor(options: CacheOAuthProviderOptions) {
    this.options = options;
    this.data = options.snapshot;
    this.redemption = options.codeRedemption ?? new CodeRedemption();
  }

  get redirectUrl(): string {
    return this.options.redirectUrl ?? REGISTERED_REDIRECT_URI;
  }

  get clientMetadata(): OAuthClientMetadata {
    return { ...CLIENT_METADATA, redirect_uris: [...CLIENT_METADATA.redirect_uris] };
  }

  /** ≥128 bits of randomness (here 256), fresh for each authorization request. */
  state(): string {
    this.lastState = randomBytes(32).toString('base64url');
    return this.lastState;
  }

  /** The authorization server discovery last found for this resource. */
  get issuer(): string | undefined {
    return this.discoveryState()?.authorizationServerUrl;
  }

  /** The cached tokens for this resource, refresh token included (for the session, never for auth()). */
  storedTokens(): StoredTokens | undefined {
    const issuer = this.issuer;
    return issuer === undefined ? undefined : tokensFor(this.data, issuer, this.options.resource);
  }

  /** The discovery state this provider holds (cached or just saved). */
  discoveryState(): OAuthDiscoveryState | undefined {
    if (this.options.ignoreCachedDiscovery && !this.savedDiscovery) return undefined;
    return this.data.discovery[this.options.resource];
  }

  /**
   * Keeps what discovery found, after two checks the SDK leaves to us:
   * RFC 8414 §3.3, the metadata's `issuer` must be the issuer identifier its
   * well-known URL was built from; otherwise an attacker's document could
   * name someone else's endpoints, and nothing of it may be used. And the
   * metadata must list PKCE S256 (pkce-support.ts): checked here, where the
   * SDK hands over what discovery found before it registers or redirects.
   */
  async saveDiscoveryState(state: OAuthDiscoveryState): Promise<void> {
    const claimed = (state.authorizationServerMetadata as { issuer?: unknown } | undefined)?.issuer;
    if (state.authorizationServerMetadata && !sameIssuer(claimed, state.authorizationServerUrl)) {
      throw new ClientError(
        'AUTHORIZATION_FAILED',
        `The authorization server metadata at ${state.authorizationServerUrl} names another issuer (${String(claimed)}); it is not used (RFC 8414 §3.3).`,
      );
    }
    const metadata = state.authorizationServerMetadata as Record<string, unknown> | undefined;
    const refused = metadata || !this.options.legacyMetadataFallback ? pkceRefusal(state.authorizationServerUrl, metadata) : undefined;
    if (refused) {
      // Nothing of this server is kept. The refusal waits for clientInformation(), which the SDK asks after its own
      // check of the resource metadata (RFC 9728 §3.3, said first as before) and before it registers or redirects.
      this.refusedServer = (metadata === undefined ? this.options.discoveryUnreached?.() : undefined) ?? refused;
      return;
    }
    this.refusedServer = undefined;
    await this.change((data) => {
      data.discovery[this.options.resource] = state;
    });
    this.savedDiscovery = true;
  }

  async clientInformation(): Promise<OAuthClientInformationMixed | undefined> {
    if (this.refusedServer !== undefined) throw this.refusedServer;
    const issuer = this.issuer;
    const client = issuer === undefined ? undefined : this.data.clients[issuer];
    const fetchFn = this.options.checkCachedClient;
    this.ownClient = client;
    if (issuer === undefined || client === undefined || fetchFn === undefined || this.checkedClients.has(client.client_id)) return client;
    this.checkedClients.add(client.client_id);
    const tokenEndpoint = (this.discoveryState()?.authorizationServerMetadata as { token_endpoint?: string } | undefined)?.token_endpoint;
    if (!(await clientIsUnknown(tokenEndpoint, client, this.redirectUrl, fetchFn))) return client;
    // Forgotten by the server (its database replaced): the SDK registers anew when there is none.
    this.ownClient = undefined;
    this.forgottenClients.add(client.client_id);
    await this.change((data) => {
      if (data.clients[issuer]?.client_id === client.client_id) delete data.clients[issuer];
    });
    return undefined;
  }

  /**
   * Stored unchanged, with the SDK's `issuer` stamp, under that issuer: one registration per authorization server
   * (cache.ts setClient). Saved again with the tokens redeemed as it (saveTokens), since another sign-in running at the
   * same time may store its own registration in between.
   */
  async saveClientInformation(info: OAuthClientInformationMixed & { issuer?: string }): Promise<void> {
    const issuer = info.issuer ?? this.issuer;
    if (issuer === undefined) throw new Error('client information to save names no authorization server');
    this.checkedClients.add(info.client_id); // just registered: known
    this.ownClient = info;
    await this.change((data) => setClient(data, issuer, info));
  }

  /**
   * The access token for the transport's Authorization header. The refresh
   * token is deliberately withheld from auth(): refreshing rotates it, so the
   * session refreshes only under the cross-process lock (see refresh.ts), and
   * auth() goes straight to a new authorization when it gets here.
   */
  tokens(): OAuthTokens | undefined {
    if (this.options.ignoreCachedTokens && !this.savedTokens) return undefined;
    const entry = this.storedTokens();
    if (!entry) return undefined;
    const tokens: OAuthTokens = { access_token: entry.access_token, token_type: entry.token_type, issuer: entry.issuer };
    if (entry.scope !== undefined) tokens.scope = entry.scope;
    if (entry.expires_at !== undefined) tokens.expires_in = Math.max(0, Math.floor((entry.expires_at - this.options.now()) / 1000));
    return tokens;
  }

  async saveTokens(tokens: OAuthTokens): Promise<void> {
    const issuer = tokens.issuer ?? this.issuer;
    if (issuer === undefined) throw new Error('tokens to save name no authorization server');
    const entry = storedTokensFrom(
      tokens,
      { issuer, resource: this.discoveryState()?.resourceMetadata?.resource ?? this.options.resource, now: this.options.now() },
      this.options.notes?.take(tokens.access_token),
    );
    // With the client they were issued to, in the same change: the cache never holds them beside another sign-in's client.
    let replaced: ReplacedSignIn | undefined;
    const save = (data: TokenCacheData) => {
      replaced = setSignInWithClient(data, this.options.resource, entry, this.ownClient);
    };
    try {
      if (this.tokenRoom) this.data = await this.options.cache.updateInto(this.tokenRoom, (data) => (save(data), data));
      else await this.change(save);
      this.replaced = replaced && !this.forgottenClients.has(replaced.clientId) ? replaced : undefined;
    } catch (error) {
      if (isClientError(error, 'CACHE_IO')) {
        const unsaved = structuredClone(this.data);
        save(unsaved);
        this.unsaved = unsaved;
      }
      throw error;
    }
    this.savedTokens = true;
    this.redemption.redeemed();
  }

  /** Saves the tokens of the code redeemed next into this room (TokenCache.reserveRoom), taken before it is redeemed. */
  saveTokensInto(room: ReservedCacheWrite): void {
    this.tokenRoom = room;
  }

  /**
   * The cache as it would be with the tokens that could not be saved (CACHE_IO), in memory only: what revokes them
   * (revocation.ts revokeStoredTokens: their issuer's discovery and client are in it). Undefined when none was lost.
   */
  unsavedSignIn(): TokenCacheData | undefined {
    return this.unsaved;
  }

  /**
   * The tokens that the ones saved last replaced, when those were issued to another client (cache.ts
   * setSignInWithClient): for revocation.ts revokeReplacedSignIn. Undefined otherwise.
   */
  replacedSignIn(): ReplacedSignIn | undefined {
    return this.replaced;
  }

  /**
   * The SDK's hook for authenticating the client at the token endpoint,
   * defined only for a sign-in that may prove the owner (ownerAssertion):
   * otherwise the SDK authenticates the client itself, as always. When
   * defined it must do what the SDK would (the registered method), and then
   * adds the owner assertion to a code redemption, if there is one to add.
   */
  get addClientAuthentication(): AddClientAuthentication | undefined {
    const ownerAssertion = this.options.ownerAssertion;
    if (!ownerAssertion) return undefined;
    return async (headers, params, url, metadata) => {
      const client = await this.clientInformation();
      if (client) authenticateClient(client, metadata?.token_endpoint_auth_methods_supported ?? [], headers, params);
      if (params.get('grant_type') !== GRANT_TYPE_AUTHORIZATION_CODE) return;
      const assertion = await ownerAssertion(new URL(url));
      if (assertion !== undefined) params.set(OWNER_ASSERTION_PARAMETER, assertion);
    };
  }

  async redirectToAuthorization(url: URL): Promise<void> {
    const { onAuthorizationUrl } = this.options;
    if (!onAuthorizationUrl) throw new ClientError('AUTHORIZATION_REQUIRED', 'Authorization is required, and this run may not ask for it.');
    const state = url.searchParams.get('state') ?? this.lastState;
    if (!state) throw new Error('authorization URL without state');
    const discovery = this.discoveryState();
    const metadata = discovery?.authorizationServerMetadata as (Record<string, unknown> & { issuer?: string }) | undefined;
    const issuer = metadata?.issuer ?? discovery?.authorizationServerUrl ?? url.origin;
    await onAuthorizationUrl(url, {
      state,
      issuer,
      requireIss: metadata?.authorization_response_iss_parameter_supported === true,
    });
  }

  saveCodeVerifier(codeVerifier: string): void {
    this.verifier = codeVerifier;
    this.redemption.begin();
  }

  /** Asked by the SDK only to redeem a code, with it: once per authorization request (code-redemption.ts). */
  codeVerifier(): string {
    if (this.verifier === undefined) throw new Error('no PKCE code verifier: no authorization was started by this process');
    this.redemption.present();
    return this.verifier;
  }

  /**
   * After a refused code, the SDK calls this only to present the code again:
   * that ends here, with the first answer, before anything is cleared
   * (code-redemption.ts).
   */
  async invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): Promise<void> {
    this.redemption.refuseRetry();
    const resource = this.options.resource;
    const issuer = this.issuer;
    if (scope === 'verifier' || scope === 'all') this.verifier = undefined;
    if (scope === 'verifier') return;
    await this.change((data) => {
      if (issuer !== undefined && (scope === 'all' || scope === 'tokens')) deleteTokens(data, issuer, resource);
      if (issuer !== undefined && (scope === 'all' || scope === 'client')) delete data.clients[issuer];
      if (scope === 'all' || scope === 'discovery') delete data.discovery[resource];
    });
  }

  /** Applies a change to the file under the lock (merging with other processes' changes) and to the snapshot. */
  private async change(mutate: (data: TokenCacheData) => void): Promise<void> {
    this.data = await this.options.cache.update((data) => {
      mutate(data);
      return data;
    });
  }
}

/** Client authentication exactly as the SDK applies it when no provider hook is set (RFC 6749 §2.3.1, §2.1). */
function authenticateClient(client: OAuthClientInformationMixed, supported: string[], headers: Headers, params: URLSearchParams): void {
  const method = selectClientAuthMethod(client, supported);
  const secret = 'client_secret' in client ? client.client_secret : undefined;
  switch (method) {
    case 'client_secret_basic':
      if (!secret) throw new Error('client_secret_basic authentication requires a client_secret');
      headers.set('Authorization', `Basic ${btoa(`${client.client_id}:${secret}`)}`);
      return;
    case 'client_secret_post':
      params.set('client_id', client.client_id);
      if (secret) params.set('client_secret', secret);
      return;
    case 'none':
      params.set('client_id', client.client_id);
      return;
    default:
      throw new Error(`Unsupported client authentication method: ${method}`);
  }
}

/** Issuer identifiers compared as RFC 8414 §3.3 asks: identical, a bare origin's trailing slash aside. */
export function sameIssuer(claimed: unknown, expected: string): boolean {
  if (typeof claimed !== 'string') return false;
  const trim = (value: string) => value.replace(/\/$/, '');
  return claimed === expected || trim(claimed) === trim(expected);
}

/** A token response as the cache keeps it: `expires_in` made absolute. */
export function storedTokensFrom(
  tokens: OAuthTokens,
  at: { issuer: string; resource: string; now: number },
  extras: TokenResponseExtras = {},
): StoredTokens {
  const entry: StoredTokens = {
    access_token: tokens.access_token,
    token_type: tokens.token_type,
    issuer: at.issuer,
    resource: at.resource,
    obtained_at: at.now,
  };
  if (tokens.refresh_token !== undefined) entry.refresh_token = tokens.refresh_token;
  if (tokens.scope !== undefined) entry.scope = tokens.scope;
  if (tokens.expires_in !== undefined && Number.isFinite(tokens.expires_in)) entry.expires_at = at.now + tokens.expires_in * 1000;
  if (extras.refreshExpiresAt !== undefined) entry.refresh_expires_at = extras.refreshExpiresAt;
  if (extras.delegationExpiresAt !== undefined) entry.delegation_expires_at = extras.delegationExpiresAt;
  if (extras.authorizationDetails !== undefined) entry.authorization_details = extras.authorizationDetails;
  if (extras.userName !== undefined) entry.user_name = extras.userName;
  return entry;
}
