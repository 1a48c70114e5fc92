// The store interface: every piece of state the authorization server and the
// calendar backend keep, as domain records and atomic domain operations. The
// SQLite implementation is the default; a server deployment can put another
// database behind the same interface. Secrets (codes, refresh tokens, session
// ids, client secrets) are only ever stored as hashes.

export interface SigningKeyRecord {
  kid: string;
  alg: 'ES256';
  privateJwk: Record<string, unknown>;
  publicJwk: Record<string, unknown>;
  createdAt: number;
  /** Set when a newer key took over; the key stays published until its tokens expire. */
  retiredAt: number | null;
}

/**
 * A signing-key rotation (`delegate keys rotate`), written in one transaction:
 * `next` becomes the current key; `previousKid`, the key current when the
 * rotation was prepared, is retired at `at`, or deleted with `withdraw` (a key
 * thought leaked: nothing it signed is to verify any longer); and every
 * agent's identity statement is replaced by its re-signed one.
 */
export interface SigningKeyRotation {
  previousKid: string;
  next: SigningKeyRecord;
  at: number;
  withdraw: boolean;
  /**
   * With `withdraw`: until when (ms) the withdrawn key ids stay on the revocation list, so that a resource
   * server holding a copy of the JWKS from before refuses what they signed (RevocationPage.keys).
   */
  withdrawnListedUntil?: number;
  /**
   * Every agent client's statement as read when the rotation was prepared
   * (`before`, null when it had none) and what replaces it (`after`, the same
   * when it is left as it was).
   */
  statements: Array<{ clientId: string; before: string | null; after: string | null }>;
  record: AuditEventInput;
}

export interface UserRecord {
  id: string;
  name: string;
  /** scrypt hash (see authz/password.ts); null for the passwordless local owner. */
  passwordHash: string | null;
  isOwner: boolean;
  timeZone: string;
  createdAt: number;
}

/**
 * An account as the audit log and grants name it, retired ones included: a retired account (`users remove`) has
 * `removedAt` and the name it had, which a live account may have taken since (with another id).
 */
export interface AccountName {
  id: string;
  name: string;
  /** When `users remove` retired it; null for a live account. */
  removedAt: number | null;
}

/** What `Store.removeUser` ended with an account. */
export interface UserRemoval {
  user: UserRecord;
  grantsRevoked: string[];
  sessionsEnded: number;
  /** The names of the calendars removed. */
  calendarsRemoved: string[];
}

export type ClientKind = 'public' | 'confidential' | 'agent';
export type TokenEndpointAuthMethod = 'none' | 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';

export interface ClientRecord {
  clientId: string;
  clientName: string | null;
  kind: ClientKind;
  /** SHA-256 of the client secret, for confidential clients that registered with one. */
  secretHash: string | null;
  redirectUris: string[];
  grantTypes: string[];
  tokenEndpointAuthMethod: TokenEndpointAuthMethod;
  /** Public keys for private_key_jwt (a JWK Set). */
  jwks: { keys: Record<string, unknown>[] } | null;
  /** For an agent: the resource URL it is bound to (it may exchange tokens issued for it). */
  resource: string | null;
  /** The registration metadata as registered (RFC 7591 §3.2.1 echo). */
  metadata: Record<string, unknown>;
  createdAt: number;
}

/**
 * An agent's registration as `Store.saveAgent` writes it: its client (created or replaced) and the resource it is
 * bound to. `movedFrom`: the URL it was bound to before, when that is another. `record`: the registration's audit
 * record, told the grants the move revoked.
 */
export interface AgentSave {
  client: ClientRecord;
  resource: ResourceRecord;
  movedFrom?: { url: string; reason: string; grantRecord: (grant: GrantRecord) => AuditEventInput };
  record?: (grantsRevoked: string[]) => AuditEventInput;
}

/** A permission a resource's holder needs further down the chain (the agent's reach). */
export interface DownstreamAccess {
  /** RFC 9396 authorization details type that carries this access in tokens, e.g. "calendar". */
  type: string;
  resource: string;
  scopes: string[];
}

export interface ResourceRecord {
  /** Canonical resource URL (RFC 8707). */
  url: string;
  name: string;
  scopes: string[];
  /** The agent client bound to this resource, if it is an agent. */
  agentClientId: string | null;
  /** What the agent behind this resource reaches on the user's behalf. */
  downstream: DownstreamAccess[];
  createdAt: number;
}

/**
 * How a browser session began: the owner's signed sign-in link for a request its CLI made (`login`), the owner's
 * signed link for a request another app made (`delegate approve`), or a named account's password.
 */
export type SignInMethod = 'owner_link' | 'owner_approval' | 'password';

export interface SessionRecord {
  idHash: string;
  userId: string;
  createdAt: number;
  expiresAt: number;
  /**
   * The one request (SHA-256 of its path and query) this session is good for:
   * the one the owner's CLI signed its sign-in link for, or a password
   * sign-in's `next`.
   */
  boundRequestHash: string;
  signedInBy: SignInMethod;
}

/** An authorization request waiting for the user's decision on the consent page. */
export interface AuthRequestRecord {
  id: string;
  sessionHash: string;
  userId: string;
  clientId: string;
  redirectUri: string;
  /**
   * Whether the authorization request sent redirect_uri; when it did not, `redirectUri` is the client's one
   * registered URI (OAuth 2.1 §4.1.1), and /token may leave it out (RFC 6749 §4.1.3). Absent: it did.
   */
  redirectUriGiven?: boolean;
  scope: string;
  resource: string;
  state: string | null;
  codeChallenge: string;
  /** RFC 9396 details the client asked for (constraints it proposes), already validated. */
  authorizationDetails: Record<string, unknown>[];
  /**
   * The user's calendar names when the consent page was shown, the list it offered (those the request names, when
   * it names some): Approve compares the boxes ticked with these, not with the calendars there are by then.
   */
  calendarsShown: string[];
  csrfHash: string;
  createdAt: number;
  expiresAt: number;
}

export interface GrantRecord {
  id: string;
  userId: string;
  clientId: string;
  resource: string;
  scope: string;
  /** RFC 9396 authorization details the grant allows (downstream access, constraints). */
  authorizationDetails: Record<string, unknown>[];
  maxDepth: number;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

/** Whose grant to whom for what: a user's grant to a client for a resource, of which one at most is active. */
export interface GrantKey {
  userId: string;
  clientId: string;
  resource: string;
}

/**
 * What a consent makes of the user's active grant (Store.saveConsentGrant): `grant` is written, a new one or, with the
 * id of the one found, that one changed (with `narrowedAt`, its tokens revoked, as updateGrant does); `record` is its
 * consent, told how many tokens were revoked. `refused`: the choices do not hold against the grant found (said to the
 * user); nothing is written.
 */
export type ConsentGrantDecision =
  | { grant: GrantRecord; narrowedAt?: number; record: (tokensRevoked: number) => AuditEventInput }
  | { refused: string };

export type ConsentGrantOutcome = { grant: GrantRecord; tokensRevoked: number } | { refused: string };

export interface AuthCodeRecord {
  codeHash: string;
  clientId: string;
  redirectUri: string;
  /**
   * Whether the authorization request sent redirect_uri; when it did not, `redirectUri` is the client's one
   * registered URI (OAuth 2.1 §4.1.1), and /token may leave it out (RFC 6749 §4.1.3). Absent: it did.
   */
  redirectUriGiven?: boolean;
  codeChallenge: string;
  resource: string;
  scope: string;
  grantId: string;
  userId: string;
  /** The token family the code's tokens will belong to, so a replay can revoke them. */
  familyId: string;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
}

export interface RefreshTokenRecord {
  tokenHash: string;
  familyId: string;
  grantId: string;
  clientId: string;
  userId: string;
  resource: string;
  scope: string;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
}

export interface TokenFamilyRecord {
  id: string;
  grantId: string;
  clientId: string;
  createdAt: number;
  revokedAt: number | null;
  revokedReason: string | null;
}

/** An access token the AS signed, recorded by its jti so that it can be revoked and its chain followed. */
export interface IssuedTokenRecord {
  jti: string;
  grantId: string;
  familyId: string | null;
  /** For an exchanged token: the jti of the subject token it was derived from. */
  parentJti: string | null;
  clientId: string;
  audience: string;
  scope: string;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

export interface CalendarRecord {
  id: string;
  userId: string;
  name: string;
  kind: 'file' | 'url';
  source: string;
  createdAt: number;
}

/** An ICS feed's last good copy and the outcome of its last fetch (issue 4): what the feed loader keeps. */
export type CalendarFeedRecord = FeedCacheRecord;

export type RedeemCodeResult =
  | { status: 'redeemed' }
  /** The code had been used already: the tokens it issued have now been revoked. */
  | { status: 'replayed' }
  /** The code was issued to another client than the one the tokens are for: nothing was written, nothing revoked. */
  | { status: 'other_client' }
  /**
   * A device's code (`issue.device`) was redeemed already, or its device authorization is no longer approved: another
   * poll of the same device got there first. Nothing was written, nothing revoked (no replay: only the server holds
   * the code's verifier).
   */
  | { status: 'device_consumed' }
  /** The grant was revoked, or has expired, since the tokens were minted: nothing was written. */
  | { status: 'grant_ended' }
  /** The grant's limits changed since the tokens were minted (a consent narrowed or widened it): nothing was written. */
  | { status: 'grant_changed' };

/**
 * What the replayed refresh token was: `spent` (rotated, and presented again past the grace window), `retried` (rotated,
 * and its one retry within the grace window made already) or `superseded` (never used, but another token of its family
 * was rotated after it was issued: two holders of one sign-in).
 */
export type ReplayedToken = 'spent' | 'retried' | 'superseded';

export type RotateRefreshResult =
  /** `grace`: the token had just been spent, within the grace window, by a near-simultaneous refresh. */
  | { status: 'rotated'; previous: RefreshTokenRecord; grace?: boolean }
  | { status: 'unknown' }
  | { status: 'expired' }
  | { status: 'revoked' }
  /** A spent or superseded token was presented again: its family has now been revoked (RFC 9700 §4.14.2). */
  | { status: 'replayed'; previous: RefreshTokenRecord; presented: ReplayedToken }
  /** The rotation would have been carried out, but `wanted` said no: nothing was changed. */
  | { status: 'abandoned' }
  /** The grant's limits changed since the tokens were minted (a consent narrowed or widened it): nothing was changed. */
  | { status: 'grant_changed' };

import type { AuditRecord, ChainVerdict, StoredRecord } from './audit-chain.js';
import type { FeedCacheRecord } from '../calendar/feeds.js';
export type { AuditRecord, AuditContent, ChainVerdict, StoredRecord } from './audit-chain.js';

/** An audit event as it is appended; the store assigns seq, time and hashes. */
export interface AuditEventInput {
  event: string;
  user?: string | null;
  client?: string | null;
  grant?: string | null;
  resource?: string | null;
  /** The actor chain, current actor first. */
  actors?: string[];
  detail?: Record<string, unknown>;
}

export interface AuditFilter {
  grant?: string;
  /** Only records whose client (the one that acted, or that the record is about) is one of these. */
  clients?: readonly string[];
  /** Only records of one of these events. */
  events?: readonly string[];
  /** Only records for this user (its id). */
  user?: string;
  /** Only records at or after this time (ms). */
  since?: number;
  /** Only records at or before this time (ms). */
  until?: number;
  limit?: number;
}

/** What resource servers need to refuse revoked tokens (the revocation list). */
export interface RevocationPage {
  /** Pass back as `since` to get only what is newer: the head of the list, or with `more` the last listed row's number. */
  cursor: number;
  /**
   * A digest of the revocation at `cursor` (absent when there is none, or it was swept): passed back with the
   * cursor, it tells whether the row at that number is still the one the cursor was handed out for, which is not
   * so after a restore from a backup (the restored database numbers new revocations again from its own head).
   */
  tag?: string;
  /** The tag of the revocation at the cursor asked from (`revocationsSince`'s `cursor`), absent when there is none. */
  sinceTag?: string;
  grants: string[];
  tokens: string[];
  /** Signing key ids withdrawn as leaked (`delegate keys rotate --now`): nothing they signed is valid. */
  keys: string[];
  /** For each listed id, when the last token it could affect expires (seconds since the epoch): it may be forgotten then. */
  expiresAt: Record<string, number>;
  /** More rows follow the `limit` listed: ask again from `cursor`. */
  more: boolean;
}

/** Why a token or grant no longer holds, or undefined when it does. */
export type TokenStanding = 'active' | 'revoked' | 'unknown';

export interface Store {
  close(): void;
  /**
   * Whether the database file this store opened, or its directory, is no longer the one at its path: replaced
   * (a backup moved over it, the directory swapped for a copy), moved or removed since it was opened. Writes would
   * still go to the file it holds, which no other process opens any more. Two stat calls; false for a database in
   * memory.
   */
  replacedOnDisk(): boolean;

  // Audit log (hash-chained)
  appendAudit(event: AuditEventInput, now: number): Promise<AuditRecord>;
  /** The records that match, in chain order; one whose content cannot be read back is listed with `unreadable` set. */
  listAudit(filter?: AuditFilter): Promise<StoredRecord[]>;
  /**
   * listAudit's records, `pageSize` (default 1,000) at a time, each page read as it is asked for: a long log is never held
   * whole, and no read is held open between pages. The records are those one snapshot taken at the start would give.
   */
  auditPages(filter?: AuditFilter, pageSize?: number): AsyncIterable<StoredRecord[]>;
  /**
   * Checks the whole chain, record by record; names the first edited, deleted, inserted or reordered record. With `keptHead` (a hash,
   * or a prefix of one, printed by an earlier check), the chain must also hold that record: a cut or rewritten one does not.
   */
  verifyAudit(keptHead?: string): Promise<ChainVerdict>;

  // Revocation list
  /**
   * Revocations after `cursor` whose tokens may still be alive at `now` (with a margin for clocks behind the AS's),
   * in the order they were made: at most `limit` of them (all when it is omitted), with `more` when others follow.
   */
  revocationsSince(cursor: number, now: number, limit?: number): Promise<RevocationPage>;
  /**
   * The number of the latest revocation (the cursor revocationsSince would hand out), read without waiting for the
   * disk: for polling whether anything changed, never for an answer that leaves the process.
   */
  revocationHead(): Promise<number>;

  // Signing keys
  signingKeys(): Promise<SigningKeyRecord[]>;
  /**
   * Adds `key` as the current signing key unless one is current already (not retired), the look and the write in one
   * transaction; returns the current key either way. Two processes setting up a new data directory get the same one.
   * `record`, when given, is appended in that transaction when the key is added, and only then.
   */
  addSigningKeyIfNone(key: SigningKeyRecord, record?: AuditEventInput): Promise<SigningKeyRecord>;
  /**
   * Writes a rotation, its audit record included, in one transaction. False,
   * with nothing written, when the store changed since the rotation was
   * prepared: another key became current, or an agent was registered,
   * re-registered or removed (prepare it again).
   */
  rotateSigningKey(rotation: SigningKeyRotation): Promise<boolean>;
  /**
   * A value that differs from the last one whenever the signing keys may have
   * changed, in this process or another: cheap enough to ask before each
   * signature, so a running server follows a rotation without a restart.
   */
  signingKeysStamp(): Promise<string>;

  // Users
  /** Adds an account, and appends `record` (when given) in the same transaction, as updateUser does. */
  createUser(user: UserRecord, record?: { event: AuditEventInput; at: number }): Promise<void>;
  userById(id: string): Promise<UserRecord | undefined>;
  userByName(name: string): Promise<UserRecord | undefined>;
  /** An account whose name equals `name` ignoring ASCII case (names are ASCII), the first added when there are two. */
  userByNameIgnoringCase(name: string): Promise<UserRecord | undefined>;
  ownerUser(): Promise<UserRecord | undefined>;
  listUsers(): Promise<UserRecord[]>;
  /**
   * Changes an account's time zone, and appends `record` (when given) in the same transaction:
   * a change is never off the audit log, and a record never names a change that did not happen.
   */
  updateUser(userId: string, changes: { timeZone: string }, record?: { event: AuditEventInput; at: number }): Promise<void>;
  /**
   * Sets an account's password (and time zone, when given), deletes its browser sessions (a cookie from before the
   * change signs no one in) and appends `record` (when given), all in one transaction, as updateUser does.
   */
  setPassword(userId: string, changes: { passwordHash: string; timeZone?: string }, record?: { event: AuditEventInput; at: number }): Promise<void>;
  /**
   * Retires a named account (`delegate users remove`), all in one transaction: every live grant of it is revoked
   * with its token families and tokens and listed for the resource servers (as revokeGrant does), each with
   * `records.grant(grant)`; its sessions and pending authorization requests are deleted; the device authorizations
   * it approved whose code is not yet redeemed end (`account_removed`: their polls say so); its calendars and their
   * feeds' copies are deleted securely (as removeCalendar does); the row loses its password and its name (which a
   * new account may then take, with another id) and is marked removed, so that no lookup finds it and nothing new
   * can be attached to it; `records.removal(removal)` is appended last. Undefined, with nothing written, when the
   * account is not there (removed meanwhile) or is the local owner.
   */
  removeUser(userId: string, now: number, records: { grant: (grant: GrantRecord) => AuditEventInput; removal: (removal: UserRemoval) => AuditEventInput }): Promise<UserRemoval | undefined>;
  /**
   * Every account the store holds, live and retired, oldest first, with the name each has or had: the one read
   * that does not pass over retired accounts, for what names their ids after them (the audit log, grants, `users
   * list --all`): a retired one with the name it had and `removedAt`.
   */
  listAccountNames(): Promise<Array<UserRecord & AccountName>>;
  /** When each account last signed in (its latest `sign_in` audit record), by user id; accounts that never did are absent. */
  lastSignIns(): Promise<Map<string, number>>;

  // Clients and resources
  /** Writes a new client and appends `record` (when given: its registration) in the same transaction, as createUser does. */
  createClient(client: ClientRecord, record?: { event: AuditEventInput; at: number }): Promise<void>;
  /** `record`: an audit record appended in the same transaction (a document's client whose recorded fields changed). */
  updateClient(client: ClientRecord, record?: { event: AuditEventInput; at: number }): Promise<void>;
  clientById(clientId: string): Promise<ClientRecord | undefined>;
  listClients(kind?: ClientKind): Promise<ClientRecord[]>;
  upsertResource(resource: ResourceRecord): Promise<void>;
  /**
   * Writes an agent's registration in one transaction: its client and its resource. On a move (`movedFrom`), the old
   * URL's resource record, when still bound to this agent, is deleted (nothing serves it: /authorize then answers
   * invalid_target for it), and every live grant naming that URL is revoked with its token families and tokens, and
   * listed for the resource servers, each with `grantRecord(grant)`: tokens for it could only be minted for a URL
   * nobody serves, or, once another agent is registered there, for an agent the user never approved. `record`, when
   * given, is appended last. Returns the ids of the grants revoked. Nothing is written unless all of it is.
   */
  saveAgent(agent: AgentSave, now: number): Promise<string[]>;
  resourceByUrl(url: string): Promise<ResourceRecord | undefined>;
  listResources(): Promise<ResourceRecord[]>;

  // Browser sessions and single-use identifiers
  /** Throws AccountRemovedError, writing nothing, when the session's account was retired (`users remove`). */
  createSession(session: SessionRecord): Promise<void>;
  /**
   * Starts a password sign-in's session and appends its `record`, in one transaction that first finds the account's
   * password hash still `password.verified` (the one the password was checked against) and, with `password.upgraded`,
   * replaces it by that one (the same password at the current scrypt parameters). False, and nothing written, when the
   * hash changed meanwhile: a password set since ended the account's sessions, and one begun on the old must not stand.
   */
  startPasswordSession(session: SessionRecord, password: { verified: string; upgraded?: string }, record: { event: AuditEventInput; at: number }): Promise<boolean>;
  sessionByHash(idHash: string, now: number): Promise<SessionRecord | undefined>;
  /** True when this call deleted it (so of two calls at once, one): a consent decision spends its session so. */
  deleteSession(idHash: string): Promise<boolean>;
  /** Records a one-time identifier (a login assertion's or client assertion's jti); false if it was seen before. */
  useOnce(id: string, expiresAt: number, now: number): Promise<boolean>;
  /** Whether a one-time identifier is recorded and not yet expired; records nothing. */
  usedAlready(id: string, now: number): Promise<boolean>;

  // Authorization requests awaiting consent
  /** Throws AccountRemovedError, writing nothing, when the request's account was retired (`users remove`) meanwhile. */
  createAuthRequest(request: AuthRequestRecord): Promise<void>;
  /** Returns and deletes the request, atomically, so a decision is taken once. */
  takeAuthRequest(id: string, now: number): Promise<AuthRequestRecord | undefined>;
  /**
   * The same for a request made for a device authorization (RFC 8628; the request's state and client are the
   * device's), in one transaction with the device: taken only while the device is pending, and with every other
   * request made for that device, so that the first decision on it is its decision (RFC 8628 §3.3; found in
   * review: after Deny, a second consent page still open for the same device was approved into a grant).
   * Approve also claims the device (approved, its code still to come from /device/done), so that neither Cancel
   * at the code nor another page can decide it after; Deny leaves /device/done to deny it.
   */
  takeDeviceAuthRequest(id: string, now: number, decision: 'approve' | 'deny'): Promise<AuthRequestRecord | undefined>;
  authRequestById(id: string, now: number): Promise<AuthRequestRecord | undefined>;

  // Grants
  /**
   * Stores a new grant. `record`, when given, is the consent that made it (appended at the grant's createdAt), in the
   * same transaction: the grant and its record exist together or not at all. Throws AccountRemovedError, writing
   * nothing, when the grant's account was retired (`users remove`).
   */
  createGrant(grant: GrantRecord, record?: AuditEventInput): Promise<void>;
  /**
   * A consent's grant, decided and written in one transaction: the user's active grant for `key` is looked up in it
   * and given to `decide` (synchronous, called once), whose grant is then inserted, or written over the one found (a
   * step-up merges into it), with its record; so two consents for the same key at the same moment (two consent pages
   * of one client approved together, in one process or two) end with one grant, as one after the other would, never
   * two. A refusal writes nothing. Throws AccountRemovedError, writing nothing, when the account was retired
   * meanwhile (`users remove`).
   */
  saveConsentGrant(key: GrantKey, now: number, decide: (existing: GrantRecord | undefined) => ConsentGrantDecision): Promise<ConsentGrantOutcome>;
  grantById(id: string): Promise<GrantRecord | undefined>;
  /** The user's active grant to `clientId` for `resource`, if any. */
  activeGrant(userId: string, clientId: string, resource: string, now: number): Promise<GrantRecord | undefined>;
  /** Every user's active grants to `clientId` (an index look-up, not a scan of all grants), oldest first. */
  activeGrantsOfClient(clientId: string, now: number): Promise<GrantRecord[]>;
  listGrants(userId?: string): Promise<GrantRecord[]>;
  /**
   * Changes what an active grant allows (a new consent widened or narrowed
   * it). With `narrowedAt`, in the same transaction, every token issued from
   * the grant that is still alive (user tokens and those exchanged from them)
   * is revoked and listed for the resource servers, since it carries the
   * wider limits; refresh tokens stay, and mint tokens under the grant as it
   * now stands. Returns how many tokens were revoked. `record`, when given, is
   * the consent that changed the grant (told how many tokens were revoked),
   * appended in the same transaction: found in review, the grant was widened
   * or narrowed with its record failing after, off the record.
   */
  updateGrant(grant: GrantRecord, narrowedAt?: number, record?: { now: number; event: (tokensRevoked: number) => AuditEventInput }): Promise<number>;
  /**
   * Revokes a grant and every token family and token derived from it; false
   * if it was revoked already. `record`, when given, is the revocation's audit
   * event, appended in the same transaction: the grant and its record change
   * together or not at all (found in review: a failed audit write left the
   * grant revoked off the record, and a retry found it already revoked).
   */
  revokeGrant(id: string, now: number, reason: string, record?: AuditEventInput): Promise<boolean>;

  // Authorization codes
  createAuthCode(code: AuthCodeRecord): Promise<void>;
  authCodeByHash(codeHash: string): Promise<AuthCodeRecord | undefined>;
  /**
   * Marks the code used and records what it issues, in one transaction. A code
   * issued to another client than `issue.access.clientId` is `other_client`,
   * and nothing is written (RFC 6749 §4.1.3), spent or not. A code of that
   * client already used is a replay: the tokens it issued are revoked (RFC 6749 §4.1.2),
   * and `replayRecord`, when given, is appended to the audit log in the same
   * transaction, so a replay that lost the race with the first redemption is
   * never off the record. `issue.grant` is the grant as read when the tokens
   * were minted: re-read in the transaction, a grant revoked or expired since
   * (`grant_ended`) or whose limits changed since (`grant_changed`) records
   * nothing, so a revocation or a narrowing that commits while the tokens are
   * signed never leaves a token it missed. `issue.record` (the issuance's
   * `token_issued`) commits with the tokens, or neither does. `issue.device`: the
   * device_code hash of the device authorization whose poll redeems the code,
   * which is spent with it, in the same transaction (pollDeviceAuthorization);
   * with it, a spent code is `device_consumed`, never a replay.
   */
  redeemAuthCode(
    codeHash: string,
    now: number,
    issue: { refresh: RefreshTokenRecord | null; access: IssuedTokenRecord; grant: GrantRecord; record?: AuditEventInput; device?: string },
    replayRecord?: AuditEventInput,
  ): Promise<RedeemCodeResult>;
  /**
   * Spends a code without issuing anything, and revokes its grant with every
   * token family and token derived from it, with `record` appended, all in one
   * transaction: a code another account approved, redeemed by the owner's CLI
   * (src/authz/owner-proof.ts). `device`: the device_code hash of the device
   * authorization whose poll presented it, spent with it (as redeemAuthCode's).
   */
  refuseAuthCode(codeHash: string, now: number, reason: string, record: AuditEventInput, device?: string): Promise<void>;
  /**
   * Revokes the tokens an already-used code issued (its family); `record`, when given (the code_replay), is appended
   * in the same transaction, so a family never ends off the record.
   */
  revokeFamily(familyId: string, now: number, reason: string, record?: AuditEventInput): Promise<void>;

  // Refresh tokens
  /**
   * Rotates a refresh token in one transaction: the presented one is spent and
   * `next` (of the same family) takes its place. A token already spent is a
   * replay, and its whole family is revoked (RFC 9700 §4.14.2), unless it was
   * spent less than `graceMs` ago, not retried yet, and no token of the family
   * spent since (the family moved on: the answer was not lost): once, a client whose
   * answer was lost (or two near-simultaneous refreshes) gets a new token of
   * the family; the family's next rotation supersedes every other unused
   * token of it, and presenting a superseded token is a replay too. So no two
   * chains of one family live past the window. `record`, when given, is the audit event of a
   * rotation (told whether the grace rule applied): it is appended in the
   * same transaction, so a token is never issued off the record. Rotations
   * asked for together may share one commit (the SQLite store groups those
   * of one turn of the event loop, each carried out as it would be alone);
   * one that wrote resolves once its commit is on disk. `wanted`, when
   * given, is asked inside the
   * transaction, only once a rotation (grace or not) would be carried out:
   * false leaves everything as it was (`abandoned`). A replay is never
   * abandoned: its family is revoked whoever is still listening.
   * `replayRecord`, when given, is the audit event of a replay (told what the token was), appended in
   * the transaction that revokes the family: a replay that cannot be
   * recorded revokes nothing. `next.grant` is the grant as read when `next`
   * was minted: a grant whose limits changed since (`grant_changed`) rotates
   * nothing, so a token minted under the old limits is never recorded after
   * the narrowing that revoked the grant's tokens.
   */
  rotateRefreshToken(
    tokenHash: string,
    now: number,
    next: { refresh: RefreshTokenRecord; access: IssuedTokenRecord; grant: GrantRecord },
    graceMs?: number,
    record?: (grace: boolean) => AuditEventInput,
    wanted?: () => boolean,
    replayRecord?: (presented: ReplayedToken) => AuditEventInput,
  ): Promise<RotateRefreshResult>;
  refreshTokenByHash(tokenHash: string): Promise<RefreshTokenRecord | undefined>;
  revokeRefreshToken(tokenHash: string, now: number): Promise<boolean>;

  // Issued access tokens
  recordIssuedToken(token: IssuedTokenRecord): Promise<void>;
  /**
   * Records a token exchanged from `token.parentJti` in one transaction with
   * the check that the parent (its token, family and grant) still stands, so a
   * revocation that lands while the exchange is being signed cannot leave a
   * live child behind it; 'parent_revoked' records nothing.
   */
  recordDerivedToken(token: IssuedTokenRecord, now: number): Promise<'recorded' | 'parent_revoked'>;
  issuedToken(jti: string): Promise<IssuedTokenRecord | undefined>;
  /** Whether a token (by jti), its family and its grant all still stand. */
  tokenStanding(jti: string, now: number): Promise<TokenStanding>;
  /**
   * Revokes a token and every token exchanged from it; false if none of them was still unrevoked. `record`, when
   * given, is appended in the same transaction, and only when something was revoked: a repeated revocation writes
   * nothing.
   */
  revokeIssuedToken(jti: string, now: number, record?: AuditEventInput): Promise<boolean>;

  // Calendars (the calendar backend's data)
  listCalendars(userId: string): Promise<CalendarRecord[]>;
  /**
   * Adds a calendar, or removes one (whether there was one by that name), appending `record` (when given, and for
   * a removal only when one was removed) in the same transaction: a change is never off the audit log.
   */
  addCalendar(calendar: CalendarRecord, record?: { event: AuditEventInput; at: number }): Promise<void>;
  removeCalendar(userId: string, name: string, record?: { event: AuditEventInput; at: number }): Promise<boolean>;
  /** A feed's cached copy and fetch outcome (issue 4). */
  calendarFeed(calendarId: string): Promise<CalendarFeedRecord | undefined>;
  /** Whether a feed's record is kept (false once its calendar is removed), without reading its copy. */
  hasCalendarFeed(calendarId: string): Promise<boolean>;
  /**
   * Records a feed's copy and fetch outcome; nothing happens when its calendar was removed meanwhile. A copy replaced by
   * a different one is zeroed, and the WAL checkpointed so that it does not keep the old one (SECURITY.md).
   */
  saveCalendarFeed(feed: CalendarFeedRecord): Promise<void>;

  /**
   * Deletes expired codes, sessions, requests and one-time ids; blanks the secrets of expired device
   * authorizations and deletes them a day after they expired; deletes refresh tokens, access tokens and token
   * families a day after nothing can use them (a family's spent refresh tokens stay while it has a live one, so a
   * late replay still ends it; a token stays while one exchanged from it does; docs/storage.md); deletes
   * registered clients unused a day after registering. An abort of `signal` ends it between two of its transactions
   * (a backlog of tokens is deleted in several).
   */
  sweep(now: number, signal?: AbortSignal): Promise<void>;

  // issue 5: device authorization grant (RFC 8628)
  /**
   * Stores a new request; false, storing nothing, when a request that has not
   * expired holds its user code (one that has expired gives the code up).
   */
  createDeviceAuthorization(record: DeviceAuthorizationRecord): Promise<boolean>;
  /** A pending or decided request by the code the user types, while it has not expired. */
  deviceAuthorizationByUserCode(userCode: string, now: number): Promise<DeviceAuthorizationRecord | undefined>;
  /** By the `state` of the authorization request made for it. */
  deviceAuthorizationByState(state: string, now: number): Promise<DeviceAuthorizationRecord | undefined>;
  /**
   * Records the user's decision, once, on a pending request, or attaches the code to one an approval claimed
   * (takeDeviceAuthRequest); false if it was neither (or expired). The consent requests still open for the
   * device go in the same transaction: a settled device is decided by none of them.
   */
  settleDeviceAuthorization(state: string, outcome: { status: 'approved'; code: string } | { status: 'denied' }, now: number): Promise<boolean>;
  /**
   * Ends the device authorization an Approve claimed (takeDeviceAuthRequest) when its account was removed before the
   * grant was written (`account_removed`): otherwise it waits for a code that never comes, and its device polls
   * authorization_pending until the code expires. Nothing happens to one in any other state.
   */
  endDeviceOfRemovedAccount(state: string): Promise<void>;
  /**
   * One poll by the device (RFC 8628 §3.4), atomically: notes its time, says
   * whether it came sooner than the interval allows (and then adds 5 s to the
   * interval, §3.5), and hands out an approved request's code, to each poll the
   * interval allows, until the redemption that issues its tokens spends the
   * request with it (redeemAuthCode's `issue.device`): a redemption that fails
   * leaves the request approved for the next poll. The code itself is good once.
   * Undefined, changing nothing, unless the request was made by `clientId`.
   */
  pollDeviceAuthorization(deviceCodeHash: string, clientId: string, now: number): Promise<DevicePoll | undefined>;
}

/** issue 5: a device authorization request (RFC 8628), from the device's request to the poll that gets its tokens. */
export interface DeviceAuthorizationRecord {
  /** SHA-256 of the device_code; the code itself is only ever with the device. */
  deviceCodeHash: string;
  /** What the user types or confirms, e.g. BCDF-GHJK (no vowels, so no words). */
  userCode: string;
  clientId: string;
  scope: string;
  resource: string;
  /** The `state` of the authorization request the verification page makes for it. */
  state: string;
  /** PKCE verifier of that request's code, which the server redeems for the device. */
  codeVerifier: string;
  /**
   * `account_removed`: ended by `delegate users remove` of the account that approved it, before the device redeemed
   * its code (Store.removeUser, endDeviceOfRemovedAccount); its user code is withdrawn, and its polls say why.
   */
  status: 'pending' | 'approved' | 'denied' | 'consumed' | 'account_removed';
  /**
   * The authorization code between the user's approval and the device's next
   * poll (at most the code's lifetime, 60 s), then cleared. It sits in the
   * same database as the signing keys, which are worth more.
   */
  code: string | null;
  intervalSec: number;
  lastPolledAt: number | null;
  createdAt: number;
  expiresAt: number;
}

export type DevicePoll =
  | { status: 'pending' | 'denied' | 'consumed' | 'account_removed'; tooSoon: boolean; record: DeviceAuthorizationRecord }
  | { status: 'expired'; tooSoon: false; record: DeviceAuthorizationRecord }
  | { status: 'approved'; tooSoon: boolean; record: DeviceAuthorizationRecord; code: string };
