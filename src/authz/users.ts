// Named accounts for server mode, created by an administrator: a name and a
// password kept only as an scrypt hash. The local owner needs no password.
import type { Store, UserRecord } from '../store/index.js';
import { randomId } from './crypto.js';
import { hashPassword, passwordProblem } from './password.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export class UserError extends Error {
  readonly code: 'INVALID_NAME' | 'WEAK_PASSWORD' | 'NAME_TAKEN';
  constructor(code: UserError['code'], message: string) {
    super(message);
    this.name = 'UserError';
    this.code = code;
  }
}

/** Why `name` cannot name an account, or undefined when it can. */
export function userNameProblem(name: string): string | undefined {
  return NAME.test(name) ? undefined : 'A name is 1–64 letters, digits, dots, dashes, underscores or @, starting with a letter or digit.';
}

/**
 * Adds an account, or sets the password of an existing one when `replace` is
 * true. With `record`, the change is put on the audit log (`user_added` or
 * `password_set`, naming who made it and never the password).
 */
export async function addUser(
  store: Store,
  input: { name: string; password: string; timeZone: string; replace?: boolean },
  now: number,
  record?: { by: string },
): Promise<UserRecord> {
  const badName = userNameProblem(input.name);
  if (badName) throw new UserError('INVALID_NAME', badName);
  const weak = passwordProblem(input.password);
  if (weak) throw new UserError('WEAK_PASSWORD', weak);
  const existing = await store.userByName(input.name);
  const passwordHash = await hashPassword(input.password);
  if (existing) {
    if (!input.replace) throw new UserError('NAME_TAKEN', `There is already an account named ${input.name}.`);
    await store.setPassword(existing.id, passwordHash);
    if (record) await store.appendAudit({ event: 'password_set', user: existing.id, detail: { by: record.by, name: existing.name } }, now);
    return { ...existing, passwordHash };
  }
  const user: UserRecord = { id: randomId('usr'), name: input.name, passwordHash, isOwner: false, timeZone: input.timeZone, createdAt: now };
  await store.createUser(user);
  if (record) await store.appendAudit({ event: 'user_added', user: user.id, detail: { by: record.by, name: user.name } }, now);
  return user;
}
