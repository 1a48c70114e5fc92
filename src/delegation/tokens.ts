// The token model: claims of delegate's access tokens (RFC 9068 JWTs), the
// actor chain (RFC 8693 §4.1) and the URNs of token exchange. Pure: no I/O.

export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
export const TOKEN_TYPE_REFRESH_TOKEN = 'urn:ietf:params:oauth:token-type:refresh_token';
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const GRANT_TYPE_AUTHORIZATION_CODE = 'authorization_code';
export const GRANT_TYPE_REFRESH_TOKEN = 'refresh_token';
export const GRANT_TYPE_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const CLIENT_ASSERTION_TYPE_JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/**
 * The token request's extension parameter (RFC 6749 §3.2) by which the
 * owner's CLI proves itself after a sign-in through the owner's link: an
 * assertion signed with the owner key, for the token endpoint (its audience).
 */
export const OWNER_ASSERTION_PARAMETER = 'owner_assertion';
/**
 * The `error_description` of the invalid_grant with which the authorization
 * server refuses the owner's CLI a code (or device code) that another account
 * approved; the CLI knows the refusal by it.
 */
export const NOT_THE_OWNER_DESCRIPTION = "This request was approved by another account than this computer's owner: nothing was issued, and that approval is revoked.";

/**
 * The `error_description` of the server_error with which the authorization server answers when its store cannot take
 * a write: its disk full, or its file system read-only. The agent knows them by it: waiting does not mend them, so its
 * message does not say to try again shortly.
 */
export const STORE_FULL_DESCRIPTION = "The authorization server's storage is full: it can record nothing until space is freed.";
export const STORE_READ_ONLY_DESCRIPTION = "The authorization server's storage is read-only: it can record nothing until it is made writable.";
/** The same, for a store that is damaged (STORE_CORRUPT): neither is waiting a cure. */
export const STORE_CORRUPT_DESCRIPTION = "The authorization server's storage is damaged: it can do nothing until an administrator restores it.";

/**
 * The `error_description` with which the authorization server refuses a hand-off (`may_act`) that would allow a hop
 * beyond the grant's depth. The CLI knows by it a `token exchange --for` under a grant that allows no helper agent
 * (depth 1, what a first consent preselects), and says how to allow one.
 */
export function handOffBeyondDepthDescription(maxDepth: number, hop: number): string {
  return `The delegation allows at most ${maxDepth} hop${maxDepth === 1 ? '' : 's'} from the user; handing this token on (may_act) would allow hop ${hop}.`;
}

/** How delegate's (opaque) refresh tokens begin: it tells them apart, in a log line too. */
export const REFRESH_TOKEN_PREFIX = 'dlg_rt_';

/** JOSE `typ` of an access token (RFC 9068 §2.1). */
export const ACCESS_TOKEN_TYP = 'at+jwt';
/** The only signature algorithm delegate issues or accepts. */
export const SIGNING_ALG = 'ES256';

/**
 * Whether `value` can be a bearer token at all: RFC 6750 §2.1 allows only
 * token68 (`[A-Za-z0-9-._~+/]+=*`) after "Bearer ", so anything else (a
 * newline, a space, a quote) could never be sent, let alone accepted.
 */
export function isBearerToken(value: string): boolean {
  return /^[A-Za-z0-9\-._~+/]+=*$/.test(value);
}

/**
 * What a token says its audience is, read without checking its signature (for the client's own judgement only: whether
 * to send a token to a party at all). `opaque`: no JWT (three base64url parts, the first two JSON objects), which
 * nothing can be told of. Else the `aud` claim, which RFC 7519 §4.1.3 makes a string or an array of strings: as an
 * array (perhaps empty), or `missing`, or `malformed` (anything else: a number, an object, an array with a non-string).
 * No jose: this runs on the CLI's fast path.
 */
export type UnverifiedAudience = { kind: 'opaque' } | { kind: 'missing' } | { kind: 'malformed' } | { kind: 'audience'; audiences: string[] };

export function unverifiedAudience(token: string): UnverifiedAudience {
  const parts = token.split('.');
  const [header, payload] = parts.length === 3 ? parts.slice(0, 2).map(jsonObject) : [];
  if (header === undefined || payload === undefined) return { kind: 'opaque' };
  const aud = payload.aud;
  if (aud === undefined) return { kind: 'missing' };
  if (typeof aud === 'string') return { kind: 'audience', audiences: [aud] };
  if (Array.isArray(aud) && aud.every((a) => typeof a === 'string')) return { kind: 'audience', audiences: aud as string[] };
  return { kind: 'malformed' };
}

/** A JWT's payload, read, not verified: for display and bookkeeping only; undefined for an opaque token. */
export function unverifiedPayload(token: string): Record<string, unknown> | undefined {
  const payload = token.split('.')[1];
  return payload === undefined ? undefined : jsonObject(payload);
}

/** A base64url part decoded as a JSON object, or undefined when it is none. */
function jsonObject(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined; // not JSON: not a JWT
  }
}

/** RFC 8693 §4.1: the current actor, with prior actors nested inside. */
export interface ActorClaim {
  sub: string;
  act?: ActorClaim;
}

/** RFC 9396 authorization details, as delegate carries them in tokens. */
export interface AuthorizationDetail {
  type: string;
  locations?: string[];
  actions?: string[];
  [key: string]: unknown;
}

/** Claims of every access token delegate issues. */
export interface AccessTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  client_id: string;
  scope: string;
  exp: number;
  iat: number;
  nbf?: number;
  jti: string;
  /** The user's delegation this token derives from. */
  grant_id: string;
  act?: ActorClaim;
  /** RFC 8693 §4.4: the party the holder handed this token to, which may exchange it in turn. */
  may_act?: { sub: string };
  authorization_details?: AuthorizationDetail[];
}

/**
 * The first of an access token's claims that must be strings and are not, or undefined when all are. A verifier's
 * list of required claims checks only that they are present: RFC 7519 §4.1.2 makes `sub` a StringOrURI and §4.1.7
 * `jti` a string (RFC 9068 §2.2 requires both), and delegate's `client_id`, `scope` and `grant_id` are strings too.
 * Found in review (s25rfc): both resource servers accepted a token whose `sub` or `jti` was a number.
 */
export function nonStringClaim(payload: object): string | undefined {
  return STRING_CLAIMS.find((name) => typeof (payload as Record<string, unknown>)[name] !== 'string');
}

const STRING_CLAIMS = ['sub', 'jti', 'client_id', 'scope', 'grant_id'] as const;

/** The actors of a chain, current first: [agent, client, …]. */
export function actorChain(act: ActorClaim | undefined): string[] {
  const out: string[] = [];
  for (let a = act; a; a = a.act) out.push(a.sub);
  return out;
}

/** Depth of an actor chain: the number of hops a token has travelled. */
export function chainDepth(act: ActorClaim | undefined): number {
  return actorChain(act).length;
}

/**
 * The `act` claim of a token obtained by `actor` through exchanging a subject
 * token (RFC 8693 §4.1): the new actor outermost, the subject token's actors
 * nested inside. A subject token with no `act` was held by its client, which
 * becomes the first prior actor, so the chain reads agent ← client.
 */
export function nestActor(actor: string, subject: Pick<AccessTokenClaims, 'client_id' | 'act'>): ActorClaim {
  const prior: ActorClaim = subject.act ?? { sub: subject.client_id };
  return { sub: actor, act: prior };
}

/**
 * The whole chain behind a token, for the audit log: the current actor first,
 * then the actors nested in `act` (or the client alone when the token was not
 * exchanged), ending with the user they all act for.
 */
export function actorsOf(claims: Pick<AccessTokenClaims, 'act' | 'client_id' | 'sub'>): string[] {
  return [...(claims.act ? actorChain(claims.act) : [claims.client_id]), claims.sub];
}

/**
 * How many exchanges a token is from the user's own token. The first exchange
 * nests two actors (the agent, and the client that held the user's token);
 * each later one adds one.
 */
export function exchangeHops(act: ActorClaim | undefined): number {
  return Math.max(0, chainDepth(act) - 1);
}
