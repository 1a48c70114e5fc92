// `delegate users add NAME`: a named account for server mode, and `delegate
// users set-time-zone NAME ZONE`, which changes only its zone. The password is
// read from stdin (never from the command line, where other users could see
// it in the process list): typed at a terminal without being shown (Ctrl-C
// cancels), or piped; one holding a control character is refused. It is
// stored only as an scrypt hash. The change is put on the audit log
// (`user_added`, `password_set` or `time_zone_set`, by cli). --replace needs
// an existing account; `--time-zone` then also sets its time zone, and says
// so; a new password ends the account's browser sessions, and the command says
// how many delegations stand. A name taken but for case is taken, and the
// local owner gets no password.
// `users list [--json]` shows the accounts (never a password hash); `users
// remove NAME [--yes]` revokes an account's grants, ends its sessions,
// removes its calendars and retires it, its name free for a new account that
// inherits none of it (`user_removed`, by cli). It asks first at a terminal;
// elsewhere it needs --yes.
import { constantTimeEqual } from '../../authz/crypto.js';
import { passwordProblem } from '../../authz/password.js';
import { accountNamedLike, accountToRemove, addUser, liveAccountNamed, newAccountNameProblem, refusalOfPassword, removeAccount, setUserTimeZone, userNameProblem, UserError } from '../../authz/users.js';
import { readUserConfig, systemTimeZone, type Paths } from '../../config.js';
import type { AccountName, GrantRecord, Store, UserRecord } from '../../store/index.js';
import { CommandFailed, EXIT_OK, UsageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { pipedSecret, secretTypedAtTerminal, typedSecret } from '../secret-input.js';
import { readOnlyNotice, removedField, shownAccount, withStore } from './admin-store.js';
import { shown } from '../shown.js';
import { isInteractive } from '../terminal.js';
import { warnIfServedElsewhere } from '../served-elsewhere.js';
import { delegateCommand, delegateCommandLine } from './mcp-config.js';

export async function usersAddCommand(args: { paths: Paths; name: string; timeZone?: string; replace: boolean }, io: CliIo): Promise<number> {
  // A malformed name is bad usage: said before the password is read or the database opened.
  const badName = userNameProblem(args.name);
  if (badName) throw new UsageError(badName);
  // A name taken (or taken but for case, or the owner's with --replace) is said before the password is asked for
  // (found at stop 21: it was asked twice, then refused); addUser refuses the same, in the same words.
  const existing = await accountLike(args.paths, args.name);
  // --replace sets the password of an account that is there; a name no account has (a typo) is refused, not added
  // (found in review, s33team: `users add carol2 --replace` said "Added carol2.").
  if (args.replace && !existing) throw noAccountToReplace(await withStore(args.paths, (store) => store.listAccountNames(), { notice: () => undefined }), args.name, io);
  const idLike = existing ? undefined : newAccountNameProblem(args.name);
  if (idLike) throw new UsageError(idLike);
  const refusal = refusalOfPassword(existing, { ...args, configFile: args.paths.config, delegate: delegateCommand(io.env) });
  if (refusal) throw commandFailure(refusal);
  const password = await readPassword(args, io);
  // An account added by another process since that look is refused here, in the same words (addUser: NAME_TAKEN).
  const user = await withStore(args.paths, async (store) => {
    // Looked at again: an account removed by another process while the password was typed is not added back.
    if (args.replace && !(await accountNamedLike(store, args.name))) throw noAccountToReplace(await store.listAccountNames(), args.name, io);
    const changed = await addUser(
      store,
      // With --replace, a zone named is the account's new zone; none named keeps the one it has.
      {
        name: args.name,
        password,
        timeZone: args.timeZone ?? systemTimeZone(io.env),
        replace: args.replace,
        replaceTimeZone: args.timeZone !== undefined,
        configFile: args.paths.config,
        delegate: delegateCommand(io.env),
      },
      io.now(),
      { by: 'cli' },
    ).catch(async (error: unknown) => {
      // Removed by another process while the password was hashed: said as the look above says it.
      if (error instanceof UserError && error.code === 'NO_SUCH_ACCOUNT') throw noAccountToReplace(await store.listAccountNames(), args.name, io);
      throw commandFailure(error);
    });
    await warnIfServedElsewhere(store, args.paths, io.stderr);
    const now = io.now();
    return { ...changed, activeGrants: changed.added ? 0 : (await store.listGrants(changed.id)).filter((g) => activeAt(g, now)).length };
  });
  if (user.added) io.stderr.write(`Added ${args.name}.\n`);
  else if (user.previousTimeZone !== undefined) io.stderr.write(`Set the password of ${args.name}; its time zone is now ${user.timeZone} (was ${user.previousTimeZone}).\n`);
  else if (args.timeZone !== undefined) io.stderr.write(`Set the password of ${args.name}; its time zone stays ${user.timeZone}.\n`);
  else io.stderr.write(`Set the password of ${args.name}.\n`);
  if (user.activeGrants > 0) io.stderr.write(delegationsStand(user.name, user.activeGrants, io));
  return EXIT_OK;
}

/**
 * After a new password: the account's delegations that stand, which a new password does not end (it ends only the
 * browser sessions), with the commands that list and end them (found in review, s33team: nothing said so, and a
 * reset after a stolen password left the thief's approvals working unseen).
 */
function delegationsStand(name: string, active: number, io: CliIo): string {
  const them = active === 1 ? 'it' : 'them';
  return (
    `${name} has ${count(active, 'active delegation')}, which a new password does not end: ` +
    `\`${delegateCommandLine(['grants', 'list', '--user', name], io.env)}\` lists ${them}, \`${delegateCommandLine(['grants', 'revoke', 'GRANT_ID'], io.env)}\` ends one.\n`
  );
}

/**
 * The refusal of `users add NAME --replace` when no account has NAME (in any case: one that has it but for case is
 * NAME_TAKEN, naming it): exit 1, one line, saying how to add it and, when an account that `users remove` retired had
 * the name (in any case), that one, as a new account inherits none of it.
 */
function noAccountToReplace(accounts: readonly AccountName[], name: string, io: CliIo): CommandFailed {
  const retired = accounts.filter((a) => a.removedAt !== null && a.name.toLowerCase() === name.toLowerCase()).at(-1);
  const removed = retired ? ` (an account named ${retired.name} was removed at ${new Date(retired.removedAt!).toISOString()})` : '';
  return new CommandFailed(
    `There is no account named ${name}${removed}, so --replace has no password to set. To add a new account, leave out --replace: \`${delegateCommandLine(['users', 'add', name], io.env)}\`.`,
  );
}

/**
 * The account named `name`, or but for case (accountNamedLike): a look only, which creates no database (with none
 * yet, there is no account) and passes over one it cannot write, as the write that follows says.
 */
async function accountLike(paths: Paths, name: string): Promise<UserRecord | undefined> {
  return withStore(paths, (store) => accountNamedLike(store, name), { notice: () => undefined });
}

/**
 * A UserError as the command's one line, with what to do when the account is there already (named as it is
 * spelled, which may differ in case from the name given); anything else as it is.
 */
function commandFailure(error: unknown): unknown {
  if (!(error instanceof UserError)) return error;
  return new CommandFailed(`${error.message}${error.replaceable !== undefined ? replaceAdvice(error.replaceable) : ''}`);
}

/** What to do when the account is there already (found in review, regress21a: it said only that it was). */
function replaceAdvice(name: string): string {
  return ` To set its password, add --replace: \`${delegateCommandLine(['users', 'add', name, '--replace'])}\`.`;
}

/** `users set-time-zone NAME ZONE`: the account's zone (already checked and spelled as `users add --time-zone` does), its password untouched. */
export async function usersSetTimeZoneCommand(args: { paths: Paths; name: string; timeZone: string }, io: CliIo): Promise<number> {
  const badName = userNameProblem(args.name);
  if (badName) throw new UsageError(badName);
  const user = await withStore(args.paths, async (store) => {
    // Found as `users remove` finds it (found in review, s33team: `users set-time-zone ALICE` found no account).
    const account = await liveAccountNamed(store, args.name, 'change').catch(userFailure);
    const changed = await setUserTimeZone(store, { name: account.name, timeZone: args.timeZone, configFile: args.paths.config }, io.now(), { by: 'cli' }).catch((error: unknown) => {
      throw error instanceof UserError ? new CommandFailed(error.message) : error;
    });
    await warnIfServedElsewhere(store, args.paths, io.stderr);
    return changed;
  });
  if (user.timeZone === user.previousTimeZone) io.stderr.write(`The time zone of ${user.name} is ${user.timeZone} already; nothing changed.\n`);
  else io.stderr.write(`The time zone of ${user.name} is now ${user.timeZone} (was ${user.previousTimeZone}).\n`);
  return EXIT_OK;
}

/**
 * At a terminal, a line typed without echo, then typed again to be sure (as `passwd` asks: a typo no one
 * saw would otherwise become the password); from a pipe, everything (its last line break dropped). Either way a
 * password holding a line break or another control character is refused (exit 1): the sign-in page's password
 * field cannot type one (found in review, s33team: `printf 'gracepass1\n\n' | delegate users add grace2` added an
 * account whose password ended in a line break, which no one could sign in with).
 */
async function readPassword(args: { name: string; replace: boolean }, io: CliIo): Promise<string> {
  const unchanged = args.replace ? `the password of ${args.name} is unchanged` : `${args.name} was not added`;
  let password: string;
  if (secretTypedAtTerminal(io)) {
    const typed = await typedSecret(io, `Password for ${args.name}: `, unchanged);
    const again = await typedSecret(io, `Password for ${args.name}, again: `, unchanged);
    if (!constantTimeEqual(typed, again)) throw new CommandFailed(`The two passwords typed differ: ${unchanged}.`);
    password = typed;
  } else {
    password = (await pipedSecret(io, 'the password')).replace(/\r?\n$/, '');
  }
  // An obviously weak password (eight tabs) is said as such, by addUser, as before.
  if (CONTROL_CHARACTER.test(password) && passwordProblem(password, args.name) === undefined) {
    throw new CommandFailed(`A password may not hold a line break, a tab or another control character, which the sign-in page cannot type (piped, only one final line break is dropped): ${unchanged}.`);
  }
  return password;
}

/** C0 controls (CR, LF and tab among them), DEL and the C1 controls: Unicode's general category Cc. */
const CONTROL_CHARACTER = /\p{Cc}/u;

/** One account as `users list --json` prints it: no password hash, ever. */
export interface AccountListing {
  id: string;
  name: string;
  /** The local owner: the installation's own account, signed in by `delegate login`. */
  owner: boolean;
  /** The zone its searches use: the local owner's is config.json's `timeZone` when it has one, else the stored one. */
  time_zone: string;
  /** Its grants neither revoked nor expired. */
  active_grants: number;
  created_at: string;
  /** Its latest sign-in on the audit log, or null when it has none. */
  last_sign_in_at: string | null;
  /** With --all, on an account `users remove` retired: when (its name the one it had). None on a live account. */
  user_removed_at?: string;
}

/**
 * `users list [--all] [--json]`: every account, oldest first, and with --all the ones `users remove` retired too
 * (found in review, s26: they could be seen only through the audit log and grants); reads only (a read-only
 * database too, and creates none).
 */
export async function usersListCommand(args: { paths: Paths; json: boolean; all: boolean }, io: CliIo): Promise<number> {
  const now = io.now();
  const listings = await withStore(args.paths, (store) => accountListings(store, now, args.all), readOnlyNotice(io));
  await showOwnerZoneInEffect(listings, args.paths, io);
  if (args.json) {
    io.stdout.write(`${JSON.stringify(listings)}\n`);
    return EXIT_OK;
  }
  if (listings.length === 0) io.stderr.write(`No accounts yet: the first \`${delegateCommandLine(['serve'], io.env)}\` (or login) sets up the local owner; \`${delegateCommandLine(['users', 'add', 'NAME'], io.env)}\` adds a named one.\n`);
  for (const a of listings) {
    const grants = `${a.active_grants} active ${a.active_grants === 1 ? 'grant' : 'grants'}`;
    const signIn = a.last_sign_in_at === null ? 'never signed in' : `last sign-in ${a.last_sign_in_at}`;
    // A retired account's removal last, so that every line's first five columns mean the same.
    const removed = a.user_removed_at !== undefined ? shown`\tremoved ${a.user_removed_at}` : '';
    const name = shownAccount(a.name, a.user_removed_at !== undefined);
    io.stdout.write(`${shown`${name}${a.owner ? ' (local owner)' : ''}\t${a.time_zone}\t${grants}\tadded ${a.created_at}\t${signIn}`}${removed}\n`);
  }
  return EXIT_OK;
}

/**
 * The local owner's zone as the calendar backend uses it (userCalendarsFromStore): config.json's `timeZone` when it
 * has one, else the stored one (found in review, s33team: the stored UTC was listed while searches used the file's
 * zone). A config.json that cannot be used is said in one line, as `calendar list` says it; the stored zone stays.
 */
async function showOwnerZoneInEffect(listings: AccountListing[], paths: Paths, io: CliIo): Promise<void> {
  const owner = listings.find((a) => a.owner && a.user_removed_at === undefined);
  if (!owner) return;
  try {
    const zone = (await readUserConfig(paths.config)).timeZone;
    if (zone !== undefined) owner.time_zone = zone;
  } catch (error) {
    io.stderr.write(`delegate: ${error instanceof Error ? error.message : String(error)} Searches fail until it is fixed.\n`);
  }
}

/** Whether a grant is neither revoked nor expired at `now`: what users list counts and users remove revokes. */
function activeAt(grant: GrantRecord, now: number): boolean {
  return grant.revokedAt === null && grant.expiresAt > now;
}

async function accountListings(store: Store, now: number, removed: boolean): Promise<AccountListing[]> {
  const users = (await store.listAccountNames()).filter((u) => removed || u.removedAt === null);
  const signIns = await store.lastSignIns();
  const active = new Map<string, number>();
  for (const g of await store.listGrants()) if (activeAt(g, now)) active.set(g.userId, (active.get(g.userId) ?? 0) + 1);
  return users.map((u) => {
    const signedIn = signIns.get(u.id);
    return {
      id: u.id,
      name: u.name,
      owner: u.isOwner,
      time_zone: u.timeZone,
      active_grants: active.get(u.id) ?? 0,
      created_at: new Date(u.createdAt).toISOString(),
      last_sign_in_at: signedIn === undefined ? null : new Date(signedIn).toISOString(),
      ...removedField(u),
    };
  });
}

/**
 * `users remove NAME [--yes]`: the account (accountToRemove: exact, else but for case; never the local owner) is
 * looked up first, creating nothing; at a terminal the person confirms, elsewhere --yes must say so (bad usage
 * without it); then one transaction revokes, ends, removes and records it all (removeAccount).
 */
export async function usersRemoveCommand(args: { paths: Paths; name: string; yes: boolean }, io: CliIo): Promise<number> {
  const badName = userNameProblem(args.name);
  if (badName) throw new UsageError(badName);
  const now = io.now();
  const look = await withStore(
    args.paths,
    async (store) => {
      const account = await accountToRemove(store, args.name, delegateCommand(io.env)).catch(userFailure);
      const grants = (await store.listGrants(account.id)).filter((g) => activeAt(g, now)).length;
      return { account, grants, calendars: (await store.listCalendars(account.id)).length };
    },
    { notice: () => undefined },
  );
  if (!args.yes) await confirmRemoval(look, io);
  const removal = await withStore(args.paths, async (store) => {
    const done = await removeAccount(store, look.account, io.now(), { by: 'cli' }).catch(userFailure);
    await warnIfServedElsewhere(store, args.paths, io.stderr);
    return done;
  });
  const revoked = removal.grantsRevoked.length;
  io.stderr.write(
    `Removed ${removal.user.name}: ${count(revoked, 'delegation')} revoked${revoked > 0 ? ' (their tokens are refused from now on, by the resource servers once their revocation list hears of it, normally within a second)' : ''}, ` +
      `${count(removal.sessionsEnded, 'browser session')} ended, ${count(removal.calendarsRemoved.length, 'calendar')} removed. The name is free: an account added with it later starts with none of these.\n`,
  );
  return EXIT_OK;
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/**
 * A UserError as the command's one line (exit 1); a name matching several accounts but for case and none exactly as
 * bad usage (exit 2), as `audit --user` and `grants list --user` answer it (pickedAccount); anything else as it is.
 */
function userFailure(error: unknown): never {
  if (error instanceof UserError && error.code === 'AMBIGUOUS_NAME') throw new UsageError(error.message);
  throw error instanceof UserError ? new CommandFailed(error.message) : error;
}

/**
 * Asks the person at the terminal, naming what will end; anything but y or yes keeps the account (exit 1). Without
 * a terminal no one can answer: bad usage, naming --yes (as `rm -i` cannot ask a pipe, a script says so itself).
 */
async function confirmRemoval(look: { account: UserRecord; grants: number; calendars: number }, io: CliIo): Promise<void> {
  const name = look.account.name;
  if (!isInteractive(io) || io.readLine === undefined) {
    throw new UsageError(`users remove asks before it removes an account, and there is no terminal here to ask: add --yes to remove ${name} without being asked.`);
  }
  io.stderr.write(
    `Remove the account ${name}? Its ${count(look.grants, 'active delegation')} will be revoked, its sign-ins ended and its ${count(look.calendars, 'calendar')} removed; this cannot be undone. [y/N] `,
  );
  const answer = await io.readLine(new AbortController().signal);
  if (!/^\s*y(es)?\s*$/i.test(answer ?? '')) throw new CommandFailed(`Nothing was removed: ${name} stays as it was.`);
}
