// The SQLite implementation of the Store (better-sqlite3, WAL). Every state
// change that must happen once (a code redeemed, a refresh token rotated, a
// consent decision taken) is a single transaction. The database file is
// created 0600 inside a 0700 directory; SQLite gives the -wal and -shm files
// it creates the same mode, and ones left by an earlier run are tightened.
import type BetterSqlite3 from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, openSync, chmodSync, readFileSync, readSync, realpathSync, statfsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname } from 'node:path';
import { BoundedMap } from '../bounded-map.js';
import { makeOwnDirectory } from '../trusted-directory.js';
import { GENESIS_HASH, prepareContent, preparedHash, verifyChainOf, withAuditTriggers, type AuditRecord, type AuditTrigger, type ChainVerdict, type PreparedContent, type StoredRecord } from './audit-chain.js';
import { MIGRATIONS, READABLE_FROM_VERSION } from './schema.js';
import { fileSync, GroupSync, type SyncFile } from './wal-sync.js';
import type {
  AccountName,
  AgentSave,
  AuditEventInput,
  AuditFilter,
  AuthCodeRecord,
  AuthRequestRecord,
  CalendarFeedRecord,
  CalendarRecord,
  ClientKind,
  DeviceAuthorizationRecord,
  DevicePoll,
  ClientRecord,
  ConsentGrantDecision,
  ConsentGrantOutcome,
  GrantKey,
  GrantRecord,
  IssuedTokenRecord,
  RedeemCodeResult,
  RefreshTokenRecord,
  ReplayedToken,
  ResourceRecord,
  RevocationPage,
  RotateRefreshResult,
  SessionRecord,
  SigningKeyRecord,
  SigningKeyRotation,
  Store,
  TokenStanding,
  UserRecord,
  UserRemoval,
} from './types.js';

type Row = Record<string, unknown>;

/**
 * The SQLite driver for the Node.js running: better-sqlite3 13 (installed as better-sqlite3-node22, an optional
 * dependency that npm installs only on Node 22 or later) where it is there, else better-sqlite3 12. Found in review
 * (s26node): on Node 24.19 and later, better-sqlite3 12's objects (built on node::ObjectWrap) abort the process with
 * a native assertion when a garbage collection that no JavaScript started collects one (`Statement::~Statement`,
 * "Assertion failed: (env) != nullptr", exit 134): README's first command, which runs the servers in its own process,
 * aborted 15 times in 19 on Node 24.21. 13 is built on Node-API, and requires Node 22; 12 is what runs on Node 20.
 */
function sqliteDriver(): { Database: typeof BetterSqlite3; driver: string } {
  const load = createRequire(import.meta.url);
  if (Number(process.versions.node.split('.')[0]) >= 22) {
    try {
      return { Database: load('better-sqlite3-node22') as typeof BetterSqlite3, driver: 'better-sqlite3-node22' };
    } catch (error) {
      // Not installed (node_modules installed by an older Node, or npm told to omit optional dependencies): 12 it is.
      if ((error as { code?: string }).code !== 'MODULE_NOT_FOUND') throw error;
    }
  }
  return { Database: load('better-sqlite3') as typeof BetterSqlite3, driver: 'better-sqlite3' };
}

const { Database, driver } = sqliteDriver();

/** The package the store's SQLite driver was loaded from (sqliteDriver), for the tests that check which one runs. */
export const SQLITE_DRIVER = driver;

export class StoreError extends Error {
  readonly code: 'STORE_OPEN_FAILED' | 'STORE_READ_ONLY' | 'STORE_FULL' | 'STORE_CORRUPT';
  constructor(code: StoreError['code'], message: string) {
    super(message);
    this.name = 'StoreError';
    this.code = code;
  }
}

/**
 * A write that would attach something new (a grant, a session, an authorization request, a calendar) to an account
 * `delegate users remove` retired: the database refused it (the triggers of the `removed_at` migration, schema.ts).
 * Nothing was written. A server that read the account just before the removal answers as for an account that is gone.
 */
export class AccountRemovedError extends Error {
  constructor() {
    super('the account was removed');
    this.name = 'AccountRemovedError';
  }
}

/** What the `removed_at` migration's triggers say (RAISE(ABORT, …) in schema.ts), by which their refusal is known. */
const ACCOUNT_REMOVED_TRIGGER = 'the account was removed';

/** How long a registered client that nothing refers to is kept (deleteUnusedClients). */
export const UNUSED_CLIENT_KEPT_MS = 86_400_000;

/**
 * How long after it expired a refresh or access token is kept (sweep, deleteExpiredTokens): well past the
 * 5 minutes in which a call made with an access token may still be reported to the audit log.
 */
export const EXPIRED_TOKEN_KEPT_MS = 86_400_000;

/**
 * The longest an access token of this authorization server lives (DEFAULT_LIFETIMES.accessTokenSec in
 * src/authz/context.ts is this; buildAuthServer refuses a longer one). A revoked grant stays on the revocation list
 * at least this long after its revocation, whatever tokens of it were on record: one signed at that moment is
 * covered too.
 */
export const LONGEST_ACCESS_TOKEN_MS = 600_000;

/**
 * How long past its keep_until a revocation is still listed (revocationsSince), and how long past that the sweep
 * keeps its row. keep_until is the AS's clock; a resource server whose clock is behind it may still accept a token
 * the AS thinks expired, so the list names it a while longer. Deleting is for good, so the sweep waits a day: an
 * AS whose clock read a day ahead when it swept would otherwise delete rows whose tokens are still valid, and the
 * resource servers' next full sync would forget them (found in review). The rows are few; keeping them costs little.
 */
export const REVOCATION_LISTED_AFTER_EXPIRY_MS = 5 * 60_000;
export const REVOCATION_KEPT_AFTER_EXPIRY_MS = 86_400_000;

/** Rows of each token table one sweep transaction deletes at most, and how many such transactions one sweep runs. */
export const TOKEN_SWEEP_BATCH = 2_000;
const TOKEN_SWEEP_MAX_BATCHES = 1_000;

/** The size, in bytes, the -wal is cut back to when it starts again (journal_size_limit): about SQLite's own checkpoint interval of 1,000 pages. */
export const WAL_SIZE_LIMIT = 4 * 1024 * 1024;

/**
 * The sweep's delete of refresh tokens nobody can use (deleteExpiredTokens), with the cut twice and the batch's
 * limit. Whether an expired token's family still has a live one is one seek in refresh_tokens_by_family_expiry
 * (family_id, expires_at), not a walk over the family's rows (found in review, s34year: 2,000 candidates × 2,880 rows
 * of a long-lived family, a batch of 1.4 s with the event loop held).
 */
export const SWEEP_REFRESH_TOKENS = `DELETE FROM refresh_tokens WHERE rowid IN (
  SELECT r.rowid FROM refresh_tokens r WHERE r.expires_at <= ?
    AND (r.family_id IN (SELECT id FROM token_families WHERE revoked_at IS NOT NULL)
      OR NOT EXISTS (SELECT 1 FROM refresh_tokens live WHERE live.family_id = r.family_id AND live.expires_at > ?))
  LIMIT ?)`;

/** How long a statement waits for another process's lock before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

/** The schema version this build writes (the number of its migrations). */
export const CURRENT_SCHEMA_VERSION = MIGRATIONS.length;

export interface OpenOptions {
  syncFile?: SyncFile;
  setUpBefore?: readonly string[];
  now?: number;
  /**
   * Called, before anything is written, when the database is at schema `from` below this build's `to` (0: a new
   * one): throwing leaves it as it is. Found in review (s24upgrade): the new build migrated a database an older
   * `delegate serve` still ran on, which then applied its own older rules to the new schema.
   */
  beforeMigrate?: (from: number, to: number) => void;
  /** Called once this open has brought the database from schema `from` to `to`. */
  migrated?: (from: number, to: number) => void;
}

/**
 * Opens (creating if needed) the database at `path` and brings its schema up to date. `setUpBefore` names files that
 * only an installation that has run leaves beside the database (its keys, the CLI's token cache): an empty database
 * file found with one of them is refused (STORE_CORRUPT), not set up anew (see emptiedBeside).
 */
export function openSqliteStore(path: string, options: OpenOptions = {}): Store {
  let db: BetterSqlite3.Database;
  try {
    const sign = options.setUpBefore && emptiedBeside(path, options.setUpBefore);
    if (sign) throw emptiedDatabase(path, sign);
    if (path !== ':memory:') prepareFile(path);
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    // Before anything is written (the switch to WAL included): a newer delegate's database is left as it is.
    const found = db.pragma('user_version', { simple: true }) as number;
    if (found > MIGRATIONS.length) {
      db.close();
      throw newerSchema(path, found);
    }
    if (found < MIGRATIONS.length && options.beforeMigrate) {
      try {
        options.beforeMigrate(found, MIGRATIONS.length);
      } catch (reason) {
        db.close();
        throw new MigrationVetoed(reason);
      }
    }
    const wal = path !== ':memory:' && enterWalMode(db);
    // In WAL mode, NORMAL: a commit does not sync the WAL itself; every write
    // method waits, before it resolves, for a sync of the WAL run off the event
    // loop and shared by the writes around it (wal-sync.ts). So a write the
    // server has acknowledged (a code redeemed, a refresh token rotated, a grant
    // revoked) survives a power cut too, as with FULL, and a commit does not
    // stop the server for the length of a sync. (Checkpoints, about every
    // thousand pages, still sync on the thread that runs them.) A file system
    // that refuses WAL gets FULL, each commit synced by SQLite.
    db.pragma(wal ? 'synchronous = NORMAL' : 'synchronous = FULL');
    // Once a checkpoint has copied the whole WAL back, the next commit that starts it again cuts the file to this
    // size (https://www.sqlite.org/pragma.html#pragma_journal_size_limit): without it the -wal stays as large as it
    // ever grew (found in review, s34year: 18.6 MB behind a paused `delegate audit`, kept after the reader left).
    // A setting of this connection; every connection that writes opens the database here.
    if (wal) db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
    db.pragma('foreign_keys = ON');
    const from = migrate(db, path);
    if (from !== undefined) options.migrated?.(from, MIGRATIONS.length);
    // SQLite keeps the WAL beside the database file it opened, a symbolic link resolved.
    const walPath = wal ? `${String((db.pragma('database_list') as Array<{ name: string; file: string }>).find((d) => d.name === 'main')?.file)}-wal` : undefined;
    const store = new SqliteStore(db, walPath ? { path: walPath, ...(options.syncFile ? { sync: options.syncFile } : {}) } : undefined);
    if (path !== ':memory:') store.holdIdentity(path);
    // The clock is read here, where the store is opened, for the one record that may be written (its time).
    store.clearOwnerPassword(options.now ?? Date.now());
    return store;
  } catch (err) {
    if (err instanceof MigrationVetoed) throw err.reason;
    throw err instanceof StoreError ? err : asStoreError(err, path);
  }
}

/**
 * The schema version of the database at `path` as it stands now, or undefined when it cannot be read. For a command
 * that found a migration due and has since waited (refuseUpgradeWhileServed): another process may have applied it.
 * Without a -wal file everything committed is in the database file, whose header holds the version (bytes 60–63,
 * https://www.sqlite.org/fileformat2.html#user_version_number): read there, so that no -wal or -shm is left behind
 * (found in review, s28new); with one, SQLite reads it, read-only.
 */
export function schemaVersionOf(path: string): number | undefined {
  try {
    const real = realpathSync(path);
    if (!existsSync(`${real}-wal`)) {
      const header = Buffer.alloc(100);
      const fd = openSync(real, 'r');
      try {
        return readSync(fd, header, 0, 100, 0) === 100 ? header.readUInt32BE(60) : undefined;
      } finally {
        closeSync(fd);
      }
    }
    const db = new Database(path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    try {
      return db.pragma('user_version', { simple: true }) as number;
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  }
}

/** A caller's beforeMigrate threw: its error is rethrown as it is, not taken for the store's. */
class MigrationVetoed {
  constructor(readonly reason: unknown) {}
}

/**
 * Opens an existing database only to read it, for the commands that only look
 * (grants list, audit --verify…) when the data directory cannot be written: a
 * read-only disk, or a snapshot mounted read-only. Nothing is created or
 * tightened, no migration runs, and every write fails as on a read-only disk.
 * SQLite reads a WAL database on a read-only file system only while its -wal
 * and -shm are there (left by a process that did not close it); after a clean
 * close they are gone, and the database file holds everything: it is then
 * read into memory, marked as a rollback-journal database (header bytes 18
 * and 19, https://www.sqlite.org/fileformat2.html#file_format_version_numbers),
 * and opened read-only from there.
 */
export function openSqliteStoreReadOnly(path: string): Store {
  let db: BetterSqlite3.Database;
  try {
    const real = realpathSync(path);
    if (existsSync(`${real}-wal`)) {
      // Without its -shm, SQLite cannot read the -wal here, and reading the file alone would miss what is in it.
      if (!existsSync(`${real}-shm`)) {
        throw new StoreError('STORE_READ_ONLY', `The database ${path} cannot be read on a read-only disk: its -wal file is there without its -shm file.`);
      }
      db = new Database(path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
    } else {
      const image = readFileSync(real);
      if (image.length >= 100 && image[18] === 2 && image[19] === 2) image[18] = image[19] = 1;
      db = new Database(image, { readonly: true });
    }
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      db.close();
      throw newerSchema(path, version);
    }
    // A database short only of migrations that change nothing a reader relies on is read as it stands.
    if (version < READABLE_FROM_VERSION) {
      db.close();
      throw new StoreError('STORE_READ_ONLY', `The database ${path} was written by an older delegate and cannot be upgraded while it is read-only.`);
    }
    return new SqliteStore(db, undefined, path);
  } catch (err) {
    throw err instanceof StoreError ? err : asStoreError(err, path, 'read');
  }
}

/**
 * Switches a database to WAL (a no-op once it is). SQLite answers SQLITE_BUSY
 * at once, without waiting the busy timeout, when another process holds the
 * file at that moment (processes opening a new data directory together): so
 * try again, for as long as the busy timeout. Whether WAL is in use.
 */
function enterWalMode(db: BetterSqlite3.Database): boolean {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      return db.pragma('journal_mode = WAL', { simple: true }) === 'wal';
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10); // a synchronous 10 ms pause: opening is synchronous
    }
  }
}

/** A file's or directory's device and inode (a symbolic link followed), or undefined when it is not there. */
function identityOf(path: string): string | undefined {
  try {
    const { dev, ino } = statSync(path, { bigint: true });
    return `${dev}:${ino}`;
  } catch {
    return undefined;
  }
}

/** How long an empty database file is given to be set up by another process before it is taken for an emptied one. */
const EMPTY_DATABASE_WAIT_MS = 1_000;

/**
 * Which of `setUpBefore` stands beside `path` when `path` is an empty file, or undefined. Found in review (s22store): a
 * database emptied (truncated, or a copy that failed) beside the keys of an installation that had run was taken for
 * a new one: `grants list` "No active grants.", `audit --verify` "intact: 0 records", the file given a fresh schema
 * (what was left of it overwritten), and `serve` started with a new owner and key without a word. A process that
 * creates the database leaves it empty only until its first write, a moment: so a file that stays empty for
 * EMPTY_DATABASE_WAIT_MS is the emptied one, and one that fills meanwhile is another process's new database.
 */
function emptiedBeside(path: string, setUpBefore: readonly string[]): string | undefined {
  const empty = (): boolean => {
    try {
      return statSync(path).size === 0;
    } catch {
      return false; // none: a new installation
    }
  };
  if (!empty()) return undefined;
  const sign = setUpBefore.find((file) => existsSync(file));
  if (!sign) return undefined;
  const deadline = Date.now() + EMPTY_DATABASE_WAIT_MS;
  while (Date.now() < deadline) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20); // synchronous, as opening is
    if (!empty()) return undefined;
  }
  return sign;
}

function emptiedDatabase(path: string, sign: string): StoreError {
  return new StoreError(
    'STORE_CORRUPT',
    `The database ${path} is empty, yet its data directory was set up before (${basename(sign)} is there): its accounts, grants and audit log are not in it. ` +
      `Restore it from a backup, or move the directory ${dirname(path)} away to start over.`,
  );
}

function prepareFile(path: string): void {
  const dir = dirname(path);
  makeOwnDirectory(dir, 'data directory');
  tighten(dir, 0o700);
  closeSync(openSync(path, 'a', 0o600));
  tighten(path, 0o600);
  // A -wal or -shm that already exists (left by a crash, or held by another process, since
  // a looser database file) keeps its mode: SQLite sets the mode only of the ones it creates.
  // They live beside the file SQLite opens, a symbolic link resolved.
  const real = realpathSync(path);
  for (const companion of [`${real}-wal`, `${real}-shm`]) tightenIfPresent(companion);
}

/** Takes group and other permissions away from a file or directory that has any. */
function tighten(path: string, mode: number): void {
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, mode);
}

function tightenIfPresent(file: string): void {
  try {
    tighten(file, 0o600);
  } catch (err) {
    // Gone meanwhile: the last connection of another process closed and removed it.
    if ((err as { code?: unknown }).code !== 'ENOENT') throw err;
  }
}

/**
 * A database whose schema is newer than this build knows. Found in review: an older delegate (two versions side by
 * side, or a downgrade) opened and wrote such a database without a word, applying its own older rules to it.
 */
function newerSchema(path: string, version: number): StoreError {
  return new StoreError(
    'STORE_OPEN_FAILED',
    `The database ${path} was written by a newer delegate (schema ${version}; this one knows up to ${MIGRATIONS.length}): use that delegate, or another data directory (DELEGATE_HOME).`,
  );
}

/** Brings the schema up to date; the version this process migrated from, or undefined when it applied none. */
function migrate(db: BetterSqlite3.Database, path: string): number | undefined {
  // Every due migration in one IMMEDIATE transaction, the version read inside it: processes that open a new database
  // at once (serve-auth, serve-calendar, serve-agent; two `serve` started together) take turns, none applies a
  // migration another has applied, and none finds a schema half set up. Found by CI: with a transaction for each
  // migration, a second process took over a new database at schema 2 and said it had upgraded an older one.
  return db.transaction(() => {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) throw newerSchema(path, version);
    if (version >= MIGRATIONS.length) return undefined;
    for (let next = version; next < MIGRATIONS.length; next++) db.exec(MIGRATIONS[next]!);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
    return version;
  }).immediate();
}

/** Room on a disk below which an I/O error is taken for the full disk: a few of SQLite's pages and a -shm chunk (32 KiB). */
const NEARLY_FULL_BYTES = 64 * 1024;

/** Whether the file system holding `path` has (all but) no room left for this process; false when it cannot be looked at. */
function nearlyFull(path: string): boolean {
  try {
    const { bavail, bsize } = statfsSync(dirname(path));
    return bavail * bsize < NEARLY_FULL_BYTES;
  } catch {
    return false;
  }
}

/**
 * The first of the database's files (the file, its -wal and -shm) that this process may not open for `use`, with its
 * owner and mode when they can be seen, or undefined when the permissions are not what stops it.
 */
function deniedFile(path: string, use: 'read' | 'write'): { file: string; companion?: string; owner?: { uid: number; mode: number } } | undefined {
  let real = path;
  try {
    real = realpathSync(path);
  } catch {
    // Not there (or not to be resolved): its companions are looked for beside the path given.
  }
  for (const companion of [undefined, '-wal', '-shm']) {
    const file = `${real}${companion ?? ''}`;
    try {
      accessSync(file, use === 'read' ? constants.R_OK : constants.R_OK | constants.W_OK);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== 'EACCES' && code !== 'EPERM') continue;
      try {
        const { uid, mode } = statSync(file);
        return { file, ...(companion ? { companion } : {}), owner: { uid, mode: mode & 0o777 } };
      } catch {
        return { file, ...(companion ? { companion } : {}) };
      }
    }
  }
  return undefined;
}

/**
 * The store's failure as a StoreError naming the database. `use` is what the open was for: a read-only open
 * (openSqliteStoreReadOnly) that the permissions refuse cannot be read, which "cannot be written" would not say.
 */
export function asStoreError(err: unknown, path: string, use: 'read' | 'write' = 'write'): StoreError {
  const code = (err as { code?: string }).code ?? '';
  const message = err instanceof Error ? err.message : String(err);
  // SQLite says only "unable to open database file" (SQLITE_CANTOPEN), whatever the cause: when this process may not
  // open one of the database's files, permission denied is the cause, said as such. Found in review (s25faults): run
  // as another user than the one owning delegate.db, `grants list` and `audit` said "could not be used: unable to open
  // database file", where `serve-calendar` said "EACCES: permission denied".
  if (code.startsWith('SQLITE_CANTOPEN') || (use === 'read' && (code === 'EACCES' || code === 'EPERM'))) {
    const denied = deniedFile(path, use);
    if (denied !== undefined) {
      const { file, companion, owner } = denied;
      const which = companion ? ` on its ${companion} file ${file}` : '';
      const whose = owner ? ` (uid ${owner.uid} owns it, mode ${owner.mode.toString(8)}; this is uid ${process.getuid?.() ?? '?'})` : '';
      const mend = owner ? ` Run delegate as uid ${owner.uid}, or give the file to the owner of ${dirname(path)}.` : '';
      return new StoreError(use === 'read' ? 'STORE_OPEN_FAILED' : 'STORE_READ_ONLY', `The database ${path} cannot be ${use === 'read' ? 'read' : 'opened'}: permission denied${which}${whose}.${mend}`);
    }
  }
  if (code === 'SQLITE_READONLY' || code.startsWith('SQLITE_READONLY') || code === 'EROFS' || code === 'EACCES') {
    return new StoreError('STORE_READ_ONLY', `The database ${path} cannot be written (${message}).`);
  }
  // SQLITE_IOERR_SHMSIZE: no room to grow the -shm file, which a nearly full disk (8 to 32 KiB free) gives at the first
  // open or read, before any write could say SQLITE_FULL (found in review, s22store: "the disk failed"). Any other
  // I/O error with the disk (all but) full is the full disk too.
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'SQLITE_IOERR_SHMSIZE' || (code.startsWith('SQLITE_IOERR') && nearlyFull(path))) {
    return new StoreError('STORE_FULL', `The disk holding ${path} is full.`);
  }
  if (code.startsWith('SQLITE_IOERR') || code === 'EIO') {
    return new StoreError('STORE_OPEN_FAILED', `The database ${path} could not be read or written: the disk failed (${message}).`);
  }
  // The driver's native module built for another Node.js (node_modules installed, then Node.js changed, as with nvm):
  // the database is not at fault (nor named: a command that only looks may not have opened it, but one in memory), and `npm install` with this Node.js brings the driver for it (sqliteDriver). Found
  // in review (s26node): it said "The database … could not be used: The module … was compiled against a different
  // Node.js version using NODE_MODULE_VERSION 115".
  if (code === 'ERR_DLOPEN_FAILED' || /NODE_MODULE_VERSION \d+/.test(message)) {
    return new StoreError(
      'STORE_OPEN_FAILED',
      `The SQLite driver in node_modules (better-sqlite3) was built for another version of Node.js than this one (${process.version}), so no database can be opened. Run \`npm install\` again with this Node.js.`,
    );
  }
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') {
    return new StoreError(
      'STORE_CORRUPT',
      `The database ${path} is damaged or is not a delegate database. Restore it from a backup, or move the directory ${dirname(path)} away to start over.`,
    );
  }
  return new StoreError('STORE_OPEN_FAILED', `The database ${path} could not be used: ${message}`);
}

const json = (value: unknown): string => JSON.stringify(value);
const parse = <T>(value: unknown): T => JSON.parse(String(value)) as T;
const num = (value: unknown): number => Number(value);
const numOrNull = (value: unknown): number | null => (value === null || value === undefined ? null : Number(value));
const strOrNull = (value: unknown): string | null => (value === null || value === undefined ? null : String(value));

/** The account a row holds, or undefined for one retired by `users remove` (a database from before that has none). */
function liveUser(r: Row | undefined): UserRecord | undefined {
  return r === undefined || (r.removed_at !== undefined && r.removed_at !== null) ? undefined : toUser(r);
}

/** A row's account with the name it has, or, retired, the one it had (its row's name is `removed:<id>:<name>`). */
function toAccountName(r: Row): AccountName {
  const id = String(r.id);
  const removedAt = numOrNull(r.removed_at);
  const name = String(r.name);
  const retired = `removed:${id}:`;
  return { id, name: removedAt !== null && name.startsWith(retired) ? name.slice(retired.length) : name, removedAt };
}

function toUser(r: Row): UserRecord {
  return {
    id: String(r.id),
    name: String(r.name),
    passwordHash: strOrNull(r.password_hash),
    isOwner: r.is_owner === 1,
    timeZone: String(r.time_zone),
    createdAt: num(r.created_at),
  };
}

function toSigningKey(r: Row): SigningKeyRecord {
  return {
    kid: String(r.kid),
    alg: 'ES256',
    privateJwk: parse(r.private_jwk),
    publicJwk: parse(r.public_jwk),
    createdAt: num(r.created_at),
    retiredAt: numOrNull(r.retired_at),
  };
}

function toClient(r: Row): ClientRecord {
  return {
    clientId: String(r.client_id),
    clientName: strOrNull(r.client_name),
    kind: r.kind as ClientRecord['kind'],
    secretHash: strOrNull(r.secret_hash),
    redirectUris: parse(r.redirect_uris),
    grantTypes: parse(r.grant_types),
    tokenEndpointAuthMethod: r.token_endpoint_auth_method as ClientRecord['tokenEndpointAuthMethod'],
    jwks: r.jwks === null ? null : parse(r.jwks),
    resource: strOrNull(r.resource),
    metadata: parse(r.metadata),
    createdAt: num(r.created_at),
  };
}

function toResource(r: Row): ResourceRecord {
  return {
    url: String(r.url),
    name: String(r.name),
    scopes: parse(r.scopes),
    agentClientId: strOrNull(r.agent_client_id),
    downstream: parse(r.downstream),
    createdAt: num(r.created_at),
  };
}

/**
 * How a device authorization ended by its account's removal is stored: denied (the status column's CHECK allows no
 * other word, and a new one would need a migration), with its user code withdrawn as `removed:<device_code_hash>`, as
 * the sweep withdraws an expired one's (no typed code has a colon), which is how it is told from a denial.
 */
const REMOVED_ACCOUNT_USER_CODE = `'removed:' || device_code_hash`;

function toDeviceAuthorization(r: Row): DeviceAuthorizationRecord {
  const status = String(r.status) as Exclude<DeviceAuthorizationRecord['status'], 'account_removed'>;
  return {
    deviceCodeHash: String(r.device_code_hash),
    userCode: String(r.user_code),
    clientId: String(r.client_id),
    scope: String(r.scope),
    resource: String(r.resource),
    state: String(r.state),
    codeVerifier: String(r.code_verifier),
    status: status === 'denied' && String(r.user_code).startsWith('removed:') ? 'account_removed' : status,
    code: strOrNull(r.code),
    intervalSec: num(r.interval_sec),
    lastPolledAt: r.last_polled_at === null || r.last_polled_at === undefined ? null : num(r.last_polled_at),
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
  };
}

function toAuthRequest(r: Row): AuthRequestRecord {
  return {
    id: String(r.id),
    sessionHash: String(r.session_hash),
    userId: String(r.user_id),
    clientId: String(r.client_id),
    redirectUri: String(r.redirect_uri),
    redirectUriGiven: r.redirect_uri_given !== 0,
    scope: String(r.scope),
    resource: String(r.resource),
    state: strOrNull(r.state),
    codeChallenge: String(r.code_challenge),
    authorizationDetails: parse(r.authorization_details),
    calendarsShown: r.calendars_shown === undefined ? [] : parse(r.calendars_shown),
    csrfHash: String(r.csrf_hash),
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
  };
}

/** A user's active grant to a client for a resource (the latest, should there be more than one): activeGrant. */
const ACTIVE_GRANT = `SELECT * FROM grants WHERE user_id = ? AND client_id = ? AND resource = ? AND revoked_at IS NULL AND expires_at > ?
  ORDER BY created_at DESC LIMIT 1`;

/** Whether two readings of a grant agree on every limit its tokens carry or are bounded by. */
function sameLimits(a: GrantRecord, b: GrantRecord): boolean {
  return a.scope === b.scope && json(a.authorizationDetails) === json(b.authorizationDetails) && a.maxDepth === b.maxDepth && a.expiresAt === b.expiresAt;
}

function toGrant(r: Row): GrantRecord {
  return {
    id: String(r.id),
    userId: String(r.user_id),
    clientId: String(r.client_id),
    resource: String(r.resource),
    scope: String(r.scope),
    authorizationDetails: parse(r.authorization_details),
    maxDepth: num(r.max_depth),
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
    revokedAt: numOrNull(r.revoked_at),
  };
}

function toCode(r: Row): AuthCodeRecord {
  return {
    codeHash: String(r.code_hash),
    clientId: String(r.client_id),
    redirectUri: String(r.redirect_uri),
    redirectUriGiven: r.redirect_uri_given !== 0,
    codeChallenge: String(r.code_challenge),
    resource: String(r.resource),
    scope: String(r.scope),
    grantId: String(r.grant_id),
    userId: String(r.user_id),
    familyId: String(r.family_id),
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
    usedAt: numOrNull(r.used_at),
  };
}

function toRefresh(r: Row): RefreshTokenRecord {
  return {
    tokenHash: String(r.token_hash),
    familyId: String(r.family_id),
    grantId: String(r.grant_id),
    clientId: String(r.client_id),
    userId: String(r.user_id),
    resource: String(r.resource),
    scope: String(r.scope),
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
    usedAt: numOrNull(r.used_at),
  };
}

function toIssued(r: Row): IssuedTokenRecord {
  return {
    jti: String(r.jti),
    grantId: String(r.grant_id),
    familyId: strOrNull(r.family_id),
    parentJti: strOrNull(r.parent_jti),
    clientId: String(r.client_id),
    audience: String(r.audience),
    scope: String(r.scope),
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
    revokedAt: numOrNull(r.revoked_at),
  };
}

function toCalendarFeed(r: Row): CalendarFeedRecord {
  return {
    calendarId: String(r.calendar_id),
    url: String(r.url),
    body: strOrNull(r.body),
    etag: strOrNull(r.etag),
    lastModified: strOrNull(r.last_modified),
    validatorsFrom: strOrNull(r.validators_from),
    fetchedAt: numOrNull(r.fetched_at),
    changedAt: numOrNull(r.changed_at),
    checkedAt: numOrNull(r.checked_at),
    error: strOrNull(r.error),
    errorAt: numOrNull(r.error_at),
  };
}

function toCalendar(r: Row): CalendarRecord {
  return {
    id: String(r.id),
    userId: String(r.user_id),
    name: String(r.name),
    kind: r.kind as CalendarRecord['kind'],
    source: String(r.source),
    createdAt: num(r.created_at),
  };
}

function toAudit(r: Row): AuditRecord {
  return {
    seq: num(r.seq),
    at: num(r.at),
    event: String(r.event),
    user: strOrNull(r.user_id),
    client: strOrNull(r.client_id),
    grant: strOrNull(r.grant_id),
    resource: strOrNull(r.resource),
    actors: parse(r.actors),
    detail: parse(r.detail),
    prevHash: String(r.prev_hash),
    hash: String(r.hash),
  };
}

/**
 * A record as listing and verification read it: one whose actors or detail is not JSON any more is named (its
 * columns kept, its actors and detail empty), not thrown, so one such record does not hide the others.
 */
function toStoredAudit(r: Row): StoredRecord {
  try {
    return toAudit(r);
  } catch (err) {
    const unreadable = `its content cannot be read (${err instanceof Error ? err.message : String(err)}).`;
    return { seq: num(r.seq), at: num(r.at), event: String(r.event), user: strOrNull(r.user_id), client: strOrNull(r.client_id), grant: strOrNull(r.grant_id), resource: strOrNull(r.resource), actors: [], detail: {}, prevHash: String(r.prev_hash), hash: String(r.hash), unreadable };
  }
}

/**
 * Each account's latest `sign_in` record's time (accounts with none have no row), retired accounts too:
 * Store.lastSignIns. One pass over the partial index audit_log_sign_ins, which holds the sign-ins alone; on a database
 * read as it stands from before the index, one pass over the log. Found in review (s26new): a search per account, which
 * the index made cheap, cost a scan of the whole log per account without it (24.5 s for 50 accounts and 500,000
 * records read-only, against 1.3 s before).
 */
export const LAST_SIGN_INS = "SELECT user_id, MAX(at) AS at FROM audit_log WHERE event = 'sign_in' AND user_id IS NOT NULL GROUP BY user_id";

/**
 * The records' seqs that `filter`'s times bound, as SQL (`since`, `until`): from the first record in the window to the
 * last, found through the index on time (audit_log_by_time) in a read of the window's entries alone. Found in review
 * (s34year): `WHERE at >= ? ORDER BY seq` scanned the whole log (131 ms for a day of 388,748 records, 9 ms through the
 * index), and reading through the index in time order would sort every record it finds before the first is handed
 * out. The bounds are only bounds: the times are still checked on each record, so a record written while the clock
 * stood behind an earlier one's is listed exactly when it was before; a log whose early records carry times past the
 * window's start (a clock set ahead for a while) is read from the first of them, as it was read whole before.
 */
function auditTimeWindow(filter: AuditFilter, column: 'at' | '+at' = 'at'): { where: string[]; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.since !== undefined) {
    where.push(`${column} >= ?`);
    params.push(filter.since);
  }
  if (filter.until !== undefined) {
    where.push(`${column} <= ?`);
    params.push(filter.until);
  }
  return { where, params };
}

/**
 * SQL for the first (`MIN`, with `since`) or last (`MAX`, with `until`) seq of a record in `filter`'s time window, with
 * its parameters; none without that end (the log's own first or last record bounds it then). `+seq`: a MIN or MAX of
 * the key itself is read by walking the table from its end until a record matches, for a recent --since the whole log.
 */
function auditSeqBound(filter: AuditFilter, end: 'MIN' | 'MAX'): { sql: string; params: unknown[] } | undefined {
  if ((end === 'MIN' ? filter.since : filter.until) === undefined) return undefined;
  const window = auditTimeWindow(filter);
  return { sql: `SELECT ${end}(+seq) FROM audit_log WHERE ${window.where.join(' AND ')}`, params: window.params };
}

/**
 * The statement listAudit and auditPages run for `filter`, in chain order. `seqs`: only records after `seqs.after` up
 * to `seqs.upTo` (auditPages' pages, the time window's bounds read once), with at most `limit` rows; without it, the
 * time window's bounds are read by the statement itself.
 */
export function auditQuery(filter: AuditFilter, seqs?: { after: number; upTo: number; limit: number }): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (seqs) {
    where.push('seq > ?', 'seq <= ?');
    params.push(seqs.after, seqs.upTo);
  } else {
    for (const [end, op] of [['MIN', '>='], ['MAX', '<=']] as const) {
      const bound = auditSeqBound(filter, end);
      if (!bound) continue;
      where.push(`seq ${op} (${bound.sql})`);
      params.push(...bound.params);
    }
  }
  if (filter.grant !== undefined) {
    where.push('grant_id = ?');
    params.push(filter.grant);
  }
  // client_id, event and user_id have no index of their own: the scan costs about 15 ms per 100,000 records
  // (measured; reading the matching rows costs what it costs with an index too), and every index is one more write
  // for each record (a record per token issued). The one on sign-ins (audit_log_sign_ins) serves lastSignIns only.
  for (const [column, values] of [['client_id', filter.clients], ['event', filter.events]] as const) {
    if (values === undefined) continue;
    const list = values.map(() => '?').join(', ');
    // A client is also found in the records of a token handed on to it (`detail.handed_to`, only the AS writes it on
    // these two events): found in review (s33deleg), `--client helper` showed neither the hand-off nor its revocation.
    where.push(
      values.length === 0
        ? '0'
        : column === 'client_id'
          ? `(client_id IN (${list}) OR (event IN ('token_exchanged', 'token_revoked') AND json_extract(detail, '$.handed_to') IN (${list})))`
          : `${column} IN (${list})`,
    );
    params.push(...values, ...(column === 'client_id' ? values : []));
  }
  if (filter.user !== undefined) {
    where.push('user_id = ?');
    params.push(filter.user);
  }
  // `+at`: the times checked on each record read in seq order, not an index to read them by (which would sort them).
  const times = auditTimeWindow(filter, '+at');
  where.push(...times.where);
  params.push(...times.params);
  const limit = seqs ? seqs.limit : filter.limit;
  const sql = `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq${limit ? ' LIMIT ?' : ''}`;
  if (limit) params.push(limit);
  return { sql, params };
}

/**
 * What auditPages reads from, in one read: the head of the log (the last record when the listing starts) and the time
 * window's first and last records' seqs (null when no record is in it).
 */
function auditRange(filter: AuditFilter): { sql: string; params: unknown[] } {
  const columns = ['(SELECT MAX(seq) FROM audit_log) AS head'];
  const params: unknown[] = [];
  for (const [end, name] of [['MIN', 'first'], ['MAX', 'last']] as const) {
    const bound = auditSeqBound(filter, end);
    if (!bound) continue;
    columns.push(`(${bound.sql}) AS ${name}`);
    params.push(...bound.params);
  }
  return { sql: `SELECT ${columns.join(', ')}`, params };
}

/** Each of `items` as `f` makes it, one at a time. */
function* mapped<T, U>(items: Iterable<T>, f: (item: T) => U): Generator<U> {
  for (const item of items) yield f(item);
}

/**
 * The triggers that act on the audit log: on its table, or on another whose statements name it (a trigger can change
 * a table only by naming it, in any of SQLite's quotings, which all hold the name). delegate's own triggers (schema.ts)
 * are on other tables and name it nowhere.
 */
const AUDIT_LOG_TRIGGERS =
  "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND (lower(tbl_name) = 'audit_log' OR instr(lower(sql), 'audit_log') > 0) ORDER BY name";

/** An audit record as inserted: its seq, and its other columns in the INSERT's order, to read it back by (confirmKept). */
interface WrittenAudit {
  seq: number;
  event: string;
  columns: unknown[];
}

/** The database dropped or changed an audit record as it was written: the transaction fails, nothing of it is made. */
function recordNotKept(path: string, record: WrittenAudit): StoreError {
  return new StoreError(
    'STORE_CORRUPT',
    `The database ${path} did not keep the audit record it was given (record ${record.seq}, ${record.event}): something in it (a trigger, or a table ` +
      'made anew) drops or changes records as they are written, so the change it records was not made. `delegate audit --verify` names such a trigger.',
  );
}

/** An audit record ready to be written: everything but its place in the chain, serialized. */
interface PreparedAudit {
  content: Omit<AuditRecord, 'seq' | 'prevHash' | 'hash'>;
  canonical: PreparedContent;
  actorsJson: string;
  detailJson: string;
}

/** Serializes `event` for the log; throws for one that cannot be (nested too deep for JSON.stringify or canonicalJson). */
function prepareAudit(event: AuditEventInput, now: number): PreparedAudit {
  const content = {
    at: now,
    event: event.event,
    user: event.user ?? null,
    client: event.client ?? null,
    grant: event.grant ?? null,
    resource: event.resource ?? null,
    actors: event.actors ?? [],
    detail: event.detail ?? {},
  };
  return { content, canonical: prepareContent(content), actorsJson: json(content.actors), detailJson: json(content.detail) };
}

/**
 * A short digest naming one revocation row (its kind, id and time), handed out with the cursor at it: a copy of
 * the database restored from a backup numbers its next revocations again from the backup's head, and the tag
 * tells its row from the one a resource server was given at the same number (revocationsSince).
 */
function revocationTag(row: Row): string {
  return createHash('sha256').update(`${String(row.kind)}\n${String(row.id)}\n${num(row.revoked_at)}`, 'utf8').digest('base64url').slice(0, 16);
}

/** A rotation waiting for its group's transaction (SqliteStore.rotateRefreshToken). */
interface PendingRotation {
  rotate: () => RotateRefreshResult;
  resolve: (outcome: RotationOutcome) => void;
  reject: (err: unknown) => void;
}

/** A rotation carried out and committed; `synced`, for one that wrote, resolves once its commit is on disk. */
interface RotationOutcome {
  result: RotateRefreshResult;
  synced: Promise<void> | undefined;
}

/** Writes carried out later, in a group commit, and made to wait for the disk by themselves (see the constructor). */
const WAITS_ITSELF: ReadonlySet<string> = new Set(['appendAudit', 'rotateRefreshToken']);

/** Reads whose answers must not include a commit that is not yet on disk (see the constructor). */
const DURABLE_READS: ReadonlySet<string> = new Set(['revocationsSince', 'listAudit', 'verifyAudit']);

class SqliteStore implements Store {
  /**
   * Prepared statements by their SQL: preparing costs more than running most
   * of them, and a token refresh runs a dozen. The SQL is this file's (a few
   * texts vary by filter), so the bound is only a guard.
   */
  private readonly statements = new BoundedMap<string, BetterSqlite3.Statement>(256);

  /** Statements run that may have changed the database (see `run`). */
  private writes = 0;
  /** Signing-key changes this connection made (see signingKeysStamp). */
  private signingKeyWrites = 0;
  /** The WAL's sync; none for an in-memory database or one SQLite syncs itself (FULL). */
  private readonly walFile: ReturnType<typeof fileSync> | undefined;
  private readonly walSync: GroupSync | undefined;
  /** Set when a sync failed: what is on disk is then unknown, and the store refuses all work. */
  private failure: StoreError | undefined;

  /** The database's path, for messages (a database read into memory is named `:memory:` by SQLite). */
  private readonly path: string;

  constructor(
    private readonly db: BetterSqlite3.Database,
    wal?: { path: string; sync?: SyncFile },
    path?: string,
  ) {
    this.path = path ?? db.name;
    this.walFile = wal && fileSync(wal.path);
    this.walSync = wal && new GroupSync(wal.sync ?? this.walFile!);
    // Every public method is async; each one that wrote resolves only once the
    // WAL holding its commit is synced. Done here, once, so that no write
    // method can forget it. (Their bodies are synchronous: whether they wrote
    // is known when they return. appendAudit and rotateRefreshToken write
    // later, in a group commit, and wait themselves.)
    // The reads whose answers leave the process as a position to resume from
    // or as a record (the revocation list, the audit log) wait for a sync too,
    // so that they never hand out a commit that a power cut could take back.
    for (const name of Object.getOwnPropertyNames(SqliteStore.prototype)) {
      const method = (this as unknown as Record<string, unknown>)[name];
      if (typeof method !== 'function' || method.constructor.name !== 'AsyncFunction' || WAITS_ITSELF.has(name)) continue;
      const barrier = DURABLE_READS.has(name);
      Object.defineProperty(this, name, {
        configurable: true,
        writable: true,
        value: (...args: unknown[]) => {
          if (this.failure) return Promise.reject(this.failure);
          const before = this.writes;
          const result = (method as (...a: unknown[]) => Promise<unknown>).apply(this, args);
          if (this.writes === before && !barrier) return result;
          return Promise.all([result, this.durable()]).then(([value]) => value);
        },
      });
    }
    // Should a build ever turn async methods into something else, fail here rather than acknowledge writes early.
    for (const name of ['redeemAuthCode', 'revokeGrant', 'revocationsSince']) {
      if (!Object.hasOwn(this, name)) throw new Error(`SqliteStore.${name} is not an async function: writes could not be made to wait for the disk.`);
    }
  }

  /** Resolves once every commit made so far, by any connection, is on disk. */
  private durable(): Promise<void> {
    if (!this.walSync) return Promise.resolve();
    return this.walSync.settled().catch((err: unknown) => {
      // After a failed fdatasync the kernel may have dropped the pages it could not write, and
      // reports that once: later syncs would succeed over a WAL with a hole in it. Stop here.
      const cause = err instanceof Error ? err.message : String(err);
      this.failure ??= new StoreError(
        'STORE_OPEN_FAILED',
        `The database ${this.path} could not be written to disk (${cause}); the last change may or may not be there. ` +
          'Nothing more is read or written until delegate is restarted.',
      );
      throw this.failure;
    });
  }

  /** The device and inode of the database file and of its directory as opened (see replacedOnDisk); none in memory. */
  private identity: { path: string; file: string; directory: string } | undefined;

  /** Notes what `path` (the file opened) and its directory are, for replacedOnDisk. */
  holdIdentity(path: string): void {
    const file = identityOf(path);
    const directory = identityOf(dirname(path));
    if (file && directory) this.identity = { path, file, directory };
  }

  replacedOnDisk(): boolean {
    if (!this.identity) return false;
    const { path, file, directory } = this.identity;
    return identityOf(path) !== file || identityOf(dirname(path)) !== directory;
  }

  close(): void {
    if (this.pendingRotations.length > 0 && this.db.open) this.flushRotations();
    if (this.pendingAudit.length > 0 && this.db.open) this.flushAudit();
    // A sync still under way finishes on its own handle (closing the last connection checkpoints and syncs, then removes the WAL).
    if (this.db.open) this.db.close();
    this.walFile?.close().catch(() => undefined);
  }

  private prepared(sql: string): BetterSqlite3.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  private run(sql: string, params: Row | unknown[] = {}): BetterSqlite3.RunResult {
    this.writes++;
    return this.guarded(() => this.prepared(sql).run(params as never));
  }

  /** A full disk, a read-only or failing file system, a damaged file: a StoreError naming the database, not SQLite's bare words. */
  private guarded<T>(op: () => T): T {
    try {
      return op();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && /^SQLITE_(FULL|READONLY|IOERR|CORRUPT|NOTADB|CANTOPEN)/.test(code)) throw asStoreError(err, this.path);
      // Found in review (s26): an Approve that raced `users remove` was a JSON 500 with SQLite's words in the log.
      if (code === 'SQLITE_CONSTRAINT_TRIGGER' && (err as Error).message === ACCOUNT_REMOVED_TRIGGER) throw new AccountRemovedError();
      throw err;
    }
  }

  // Reads are guarded as writes are: a damaged page is found by the read that reaches it (found in review, s25faults:
  // `calendar list`, `agents list` and `audit` on a database whose table was damaged printed SQLite's bare "database
  // disk image is malformed", where opening it elsewhere named the file).
  private get(sql: string, params: Row | unknown[] = {}): Row | undefined {
    return this.guarded(() => this.prepared(sql).get(params as never) as Row | undefined);
  }

  private all(sql: string, params: Row | unknown[] = {}): Row[] {
    return this.guarded(() => this.prepared(sql).all(params as never) as Row[]);
  }

  /** A statement's rows one at a time, each step guarded: a damaged page is met while stepping, not when the statement starts. */
  private *guardedRows(start: () => IterableIterator<Row>): Generator<Row> {
    const rows = this.guarded(start);
    try {
      for (;;) {
        const step = this.guarded(() => rows.next());
        if (step.done) return;
        yield step.value;
      }
    } finally {
      // Left early (a page handed out was the last wanted, or a break found): the statement is let go.
      rows.return?.();
    }
  }

  /**
   * Runs `fn` as one IMMEDIATE transaction (the write lock taken up front, so two processes cannot interleave). The
   * audit records it wrote are read back before it commits: a change commits only with its record there as written.
   */
  private atomically<T>(fn: () => T): T {
    return this.guarded(() =>
      this.db
        .transaction((): T => {
          // Inside another (a savepoint): the outermost reads back, once everything of it is written.
          if (this.recordsWritten !== undefined) return fn();
          this.recordsWritten = [];
          try {
            const result = fn();
            for (const record of this.recordsWritten) this.confirmKept(record);
            return result;
          } finally {
            this.recordsWritten = undefined;
          }
        })
        .immediate(),
    );
  }

  /** The audit records the transaction under way (atomically) wrote, read back before it commits; none outside one. */
  private recordsWritten: WrittenAudit[] | undefined;

  /** Audit records waiting for the next group commit (see appendAudit). */
  private pendingAudit: Array<{ event: AuditEventInput; now: number; resolve: (r: AuditRecord) => void; reject: (e: unknown) => void }> = [];

  /**
   * Batched: records appended in the same turn of the event loop are written
   * together in one transaction on the next turn, and each promise resolves
   * only once its record is durable (the WAL synced, shared with the other
   * writes of the moment). One transaction and one sync for many tool calls.
   */
  async appendAudit(event: AuditEventInput, now: number): Promise<AuditRecord> {
    if (this.failure) throw this.failure;
    return new Promise<AuditRecord>((resolve, reject) => {
      this.pendingAudit.push({ event, now, resolve, reject });
      if (this.pendingAudit.length === 1) setImmediate(() => this.flushAudit());
    });
  }

  private flushAudit(): void {
    const batch = this.pendingAudit;
    this.pendingAudit = [];
    if (batch.length === 0) return;
    // Each record is serialized and hashed (but for its place in the chain) before the transaction:
    // one that cannot be (nested too deep to write) is refused alone, and the others are written.
    // Found in review: one such report rolled back a whole group, a grant_revoked record among it.
    const ready: Array<{ p: (typeof batch)[number]; row: PreparedAudit }> = [];
    for (const p of batch) {
      try {
        ready.push({ p, row: prepareAudit(p.event, p.now) });
      } catch (err) {
        p.reject(err);
      }
    }
    if (ready.length === 0) return;
    let records: AuditRecord[];
    try {
      records = this.atomically(() => ready.map(({ row }) => this.insertAudit(row)));
    } catch (err) {
      for (const { p } of ready) p.reject(err);
      return;
    }
    this.durable().then(
      () => ready.forEach(({ p }, i) => p.resolve(records[i]!)),
      (err: unknown) => ready.forEach(({ p }) => p.reject(err)),
    );
  }

  /** Appends one record to the hash chain; call inside a transaction (a record that cannot be written throws, failing it). */
  private appendAuditNow(event: AuditEventInput, now: number): AuditRecord {
    return this.insertAudit(prepareAudit(event, now));
  }

  /**
   * Writes a prepared record at the chain's head; call inside a transaction. Throws, failing it, unless the record is
   * written and stays as written until it commits. Found in review (s33audit): a trigger added to audit_log by someone
   * who can write delegate.db (BEFORE INSERT … RAISE(IGNORE), or AFTER INSERT … DELETE the new row) let `grants
   * revoke` revoke with no record, its seq reused by the next one, and the chain intact.
   */
  private insertAudit(row: PreparedAudit): AuditRecord {
    const last = this.get('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1');
    const seq = last ? num(last.seq) + 1 : 1;
    const prevHash = last ? String(last.hash) : GENESIS_HASH;
    const hash = preparedHash(prevHash, seq, row.canonical);
    const { content } = row;
    const written: WrittenAudit = {
      seq,
      event: content.event,
      columns: [content.at, content.event, content.user, content.client, content.grant, content.resource, row.actorsJson, row.detailJson, prevHash, hash],
    };
    const { changes } = this.run(
      `INSERT INTO audit_log (seq, at, event, user_id, client_id, grant_id, resource, actors, detail, prev_hash, hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [seq, ...written.columns],
    );
    // None inserted: a trigger's RAISE(IGNORE), an INSTEAD OF trigger on a view put in its place, or an ON CONFLICT
    // IGNORE on a table made anew, any of which a plain INSERT would otherwise take in silence.
    if (changes !== 1) throw recordNotKept(this.path, written);
    // An AFTER INSERT trigger, or one on a table written later in the transaction, may still take it out or change it.
    if (this.recordsWritten) this.recordsWritten.push(written);
    else this.confirmKept(written);
    return { seq, ...content, prevHash, hash };
  }

  /** Throws unless `record` is in the log as it was written (every column, by the primary key: one lookup). */
  private confirmKept(record: WrittenAudit): void {
    const kept = this.get(
      `SELECT 1 AS kept FROM audit_log WHERE seq = ? AND at IS ? AND event IS ? AND user_id IS ? AND client_id IS ? AND grant_id IS ?
         AND resource IS ? AND actors IS ? AND detail IS ? AND prev_hash IS ? AND hash IS ?`,
      [record.seq, ...record.columns],
    );
    if (!kept) throw recordNotKept(this.path, record);
  }

  async listAudit(filter: AuditFilter = {}): Promise<StoredRecord[]> {
    const { sql, params } = auditQuery(filter);
    return this.all(sql, params).map(toStoredAudit);
  }

  /**
   * listAudit's records, handed out `pageSize` at a time: a log of millions is never held whole (found in review, s24:
   * `audit --json` held every record, 2.9 GB and "Invalid string length" at 1,000,000). Each page is a read of its
   * own, of the records after the last one handed out: no snapshot is held between pages, so a listing its reader has
   * paused (`delegate audit | less`) does not stop checkpoints from starting the WAL again. Found in review (s34year):
   * read through one statement, it did, and with `serve` running the -wal grew to 18.6 MB (4.1 MB without the
   * reader). The listing is still the one a single snapshot taken at its start gives: records are only ever appended,
   * with seqs after the head it reads first, and no page reads past that head.
   */
  async *auditPages(filter: AuditFilter = {}, pageSize = 1000): AsyncGenerator<StoredRecord[]> {
    // An async generator is not wrapped by the constructor: the failure and the sync barrier of a durable read, here.
    if (this.failure) throw this.failure;
    await this.durable();
    const range = auditRange(filter);
    const bounds = this.get(range.sql, range.params);
    if (!bounds || bounds.head === null || bounds.first === null) return;
    let after = bounds.first === undefined ? 0 : num(bounds.first) - 1;
    const upTo = bounds.last === undefined ? num(bounds.head) : num(bounds.last);
    const size = Math.max(1, Math.floor(pageSize));
    let left = filter.limit ? filter.limit : Infinity;
    while (after < upTo && left > 0) {
      if (this.failure) throw this.failure;
      const { sql, params } = auditQuery(filter, { after, upTo, limit: Math.min(size, left) });
      const page = this.all(sql, params).map(toStoredAudit);
      if (page.length === 0) return;
      yield page;
      after = page[page.length - 1]!.seq;
      left -= page.length;
    }
  }

  async verifyAudit(keptHead?: string): Promise<ChainVerdict> {
    // Record by record (found in review, s24: every record held, 1.67 GB at 1,000,000); a break's predecessor is
    // looked up by its hash (a scan, once: the check stops at the first break), the last of equal hashes as the
    // whole-list check took it.
    const rows = this.guardedRows(() => this.prepared('SELECT * FROM audit_log ORDER BY seq').iterate() as IterableIterator<Row>);
    const byHash = (hash: string) => {
      const r = this.get('SELECT seq, prev_hash, hash FROM audit_log WHERE hash = ? ORDER BY seq DESC LIMIT 1', [hash]);
      return r && { seq: num(r.seq), prevHash: String(r.prev_hash), hash: String(r.hash) };
    };
    // Any trigger that names the audit log, which delegate makes none of, is tampering the chain cannot show (found in
    // review, s33audit: one dropped every grant_revoked record as it was written, and the chain stayed intact).
    const triggers = this.all(AUDIT_LOG_TRIGGERS).map((r): AuditTrigger => ({ name: String(r.name), sql: String(r.sql ?? '') }));
    return withAuditTriggers(verifyChainOf(mapped(rows, toStoredAudit), keptHead, byHash), triggers);
  }

  async revocationsSince(cursor: number, now: number, limit?: number): Promise<RevocationPage> {
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) throw new RangeError('revocationsSince: limit must be a positive integer');
    // One read transaction, so both reads see the same snapshot (WAL: a reader keeps the snapshot of its
    // first read until it ends). Read apart, another process (`delegate grants revoke`, a second AS) could
    // commit between them, and the cursor would pass rows this page does not hold: a resource server
    // polling from it would never be sent them. A range of the primary key (seq is the rowid), read at most
    // `limit` + 1 rows far in listed rows: one more than a page tells whether there is more.
    const [rows, head, atCursor] = this.guarded(() =>
      this.db.transaction(() => {
        const rows = this.all('SELECT seq, kind, id, revoked_at, keep_until FROM revocations WHERE seq > ? AND keep_until > ? ORDER BY seq LIMIT ?', [
          cursor,
          now - REVOCATION_LISTED_AFTER_EXPIRY_MS,
          limit === undefined ? -1 : limit + 1,
        ]);
        const head = this.get('SELECT seq FROM sqlite_sequence WHERE name = ?', ['revocations']);
        const headSeq = head ? num(head.seq) : 0;
        const at = (seq: number) => (seq > 0 ? this.get('SELECT kind, id, revoked_at FROM revocations WHERE seq = ?', [seq]) : undefined);
        return [rows, { seq: headSeq, row: at(headSeq) }, at(cursor)] as const;
      })(),
    );
    // With more rows than a page, the cursor is the page's last row's, so that the next page starts after it.
    const more = limit !== undefined && rows.length > limit;
    const listed = more ? rows.slice(0, limit) : rows;
    const end = more ? { seq: num(listed[listed.length - 1]!.seq), row: listed[listed.length - 1] } : head;
    const expiresAt: Record<string, number> = {};
    for (const r of listed) expiresAt[String(r.id)] = Math.max(expiresAt[String(r.id)] ?? 0, Math.ceil(num(r.keep_until) / 1000));
    return {
      cursor: end.seq,
      ...(end.row ? { tag: revocationTag(end.row) } : {}),
      ...(atCursor ? { sinceTag: revocationTag(atCursor) } : {}),
      grants: listed.filter((r) => r.kind === 'grant').map((r) => String(r.id)),
      tokens: listed.filter((r) => r.kind === 'token').map((r) => String(r.id)),
      keys: listed.filter((r) => r.kind === 'key').map((r) => String(r.id)),
      expiresAt,
      more,
    };
  }

  async revocationHead(): Promise<number> {
    const head = this.get('SELECT seq FROM sqlite_sequence WHERE name = ?', ['revocations']);
    return head ? num(head.seq) : 0;
  }

  async signingKeys(): Promise<SigningKeyRecord[]> {
    return this.all('SELECT * FROM signing_keys ORDER BY created_at DESC').map(toSigningKey);
  }

  async addSigningKeyIfNone(key: SigningKeyRecord, record?: AuditEventInput): Promise<SigningKeyRecord> {
    // The look and the write in one IMMEDIATE transaction: the first `serve` and an `agents register` (which takes no
    // start lock) on a new data directory each found no key and each added one, so two were current (found in review,
    // s28race), and a statement signed with one failed the check against the other (statementKey, "current key only").
    const current = this.atomically(() => {
      const row = this.get('SELECT * FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1');
      if (row) return toSigningKey(row);
      this.insertSigningKey(key);
      if (record) this.appendAuditNow(record, key.createdAt);
      return undefined;
    });
    if (current) return current;
    this.signingKeyWrites++;
    return key;
  }

  private insertSigningKey(key: SigningKeyRecord): void {
    this.run(
      'INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at, retired_at) VALUES (?, ?, ?, ?, ?, ?)',
      [key.kid, key.alg, json(key.privateJwk), json(key.publicJwk), key.createdAt, key.retiredAt],
    );
  }

  async rotateSigningKey(rotation: SigningKeyRotation): Promise<boolean> {
    const done = this.atomically(() => {
      const current = this.all('SELECT kid FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC');
      if (current.length === 0 || String(current[0]!.kid) !== rotation.previousKid) return false;
      // Every agent's statement must still be the one the rotation re-signed: an agent registered in between
      // (signed with the old key) would otherwise be left with a statement no key verifies.
      const agents = this.all("SELECT client_id, json_extract(metadata, '$.agent_statement') AS statement FROM clients WHERE kind = 'agent'");
      const prepared = new Map(rotation.statements.map((s) => [s.clientId, s]));
      if (agents.length !== prepared.size) return false;
      for (const a of agents) {
        const p = prepared.get(String(a.client_id));
        if (!p || (a.statement === null ? null : String(a.statement)) !== p.before) return false;
      }
      // A leak withdraws every key there is, not only the current one: a key a routine rotation retired minutes
      // earlier is still published, and may be the one that leaked (found in review).
      if (rotation.withdraw) {
        // Listed for the resource servers, which may hold a copy of the JWKS that still publishes them.
        const listedUntil = Math.max(rotation.withdrawnListedUntil ?? rotation.at, rotation.at + 1);
        for (const k of this.all('SELECT kid FROM signing_keys')) {
          this.run('INSERT INTO revocations (kind, id, revoked_at, keep_until) VALUES (?, ?, ?, ?)', ['key', String(k.kid), rotation.at, listedUntil]);
        }
        this.run('DELETE FROM signing_keys');
      }
      this.run('UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL', [rotation.at]);
      this.insertSigningKey({ ...rotation.next, retiredAt: null });
      for (const s of rotation.statements) {
        if (s.after === s.before || s.after === null) continue;
        this.run("UPDATE clients SET metadata = json_set(metadata, '$.agent_statement', ?) WHERE client_id = ?", [s.after, s.clientId]);
      }
      this.appendAuditNow(rotation.record, rotation.at);
      return true;
    });
    if (done) this.signingKeyWrites++;
    return done;
  }

  private dataVersion: BetterSqlite3.Statement | undefined;

  async signingKeysStamp(): Promise<string> {
    // PRAGMA data_version changes when another connection (another process: `delegate keys rotate`) commits;
    // the counter, when this connection wrote the keys. A false alarm only costs a re-read of a small table.
    // Prepared once: asked before every signature and token check.
    this.dataVersion ??= this.db.prepare('PRAGMA data_version').pluck();
    const statement = this.dataVersion;
    const version = this.guarded(() => statement.get());
    return `${String(version)}:${this.signingKeyWrites}`;
  }

  async createUser(user: UserRecord, record?: { event: AuditEventInput; at: number }): Promise<void> {
    const { id, name, passwordHash, isOwner, timeZone, createdAt } = user;
    this.recorded(() => this.run('INSERT INTO users (id, name, password_hash, is_owner, time_zone, created_at) VALUES (?, ?, ?, ?, ?, ?)', [id, name, passwordHash, isOwner ? 1 : 0, timeZone, createdAt]), record);
  }

  /** Runs `write` and appends `record` (when given) in the same transaction: the change never off the audit log. */
  private recorded(write: () => void, record: { event: AuditEventInput; at: number } | undefined): void {
    this.atomically(() => {
      write();
      if (record) this.appendAuditNow(record.event, record.at);
    });
  }

  // Every lookup passes over a retired account (liveUser): its id is no one's any more, and its row's name (with a
  // colon, which no name has) is no one's. Checked on the row rather than in SQL, so that a read-only copy of a
  // database from before `users remove` (no removed_at column) still reads.
  async userById(id: string): Promise<UserRecord | undefined> {
    return liveUser(this.get('SELECT * FROM users WHERE id = ?', [id]));
  }

  async userByName(name: string): Promise<UserRecord | undefined> {
    return liveUser(this.get('SELECT * FROM users WHERE name = ?', [name]));
  }

  async userByNameIgnoringCase(name: string): Promise<UserRecord | undefined> {
    // NOCASE folds ASCII letters only, as the name rule allows only those (users.ts).
    return this.all('SELECT * FROM users WHERE name = ? COLLATE NOCASE ORDER BY created_at, name', [name]).map(liveUser).find((u) => u !== undefined);
  }

  async ownerUser(): Promise<UserRecord | undefined> {
    return liveUser(this.get('SELECT * FROM users WHERE is_owner = 1'));
  }

  async listUsers(): Promise<UserRecord[]> {
    return this.all('SELECT * FROM users ORDER BY created_at, name').flatMap((r) => liveUser(r) ?? []);
  }

  async removeUser(
    userId: string,
    now: number,
    records: { grant: (grant: GrantRecord) => AuditEventInput; removal: (removal: UserRemoval) => AuditEventInput },
  ): Promise<UserRemoval | undefined> {
    // Securely, as removeCalendar: a feed's URL is the secret of a private address, and its copy the user's calendar.
    const removal = this.securelyDeleting(() =>
      this.atomically((): UserRemoval | undefined => {
        const row = this.get('SELECT * FROM users WHERE id = ? AND is_owner = 0', [userId]);
        const user = liveUser(row);
        if (!row || !user) return undefined;
        // Every live grant, as `grants revoke` revokes one: its families and tokens, and listed for the resource servers.
        const grantsRevoked: string[] = [];
        for (const grant of this.all('SELECT * FROM grants WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at, id', [userId, now]).map(toGrant)) {
          if (!this.revokeGrantNow(grant.id, now, 'the account was removed')) continue;
          this.appendAuditNow(records.grant(grant), now);
          grantsRevoked.push(grant.id);
        }
        const sessionsEnded = this.run('DELETE FROM sessions WHERE user_id = ?', [userId]).changes;
        this.run('DELETE FROM auth_requests WHERE user_id = ?', [userId]);
        this.endDevicesApprovedBy(userId, now);
        const calendarsRemoved = this.all('SELECT name FROM calendars WHERE user_id = ? ORDER BY created_at, name', [userId]).map((c) => String(c.name));
        this.run('DELETE FROM calendars WHERE user_id = ?', [userId]); // their feeds' copies go with them (ON DELETE CASCADE)
        this.run('UPDATE users SET name = ?, password_hash = NULL, removed_at = ? WHERE id = ?', [`removed:${userId}:${user.name}`, now, userId]);
        // The account that held the name in users_name_nocase gone, the oldest one left of its case group (marked
        // case_duplicate by the migration that added the index) takes its place there, so that the name stays taken.
        if (row.case_duplicate === 0) {
          this.run(
            `UPDATE users SET case_duplicate = 0 WHERE id = (
               SELECT id FROM users WHERE name = ? COLLATE NOCASE AND case_duplicate = 1 AND removed_at IS NULL ORDER BY created_at, name LIMIT 1)`,
            [user.name],
          );
        }
        const done: UserRemoval = { user, grantsRevoked, sessionsEnded, calendarsRemoved };
        this.appendAuditNow(records.removal(done), now);
        return done;
      }),
    );
    if (removal) this.checkpointAway();
    return removal;
  }

  /**
   * Ends (account_removed) the device authorizations `userId` approved whose code is not yet redeemed, the browser at
   * /device/done or not; call inside removeUser's transaction. A device's code is the one whose PKCE challenge is its
   * verifier's (device.ts makes the request with it): a code of the account's, unused, for the device's client.
   */
  private endDevicesApprovedBy(userId: string, now: number): void {
    const codes = new Set(this.all('SELECT client_id, code_challenge FROM auth_codes WHERE user_id = ? AND used_at IS NULL', [userId]).map((c) => `${String(c.client_id)} ${String(c.code_challenge)}`));
    if (codes.size === 0) return;
    for (const device of this.all(`SELECT device_code_hash, client_id, code_verifier FROM device_authorizations WHERE status = 'approved' AND expires_at > ?`, [now])) {
      const challenge = createHash('sha256').update(String(device.code_verifier)).digest('base64url');
      if (codes.has(`${String(device.client_id)} ${challenge}`)) {
        this.run(`UPDATE device_authorizations SET status = 'denied', code = NULL, user_code = ${REMOVED_ACCOUNT_USER_CODE} WHERE device_code_hash = ?`, [device.device_code_hash]);
      }
    }
  }

  async listAccountNames(): Promise<Array<UserRecord & AccountName>> {
    return this.all('SELECT * FROM users ORDER BY created_at, name').map((r) => ({ ...toUser(r), ...toAccountName(r) }));
  }

  async lastSignIns(): Promise<Map<string, number>> {
    // One pass over audit_log_sign_ins, or over the log on a database read as it stands from before it (LAST_SIGN_INS).
    return new Map(this.all(LAST_SIGN_INS).map((r) => [String(r.user_id), num(r.at)] as const));
  }

  async updateUser(userId: string, changes: { timeZone: string }, record?: { event: AuditEventInput; at: number }): Promise<void> {
    this.recorded(() => this.run('UPDATE users SET time_zone = ? WHERE id = ?', [changes.timeZone, userId]), record);
  }

  async setPassword(userId: string, changes: { passwordHash: string; timeZone?: string }, record?: { event: AuditEventInput; at: number }): Promise<void> {
    this.recorded(() => {
      this.run('UPDATE users SET password_hash = ? WHERE id = ?', [changes.passwordHash, userId]);
      if (changes.timeZone !== undefined) this.run('UPDATE users SET time_zone = ? WHERE id = ?', [changes.timeZone, userId]);
      this.run('DELETE FROM sessions WHERE user_id = ?', [userId]);
    }, record);
  }

  /**
   * Takes away a password the local owner has: it signs in with `delegate login` and has none, and one given by an
   * earlier `users add <owner> --replace` (before addUser refused it, s23accounts) was a second way in nobody asked
   * for. Run as the store opens. The password, the owner's password sessions and a `password_cleared` record, in one
   * transaction; nothing is written when the owner has none.
   */
  clearOwnerPassword(now: number): void {
    const owner = this.get('SELECT id, name FROM users WHERE is_owner = 1 AND password_hash IS NOT NULL');
    if (!owner) return;
    this.atomically(() => {
      // Another process opening the store at the same moment may have cleared it first: then nothing is recorded twice.
      if (this.run('UPDATE users SET password_hash = NULL WHERE id = ? AND password_hash IS NOT NULL', [owner.id]).changes === 0) return;
      this.run("DELETE FROM sessions WHERE user_id = ? AND signed_in_by = 'password'", [owner.id]);
      this.appendAuditNow({ event: 'password_cleared', user: String(owner.id), detail: { by: 'upgrade', name: String(owner.name) } }, now);
    });
  }

  async createClient(c: ClientRecord, record?: { event: AuditEventInput; at: number }): Promise<void> {
    this.recorded(() => this.insertClient(c), record);
  }

  async updateClient(c: ClientRecord, record?: { event: AuditEventInput; at: number }): Promise<void> {
    this.recorded(() => this.writeClient(c), record);
  }

  private insertClient(c: ClientRecord): void {
    this.run(
      `INSERT INTO clients (client_id, client_name, kind, secret_hash, redirect_uris, grant_types, token_endpoint_auth_method, jwks, resource, metadata, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [c.clientId, c.clientName, c.kind, c.secretHash, json(c.redirectUris), json(c.grantTypes), c.tokenEndpointAuthMethod,
        c.jwks === null ? null : json(c.jwks), c.resource, json(c.metadata), c.createdAt],
    );
  }

  private writeClient(c: ClientRecord): void {
    this.run(
      `UPDATE clients SET client_name = ?, kind = ?, secret_hash = ?, redirect_uris = ?, grant_types = ?, token_endpoint_auth_method = ?,
         jwks = ?, resource = ?, metadata = ? WHERE client_id = ?`,
      [c.clientName, c.kind, c.secretHash, json(c.redirectUris), json(c.grantTypes), c.tokenEndpointAuthMethod,
        c.jwks === null ? null : json(c.jwks), c.resource, json(c.metadata), c.clientId],
    );
  }

  async saveAgent(agent: AgentSave, now: number): Promise<string[]> {
    return this.atomically(() => {
      const { client, resource, movedFrom, record } = agent;
      if (this.get('SELECT 1 AS found FROM clients WHERE client_id = ?', [client.clientId])) this.writeClient(client);
      else this.insertClient(client);
      this.writeResource(resource);
      const revoked: string[] = [];
      // Only the record still bound to this agent: one that is not (left by an older version) is not its to remove.
      if (movedFrom && this.run('DELETE FROM resources WHERE url = ? AND agent_client_id = ?', [movedFrom.url, client.clientId]).changes > 0) {
        const live = this.all('SELECT * FROM grants WHERE resource = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at, id', [movedFrom.url, now]).map(toGrant);
        for (const grant of live) {
          if (!this.revokeGrantNow(grant.id, now, movedFrom.reason)) continue;
          this.appendAuditNow(movedFrom.grantRecord(grant), now);
          revoked.push(grant.id);
        }
      }
      if (record) this.appendAuditNow(record(revoked), now);
      return revoked;
    });
  }

  async clientById(clientId: string): Promise<ClientRecord | undefined> {
    const r = this.get('SELECT * FROM clients WHERE client_id = ?', [clientId]);
    return r && toClient(r);
  }

  async listClients(kind?: ClientKind): Promise<ClientRecord[]> {
    return (kind ? this.all('SELECT * FROM clients WHERE kind = ? ORDER BY created_at', [kind]) : this.all('SELECT * FROM clients ORDER BY created_at')).map(toClient);
  }

  async upsertResource(res: ResourceRecord): Promise<void> {
    this.writeResource(res);
  }

  private writeResource(res: ResourceRecord): void {
    this.run(
      `INSERT INTO resources (url, name, scopes, agent_client_id, downstream, created_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (url) DO UPDATE SET name = excluded.name, scopes = excluded.scopes,
         agent_client_id = excluded.agent_client_id, downstream = excluded.downstream`,
      [res.url, res.name, json(res.scopes), res.agentClientId, json(res.downstream), res.createdAt],
    );
  }

  async resourceByUrl(url: string): Promise<ResourceRecord | undefined> {
    const r = this.get('SELECT * FROM resources WHERE url = ?', [url]);
    return r && toResource(r);
  }

  async listResources(): Promise<ResourceRecord[]> {
    return this.all('SELECT * FROM resources ORDER BY url').map(toResource);
  }

  async createSession(s: SessionRecord): Promise<void> {
    this.insertSession(s);
  }

  async startPasswordSession(s: SessionRecord, password: { verified: string; upgraded?: string }, record: { event: AuditEventInput; at: number }): Promise<boolean> {
    return this.atomically(() => {
      // The hash checked is still the account's (one UPDATE, in this transaction): written back as it is, or as the
      // upgraded one. A password set meanwhile (setPassword) ended the account's sessions; this one must not outlive it.
      const params = [password.upgraded ?? password.verified, s.userId, password.verified];
      if (this.run('UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?', params).changes === 0) return false;
      this.insertSession(s);
      this.appendAuditNow(record.event, record.at);
      return true;
    });
  }

  private insertSession(s: SessionRecord): void {
    this.run('INSERT INTO sessions (id_hash, user_id, created_at, expires_at, bound_request_hash, signed_in_by) VALUES (?, ?, ?, ?, ?, ?)', [
      s.idHash,
      s.userId,
      s.createdAt,
      s.expiresAt,
      s.boundRequestHash,
      s.signedInBy,
    ]);
  }

  async sessionByHash(idHash: string, now: number): Promise<SessionRecord | undefined> {
    const r = this.get('SELECT * FROM sessions WHERE id_hash = ? AND expires_at > ?', [idHash, now]);
    return (
      r && {
        idHash: String(r.id_hash),
        userId: String(r.user_id),
        createdAt: num(r.created_at),
        expiresAt: num(r.expires_at),
        boundRequestHash: String(r.bound_request_hash),
        signedInBy: r.signed_in_by === 'owner_link' || r.signed_in_by === 'owner_approval' ? r.signed_in_by : 'password',
      }
    );
  }

  async deleteSession(idHash: string): Promise<boolean> {
    return this.run('DELETE FROM sessions WHERE id_hash = ?', [idHash]).changes > 0;
  }

  async useOnce(id: string, expiresAt: number, now: number): Promise<boolean> {
    return this.atomically(() => {
      this.run('DELETE FROM used_once WHERE id = ? AND expires_at <= ?', [id, now]);
      return this.run('INSERT OR IGNORE INTO used_once (id, expires_at) VALUES (?, ?)', [id, expiresAt]).changes === 1;
    });
  }

  async usedAlready(id: string, now: number): Promise<boolean> {
    return this.get('SELECT 1 AS found FROM used_once WHERE id = ? AND expires_at > ?', [id, now]) !== undefined;
  }

  async createAuthRequest(a: AuthRequestRecord): Promise<void> {
    this.run(
      `INSERT INTO auth_requests (id, session_hash, user_id, client_id, redirect_uri, redirect_uri_given, scope, resource, state, code_challenge, authorization_details, calendars_shown, csrf_hash, created_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [a.id, a.sessionHash, a.userId, a.clientId, a.redirectUri, a.redirectUriGiven === false ? 0 : 1, a.scope, a.resource, a.state, a.codeChallenge, json(a.authorizationDetails), json(a.calendarsShown), a.csrfHash, a.createdAt, a.expiresAt],
    );
  }

  async authRequestById(id: string, now: number): Promise<AuthRequestRecord | undefined> {
    const r = this.get('SELECT * FROM auth_requests WHERE id = ? AND expires_at > ?', [id, now]);
    return r && toAuthRequest(r);
  }

  async takeAuthRequest(id: string, now: number): Promise<AuthRequestRecord | undefined> {
    return this.atomically(() => {
      const r = this.get('SELECT * FROM auth_requests WHERE id = ? AND expires_at > ?', [id, now]);
      if (!r) return undefined;
      this.run('DELETE FROM auth_requests WHERE id = ?', [id]);
      return toAuthRequest(r);
    });
  }

  async takeDeviceAuthRequest(id: string, now: number, decision: 'approve' | 'deny'): Promise<AuthRequestRecord | undefined> {
    return this.atomically(() => {
      const r = this.get('SELECT * FROM auth_requests WHERE id = ? AND expires_at > ?', [id, now]);
      if (!r) return undefined;
      const request = toAuthRequest(r);
      const device = this.get('SELECT status FROM device_authorizations WHERE state = ? AND client_id = ? AND expires_at > ?', [request.state, request.clientId, now]);
      if (device?.status !== 'pending') return undefined;
      this.dropDeviceAuthRequests(request.state ?? '', request.clientId);
      if (decision === 'approve') this.run(`UPDATE device_authorizations SET status = 'approved', code = NULL WHERE state = ?`, [request.state]);
      return request;
    });
  }

  /** Deletes every consent request still open for a device authorization (its state and client); call inside a transaction. */
  private dropDeviceAuthRequests(state: string, clientId: string): void {
    this.run('DELETE FROM auth_requests WHERE state = ? AND client_id = ?', [state, clientId]);
  }

  async createGrant(g: GrantRecord, record?: AuditEventInput): Promise<void> {
    this.atomically(() => {
      this.insertGrant(g);
      // The consent that made the grant, in its transaction: no grant exists off the record.
      if (record) this.appendAuditNow(record, g.createdAt);
    });
  }

  private insertGrant(g: GrantRecord): void {
    this.run(
      `INSERT INTO grants (id, user_id, client_id, resource, scope, authorization_details, max_depth, created_at, expires_at, revoked_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [g.id, g.userId, g.clientId, g.resource, g.scope, json(g.authorizationDetails), g.maxDepth, g.createdAt, g.expiresAt, g.revokedAt],
    );
  }

  async saveConsentGrant(key: GrantKey, now: number, decide: (existing: GrantRecord | undefined) => ConsentGrantDecision): Promise<ConsentGrantOutcome> {
    // One IMMEDIATE transaction from the look to the write: a second consent for the same user, client and resource
    // (another process's too) waits for this one and then finds its grant. Found in review (s26): two Approves at
    // the same moment each read "no grant" before either wrote, and the user was left with two active grants.
    return this.atomically((): ConsentGrantOutcome => {
      const found = this.get(ACTIVE_GRANT, [key.userId, key.clientId, key.resource, now]);
      const existing = found && toGrant(found);
      const decision = decide(existing);
      if ('refused' in decision) return decision;
      const { grant, narrowedAt, record } = decision;
      let tokensRevoked = 0;
      if (existing !== undefined && grant.id === existing.id) tokensRevoked = this.changeGrantNow(grant, narrowedAt);
      else this.insertGrant(grant);
      this.appendAuditNow(record(tokensRevoked), now);
      return { grant, tokensRevoked };
    });
  }

  async grantById(id: string): Promise<GrantRecord | undefined> {
    const r = this.get('SELECT * FROM grants WHERE id = ?', [id]);
    return r && toGrant(r);
  }

  async activeGrant(userId: string, clientId: string, resource: string, now: number): Promise<GrantRecord | undefined> {
    const r = this.get(ACTIVE_GRANT, [userId, clientId, resource, now]);
    return r && toGrant(r);
  }

  async activeGrantsOfClient(clientId: string, now: number): Promise<GrantRecord[]> {
    return this.all('SELECT * FROM grants WHERE client_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at, id', [clientId, now]).map(toGrant);
  }

  async listGrants(userId?: string): Promise<GrantRecord[]> {
    return (userId ? this.all('SELECT * FROM grants WHERE user_id = ? ORDER BY created_at', [userId]) : this.all('SELECT * FROM grants ORDER BY created_at')).map(toGrant);
  }

  async updateGrant(g: GrantRecord, narrowedAt?: number, record?: { now: number; event: (tokensRevoked: number) => AuditEventInput }): Promise<number> {
    return this.atomically(() => {
      const revoked = this.changeGrantNow(g, narrowedAt);
      // The consent that widened or narrowed the grant, in its transaction (found in review: the grant changed, and
      // its tokens were revoked, with the record failing after): the change and its record commit together.
      if (record) this.appendAuditNow(record.event(revoked), record.now);
      return revoked;
    });
  }

  /** updateGrant's change, inside a transaction: returns how many tokens a narrowing revoked. */
  private changeGrantNow(g: GrantRecord, narrowedAt: number | undefined): number {
    const changed = this.run('UPDATE grants SET scope = ?, authorization_details = ?, max_depth = ?, expires_at = ? WHERE id = ? AND revoked_at IS NULL', [
      g.scope,
      json(g.authorizationDetails),
      g.maxDepth,
      g.expiresAt,
      g.id,
    ]).changes;
    // Every token of the grant carries the grant's old limits (exchanged ones included: they have its grant_id).
    return changed === 0 || narrowedAt === undefined ? 0 : this.revokeDerived('SELECT jti FROM issued_tokens WHERE grant_id = ?', g.id, narrowedAt);
  }

  async revokeGrant(id: string, now: number, reason: string, record?: AuditEventInput): Promise<boolean> {
    return this.atomically(() => {
      if (!this.revokeGrantNow(id, now, reason)) return false;
      // In the revocation's own transaction: a record that cannot be written (a full disk) leaves the
      // grant active, so a retry revokes it and records it, rather than finding it "already revoked".
      if (record) this.appendAuditNow(record, now);
      return true;
    });
  }

  private revokeGrantNow(id: string, now: number, reason: string): boolean {
    const changed = this.run('UPDATE grants SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL', [now, reason, id]).changes;
    if (changed === 0) return false;
    this.run('UPDATE token_families SET revoked_at = ?, revoked_reason = ? WHERE grant_id = ? AND revoked_at IS NULL', [now, reason, id]);
    this.run('UPDATE issued_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL', [now, id]);
    // Resource servers refuse every token of the grant until the last of them would have expired anyway: the last
    // on record, and any the AS may sign from now on (LONGEST_ACCESS_TOKEN_MS). Found in review: a grant revoked
    // before its first token was recorded left the list 1 ms later, while that token, signed meanwhile, lived 10
    // minutes. (The code and refresh grants now re-read the grant as they record a token, and record none of a
    // revoked grant; this covers whatever else is signed in flight.)
    const last = this.get('SELECT MAX(expires_at) AS last FROM issued_tokens WHERE grant_id = ?', [id]);
    this.run('INSERT INTO revocations (kind, id, revoked_at, keep_until) VALUES (?, ?, ?, ?)', ['grant', id, now, Math.max(num(last?.last ?? 0), now + LONGEST_ACCESS_TOKEN_MS)]);
    return true;
  }

  async createAuthCode(c: AuthCodeRecord): Promise<void> {
    this.run(
      `INSERT INTO auth_codes (code_hash, client_id, redirect_uri, redirect_uri_given, code_challenge, resource, scope, grant_id, user_id, family_id, created_at, expires_at, used_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [c.codeHash, c.clientId, c.redirectUri, c.redirectUriGiven === false ? 0 : 1, c.codeChallenge, c.resource, c.scope, c.grantId, c.userId, c.familyId, c.createdAt, c.expiresAt, c.usedAt],
    );
  }

  async authCodeByHash(codeHash: string): Promise<AuthCodeRecord | undefined> {
    const r = this.get('SELECT * FROM auth_codes WHERE code_hash = ?', [codeHash]);
    return r && toCode(r);
  }

  async redeemAuthCode(
    codeHash: string,
    now: number,
    issue: { refresh: RefreshTokenRecord | null; access: IssuedTokenRecord; grant: GrantRecord; record?: AuditEventInput; device?: string },
    replayRecord?: AuditEventInput,
  ): Promise<RedeemCodeResult> {
    return this.atomically((): RedeemCodeResult => {
      const r = this.get('SELECT * FROM auth_codes WHERE code_hash = ?', [codeHash]);
      if (!r) throw new Error('redeemAuthCode: unknown code');
      const code = toCode(r);
      // RFC 6749 §4.1.3: tokens for the code's own client only. Before the replay: another client presenting a spent
      // code ends nothing, here as in the check before the tokens were signed (grant-code.ts; found in review regress21b).
      if (code.clientId !== issue.access.clientId) return { status: 'other_client' };
      // A device's code is redeemed by this server alone, for the device's polls (device.ts holds its PKCE verifier,
      // which never leaves it): spent already, or its request no longer approved, it is the same device polling again
      // while another of its polls redeemed it, no replay by someone else (RFC 6749 §4.1.2 does not apply). Nothing is
      // written and nothing revoked. Found in review (regress21e): a second poll during a slow redemption got the
      // tokens, and the first then found the code used and revoked them.
      if (issue.device !== undefined && (code.usedAt !== null || !this.deviceAwaitsRedemption(issue.device))) return { status: 'device_consumed' };
      if (code.usedAt !== null) {
        this.revokeFamilyNow(code.familyId, now, 'authorization code replayed');
        if (replayRecord) this.appendAuditNow(replayRecord, now);
        return { status: 'replayed' };
      }
      // The grant as it stands, in the transaction that records the tokens (found in review: read only before the
      // tokens were signed, a grant revoked meanwhile got a token recorded after the revocation, which it missed).
      // RFC 6749 §5.2: the caller answers invalid_grant, or mints again under the changed grant.
      const grant = this.get('SELECT * FROM grants WHERE id = ?', [code.grantId]);
      if (!grant || grant.revoked_at !== null || num(grant.expires_at) <= now) return { status: 'grant_ended' };
      if (!sameLimits(toGrant(grant), issue.grant)) return { status: 'grant_changed' };
      this.run('UPDATE auth_codes SET used_at = ? WHERE code_hash = ?', [now, codeHash]);
      this.run('INSERT INTO token_families (id, grant_id, client_id, created_at) VALUES (?, ?, ?, ?)', [code.familyId, code.grantId, code.clientId, now]);
      if (issue.refresh) this.insertRefresh(issue.refresh);
      this.insertIssued(issue.access);
      // The device's request is spent with its code, never before: a redemption that fails (a full disk, a grant
      // changed at every reading) leaves it approved, and the device's next poll redeems the code.
      if (issue.device !== undefined) this.spendDeviceAuthorization(issue.device);
      // The issuance and its record commit together: with the record failing, the code stays unspent for a retry.
      if (issue.record) this.appendAuditNow(issue.record, now);
      return { status: 'redeemed' };
    });
  }

  /** Whether a device authorization is approved with a code not yet redeemed (spendDeviceAuthorization ends that). */
  private deviceAwaitsRedemption(deviceCodeHash: string): boolean {
    return this.get(`SELECT 1 FROM device_authorizations WHERE device_code_hash = ? AND status = 'approved' AND code IS NOT NULL`, [deviceCodeHash]) !== undefined;
  }

  /** A device authorization whose code was spent: its next poll is "used already", never a replay of the code. */
  private spendDeviceAuthorization(deviceCodeHash: string): void {
    this.run(`UPDATE device_authorizations SET status = 'consumed', code = NULL WHERE device_code_hash = ?`, [deviceCodeHash]);
  }

  async refuseAuthCode(codeHash: string, now: number, reason: string, record: AuditEventInput, device?: string): Promise<void> {
    this.atomically(() => {
      const r = this.get('SELECT * FROM auth_codes WHERE code_hash = ?', [codeHash]);
      if (!r) throw new Error('refuseAuthCode: unknown code');
      const code = toCode(r);
      this.run('UPDATE auth_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL', [now, codeHash]);
      if (device !== undefined) this.spendDeviceAuthorization(device);
      // Everything of the grant goes, the tokens of a redemption that raced this one among them.
      this.revokeGrantNow(code.grantId, now, reason);
      this.appendAuditNow(record, now);
    });
  }

  async revokeFamily(familyId: string, now: number, reason: string, record?: AuditEventInput): Promise<void> {
    this.atomically(() => {
      this.revokeFamilyNow(familyId, now, reason);
      // The replay that ended the family, in its transaction: a family never ends off the record.
      if (record) this.appendAuditNow(record, now);
    });
  }

  private revokeFamilyNow(familyId: string, now: number, reason: string): void {
    this.run('UPDATE token_families SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL', [now, reason, familyId]);
    // The family's access tokens, and the tokens exchanged from them however many hops down.
    this.revokeDerived('SELECT jti FROM issued_tokens WHERE family_id = ?', familyId, now);
  }

  /**
   * Revokes the tokens `seedSql` selects and every token exchanged from them,
   * and lists those still alive for the resource servers. Returns how many
   * tokens changed.
   */
  private revokeDerived(seedSql: string, seed: string, now: number): number {
    const tree = `WITH RECURSIVE derived(jti) AS (
         ${seedSql}
         UNION SELECT t.jti FROM issued_tokens t JOIN derived d ON t.parent_jti = d.jti
       )`;
    const alive = this.all(`${tree} SELECT t.jti, t.expires_at FROM issued_tokens t JOIN derived d ON d.jti = t.jti WHERE t.revoked_at IS NULL AND t.expires_at > ?`, [seed, now]);
    const changed = this.run(`${tree} UPDATE issued_tokens SET revoked_at = ? WHERE jti IN (SELECT jti FROM derived) AND revoked_at IS NULL`, [seed, now]).changes;
    for (const t of alive) {
      this.run('INSERT INTO revocations (kind, id, revoked_at, keep_until) VALUES (?, ?, ?, ?)', ['token', String(t.jti), now, num(t.expires_at)]);
    }
    return changed;
  }

  private insertRefresh(t: RefreshTokenRecord): void {
    this.run(
      `INSERT INTO refresh_tokens (token_hash, family_id, grant_id, client_id, user_id, resource, scope, created_at, expires_at, used_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [t.tokenHash, t.familyId, t.grantId, t.clientId, t.userId, t.resource, t.scope, t.createdAt, t.expiresAt, t.usedAt],
    );
  }

  private insertIssued(t: IssuedTokenRecord): void {
    this.run(
      `INSERT INTO issued_tokens (jti, grant_id, family_id, parent_jti, client_id, audience, scope, created_at, expires_at, revoked_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [t.jti, t.grantId, t.familyId, t.parentJti, t.clientId, t.audience, t.scope, t.createdAt, t.expiresAt, t.revokedAt],
    );
  }

  /** Rotations waiting for the next group commit (see rotateRefreshToken). */
  private pendingRotations: PendingRotation[] = [];

  /**
   * Group commit: the rotations asked for in the same turn of the event loop
   * (the requests of one wave, which arrive together) are carried out on the
   * next turn, one after another in one IMMEDIATE transaction, each exactly as
   * it would be in a transaction of its own (each reads what the ones before
   * it wrote); then one commit and one sync of the WAL for all of them. A
   * rotation resolves only once that sync is done, as every write does. A
   * batch pays the commit's pages once: the tail pages of the tables and
   * indexes that every rotation appends to (about 13 pages written to the WAL
   * per rotation alone, about 8 in a group of 16; measured). Should any of the
   * group throw (a record that cannot be written, a full disk, the commit
   * itself), the whole transaction rolls back and each rotation is carried
   * out again in a transaction of its own, so that one failure is that
   * rotation's alone, as before the grouping.
   */
  async rotateRefreshToken(
    tokenHash: string,
    now: number,
    next: { refresh: RefreshTokenRecord; access: IssuedTokenRecord; grant: GrantRecord },
    graceMs = 0,
    record?: (grace: boolean) => AuditEventInput,
    wanted: () => boolean = () => true,
    replayRecord?: (presented: ReplayedToken) => AuditEventInput,
  ): Promise<RotateRefreshResult> {
    if (this.failure) throw this.failure;
    const { result, synced } = await new Promise<RotationOutcome>((resolve, reject) => {
      this.pendingRotations.push({ rotate: () => this.rotateNow(tokenHash, now, next, graceMs, record, wanted, replayRecord), resolve, reject });
      if (this.pendingRotations.length === 1) setImmediate(() => this.flushRotations());
    });
    await synced;
    return result;
  }

  private flushRotations(): void {
    const batch = this.pendingRotations;
    this.pendingRotations = [];
    if (this.failure) {
      for (const p of batch) p.reject(this.failure);
      return;
    }
    const wrote: boolean[] = [];
    let results: RotateRefreshResult[];
    try {
      results = this.atomically(() =>
        batch.map((p, i) => {
          const before = this.writes;
          const result = p.rotate();
          wrote[i] = this.writes !== before;
          return result;
        }),
      );
    } catch {
      // Nothing of the group was written: each one again, alone, as if it had never been grouped.
      for (const p of batch) this.rotateAlone(p);
      return;
    }
    // One sync for the group; a rotation that wrote nothing (a refusal) is answered at once, as before.
    const synced = wrote.some(Boolean) ? this.durable() : undefined;
    synced?.catch(() => undefined); // each writer below gets the failure through its own await
    batch.forEach((p, i) => p.resolve({ result: results[i]!, synced: wrote[i] ? synced : undefined }));
  }

  private rotateAlone(p: PendingRotation): void {
    const before = this.writes;
    let result: RotateRefreshResult;
    try {
      result = this.atomically(p.rotate);
    } catch (err) {
      p.reject(err);
      return;
    }
    p.resolve({ result, synced: this.writes !== before ? this.durable() : undefined });
  }

  /** One rotation (see rotateRefreshToken); call inside a transaction, which it leaves to its caller to commit. */
  private rotateNow(
    tokenHash: string,
    now: number,
    next: { refresh: RefreshTokenRecord; access: IssuedTokenRecord; grant: GrantRecord },
    graceMs: number,
    record: ((grace: boolean) => AuditEventInput) | undefined,
    wanted: () => boolean,
    replayRecord: ((presented: ReplayedToken) => AuditEventInput) | undefined,
  ): RotateRefreshResult {
    const r = this.get('SELECT * FROM refresh_tokens WHERE token_hash = ?', [tokenHash]);
    if (!r) return { status: 'unknown' };
    const previous = toRefresh(r);
    const family = this.get('SELECT revoked_at, forked FROM token_families WHERE id = ?', [previous.familyId]);
    const grant = this.get('SELECT * FROM grants WHERE id = ?', [previous.grantId]);
    if (!family || family.revoked_at !== null || !grant || grant.revoked_at !== null) return { status: 'revoked' };
    const replayed = (presented: ReplayedToken): RotateRefreshResult => {
      // RFC 9700 §4.14.2: a spent (or superseded) refresh token presented again means it leaked; end the family.
      this.revokeFamilyNow(previous.familyId, now, presented === 'superseded' ? 'superseded refresh token presented' : 'refresh token reused');
      // In the same transaction (found in review: with the record failing, the family ended and the theft was
      // never recorded, since every later presentation takes the "revoked" branch above).
      if (replayRecord) this.appendAuditNow(replayRecord(presented), now);
      return { status: 'replayed', previous, presented };
    };
    // Another token of the family was rotated while this one lay unused: this one's holder and that one's are two
    // chains of one sign-in, and one of them is a thief's (found in review, s24bcp).
    if (numOrNull(r.superseded_at) !== null) return replayed('superseded');
    // Found in review: a consent that narrowed the grant while `next` was signed under the old limits revoked the
    // grant's tokens, and `next`, recorded after it, lived on with the old limits. Such a token is not recorded.
    const unchanged = sameLimits(toGrant(grant), next.grant);
    const retried = numOrNull(r.retried_at) !== null;
    // The grace is for an answer that was lost; once the family has moved on (a token of it spent since this one was),
    // that answer got through, to the client or to a thief, and this presentation is a replay (found in review,
    // s34interop: RT1→RT2, RT2→RT3, then RT1 again within the window got a fresh pair).
    const movedOn = () => this.get('SELECT 1 AS moved FROM refresh_tokens WHERE family_id = ? AND token_hash <> ? AND used_at IS NOT NULL AND used_at >= ? LIMIT 1', [previous.familyId, tokenHash, previous.usedAt]) !== undefined;
    if (previous.usedAt !== null && now - previous.usedAt <= graceMs && previous.expiresAt > now && !retried && !movedOn()) {
      // A client whose answer was lost retries once (or two refreshes race): it gets tokens of the same family. Once
      // only, and the family is marked forked so that its next rotation supersedes the other unused token: a thief
      // racing the client inside the window is still found out (RFC 9700 §4.14.2; found in review, s24bcp: every
      // presentation within the window minted another live token, and the copies rotated on their own for ever).
      if (!unchanged) return { status: 'grant_changed' };
      if (!wanted()) return { status: 'abandoned' };
      this.run('UPDATE refresh_tokens SET retried_at = ? WHERE token_hash = ?', [now, tokenHash]);
      this.run('UPDATE token_families SET forked = 1 WHERE id = ?', [previous.familyId]);
      this.insertRefresh(next.refresh);
      this.insertIssued(next.access);
      if (record) this.appendAuditNow(record(true), now);
      return { status: 'rotated', previous, grace: true };
    }
    if (previous.usedAt !== null) return replayed(retried ? 'retried' : 'spent');
    if (previous.expiresAt <= now || num(grant.expires_at) <= now) return { status: 'expired' };
    if (!unchanged) return { status: 'grant_changed' };
    if (!wanted()) return { status: 'abandoned' };
    this.run('UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?', [now, tokenHash]);
    if (num(family.forked) === 1) {
      // The family's other unused tokens (a retry's, or the one whose answer was lost) are superseded: whoever
      // presents one later is a second holder, and ends the family. Only a forked family pays these statements.
      this.run('UPDATE refresh_tokens SET superseded_at = ? WHERE family_id = ? AND used_at IS NULL AND superseded_at IS NULL AND token_hash <> ?', [now, previous.familyId, tokenHash]);
      this.run('UPDATE token_families SET forked = 0 WHERE id = ?', [previous.familyId]);
    }
    this.insertRefresh(next.refresh);
    this.insertIssued(next.access);
    if (record) this.appendAuditNow(record(false), now);
    return { status: 'rotated', previous };
  }

  async refreshTokenByHash(tokenHash: string): Promise<RefreshTokenRecord | undefined> {
    const r = this.get('SELECT * FROM refresh_tokens WHERE token_hash = ?', [tokenHash]);
    return r && toRefresh(r);
  }

  async revokeRefreshToken(tokenHash: string, now: number): Promise<boolean> {
    return this.atomically(() => {
      const r = this.get('SELECT family_id FROM refresh_tokens WHERE token_hash = ?', [tokenHash]);
      if (!r) return false;
      // RFC 7009 §2.1: revoking a refresh token also ends the access tokens of the same grant (here: its family).
      this.revokeFamilyNow(String(r.family_id), now, 'refresh token revoked');
      return true;
    });
  }

  async recordIssuedToken(t: IssuedTokenRecord): Promise<void> {
    this.insertIssued(t);
  }

  async issuedToken(jti: string): Promise<IssuedTokenRecord | undefined> {
    const r = this.get('SELECT * FROM issued_tokens WHERE jti = ?', [jti]);
    return r && toIssued(r);
  }

  async tokenStanding(jti: string, now: number): Promise<TokenStanding> {
    return this.standing(jti, now);
  }

  async recordDerivedToken(t: IssuedTokenRecord, now: number): Promise<'recorded' | 'parent_revoked'> {
    return this.atomically(() => {
      if (t.parentJti === null || this.standing(t.parentJti, now) !== 'active') return 'parent_revoked';
      this.insertIssued(t);
      return 'recorded';
    });
  }

  private standing(jti: string, now: number): TokenStanding {
    const r = this.get(
      `SELECT t.revoked_at AS token_revoked, f.revoked_at AS family_revoked, g.revoked_at AS grant_revoked, g.expires_at AS grant_expires
       FROM issued_tokens t
       JOIN grants g ON g.id = t.grant_id
       LEFT JOIN token_families f ON f.id = t.family_id
       WHERE t.jti = ?`,
      [jti],
    );
    if (!r) return 'unknown';
    if (r.token_revoked !== null || r.family_revoked !== null || r.grant_revoked !== null || num(r.grant_expires) <= now) return 'revoked';
    return 'active';
  }

  async revokeIssuedToken(jti: string, now: number, record?: AuditEventInput): Promise<boolean> {
    return this.atomically(() => {
      if (this.revokeDerived('SELECT jti FROM issued_tokens WHERE jti = ?', jti, now) === 0) return false;
      // Only a revocation that changed something is recorded, in its transaction (found in review: every /revoke
      // of one token, already revoked or not, appended another record, hundreds a second).
      if (record) this.appendAuditNow(record, now);
      return true;
    });
  }

  async listCalendars(userId: string): Promise<CalendarRecord[]> {
    return this.all('SELECT * FROM calendars WHERE user_id = ? ORDER BY created_at, name', [userId]).map(toCalendar);
  }

  async addCalendar(c: CalendarRecord, record?: { event: AuditEventInput; at: number }): Promise<void> {
    // Securely too (found in review, s23new2): an insert that splits the table's page moves the rows already there,
    // and the space a feed's row (its secret URL) moved out of would otherwise keep a copy that no removal reaches.
    this.securelyDeleting(() =>
      this.recorded(() => this.run('INSERT INTO calendars (id, user_id, name, kind, source, created_at) VALUES (?, ?, ?, ?, ?, ?)', [c.id, c.userId, c.name, c.kind, c.source, c.createdAt]), record),
    );
  }

  async removeCalendar(userId: string, name: string, record?: { event: AuditEventInput; at: number }): Promise<boolean> {
    // A feed's URL is often the secret of a private address, and its copy the user's calendar: the space they held is
    // zeroed as it is freed, and the WAL frames that held them checkpointed away (found in review, s23feeds:
    // `strings delegate.db` showed a removed feed's URL and copy).
    const removed = this.securelyDeleting(() =>
      this.atomically(() => {
        const gone = this.run('DELETE FROM calendars WHERE user_id = ? AND name = ?', [userId, name]).changes === 1;
        // Only a calendar that was there is recorded as removed.
        if (gone && record) this.appendAuditNow(record.event, record.at);
        return gone;
      }),
    );
    if (removed) this.checkpointAway();
    return removed;
  }

  /**
   * Runs `write` with SQLite's secure_delete on for this connection (https://www.sqlite.org/pragma.html#pragma_secure_delete):
   * what it deletes, replaces or moves is overwritten with zeros, in its page and in the pages it frees. Only around
   * the writes to calendars and their feeds' copies: the token path's deletes and updates pay nothing for it.
   */
  private securelyDeleting<T>(write: () => T): T {
    const before = this.db.pragma('secure_delete', { simple: true }) as number;
    this.db.pragma('secure_delete = ON');
    try {
      return write();
    } finally {
      this.db.pragma(`secure_delete = ${before}`);
    }
  }

  /**
   * Copies the WAL into the database and truncates it to nothing (wal_checkpoint(TRUNCATE)), so that older frames
   * holding what was just deleted do not stay in the -wal file. A server's connection reading at that moment keeps
   * the WAL from being truncated (SQLITE_BUSY, not an error here): its frames are then overwritten as the WAL restarts.
   * With `wait` false, the checkpoint does not wait for another process's reader or writer (the busy timeout is
   * 0 for it): a server's event loop is not held for up to BUSY_TIMEOUT_MS. Whether the WAL was emptied.
   */
  private checkpointAway(wait = true): boolean {
    if (!this.walFile) return true;
    if (!wait) this.db.pragma('busy_timeout = 0');
    try {
      const [result] = this.db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number }>;
      return result !== undefined && result.busy === 0 && result.log <= 0;
    } catch {
      // Another connection holds the lock the checkpoint needs: the next checkpoint does it.
      return false;
    } finally {
      if (!wait) this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }

  /**
   * Set when a feed's replaced copy (or URL) may still be in the -wal file: a checkpoint after its save could not
   * empty the WAL (another process was reading or writing). Tried again at the next save of a feed and at sweep().
   */
  private replacedFeedInWal = false;

  /** Empties the WAL, without waiting, if a replaced feed's copy may be in it (see replacedFeedInWal). */
  private checkpointReplacedFeed(): void {
    if (this.replacedFeedInWal) this.replacedFeedInWal = !this.checkpointAway(false);
  }

  // issue 4: ICS feed cache
  async calendarFeed(calendarId: string): Promise<CalendarFeedRecord | undefined> {
    const row = this.get('SELECT * FROM calendar_feeds WHERE calendar_id = ?', [calendarId]);
    return row ? toCalendarFeed(row) : undefined;
  }

  async hasCalendarFeed(calendarId: string): Promise<boolean> {
    return this.get('SELECT 1 FROM calendar_feeds WHERE calendar_id = ?', [calendarId]) !== undefined;
  }

  async saveCalendarFeed(f: CalendarFeedRecord): Promise<void> {
    // The copy it replaces is zeroed too (securelyDeleting), or a refreshed feed's older copies, each beside its URL,
    // would stay in freed space after the calendar is removed. A feed is saved at most every few minutes.
    const replaced = this.securelyDeleting(() => this.atomically(() => {
      // Whether a copy (or the URL) other than the one saved is replaced: a refresh that confirmed the copy (304, or
      // the same text) replaces nothing, and is not checkpointed.
      const before = this.get('SELECT (body IS NOT NULL AND body IS NOT ?) OR url IS NOT ? AS replaced FROM calendar_feeds WHERE calendar_id = ?', [f.body, f.url, f.calendarId]);
      this.upsertCalendarFeed(f);
      return before !== undefined && num(before.replaced) === 1;
    }));
    // The replaced copy's pages are zeroed in the database, but the WAL still holds their earlier images, frames the
    // server's connection never checkpoints away while it runs (found in review, s34privacy: `grep -a` found a
    // refreshed feed's old title, place and attendee in delegate.db-wal). Emptied as removeCalendar does, without
    // waiting for another process's reader: if one keeps the WAL, the next save of a feed or sweep() tries again.
    if (replaced) this.replacedFeedInWal = true;
    this.checkpointReplacedFeed();
  }

  private upsertCalendarFeed(f: CalendarFeedRecord): void {
    this.run(
      `INSERT INTO calendar_feeds (calendar_id, url, body, etag, last_modified, validators_from, fetched_at, changed_at, checked_at, error, error_at)
       SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM calendars WHERE id = ?)
       ON CONFLICT (calendar_id) DO UPDATE SET url = excluded.url, body = excluded.body, etag = excluded.etag,
         last_modified = excluded.last_modified, validators_from = excluded.validators_from, fetched_at = excluded.fetched_at,
         changed_at = excluded.changed_at, checked_at = excluded.checked_at, error = excluded.error, error_at = excluded.error_at`,
      [f.calendarId, f.url, f.body, f.etag, f.lastModified, f.validatorsFrom ?? null, f.fetchedAt, f.changedAt, f.checkedAt, f.error, f.errorAt, f.calendarId],
    );
  }

  async sweep(now: number, signal?: AbortSignal): Promise<void> {
    this.atomically(() => {
      this.run('DELETE FROM used_once WHERE expires_at <= ?', [now]);
      this.run('DELETE FROM revocations WHERE keep_until <= ?', [now - REVOCATION_KEPT_AFTER_EXPIRY_MS]);
      this.run('DELETE FROM sessions WHERE expires_at <= ?', [now]);
      this.run('DELETE FROM auth_requests WHERE expires_at <= ?', [now]);
      // A used code is kept a day after its expiry so a late replay is still recognised and answered by revocation.
      this.run('DELETE FROM auth_codes WHERE expires_at <= ?', [now - 86_400_000]);
      // An expired device request keeps no secret (its user code, state, verifier and code are blanked), and its row
      // a day, so that a late poll still gets expired_token (found in review: these rows were never deleted).
      this.run(
        `UPDATE device_authorizations SET user_code = 'expired:' || device_code_hash, state = 'expired:' || device_code_hash, code_verifier = '', code = NULL
         WHERE expires_at <= ? AND code_verifier <> ''`,
        [now],
      );
      this.run('DELETE FROM device_authorizations WHERE expires_at <= ?', [now - 86_400_000]);
    });
    // In short transactions, the event loop free between them: a backlog is worked off without stalling the servers.
    // An abort (the server closing, its store about to be) ends the sweep between two of them.
    for (let batch = 0; batch < TOKEN_SWEEP_MAX_BATCHES; batch++) {
      if (!this.atomically(() => this.deleteExpiredTokens(now - EXPIRED_TOKEN_KEPT_MS, TOKEN_SWEEP_BATCH))) break;
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (signal?.aborted) return;
    }
    this.atomically(() => this.deleteUnusedClients(now));
    this.checkpointReplacedFeed();
  }

  /**
   * Refresh tokens, access tokens and token families once nothing can use them (found in review: none was ever
   * deleted, about 600 bytes a refresh for ever). `cut` is now less EXPIRED_TOKEN_KEPT_MS: a token counts as gone
   * once it expired before that.
   *
   * - Refresh tokens go by family: all of a family's together once every one of them has gone, or each as it goes
   *   once the family was revoked. While a family has a live refresh token its spent ones stay, expired or not, so
   *   that one of them presented again still ends the family (RFC 9700 §4.14.2: a client that comes back after
   *   its token expired, with a token a thief already rotated, is the only sign of the theft). Once the whole
   *   family has expired, or was revoked, a replay could not be answered with anything but invalid_grant anyway:
   *   an unknown token is refused as one.
   * - Access tokens (issued and exchanged) go once they have gone, but never while a row names them as its
   *   parent (`parent_jti`: the audit reports walk that chain). An exchanged token never outlives its parent, so
   *   the leaves go first, their parents in the next round. The revocation list the resource servers poll is
   *   `revocations`, kept until each listed token expires, and is not touched here. Every reader of these rows
   *   checks the token's expiry first (a JWT past `exp` is refused before any lookup), and an audit report names
   *   a token at most LATE_REPORT_MS (5 minutes) after it expired.
   * - A family goes when no refresh token and no access token of it is left: nothing can reach it any more.
   */
  private deleteExpiredTokens(cut: number, limit: number): boolean {
    // At most `limit` rows per statement, so that one transaction stays short (found in review: the first sweep of
    // a database that had kept every token, 600,000 rows, held the event loop 1.6 s); true while more may be left.
    const refresh = this.run(SWEEP_REFRESH_TOKENS, [cut, cut, limit]).changes;
    // Leaves first: a parent goes in a later statement than its last child (a chain is at most a grant's max_depth long).
    let issued = 0;
    for (let round = 0; round < 64; round++) {
      const deleted = this.run(
        `DELETE FROM issued_tokens WHERE rowid IN (
           SELECT t.rowid FROM issued_tokens t WHERE t.expires_at <= ?
             AND NOT EXISTS (SELECT 1 FROM issued_tokens child WHERE child.parent_jti = t.jti)
           LIMIT ?)`,
        [cut, limit - issued],
      ).changes;
      issued += deleted;
      if (deleted === 0 || issued >= limit) break;
    }
    const families = this.run(
      `DELETE FROM token_families WHERE rowid IN (
         SELECT f.rowid FROM token_families f WHERE f.created_at <= ?
           AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.family_id = f.id)
           AND NOT EXISTS (SELECT 1 FROM issued_tokens t WHERE t.family_id = f.id)
         LIMIT ?)`,
      [cut, limit],
    ).changes;
    return refresh === limit || issued >= limit || families === limit;
  }

  /**
   * Open registration (RFC 7591 §3) without this would keep every client anyone registered for ever (found in
   * review: a flood grew the database by 14 MB a second). A client registered over a day ago that nothing refers
   * to is deleted: no grant (so no code, token or refresh token either, revoked or not), no pending request or
   * device authorization. Agents, which the administrator registers, are never deleted. A deleted client's app
   * registers again when it next signs in (the CLI does: registration-check.ts); audit records keep its id.
   */
  private deleteUnusedClients(now: number): void {
    this.run(
      `DELETE FROM clients WHERE kind IN ('public', 'confidential') AND created_at <= ?
         AND client_id NOT IN (SELECT client_id FROM grants)
         AND client_id NOT IN (SELECT client_id FROM auth_requests)
         AND client_id NOT IN (SELECT client_id FROM device_authorizations)
         AND client_id NOT IN (SELECT client_id FROM auth_codes)
         AND client_id NOT IN (SELECT client_id FROM token_families)
         AND client_id NOT IN (SELECT client_id FROM refresh_tokens)
         AND client_id NOT IN (SELECT client_id FROM issued_tokens)
         AND client_id NOT IN (SELECT agent_client_id FROM resources WHERE agent_client_id IS NOT NULL)`,
      [now - UNUSED_CLIENT_KEPT_MS],
    );
  }

  // issue 5: device authorization grant (RFC 8628)
  async createDeviceAuthorization(d: DeviceAuthorizationRecord): Promise<boolean> {
    return this.atomically(() => {
      // The user code is unique, and short enough to be drawn twice: an expired holder gives it up, a live one keeps it.
      const holder = this.get('SELECT expires_at FROM device_authorizations WHERE user_code = ?', [d.userCode]);
      if (holder && num(holder.expires_at) > d.createdAt) return false;
      if (holder) this.run('DELETE FROM device_authorizations WHERE user_code = ?', [d.userCode]);
      this.run(
        `INSERT INTO device_authorizations (device_code_hash, user_code, client_id, scope, resource, state, code_verifier, status, code, interval_sec, last_polled_at, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [d.deviceCodeHash, d.userCode, d.clientId, d.scope, d.resource, d.state, d.codeVerifier, d.status, d.code, d.intervalSec, d.lastPolledAt, d.createdAt, d.expiresAt],
      );
      return true;
    });
  }

  async deviceAuthorizationByUserCode(userCode: string, now: number): Promise<DeviceAuthorizationRecord | undefined> {
    const row = this.get('SELECT * FROM device_authorizations WHERE user_code = ? AND expires_at > ?', [userCode, now]);
    return row ? toDeviceAuthorization(row) : undefined;
  }

  async deviceAuthorizationByState(state: string, now: number): Promise<DeviceAuthorizationRecord | undefined> {
    const row = this.get('SELECT * FROM device_authorizations WHERE state = ? AND expires_at > ?', [state, now]);
    return row ? toDeviceAuthorization(row) : undefined;
  }

  async settleDeviceAuthorization(state: string, outcome: { status: 'approved'; code: string } | { status: 'denied' }, now: number): Promise<boolean> {
    return this.atomically(() => {
      const row = this.get('SELECT client_id FROM device_authorizations WHERE state = ?', [state]);
      const settled =
        outcome.status === 'approved'
          ? this.run(
              `UPDATE device_authorizations SET status = 'approved', code = ? WHERE state = ? AND expires_at > ? AND (status = 'pending' OR (status = 'approved' AND code IS NULL))`,
              [outcome.code, state, now],
            ).changes === 1
          : this.run(`UPDATE device_authorizations SET status = 'denied', code = NULL WHERE state = ? AND status = 'pending' AND expires_at > ?`, [state, now]).changes === 1;
      if (settled && row) this.dropDeviceAuthRequests(state, String(row.client_id));
      return settled;
    });
  }

  async endDeviceOfRemovedAccount(state: string): Promise<void> {
    this.run(`UPDATE device_authorizations SET status = 'denied', code = NULL, user_code = ${REMOVED_ACCOUNT_USER_CODE} WHERE state = ? AND status = 'approved' AND code IS NULL`, [state]);
  }

  async pollDeviceAuthorization(deviceCodeHash: string, clientId: string, now: number): Promise<DevicePoll | undefined> {
    return this.atomically(() => {
      const row = this.get('SELECT * FROM device_authorizations WHERE device_code_hash = ? AND client_id = ?', [deviceCodeHash, clientId]);
      if (!row) return undefined;
      const record = toDeviceAuthorization(row);
      if (record.expiresAt <= now) return { status: 'expired' as const, tooSoon: false as const, record };
      const tooSoon = record.lastPolledAt !== null && now - record.lastPolledAt < record.intervalSec * 1000;
      const interval = tooSoon ? record.intervalSec + 5 : record.intervalSec;
      this.run('UPDATE device_authorizations SET interval_sec = ?, last_polled_at = ? WHERE device_code_hash = ?', [interval, now, deviceCodeHash]);
      const updated = { ...record, intervalSec: interval, lastPolledAt: now };
      // Not spent here: the redemption spends the request with the code, in its transaction (redeemAuthCode).
      if (record.status === 'approved' && record.code !== null && !tooSoon) return { status: 'approved' as const, tooSoon, record: updated, code: record.code };
      return { status: record.status === 'approved' ? ('pending' as const) : record.status, tooSoon, record: updated };
    });
  }
}
