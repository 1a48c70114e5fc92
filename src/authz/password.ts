// Passwords of named accounts, stored only as scrypt hashes
// (`scrypt$N$r$p$salt$hash`), checked in constant time. A check against an
// unknown account still runs scrypt, so timing does not tell which names exist.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

const N = 1 << 15;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;
const MAX_MEM = 64 * 1024 * 1024;
export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;

/**
 * Password hashes take turns, one at a time. scrypt runs on libuv's thread
 * pool (four threads), as do the store's syncs, token signatures and
 * checks and file reads: a burst of sign-in attempts, each about 0.1 s of
 * scrypt, would otherwise hold every thread and stall all of them. At most
 * MAX_WAITING wait their turn; beyond that a check is refused at once
 * (PasswordChecksBusy) rather than queued for seconds.
 */
let turn: Promise<unknown> = Promise.resolve();
let waiting = 0;
export const MAX_WAITING = 16;

/** More password checks are waiting than MAX_WAITING: try again in a moment. */
export class PasswordChecksBusy extends Error {
  constructor() {
    super('Too many password checks are waiting.');
    this.name = 'PasswordChecksBusy';
  }
}

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  if (waiting >= MAX_WAITING) return Promise.reject(new PasswordChecksBusy());
  waiting++;
  const mine = turn.finally(() => waiting--).then(
    () =>
      new Promise<Buffer>((resolve, reject) =>
        scrypt(password.normalize('NFKC'), salt, KEY_LENGTH, { N: n, r, p, maxmem: MAX_MEM }, (err, key) => (err ? reject(err) : resolve(key))),
      ),
  );
  turn = mine.catch(() => undefined);
  return mine;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P);
  return ['scrypt', N, R, P, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** A hash of nothing, to spend the same time on an account that does not exist. */
const DUMMY = `scrypt$${N}$${R}$${P}$${Buffer.alloc(16).toString('base64url')}$${Buffer.alloc(KEY_LENGTH).toString('base64url')}`;

export async function verifyPassword(password: string, stored: string | null | undefined): Promise<boolean> {
  const [scheme, n, r, p, salt, key] = (stored ?? DUMMY).split('$');
  if (scheme !== 'scrypt' || !salt || !key) return false;
  if (password.length > MAX_PASSWORD_LENGTH) return false;
  const expected = Buffer.from(key, 'base64url');
  const actual = await derive(password, Buffer.from(salt, 'base64url'), Number(n), Number(r), Number(p));
  return actual.length === expected.length && timingSafeEqual(actual, expected) && stored !== undefined && stored !== null;
}

export function passwordProblem(password: string): string | undefined {
  if (password.length < MIN_PASSWORD_LENGTH) return `A password needs at least ${MIN_PASSWORD_LENGTH} characters.`;
  if (password.length > MAX_PASSWORD_LENGTH) return `A password may have at most ${MAX_PASSWORD_LENGTH} characters.`;
  return undefined;
}
