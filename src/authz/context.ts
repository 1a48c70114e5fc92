// What every endpoint of the authorization server shares: its issuer and
// endpoint URLs, the store, the signing keys, the clock and the lifetimes.
import { LONGEST_ACCESS_TOKEN_MS, type Store } from '../store/index.js';
import type { ClientDocuments } from './client-documents.js';
import type { KeyRing } from './keys.js';
import type { RateLimits } from './rate-limit.js';

export interface Lifetimes {
  /** Access tokens (RFC 9068); 10 minutes by default, and never longer (LONGEST_ACCESS_TOKEN_MS, src/store/sqlite.ts). */
  accessTokenSec: number;
  refreshTokenSec: number;
  codeSec: number;
  /**
   * An authorization request waiting on the consent page; also a browser
   * session's life, since each is good for one request (see SessionUse).
   */
  authRequestSec: number;
  /** How long a delegation lasts unless revoked. */
  grantSec: number;
  /**
   * How soon after a refresh token was spent it may be presented again
   * without tripping reuse detection: two near-simultaneous refreshes by the
   * same client (RFC 9700 §4.14.2 allows such leeway).
   */
  refreshGraceSec: number;
}

export const DEFAULT_LIFETIMES: Lifetimes = Object.freeze({
  // The revocation list keeps a revoked grant this long at least (the store's revokeGrant), whatever of it was recorded.
  accessTokenSec: LONGEST_ACCESS_TOKEN_MS / 1000,
  refreshTokenSec: 30 * 86_400,
  codeSec: 60,
  authRequestSec: 600,
  grantSec: 30 * 86_400,
  refreshGraceSec: 5,
});

export interface Endpoints {
  authorization: string;
  token: string;
  registration: string;
  revocation: string;
  introspection: string;
  revocationList: string;
  jwks: string;
}

export interface AuthContext {
  issuer: string;
  endpoints: Endpoints;
  store: Store;
  keys: KeyRing;
  now: () => number;
  lifetimes: Lifetimes;
  /** Name of the browser session cookie. */
  cookieName: string;
  /** Whether cookies need the Secure attribute (an https issuer). */
  secureCookies: boolean;
  /** The owner's login key file (public half used to check login assertions). */
  ownerKeyPath: string | undefined;
  /**
   * The identity of the data directory this server runs from (src/data-directory-id.ts), sent with the metadata; only
   * for a loopback issuer, whose clients run on this machine (undefined otherwise, or when the directory is not known).
   */
  dataDirectoryId: string | undefined;
  /** Most exchange hops a new grant allows. */
  defaultMaxDepth: number;
  /** New clients per source, by /register or a metadata document alike: one budget (register.ts newClientBudget). */
  newClients: RateLimits;
  /** Clients named by the URL of their metadata document (draft-ietf-oauth-client-id-metadata-document). */
  clientDocuments: ClientDocuments;
  /** What runs delegate in the owner's shell, as the pages' commands start (AuthServerOptions.delegateCommand). */
  delegateCommand: () => string;
}

/**
 * The redirect URI of the consent requests the device flow makes (RFC 8628): this server's own page, where
 * the decision is kept for the device's poll (device.ts).
 */
export const DEVICE_DONE_PATH = '/device/done';

/** Whether the device flow made this request: its redirect URI is this server's own DEVICE_DONE_PATH. */
export function viaDevice(ctx: Pick<AuthContext, 'issuer'>, request: { redirectUri: string }): boolean {
  return request.redirectUri === `${ctx.issuer}${DEVICE_DONE_PATH}`;
}

export function endpointsFor(issuer: string): Endpoints {
  return {
    authorization: `${issuer}/authorize`,
    token: `${issuer}/token`,
    registration: `${issuer}/register`,
    revocation: `${issuer}/revoke`,
    introspection: `${issuer}/introspect`,
    revocationList: `${issuer}/revocations`,
    jwks: `${issuer}/.well-known/jwks.json`,
  };
}

export const nowSec = (ctx: Pick<AuthContext, 'now'>): number => Math.floor(ctx.now() / 1000);
