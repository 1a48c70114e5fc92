// `delegate users add NAME`: a named account for server mode, and `delegate
// users set-time-zone NAME ZONE`, which changes only its zone. The password is
// read from stdin (never from the command line, where other users could see
// it in the process list): typed at a terminal without being shown (Ctrl-C
// cancels), or piped. It is stored only as an scrypt hash. The change is put
// on the audit log (`user_added`, `password_set` or `time_zone_set`, by cli).
// With --replace, `--time-zone` also sets the existing account's time zone,
// and says so; a new password ends the account's browser sessions. A name
// taken but for case is taken, and the local owner gets no password.
import { constantTimeEqual } from '../../authz/crypto.js';
import { accountNamedLike, addUser, refusalOfPassword, setUserTimeZone, userNameProblem, UserError } from '../../authz/users.js';
import { systemTimeZone, type Paths } from '../../config.js';
import type { UserRecord } from '../../store/index.js';
import { CommandFailed, EXIT_OK, UsageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { pipedSecret, secretTypedAtTerminal, typedSecret } from '../secret-input.js';
import { withStore } from './admin-store.js';
import { warnIfServedElsewhere } from '../served-elsewhere.js';
import { delegateCommandLine } from './mcp-config.js';

export async function usersAddCommand(args: { paths: Paths; name: string; timeZone?: string; replace: boolean }, io: CliIo): Promise<number> {
  // A malformed name is bad usage: said before the password is read or the database opened.
  const badName = userNameProblem(args.name);
  if (badName) throw new UsageError(badName);
  // A name taken (or taken but for case, or the owner's with --replace) is said before the password is asked for
  // (found at stop 21: it was asked twice, then refused); addUser refuses the same, in the same words.
  const refusal = refusalOfPassword(await accountLike(args.paths, args.name), args);
  if (refusal) throw commandFailure(refusal);
  const password = await readPassword(args, io);
  // An account added by another process since that look is refused here, in the same words (addUser: NAME_TAKEN).
  const user = await withStore(args.paths, async (store) => {
    const changed = await addUser(
      store,
      // With --replace, a zone named is the account's new zone; none named keeps the one it has.
      { name: args.name, password, timeZone: args.timeZone ?? systemTimeZone(io.env), replace: args.replace, replaceTimeZone: args.timeZone !== undefined },
      io.now(),
      { by: 'cli' },
    ).catch((error: unknown) => {
      throw commandFailure(error);
    });
    await warnIfServedElsewhere(store, args.paths, io.stderr);
    return changed;
  });
  if (user.added) io.stderr.write(`Added ${args.name}.\n`);
  else if (user.previousTimeZone !== undefined) io.stderr.write(`Set the password of ${args.name}; its time zone is now ${user.timeZone} (was ${user.previousTimeZone}).\n`);
  else if (args.timeZone !== undefined) io.stderr.write(`Set the password of ${args.name}; its time zone stays ${user.timeZone}.\n`);
  else io.stderr.write(`Set the password of ${args.name}.\n`);
  return EXIT_OK;
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
    const changed = await setUserTimeZone(store, { name: args.name, timeZone: args.timeZone }, io.now(), { by: 'cli' }).catch((error: unknown) => {
      throw error instanceof UserError ? new CommandFailed(error.message) : error;
    });
    await warnIfServedElsewhere(store, args.paths, io.stderr);
    return changed;
  });
  if (user.timeZone === user.previousTimeZone) io.stderr.write(`The time zone of ${args.name} is ${user.timeZone} already; nothing changed.\n`);
  else io.stderr.write(`The time zone of ${args.name} is now ${user.timeZone} (was ${user.previousTimeZone}).\n`);
  return EXIT_OK;
}

/**
 * At a terminal, a line typed without echo, then typed again to be sure (as `passwd` asks: a typo no one
 * saw would otherwise become the password); from a pipe, everything (its last line break dropped).
 */
async function readPassword(args: { name: string; replace: boolean }, io: CliIo): Promise<string> {
  if (secretTypedAtTerminal(io)) {
    const unchanged = args.replace ? `the password of ${args.name} is unchanged` : `${args.name} was not added`;
    const typed = await typedSecret(io, `Password for ${args.name}: `, unchanged);
    const again = await typedSecret(io, `Password for ${args.name}, again: `, unchanged);
    if (!constantTimeEqual(typed, again)) throw new CommandFailed(`The two passwords typed differ: ${unchanged}.`);
    return typed;
  }
  return (await pipedSecret(io, 'the password')).replace(/\r?\n$/, '');
}
