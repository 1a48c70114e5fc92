// Opening the local installation's store for the administrator's commands
// (agents, grants, audit, users) and the calendar commands: the same database
// the servers use, in the data directory, with its errors as one-line
// messages, and read-only for the commands that only read when the directory
// cannot be written.
import { existsSync, statSync } from 'node:fs';
import { parseWindowBound } from '../../calendar/window.js';
import { DAY_MS } from '../../calendar/zone.js';
import type { Paths } from '../../config.js';
import { CURRENT_SCHEMA_VERSION, openStore, openStoreReadOnly, StoreError, type AccountName, type Store } from '../../store/index.js';
import { CommandFailed, UsageError } from '../errors.js';

/**
 * The store for `run`. A command that only reads (`ReadAccess`) still works when
 * the data directory cannot be written (a read-only disk or snapshot): the
 * database is then opened read-only, as it stands.
 */
export async function withStore<T>(paths: Paths, run: (store: Store) => Promise<T>, access: 'write' | ReadAccess = 'write'): Promise<T> {
  const store = await openCommandStore(paths, access);
  try {
    return await run(store);
  } finally {
    store.close();
  }
}

/** A command that only reads, and where to say that it reads a database it cannot write. */
export interface ReadAccess {
  notice: (line: string) => void;
}

/**
 * The database for a command, its errors as one-line messages; read-only where
 * it cannot be written and the command only reads (saying so on `notice`, as
 * the cause may be a permission rather than a read-only disk). A command that
 * only reads creates nothing: with no database yet it reads an empty one, in
 * memory, so that looking first leaves the first start (and its owner, with
 * the demo calendar) to the servers or to `calendar add`.
 */
export async function openCommandStore(paths: Paths, access: 'write' | ReadAccess, stderr: { write(text: string): unknown } = process.stderr): Promise<Store> {
  if (access !== 'write' && !databaseStarted(paths)) return openStore(':memory:');
  try {
    return await openUpgraded(paths, stderr);
  } catch (error) {
    const readable = access !== 'write' && error instanceof StoreError && error.code === 'STORE_READ_ONLY' && existsSync(paths.db);
    if (!readable) throw failed(error);
    let store: Store;
    try {
      store = openStoreReadOnly(paths.db);
    } catch (readError) {
      throw failed(readError);
    }
    access.notice(`delegate: ${error.message} Reading it as it stands.\n`);
    return store;
  }
}

/** Thrown by the first open's beforeMigrate: a migration is due, and whether it may run is asked first (openUpgraded). */
class MigrationDue {
  constructor(readonly from: number) {}
}

/**
 * The database, its schema brought up to date only when no servers of this data directory run on it (found in review,
 * s24upgrade: a newer command migrated the database under a running older `delegate serve`, which went on with its own
 * rules on the new schema: replayed refresh tokens not caught, new accounts' sign-ins failing). The look at the servers
 * (served-elsewhere.ts) is made only when a migration is due: with the schema current, opening costs what it did. A
 * migration this open applies is said once on `stderr`: older builds refuse the database from then on.
 */
async function openUpgraded(paths: Paths, stderr: { write(text: string): unknown }): Promise<Store> {
  const options = {
    setUpBefore: setUpSigns(paths),
    migrated: (from: number, to: number) => {
      if (from > 0) stderr.write(`delegate: upgraded the database in ${paths.home} from schema ${from} to ${to}; older versions of delegate can no longer open it.\n`);
    },
  };
  try {
    return openStore(paths.db, {
      ...options,
      beforeMigrate: (from) => {
        if (from > 0) throw new MigrationDue(from); // 0: a new database, which no server runs on yet
      },
    });
  } catch (error) {
    if (!(error instanceof MigrationDue)) throw error;
    const { refuseUpgradeWhileServed } = await import('../served-elsewhere.js');
    await refuseUpgradeWhileServed(paths, error.from, CURRENT_SCHEMA_VERSION);
  }
  return openStore(paths.db, options);
}

/**
 * The files that only an installation that has run leaves in its data directory: beside them an empty database is
 * one emptied, refused as damaged (openSqliteStore), never set up anew.
 */
export function setUpSigns(paths: Paths): string[] {
  return [paths.ownerKey, paths.agentKey, paths.tokenCache];
}

/**
 * Whether there is a database for a command that only reads: a file with something in it, or an empty one beside
 * an installation that has run (refused when opened). An empty file alone, left by a first start that stopped
 * before its first write, is no database yet, and a reading command does not set one up there.
 */
export function databaseStarted(paths: Paths): boolean {
  try {
    return statSync(paths.db).size > 0 || setUpSigns(paths).some((file) => existsSync(file));
  } catch {
    return false;
  }
}

function failed(error: unknown): CommandFailed {
  return new CommandFailed(error instanceof Error ? error.message : String(error));
}

/**
 * The account a command acts for: the one `--user` names (pickedAccount: retired ones included, as what they did
 * stays; a blank one is bad usage), else the local owner, undefined on a fresh installation (a reading command
 * creates no owner; serve or login does). `accounts`: the store's listAccountNames.
 */
export async function accountFor(store: Store, given: string | undefined, accounts: readonly AccountName[], use: AccountUse): Promise<AccountName | undefined> {
  // A blank --user is bad usage, as audit --user says (found in review, s33team: it listed the owner's grants).
  refuseBlankUser(given);
  if (given === undefined) {
    const owner = await store.ownerUser();
    return owner && { id: owner.id, name: owner.name, removedAt: null };
  }
  return pickedAccount(given, accounts, use);
}

/** `--user` given empty or blank: bad usage (exit 2), the same line for every command that takes it. */
export function refuseBlankUser(given: string | undefined): void {
  if (given !== undefined && given.trim() === '') throw new UsageError('--user takes an account’s name or a user id (usr_…).');
}

/** How a command refuses an account `--user` does not name, and where it says what else the name named. */
export interface AccountUse {
  /** What the command lists of the account ("records", "grants"), as the notice names it. */
  what: string;
  /** The line for a name or id that no account, live or retired, has. */
  none: string;
  refuse: (message: string) => Error;
  notice: (line: string) => void;
}

/**
 * The account `--user GIVEN` names for the commands that read what accounts did (`audit`, `grants list`), whose
 * records and grants outlive an account removed by `users remove`: the account named so now; else the one with that
 * id, live or retired (the name first, as a name may look like an id); else, as `users remove` finds an account
 * (accountToRemove), the live one named so but for case (`ALICE` is `alice`; found in review, s26: these two took the
 * name only as spelled); else the one retired account that had that name, which is what an administrator looking
 * into a departed account means, then the one that had it but for case. Refused (`use.refuse`): a name or id no account
 * has, in any case (`use.none`), and a name that several retired accounts had and none has now (naming their ids);
 * refused as bad usage (exit 2), naming them: a name that matches several accounts but for case and none exactly.
 * An account named so now is the live one even when retired ones had the name: said on `use.notice`, with their ids.
 */
export function pickedAccount<A extends AccountName>(given: string, accounts: readonly A[], use: AccountUse): A {
  const exactly = (name: string) => name === given;
  const butForCase = (name: string) => name.toLowerCase() === given.toLowerCase();
  // A live account named so but for case comes before a retired one named so exactly: names are unique ignoring case,
  // so the live `Alice` is the account that took `alice`'s name (found in review, s26new: `--user alice` read the
  // removed alice's records while `users remove alice` removed Alice).
  const found = liveNamed(exactly) ?? accounts.find((a) => a.id === given) ?? liveNamed(butForCase) ?? retiredNamed(exactly) ?? retiredNamed(butForCase);
  if (found) return found;
  throw use.refuse(use.none);

  /** The live account `matches` picks; said on `use.notice` when retired ones match too. */
  function liveNamed(matches: (name: string) => boolean): A | undefined {
    const live = accounts.filter((a) => a.removedAt === null && matches(a.name));
    // Only but for case can two live accounts match: names are unique as spelled (case twins kept from before users_name_nocase).
    if (live.length > 1) throw severalButForCase(given, live);
    const account = live[0];
    if (!account) return undefined;
    const retired = retiredMatching(matches);
    if (retired.length > 0) {
      const others = retired.length === 1 ? 'an account removed earlier had that name too' : 'accounts removed earlier had that name too';
      use.notice(`delegate: ${account.name} is the account named so now (${account.id}); ${others}: ${retired.map((a) => `--user ${a.id}`).join(', ')} for ${retired.length === 1 ? 'its' : 'their'} ${use.what}.\n`);
    }
    return account;
  }

  /** The one retired account `matches` picks; several that had one name are refused, naming their ids. */
  function retiredNamed(matches: (name: string) => boolean): A | undefined {
    const retired = retiredMatching(matches);
    if (retired.length <= 1) return retired[0];
    if (new Set(retired.map((a) => a.name)).size > 1) throw severalButForCase(given, retired);
    const which = retired.map((a) => `${a.id} (removed ${new Date(a.removedAt!).toISOString()})`).join(', ');
    throw use.refuse(`No account is named ${given} now, and ${retired.length} removed accounts were: ${which}; --user takes the id of the one whose ${use.what} you mean.`);
  }

  function retiredMatching(matches: (name: string) => boolean): A[] {
    return accounts.filter((a) => a.removedAt !== null && matches(a.name)).sort((a, b) => a.removedAt! - b.removedAt!);
  }
}

/** Bad usage: `given` names several accounts but for case, none of them exactly. */
function severalButForCase(given: string, candidates: readonly AccountName[]): UsageError {
  const which = candidates.map((a) => `${shownAccount(a.name, a.removedAt !== null)} (${a.id})`).join(', ');
  return new UsageError(`--user ${given} names ${candidates.length} accounts but for case: ${which}; give the name exactly as it is spelled, or the id.`);
}

/** An account as a line names it: its name, and `(removed)` after one that `users remove` retired. */
export function shownAccount(name: string, removed: boolean): string {
  return removed ? `${name} (removed)` : name;
}

/** The JSON field beside a user's name saying when its account was removed, none for a live one. */
export function removedField(account: AccountName | undefined): { user_removed_at?: string } {
  return account !== undefined && account.removedAt !== null ? { user_removed_at: new Date(account.removedAt).toISOString() } : {};
}

/**
 * A time given as ISO 8601 or as a span back from now (`2h`, `3d`), in ms since
 * the epoch. The time must be one find-slot's --from would take: Date.parse
 * alone turns 30 February into 2 March. One without an offset (`2026-05-01`,
 * `2026-05-01T09:00`) is UTC, the zone every audit line prints its time in:
 * found in review (s33audit), Date.parse read a date-time without an offset in
 * the process's own zone and a date in UTC, so that under TZ=Asia/Tokyo
 * `--until 2026-12-08T00:00` listed none of the records `--until
 * 2026-12-08T00:00Z` listed. As the end of a span (`end`), a date is the end of
 * that day, its last millisecond (the bound is inclusive), as find-slot's --to
 * reads a date as the midnight that ends it; as a start, its first.
 */
export function parseSince(value: string, now: number, end = false): number | undefined {
  const text = value.trim();
  // Seconds too, as --login-timeout takes them (found in review, s33audit: `--since 30s` was refused).
  const span = /^(\d+)(s|m|h|d|w)$/.exec(text);
  if (span) return now - Number(span[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[span[2] as 's' | 'm' | 'h' | 'd' | 'w'];
  const bound = parseWindowBound(text);
  if (bound === undefined) return undefined;
  if (bound.kind === 'instant') return bound.ms;
  // setUTCFullYear, not Date.UTC, which reads years 0 to 99 as 1900 to 1999.
  const at = new Date(0);
  at.setUTCFullYear(bound.year, bound.month - 1, bound.day);
  at.setUTCHours(bound.hour, bound.minute, bound.second, 0);
  return bound.dateOnly && end ? at.getTime() + DAY_MS - 1 : at.getTime();
}

/** Read access for a command, its notice on the command's stderr. */
export function readOnlyNotice(io: { stderr: { write(text: string): unknown } }): ReadAccess {
  return { notice: (line) => io.stderr.write(line) };
}
