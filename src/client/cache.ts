// The CLI's token cache, tokens.json in the data directory: access and
// refresh tokens keyed by authorization server (issuer) and resource,
// dynamic client registrations keyed by issuer, and OAuth discovery state
// keyed by resource. Mode 0600 in a 0700 directory, replaced atomically, and
// changed only under the cross-process lock tokens.lock. A file that is not a
// cache we can read is refused with a clear error and never overwritten: a
// command that signs in anew first keeps it aside, whole, as
// tokens.json.corrupt-<time> (setAsideDamaged). One that a rename cannot
// replace (a symbolic link, a single file mounted there) is refused before
// anything is written to it, or spent for it (unreplaceableCache).
import type { OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed } from '@modelcontextprotocol/sdk/shared/auth.js';
import { isLoopbackUrl } from '../delegation/resource.js';
import { unverifiedPayload, type AuthorizationDetail } from '../delegation/tokens.js';
import { ClientError, fileErrorText, isClientError } from './errors.js';
import { acquireFileLock, type FileLockOptions } from './lock.js';
import { ensurePrivateDir, NotARegularFileError, NotReplaceableError, readPrivateFile, reservePrivateFileReplacement, writePrivateFileAtomic } from './private-files.js';
import { link, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

export const CACHE_VERSION = 1;

/** Tokens for one resource from one authorization server. */
export interface StoredTokens {
  access_token: string;
  token_type: string;
  refresh_token?: string;
  scope?: string;
  /** When the access token expires (epoch ms), computed from `expires_in` on receipt; absent if the server did not say. */
  expires_at?: number;
  /** The authorization server that issued them (the SDK's `issuer` stamp): a refresh token goes to no other. */
  issuer: string;
  /** The resource indicator (RFC 8707) they were issued for, as sent to the server. */
  resource: string;
  /** When they were received (epoch ms). */
  obtained_at: number;
  /** When the refresh token, and so the delegation, ends (epoch ms), if the server said (`refresh_token_expires_in`). */
  refresh_expires_at?: number;
  /** When the delegation itself ends (epoch ms), unless revoked, if the server said (`delegation_expires_in`); the refresh token may end sooner. */
  delegation_expires_at?: number;
  /** What the delegation covers downstream (RFC 9396), if the server said. */
  authorization_details?: AuthorizationDetail[];
  /** The account signed in, by name, if the server said at sign-in (delegate's `user_name`): another program's text, shown only through printable(). */
  user_name?: string;
  /**
   * The client they were issued to (RFC 7591 `client_id`), which alone may refresh or revoke them. Absent in entries
   * written before it was kept: those were issued to the issuer's stored client, and setClient keeps that true.
   */
  client_id?: string;
}

/**
 * A stored delegation the authorization server refused to renew (RFC 6749 §5.2: invalid_grant when it was revoked,
 * has expired or its refresh token was replayed; invalid_client when the client is gone), kept in place of its tokens
 * until the next sign-in, so that the commands that then find no tokens (`token`, `status`, `find-slot`) can say that
 * it ended and why, instead of "nothing is stored".
 */
export interface EndedDelegation {
  /** When the refusal came (epoch ms). */
  refused_at: number;
  /** The OAuth error code of the refusal. */
  error: string;
  /** The server's error_description, as it sent it: another program's text, to be shown only through printable(). */
  error_description?: string;
}

/**
 * A token of a sign-in another replaced (two `delegate login` at once, revocation.ts revokeReplacedSignIn) whose
 * revocation failed (the authorization server down, or slow): kept, so that `delegate logout` and the next sign-in try
 * again (RFC 7009), until revoked. Found in review (s27): the line said so and the token was forgotten, a delegation
 * standing for up to 30 days that nothing here could end. Its refresh token (the delegation's), else its access token.
 */
export interface PendingRevocation {
  issuer: string;
  /** The agent's URL it was kept under (the cache's key): what `logout --agent-url` selects, and what the line names. */
  resource: string;
  /** The client it was issued to, which alone may revoke it (RFC 7009 §2.1). */
  client_id: string;
  token: string;
  token_type_hint: 'refresh_token' | 'access_token';
  /** The grant its access token named (delegate's `grant_id`), when it did: a sign-in since given that grant keeps it. */
  grant_id?: string;
  /** When its revocation first failed (epoch ms). */
  failed_at: number;
}

/** The most pending revocations kept: the cache stays bounded, the oldest goes first. Two logins at once leave one. */
export const PENDING_REVOCATIONS_MAX = 32;

/** A client registration (RFC 7591) or pre-registered client, stamped with its issuer by the SDK. */
export type StoredClient = OAuthClientInformationMixed & { issuer?: string };

export interface TokenCacheData {
  version: typeof CACHE_VERSION;
  /** Discovery state (RFC 9728 and RFC 8414 metadata) per resource. */
  discovery: Record<string, OAuthDiscoveryState>;
  /** Client registrations per issuer. */
  clients: Record<string, StoredClient>;
  /** Tokens per issuer, then per resource. */
  tokens: Record<string, Record<string, StoredTokens>>;
  /** Delegations whose renewal was refused, per issuer, then per resource; absent when there is none (older caches). */
  ended?: Record<string, Record<string, EndedDelegation>>;
  /** Tokens of replaced sign-ins still to be revoked; absent when there is none (older caches, which keep it unread). */
  pending_revocations?: PendingRevocation[];
}

export interface CacheFiles {
  tokenCache: string;
  tokenLock: string;
}

export interface TokenCacheOptions {
  files: CacheFiles;
  now: () => number;
  /** Overrides for the cross-process lock (tests). */
  lock?: Partial<Omit<FileLockOptions, 'path' | 'now'>>;
}

/** Reads and writes of tokens.json inside one holding of tokens.lock. */
export interface CacheTransaction {
  read(): Promise<TokenCacheData>;
  write(data: TokenCacheData): Promise<void>;
  /**
   * Takes the room on disk for a write to come: the cache as `data` has it,
   * plus RESERVE_MARGIN_BYTES for what a new token pair may add. For a write
   * that must not fail after a step that cannot be undone (a refresh token
   * spent at the server): reserve first, do it, then write into the room.
   * CACHE_IO when there is no room; the room is given back when the lock is.
   */
  reserve(data: TokenCacheData): Promise<ReservedCacheWrite>;
}

/** Room on disk taken for one write of the cache (CacheTransaction.reserve). */
export interface ReservedCacheWrite {
  /** Writes the cache, atomically, into the room taken; CACHE_IO if it still fails. Once. */
  write(data: TokenCacheData): Promise<void>;
}

/** Room on disk taken outside the lock (TokenCache.reserveRoom), given back by release() unless written into. */
export interface HeldCacheRoom extends ReservedCacheWrite {
  release(): Promise<void>;
}

/** Room beyond the cache's present size taken for a write after a refresh: a new token pair is about as long as the one it replaces. */
export const RESERVE_MARGIN_BYTES = 8192;

export function emptyCache(): TokenCacheData {
  return { version: CACHE_VERSION, discovery: {}, clients: {}, tokens: {} };
}

export class TokenCache {
  readonly files: CacheFiles;
  /** The clock this cache was given (a lock's age, a refresh's stamps). */
  readonly now: () => number;
  private readonly lockOptions: TokenCacheOptions['lock'];
  /** Serializes this process's own transactions; the file lock serializes processes. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: TokenCacheOptions) {
    this.files = options.files;
    this.now = options.now;
    this.lockOptions = options.lock;
  }

  /** The cache as it is on disk now (empty when there is no file). Needs no lock: files are replaced atomically. */
  async read(): Promise<TokenCacheData> {
    let text: string | undefined;
    try {
      text = await readPrivateFile(this.files.tokenCache, 'a token cache');
    } catch (error) {
      if (error instanceof NotARegularFileError) throw new ClientError('CACHE_IO', `The token cache ${error.path} is ${error.kind}; move it away.`, { cause: error });
      throw new ClientError('CACHE_IO', `Cannot read the token cache ${this.files.tokenCache}: ${fileErrorText(error)}.`, { cause: error });
    }
    return text === undefined ? emptyCache() : parseCache(text, this.files.tokenCache);
  }

  /** Runs `work` holding tokens.lock; its reads see every change another process made before. */
  async withLock<T>(work: (txn: CacheTransaction) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      const dir = dirname(this.files.tokenCache);
      await ensurePrivateDir(dir).catch((error: unknown) => {
        throw new ClientError('CACHE_IO', `Cannot use the directory of the token cache ${dir}: ${fileErrorText(error)}.`, { cause: error });
      });
      const lock = await acquireFileLock({ ...this.lockOptions, path: this.files.tokenLock, now: this.now });
      const reserved: Array<() => Promise<void>> = [];
      try {
        return await work({
          read: () => this.read(),
          write: (data) => this.write(data),
          reserve: async (data) => {
            const room = await this.reserve(data);
            reserved.push(room.release);
            return room;
          },
        });
      } finally {
        for (const release of reserved) await release();
        await lock.release();
      }
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * When the file on disk is not a cache we can read (CACHE_CORRUPT), moves it
   * aside to `<file>.corrupt-<UTC time>` without changing a byte and returns
   * that path, so that a new sign-in can write a fresh cache; returns
   * undefined when the file is readable or absent. Under the lock, so no other
   * process writes in between; a hard link, so an existing file of that name is
   * never replaced.
   */
  async setAsideDamaged(): Promise<string | undefined> {
    return this.withLock(async (txn) => {
      try {
        await txn.read();
        return undefined;
      } catch (error) {
        if (!isClientError(error, 'CACHE_CORRUPT')) throw error;
      }
      const keptAs = `${this.files.tokenCache}.corrupt-${new Date(this.now()).toISOString().replace(/[-:.]/g, '')}`;
      try {
        await link(this.files.tokenCache, keptAs);
        await unlink(this.files.tokenCache);
      } catch (error) {
        throw new ClientError('CACHE_IO', `Cannot keep the damaged token cache ${this.files.tokenCache} aside as ${keptAs}: ${fileErrorText(error)}.`, { cause: error });
      }
      return keptAs;
    });
  }

  /**
   * Takes the room on disk for one write of the cache to come (the cache as it
   * is now, plus RESERVE_MARGIN_BYTES), without the lock: for a sign-in, before
   * its code is redeemed, the room held while the server answers and then
   * written into by updateInto (found in review, s25faults: a sign-in on a full
   * disk was issued tokens it could not keep). CACHE_IO when there is no room.
   */
  async reserveRoom(): Promise<HeldCacheRoom> {
    return this.reserve(await this.read());
  }

  /** update(), the result written into a room reserveRoom took. */
  async updateInto<T>(room: ReservedCacheWrite, mutate: (data: TokenCacheData) => T): Promise<T> {
    return this.withLock(async (txn) => {
      const data = await txn.read();
      const result = mutate(data);
      await room.write(data);
      return result;
    });
  }

  /** Read, change and write back under the lock, so that concurrent writers lose nothing. */
  async update<T>(mutate: (data: TokenCacheData) => T): Promise<T> {
    return this.withLock(async (txn) => {
      const data = await txn.read();
      const result = mutate(data);
      await txn.write(data);
      return result;
    });
  }

  private async write(data: TokenCacheData): Promise<void> {
    try {
      await writePrivateFileAtomic(this.files.tokenCache, serialize(data));
    } catch (error) {
      throw this.writeError(error);
    }
  }

  private async reserve(data: TokenCacheData): Promise<HeldCacheRoom> {
    let room;
    try {
      room = await reservePrivateFileReplacement(this.files.tokenCache, Buffer.byteLength(serialize(data)) + RESERVE_MARGIN_BYTES);
    } catch (error) {
      if (isClientError(error)) throw error;
      if (error instanceof NotReplaceableError) throw unreplaceableCache(error);
      throw new ClientError('CACHE_IO', `Cannot make room to save the token cache ${this.files.tokenCache}: ${fileErrorText(error)}.`, { cause: error });
    }
    return {
      write: async (next) => {
        try {
          await room.commit(serialize(next));
        } catch (error) {
          throw this.writeError(error);
        }
      },
      release: room.release,
    };
  }

  private writeError(error: unknown): unknown {
    if (isClientError(error)) return error;
    if (error instanceof NotReplaceableError) return unreplaceableCache(error);
    return new ClientError('CACHE_IO', `Cannot write the token cache ${this.files.tokenCache}: ${fileErrorText(error)}.`, { cause: error });
  }
}

/**
 * The room for a sign-in's tokens (TokenCache.reserveRoom), taken before its code is redeemed, as a refresh takes it
 * before its refresh token is spent: with no room, nothing is redeemed, and CACHE_IO says so.
 */
export async function roomForSignIn(cache: TokenCache): Promise<HeldCacheRoom> {
  return cache.reserveRoom().catch((error: unknown) => {
    if (!isClientError(error, 'CACHE_IO')) throw error;
    const unreplaceable = unreplaceableCause(error);
    if (unreplaceable) throw unreplaceableCache(unreplaceable, 'The sign-in was not completed (nothing was redeemed, so nothing was issued).');
    throw new ClientError('CACHE_IO', `${error.message} The sign-in was not completed (nothing was redeemed, so nothing was issued); free some space and run the command again.`, {
      cause: error,
    });
  });
}

/**
 * CACHE_IO for a token cache that a rename cannot replace (NotReplaceableError), in one line: what it is, why it
 * cannot be saved, `notDone` (what was not done for it: a refresh not sent, a sign-in not redeemed), and the way out.
 * The cache is saved by renaming a new file over it (atomic, DESIGN.md Storage): over a single file mounted there
 * (`docker run -v ./tokens.json:…`) the rename fails with EBUSY, and over a symbolic link it would put a file in the
 * link's place. A directory mounted or linked whole has neither problem.
 */
export function unreplaceableCache(cause: NotReplaceableError, notDone?: string, wayOutHere?: string): ClientError {
  const finding =
    cause.kind === 'mount point'
      ? `The token cache ${cause.path} is a mount point (a single file mounted there): it cannot be saved, since saving renames a new file over it.`
      : `The token cache ${cause.path} is a symbolic link: it is not saved through it, since saving renames a new file over it, which would replace the link.`;
  const wayOut =
    cause.kind === 'mount point'
      ? 'Mount the directory that holds it instead, or point DELEGATE_HOME at a directory mounted whole.'
      : 'Link the directory that holds it instead, or point DELEGATE_HOME at the directory of the file it names.';
  return new ClientError('CACHE_IO', [finding, notDone, wayOutHere ?? wayOut].filter((part) => part !== undefined).join(' '), { cause, detail: finding });
}

/** The token cache that a rename cannot replace, behind a CACHE_IO (unreplaceableCache); undefined for any other error. */
export function unreplaceableCause(error: unknown): NotReplaceableError | undefined {
  return isClientError(error, 'CACHE_IO') && error.cause instanceof NotReplaceableError ? error.cause : undefined;
}

/** Parses tokens.json, refusing anything that is not a cache of this version. */
export function parseCache(text: string, path: string): TokenCacheData {
  const refuse = (why: string): never => {
    // The finding alone as the detail, for a command that names its own `delegate login` (with its ports, profile).
    const finding = `The token cache ${path} ${why}.`;
    throw new ClientError('CACHE_CORRUPT', `${finding} It was left as it is; \`delegate login\` keeps it aside and signs in again.`, { detail: finding });
  };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return refuse('is not valid JSON');
  }
  if (!isRecord(value)) return refuse('is not a JSON object');
  if (value.version !== CACHE_VERSION) return refuse(`has version ${JSON.stringify(value.version)}, not ${CACHE_VERSION}`);
  const { discovery, clients, tokens } = value;
  if (!isRecord(discovery) || !isRecord(clients) || !isRecord(tokens)) return refuse('lacks its discovery, clients or tokens sections');
  for (const [issuer, byResource] of Object.entries(tokens)) {
    if (!isRecord(byResource)) return refuse(`has a malformed tokens entry for ${issuer}`);
    for (const entry of Object.values(byResource)) {
      if (!isRecord(entry) || typeof entry.access_token !== 'string' || typeof entry.issuer !== 'string') {
        return refuse(`has a malformed tokens entry for ${issuer}`);
      }
    }
  }
  for (const [issuer, client] of Object.entries(clients)) {
    if (!isRecord(client) || typeof client.client_id !== 'string') return refuse(`has a malformed client entry for ${issuer}`);
  }
  for (const [resource, entry] of Object.entries(discovery)) {
    if (!isDiscoveryEntry(entry)) return refuse(`has a malformed discovery entry for ${resource}`);
  }
  // Only a note of why tokens are gone: a malformed one is dropped, never a reason to set the whole cache aside.
  if (value.ended !== undefined && !isEndedSection(value.ended)) delete value.ended;
  // Each a token to revoke: a malformed one is dropped alone, never the others with it, nor the cache.
  if (value.pending_revocations !== undefined) {
    const kept = Array.isArray(value.pending_revocations) ? value.pending_revocations.filter(isPendingRevocation).slice(-PENDING_REVOCATIONS_MAX) : [];
    if (kept.length > 0) value.pending_revocations = kept;
    else delete value.pending_revocations;
  }
  return value as unknown as TokenCacheData;
}

/** A damaged cache where no sign-in may be offered: authorization is required (exit 4), with the same message. */
export function damagedCacheNeedsLogin(error: ClientError): ClientError {
  return new ClientError('AUTHORIZATION_REQUIRED', error.message, { cause: error });
}

export function tokensFor(data: TokenCacheData, issuer: string, resource: string): StoredTokens | undefined {
  return data.tokens[issuer]?.[resource];
}

/**
 * Stores tokens for the resource; a note that its delegation ended (a sign-in before) goes with what they replace,
 * whichever authorization server refused it: the note is about this agent's sign-in, which these tokens now are (found
 * at stop 19: after the authorization server moved to another port, a sign-in there left the old server's note, and
 * `status` showed "ended" next to the valid delegation that replaced it).
 */
export function setTokens(data: TokenCacheData, resource: string, entry: StoredTokens): void {
  (data.tokens[entry.issuer] ??= {})[resource] = entry;
  for (const issuer of Object.keys(data.ended ?? {})) forgetEnded(data, issuer, resource);
}

/**
 * Stores the tokens of a sign-in (a new delegation, not a refresh) for the resource, as setTokens does; and the notes
 * that delegations of the same CalendarAgent at other URLs ended go too, since this sign-in replaces them (found at
 * the last stop: after CalendarAgent moved to another port and the person signed in at its new URL, `status` showed
 * the old URL's "ended" until `logout`, where `gh auth status` shows only what can be used). The same agent: one at the
 * same authorization server (which serves one CalendarAgent), or, when this sign-in is on this machine (the
 * authorization server and the agent on loopback), any other there: the local stack, whose ports may all have moved.
 * A note from a deployment elsewhere stays, whatever is signed in beside it, until a sign-in there or `logout`.
 */
export function setSignInTokens(data: TokenCacheData, resource: string, entry: StoredTokens): void {
  setTokens(data, resource, entry);
  for (const [issuer, byResource] of Object.entries(data.ended ?? {})) {
    for (const other of Object.keys(byResource)) {
      if (replacedBySignIn({ issuer: entry.issuer, resource }, { issuer, resource: other })) forgetEnded(data, issuer, other);
    }
  }
}

/**
 * Stores the client registration for the issuer. Tokens issued to the registration it replaces keep that client's id
 * (StoredTokens.client_id), so that they are still refreshed and revoked as the client they were issued to (clientFor).
 */
export function setClient(data: TokenCacheData, issuer: string, client: StoredClient): void {
  const old = data.clients[issuer];
  if (old && old.client_id !== client.client_id) {
    for (const entry of Object.values(data.tokens[issuer] ?? {})) entry.client_id ??= old.client_id;
  }
  data.clients[issuer] = client;
}

/**
 * The client to refresh or revoke tokens as: the one they were issued to (RFC 6749 §6, RFC 7009 §2.1: the server
 * refuses another). The issuer's stored registration when it is that one, or when the entry is of an older cache and
 * names none; otherwise that client by its id alone, as the public client (RFC 7591 `none`) every registration this
 * CLI makes is. Found in review, s26: two sign-ins at once each registered a client, and the cache kept one's
 * registration beside the other's tokens, which the next refresh and `logout` then presented as the wrong client.
 */
export function clientFor(data: TokenCacheData, issuer: string, entry: StoredTokens): StoredClient | undefined {
  const stored = data.clients[issuer];
  if (entry.client_id === undefined || stored?.client_id === entry.client_id) return stored;
  return { client_id: entry.client_id, issuer };
}

/**
 * Stores the tokens of a sign-in with the client they were issued to, in one change (setSignInTokens, setClient):
 * the last sign-in saved is kept whole, its client with its tokens. Returns the tokens this one replaced when their
 * grant stands at the server beside the new one's, nothing here holding it any more, and is to be revoked
 * (revocation.ts revokeReplacedSignIn): those of a sign-in that ran at the same time, issued to a client it registered
 * itself, or under another grant (the access token's `grant_id`, delegate's JWT) to the same client. Undefined
 * otherwise: a sign-in again under the same grant replaces tokens the server keeps one grant for.
 */
export function setSignInWithClient(data: TokenCacheData, resource: string, entry: StoredTokens, client: StoredClient | undefined): ReplacedSignIn | undefined {
  const issuer = entry.issuer;
  const old = tokensFor(data, issuer, resource);
  const oldClient = old === undefined ? undefined : clientFor(data, issuer, old);
  const oldGrant = old === undefined ? undefined : grantOf(old.access_token);
  const newGrant = grantOf(entry.access_token);
  const apart =
    oldClient !== undefined && client !== undefined && (oldClient.client_id !== client.client_id || (oldGrant !== undefined && newGrant !== undefined && oldGrant !== newGrant));
  const replaced = old !== undefined && apart ? { cache: structuredClone(data), issuer, resource, clientId: oldClient!.client_id, obtainedAt: old.obtained_at } : undefined;
  if (client !== undefined) {
    setClient(data, issuer, client);
    entry.client_id = client.client_id;
  }
  setSignInTokens(data, resource, entry);
  return replaced;
}

/** The grant an access token names (`grant_id`, delegate's JWT: DESIGN.md, Tokens), read, not verified; undefined for another server's opaque token. */
export function grantOf(accessToken: string): string | undefined {
  const grant = unverifiedPayload(accessToken)?.grant_id;
  return typeof grant === 'string' ? grant : undefined;
}

/** Tokens a sign-in replaced whose grant stands apart from its own: the cache as it was, and where they were kept in it. */
export interface ReplacedSignIn extends SignInPlace {
  cache: TokenCacheData;
  /** The client they were issued to. */
  clientId: string;
  /** When they were obtained (their entry's obtained_at): saved after this sign-in started, they are of one made at the same time. */
  obtainedAt: number;
}

/** Where a sign-in is kept: the authorization server that issued it, and the agent's URL (the cache's keys). */
export interface SignInPlace {
  issuer: string;
  resource: string;
}

/**
 * Whether a sign-in at `signIn` replaces what is kept at `other` for the same agent (setSignInTokens' rule; the tokens
 * of such a sign-in go too, revocation.ts retireReplacedSignIns): one the same authorization server issued, or, for a
 * sign-in on this machine (the authorization server and the agent on loopback), any other there: the local stack,
 * whose ports may all have moved. Never one of a deployment elsewhere for a sign-in here, nor the other way round.
 */
export function replacedBySignIn(signIn: SignInPlace, other: SignInPlace): boolean {
  const here = onThisMachine(signIn.issuer, signIn.resource);
  if (onThisMachine(other.issuer, other.resource) !== here) return false;
  return here || other.issuer === signIn.issuer;
}

/** Whether an authorization server and an agent's URL are both on this machine's loopback (the local stack's). */
function onThisMachine(issuer: string, agentUrl: string): boolean {
  return isLoopbackUrl(issuer) && isLoopbackUrl(agentUrl);
}

/** Keeps a token whose revocation failed, to try again (PendingRevocation); the same token once, the newest PENDING_REVOCATIONS_MAX. */
export function addPendingRevocation(data: TokenCacheData, pending: PendingRevocation): void {
  const list = (data.pending_revocations ?? []).filter((p) => p.token !== pending.token);
  list.push(pending);
  data.pending_revocations = list.slice(-PENDING_REVOCATIONS_MAX);
}

/** Forgets the pending revocations of these tokens (revoked now, or given up by `logout`). */
export function forgetPendingRevocations(data: TokenCacheData, tokens: ReadonlySet<string>): void {
  const list = (data.pending_revocations ?? []).filter((p) => !tokens.has(p.token));
  if (list.length > 0) data.pending_revocations = list;
  else delete data.pending_revocations;
}

/** Why the delegation for the resource ended, when its renewal was refused since the last sign-in. */
export function endedFor(data: TokenCacheData, issuer: string, resource: string): EndedDelegation | undefined {
  return data.ended?.[issuer]?.[resource];
}

/** Removes the resource's tokens, whose renewal the server refused, and notes why in their place (EndedDelegation). */
export function endTokens(data: TokenCacheData, issuer: string, resource: string, ended: EndedDelegation): void {
  deleteTokens(data, issuer, resource);
  // What the server said, cut to a size worth keeping (found in review, regress19b: a 2 MB description went into the
  // private cache, read again by every command, and whole into `status --json`).
  const kept: EndedDelegation = { ...ended, error: codePoints(ended.error, ENDED_ERROR_MAX) };
  if (ended.error_description !== undefined) kept.error_description = codePoints(ended.error_description, ENDED_DESCRIPTION_MAX);
  ((data.ended ??= {})[issuer] ??= {})[resource] = kept;
}

/** The most of a refusal's `error` and `error_description` an ended note keeps, in code points. */
const ENDED_ERROR_MAX = 64;
const ENDED_DESCRIPTION_MAX = 500;

function codePoints(text: string, max: number): string {
  const all = [...text];
  return all.length <= max ? text : all.slice(0, max).join('');
}

/** Forgets the note that the delegation kept at `issuer` and `resource` ended. */
export function forgetEnded(data: TokenCacheData, issuer: string, resource: string): void {
  const byResource = data.ended?.[issuer];
  if (!byResource) return;
  delete byResource[resource];
  if (Object.keys(byResource).length === 0) delete data.ended![issuer];
  if (Object.keys(data.ended!).length === 0) delete data.ended;
}

/**
 * Forgets everything stored for one resource (`logout --agent-url`): its tokens from every issuer, the notes that its
 * delegations ended, and its discovery state; the client registrations stay (public client ids, no secret of the
 * person's). Whether anything of it was there.
 */
export function forgetResource(data: TokenCacheData, resource: string): boolean {
  let found = data.discovery[resource] !== undefined;
  delete data.discovery[resource];
  for (const issuer of new Set([...Object.keys(data.tokens), ...Object.keys(data.ended ?? {})])) {
    found ||= tokensFor(data, issuer, resource) !== undefined || endedFor(data, issuer, resource) !== undefined;
    deleteTokens(data, issuer, resource);
    forgetEnded(data, issuer, resource);
  }
  return found;
}

export function deleteTokens(data: TokenCacheData, issuer: string, resource: string): void {
  const byResource = data.tokens[issuer];
  if (!byResource) return;
  delete byResource[resource];
  if (Object.keys(byResource).length === 0) delete data.tokens[issuer];
}

/**
 * Whether the access token is expired, or will be within `marginMs` (so that
 * it does not expire in flight). A token without a known expiry is assumed
 * valid: the resource server will say if it is not.
 */
export function isExpired(entry: StoredTokens, now: number, marginMs = 30_000): boolean {
  return entry.expires_at !== undefined && entry.expires_at - marginMs <= now;
}

/**
 * Whether a discovery entry has the shape the client reads: the authorization
 * server's URL (which issuer's tokens are the resource's), and, when present,
 * the metadata documents as objects whose endpoints are strings.
 */
function isDiscoveryEntry(entry: unknown): boolean {
  if (!isRecord(entry) || typeof entry.authorizationServerUrl !== 'string') return false;
  if (entry.resourceMetadataUrl !== undefined && typeof entry.resourceMetadataUrl !== 'string') return false;
  if (entry.resourceMetadata !== undefined && !isRecord(entry.resourceMetadata)) return false;
  const metadata = entry.authorizationServerMetadata;
  if (metadata === undefined) return true;
  if (!isRecord(metadata)) return false;
  return ['issuer', 'token_endpoint', 'authorization_endpoint', 'revocation_endpoint'].every((name) => metadata[name] === undefined || typeof metadata[name] === 'string');
}

function isEndedSection(value: unknown): boolean {
  if (!isRecord(value)) return false;
  return Object.values(value).every(
    (byResource) =>
      isRecord(byResource) &&
      Object.values(byResource).every(
        (e) =>
          isRecord(e) &&
          typeof e.refused_at === 'number' &&
          typeof e.error === 'string' &&
          [...e.error].length <= ENDED_ERROR_MAX &&
          (e.error_description === undefined || (typeof e.error_description === 'string' && [...e.error_description].length <= ENDED_DESCRIPTION_MAX)),
      ),
  );
}

function isPendingRevocation(value: unknown): value is PendingRevocation {
  return (
    isRecord(value) &&
    ['issuer', 'resource', 'client_id', 'token'].every((name) => typeof value[name] === 'string') &&
    (value.token_type_hint === 'refresh_token' || value.token_type_hint === 'access_token') &&
    (value.grant_id === undefined || typeof value.grant_id === 'string') &&
    typeof value.failed_at === 'number'
  );
}

function serialize(data: TokenCacheData): string {
  return `${JSON.stringify(data, null, 2)}\n`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
