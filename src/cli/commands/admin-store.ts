// Opening the local installation's store for the administrator's commands
// (agents, grants, audit, users) and the calendar commands: the same database
// the servers use, in the data directory, with its errors as one-line
// messages, and read-only for the commands that only read when the directory
// cannot be written.
import { existsSync, statSync } from 'node:fs';
import { parseWindowBound } from '../../calendar/window.js';
import type { Paths } from '../../config.js';
import { CURRENT_SCHEMA_VERSION, openStore, openStoreReadOnly, StoreError, type Store, type UserRecord } from '../../store/index.js';
import { CommandFailed } from '../errors.js';

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
function databaseStarted(paths: Paths): boolean {
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
 * The account a command acts for: the one named, which must exist, else the
 * local owner, undefined on a fresh installation (a reading command creates
 * no owner; serve or login does).
 */
export async function accountFor(store: Store, name: string | undefined): Promise<UserRecord | undefined> {
  if (!name) return store.ownerUser();
  const user = await store.userByName(name);
  if (!user) throw new CommandFailed(`There is no account named ${name}.`);
  return user;
}

/**
 * A time given as ISO 8601 or as a span back from now (`2h`, `3d`), in ms since
 * the epoch. The time must be one find-slot's --from would take: Date.parse
 * alone turns 30 February into 2 March.
 */
export function parseSince(value: string, now: number): number | undefined {
  const text = value.trim();
  const span = /^(\d+)(m|h|d|w)$/.exec(text);
  if (span) return now - Number(span[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[span[2] as 'm' | 'h' | 'd' | 'w'];
  if (parseWindowBound(text) === undefined) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : at;
}

/** Read access for a command, its notice on the command's stderr. */
export function readOnlyNotice(io: { stderr: { write(text: string): unknown } }): ReadAccess {
  return { notice: (line) => io.stderr.write(line) };
}
