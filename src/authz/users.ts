// Named accounts for server mode, created by an administrator: a name and a
// password kept only as an scrypt hash. The local owner needs no password.
import { isIanaZone } from '../config.js';
import type { Store, UserRecord, UserRemoval } from '../store/index.js';
import { randomId } from './crypto.js';
import { hashPassword, passwordProblem } from './password.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export class UserError extends Error {
  readonly code: 'INVALID_NAME' | 'WEAK_PASSWORD' | 'NAME_TAKEN' | 'INVALID_TIME_ZONE' | 'NO_SUCH_ACCOUNT' | 'OWNER_ZONE' | 'OWNER_PASSWORD' | 'OWNER_REMOVAL' | 'AMBIGUOUS_NAME';
  /** NAME_TAKEN: the account there already, as its name is spelled, when `users add NAME --replace` sets its password. */
  readonly replaceable?: string;
  constructor(code: UserError['code'], message: string, replaceable?: string) {
    super(message);
    this.name = 'UserError';
    this.code = code;
    if (replaceable !== undefined) this.replaceable = replaceable;
  }
}

/** Why `name` cannot name an account, or undefined when it can. */
export function userNameProblem(name: string): string | undefined {
  return NAME.test(name) ? undefined : 'A name is 1–64 letters, digits, dots, dashes, underscores or @, starting with a letter or digit.';
}

/**
 * Why a new account may not have `name` though it is well formed: one spelled as an account's id (`usr_…`) would
 * stand in for that id where `audit --user` and `grants list --user` take a name or an id, and hide a removed
 * account's records behind a live account's (found in review, s25new2). Accounts named so before stay as they are.
 */
export function newAccountNameProblem(name: string): string | undefined {
  return /^usr_/i.test(name) ? `A new account's name may not start with usr_, as account ids do (${name} would read as one).` : undefined;
}

/**
 * The refusal of a name that an account has already (NAME_TAKEN); `name` is that account's, as it is spelled, and
 * `replaceable` says whether --replace would set its password (not the owner's).
 */
export function nameTaken(name: string, replaceable = true): UserError {
  return new UserError('NAME_TAKEN', `There is already an account named ${name}.`, replaceable ? name : undefined);
}

/**
 * The refusal of a password for the local owner (OWNER_PASSWORD): it signs in without one. `configFile` as for
 * ownerZoneSetting; `delegate` what runs delegate in the person's shell (the CLI's delegateCommand: found in review,
 * s27hint, a bare `delegate` where none is on PATH).
 */
export function ownerHasNoPassword(name: string, configFile?: string, delegate = 'delegate'): UserError {
  return new UserError('OWNER_PASSWORD', `${name} is the local owner, which signs in with \`${delegate} login\` and has no password; its time zone is set by ${ownerZoneSetting(configFile)}.`);
}

/**
 * Where the local owner's time zone is set: 'timeZone' in its config file, named by its path when known (the CLI's
 * Paths.config). Found in review (s25docs): the refusals sent a new owner to `delegate calendar list` for the path,
 * which names it only when the file is there and cannot be used, so there was no learning where to create it.
 */
function ownerZoneSetting(configFile: string | undefined): string {
  if (configFile === undefined) return "'timeZone' in its config.json";
  return `'timeZone' in its config file ${configFile} (a JSON object such as {"timeZone": "Europe/Berlin"}; create it if it is not there)`;
}

/**
 * The account `users add NAME` would change or collide with: the one named exactly so, else one whose name differs
 * only in case. Names are ASCII (NAME above), and the sign-in rate limit counts failures per name lower-cased
 * (login.ts), so two such accounts would lock each other out (found in review, s23accounts). Databases that
 * already hold two such accounts keep both, each found by its own exact name.
 */
export async function accountNamedLike(store: Store, name: string): Promise<UserRecord | undefined> {
  return (await store.userByName(name)) ?? store.userByNameIgnoringCase(name);
}

/**
 * The name a new local owner gets: `name` (the OS user's), or the first of `name-owner`, `name-owner-2`, … that no
 * account has, also but for case (`Alice` beside the OS user `alice`): names are unique ignoring case (the index
 * users_name_nocase), so a taken one would be refused. (Found in review: with `name` and `name-owner` both added
 * before the first start, `serve` failed on SQLite's "UNIQUE constraint failed: users.name".)
 */
export async function ownerNameBeside(store: Store, name: string): Promise<string> {
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? name : n === 2 ? `${name}-owner` : `${name}-owner-${n - 1}`;
    if (!(await accountNamedLike(store, candidate))) return candidate;
  }
}

/**
 * Adds an account, or sets the password of an existing one when `replace` is
 * true, and its time zone too when `replaceTimeZone` is (the administrator
 * named one: found in review, `--replace --time-zone` said it succeeded and
 * left the stored zone as it was). With `record`, the change is put on the
 * audit log (`user_added` or `password_set`, naming who made it, a zone that
 * changed, and never the password). `added` says which it was;
 * `previousTimeZone` is there when an existing account's zone was changed.
 */
export async function addUser(
  store: Store,
  input: { name: string; password: string; timeZone: string; replace?: boolean; replaceTimeZone?: boolean; configFile?: string; delegate?: string },
  now: number,
  record?: { by: string },
): Promise<UserRecord & { added: boolean; previousTimeZone?: string }> {
  const badName = userNameProblem(input.name);
  if (badName) throw new UserError('INVALID_NAME', badName);
  const weak = passwordProblem(input.password, input.name);
  if (weak) throw new UserError('WEAK_PASSWORD', weak);
  // The zone is checked as for a new account (the CLI's --time-zone already was): the calendar backend cannot use any other.
  if (!isIanaZone(input.timeZone)) throw new UserError('INVALID_TIME_ZONE', `'${input.timeZone}' is not an IANA time zone this computer knows, such as Europe/Berlin or UTC.`);
  // Hashed first (scrypt takes a while), so that the look for the name and the write follow each other closely.
  const passwordHash = await hashPassword(input.password);
  const existing = await accountNamedLike(store, input.name);
  if (existing) return setPassword(store, existing, passwordHash, input, now, record);
  // `replace` sets the password of an account that is there: one removed by another process while the password was
  // hashed is not added back under its name (noticed in review, s33team).
  if (input.replace) throw new UserError('NO_SUCH_ACCOUNT', `There is no account named ${input.name}, so there is no password to set.`);
  const idLike = newAccountNameProblem(input.name);
  if (idLike) throw new UserError('INVALID_NAME', idLike);
  const user: UserRecord = { id: randomId('usr'), name: input.name, passwordHash, isOwner: false, timeZone: input.timeZone, createdAt: now };
  try {
    // The account and its record in one transaction (found in review, s22store: a kill between two left the account off the log).
    await store.createUser(user, record && { event: { event: 'user_added', user: user.id, detail: { by: record.by, name: user.name } }, at: now });
  } catch (error) {
    // Another process added the name between the look and the write (the name is UNIQUE, so this write was refused):
    // the answer the look would have given, not the database's own words (found at stop 21).
    const added = await accountNamedLike(store, input.name);
    if (!added) throw error;
    return setPassword(store, added, passwordHash, input, now, record);
  }
  return { ...user, added: true };
}

/**
 * What `users add NAME [--replace]` is refused, whatever the password, when `existing` is accountNamedLike(NAME):
 * NAME_TAKEN without `replace`, or for a name that differs in case even with it (that would set another account's
 * password); OWNER_PASSWORD for the local owner, which signs in by `delegate login` and whose zone config.json sets
 * (found in review, s23accounts: it said it changed both, and a password would be a second way in), as
 * set-time-zone refuses.
 */
export function refusalOfPassword(existing: UserRecord | undefined, input: { name: string; replace?: boolean; configFile?: string; delegate?: string }): UserError | undefined {
  if (!existing) return undefined;
  if (!input.replace || existing.name !== input.name) return nameTaken(existing.name, !existing.isOwner);
  return existing.isOwner ? ownerHasNoPassword(existing.name, input.configFile, input.delegate) : undefined;
}

/**
 * addUser for an account that is there: NAME_TAKEN (also for one whose name differs only in case, even with
 * `replace`: that would set another account's password), OWNER_PASSWORD for the local owner with `replace`, or
 * with `replace` its new password (and zone), recorded with it, and its browser sessions ended.
 */
async function setPassword(
  store: Store,
  existing: UserRecord,
  passwordHash: string,
  input: { name: string; timeZone: string; replace?: boolean; replaceTimeZone?: boolean; configFile?: string },
  now: number,
  record: { by: string } | undefined,
): Promise<UserRecord & { added: boolean; previousTimeZone?: string }> {
  const refused = refusalOfPassword(existing, input);
  if (refused) throw refused;
  const zoneChanges = input.replaceTimeZone === true && input.timeZone !== existing.timeZone;
  // The zone it had too, as time_zone_set records it (found in review, s33team: only the new one was recorded).
  const detail = record && { by: record.by, name: existing.name, ...(zoneChanges ? { timeZone: input.timeZone, previousTimeZone: existing.timeZone } : {}) };
  // The change, its record and the end of the account's sessions in one transaction (found in review: with the
  // record failing, the change stood off the log; s23accounts: a cookie from before the new password still worked).
  await store.setPassword(
    existing.id,
    { passwordHash, ...(zoneChanges ? { timeZone: input.timeZone } : {}) },
    detail && { event: { event: 'password_set', user: existing.id, detail }, at: now },
  );
  return { ...existing, passwordHash, added: false, ...(zoneChanges ? { timeZone: input.timeZone, previousTimeZone: existing.timeZone } : {}) };
}

/**
 * Sets an existing account's time zone and nothing else: its password stays
 * (before, only `users add --replace --time-zone` changed a zone, and it set a
 * new password too). With `record`, a change is put on the audit log
 * (`time_zone_set`, naming who made it, the new zone and the one before); the
 * zone it has already changes nothing and records nothing. The local owner's
 * zone is refused: config.json's `timeZone` is where it is set, and would
 * override a stored one.
 */
export async function setUserTimeZone(
  store: Store,
  input: { name: string; timeZone: string; configFile?: string },
  now: number,
  record?: { by: string },
): Promise<UserRecord & { previousTimeZone: string }> {
  if (!isIanaZone(input.timeZone)) throw new UserError('INVALID_TIME_ZONE', `'${input.timeZone}' is not an IANA time zone this computer knows, such as Europe/Berlin or UTC.`);
  const existing = await store.userByName(input.name);
  if (!existing) throw new UserError('NO_SUCH_ACCOUNT', `There is no account named ${input.name}.`);
  if (existing.isOwner) {
    throw new UserError('OWNER_ZONE', `${input.name} is the local owner, whose time zone is set by ${ownerZoneSetting(input.configFile)}.`);
  }
  if (existing.timeZone === input.timeZone) return { ...existing, previousTimeZone: existing.timeZone };
  // The change and its record in one transaction (found in review: with the record failing, the zone changed off
  // the log, and a retry found nothing to change and recorded nothing).
  const detail = record && { by: record.by, name: existing.name, timeZone: input.timeZone, previousTimeZone: existing.timeZone };
  await store.updateUser(existing.id, { timeZone: input.timeZone }, detail && { event: { event: 'time_zone_set', user: existing.id, detail }, at: now });
  return { ...existing, timeZone: input.timeZone, previousTimeZone: existing.timeZone };
}

/**
 * The account `users remove NAME` removes: the one named exactly so, else the one whose name differs only in case
 * (names are unique ignoring case; `ALICE` can mean no one but `alice`). Refused: no such account
 * (NO_SUCH_ACCOUNT); two accounts that differ only in case and neither named exactly (AMBIGUOUS_NAME, naming both:
 * a database from before names were unique ignoring case may hold `alice` and `Alice`); the local owner
 * (OWNER_REMOVAL: it is the installation's own account, which `delegate login` signs in and the servers set up again).
 */
export async function accountToRemove(store: Store, name: string, delegate = 'delegate'): Promise<UserRecord> {
  const account = await liveAccountNamed(store, name, 'remove');
  if (account.isOwner) {
    throw new UserError('OWNER_REMOVAL', `${account.name} is the local owner, the account of this installation itself, which cannot be removed (\`${delegate} grants revoke\` ends its delegations).`);
  }
  return account;
}

/**
 * The live account `name` names: the one named exactly so, else the one whose name differs only in case. No such
 * account is NO_SUCH_ACCOUNT; two that differ only in case and neither named exactly (a database from before names
 * were unique ignoring case), AMBIGUOUS_NAME, asking for the name of the one to `verb` as it is spelled. The local
 * owner is found too: the caller decides what it may do to it.
 */
export async function liveAccountNamed(store: Store, name: string, verb: string): Promise<UserRecord> {
  const exact = await store.userByName(name);
  const like = exact ? [exact] : (await store.listUsers()).filter((u) => u.name.toLowerCase() === name.toLowerCase());
  if (like.length === 0) throw new UserError('NO_SUCH_ACCOUNT', `There is no account named ${name}.`);
  if (like.length > 1) {
    throw new UserError('AMBIGUOUS_NAME', `${name} names ${like.map((u) => u.name).join(' and ')} but for case: give the name of the one to ${verb} exactly as it is spelled.`);
  }
  return like[0]!;
}

/**
 * Removes a named account (`users remove`): every live grant revoked (each recorded as `grant_revoked`, by whom and
 * `via: user removed`), its sessions ended, its calendars removed and the account retired, its name free for a new
 * account that inherits nothing, with one `user_removed` record (who removed it, its name, and what ended), all in
 * one transaction (Store.removeUser). `account` is the one accountToRemove named; one removed meanwhile by another
 * process is NO_SUCH_ACCOUNT.
 */
export async function removeAccount(store: Store, account: UserRecord, now: number, record: { by: string }): Promise<UserRemoval> {
  const removal = await store.removeUser(account.id, now, {
    grant: (grant) => ({ event: 'grant_revoked', user: grant.userId, client: grant.clientId, grant: grant.id, resource: grant.resource, detail: { by: record.by, via: 'user removed' } }),
    removal: (done) => ({
      event: 'user_removed',
      user: done.user.id,
      detail: { by: record.by, name: done.user.name, grants_revoked: done.grantsRevoked.length, sessions_ended: done.sessionsEnded, calendars_removed: done.calendarsRemoved.length },
    }),
  });
  if (!removal) throw new UserError('NO_SUCH_ACCOUNT', `There is no account named ${account.name}.`);
  return removal;
}
