// A sign-in begun with the owner's link must end signed in as the owner
// (docs/internals.md, "Local owner sign-in"). The authorization request, with
// its `state`, PKCE challenge and callback port, passes on command lines that
// other users of the machine can read; one with an account of their own on
// the same authorization server can sign in as themselves, approve that very
// request and send its code to the CLI's listener, which cannot tell it from
// the owner's (login CSRF, RFC 6749 §10.12, RFC 9700 §4.7). So before tokens
// are stored, their subject is compared with the owner the data directory's
// database names, the one /login/owner signs in; tokens for anyone else are
// revoked at their issuer and never stored.
import { decodeJwt } from 'jose';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { setTokens, type StoredTokens, type TokenCache } from './cache.js';
import { ClientError } from './errors.js';
import { revokeStoredTokens } from './revocation.js';

export interface OwnerCheck {
  /** The database in the data directory whose owner key signed the link (Paths.db). */
  db: string;
  cache: TokenCache;
  /** The cache key the tokens would be stored under (the agent's canonical URL). */
  resource: string;
  fetchFn: FetchLike;
}

/**
 * Resolves when `entry` speaks for the owner; otherwise revokes it (refresh
 * token first: that ends the other account's new delegation) and throws
 * WRONG_ACCOUNT. Nothing is written to the cache either way.
 */
export async function refuseAnotherAccount(entry: StoredTokens, check: OwnerCheck): Promise<void> {
  const subject = tokenSubject(entry.access_token);
  let owner: string | undefined;
  let unknownOwner: string | undefined;
  try {
    owner = await ownerUserId(check.db);
    if (owner === undefined) unknownOwner = `the database ${check.db} names no owner`;
  } catch (error) {
    unknownOwner = `the database ${check.db} cannot be read (${error instanceof Error ? error.message : String(error)})`;
  }
  if (subject !== undefined && owner !== undefined && subject === owner) return;

  const data = await check.cache.read();
  setTokens(data, check.resource, entry);
  let revoked = "that account's tokens were revoked";
  try {
    await revokeStoredTokens(data, entry.issuer, check.resource, check.fetchFn);
  } catch (error) {
    revoked = `that account's tokens could not be revoked (${error instanceof Error ? error.message : String(error)}); its delegation stands until \`delegate grants revoke\` ends it`;
  }
  const who = subject === undefined ? 'an account this CLI cannot read from the token' : `the account ${subject}`;
  throw new ClientError(
    'WRONG_ACCOUNT',
    unknownOwner !== undefined
      ? `The sign-in came back for ${who}, and whether that is this computer's owner cannot be checked: ${unknownOwner}. Nothing was stored, and ${revoked}.`
      : `The sign-in came back for ${who}, not for this computer's owner (${owner}): someone else approved this sign-in's request in their browser. Nothing was stored, and ${revoked}. Run delegate login again.`,
  );
}

/** The access token's `sub`; undefined when it is not a JWT with one (delegate's are, RFC 9068). */
function tokenSubject(accessToken: string): string | undefined {
  try {
    const { sub } = decodeJwt(accessToken);
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The owner's user id from the database, read-only: nothing is created or
 * migrated. Loaded only here, so that no other path of the CLI loads SQLite
 * for it.
 */
async function ownerUserId(db: string): Promise<string | undefined> {
  const { openStoreReadOnly } = await import('../store/index.js');
  const store = openStoreReadOnly(db);
  try {
    return (await store.ownerUser())?.id;
  } finally {
    store.close();
  }
}
