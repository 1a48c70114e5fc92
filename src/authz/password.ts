// Passwords of named accounts, stored only as scrypt hashes
// (`scrypt$N$r$p$salt$hash`: each hash carries the parameters it was made
// with), checked in constant time. New hashes get the parameters of OWASP's
// Password Storage Cheat Sheet (scrypt N=2^17, r=8, p=1); an older hash is
// checked with its own, and replaced at its account's next sign-in
// (upgradedHash). A check against an unknown account still runs scrypt, at
// the current parameters, and one against an older hash is padded to the
// current cost, so timing does not tell which names exist.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { constantTimeEqual } from './crypto.js';

/** scrypt's cost: N (CPU and memory), r (block size), p (parallelism). */
interface ScryptCost {
  n: number;
  r: number;
  p: number;
}

/**
 * The parameters of new hashes: OWASP's minimum for scrypt (N=2^17, r=8, p=1), 128 MiB and, measured on this
 * machine, about 0.38 s a hash (N=2^15, the parameters before, took 0.09 s).
 */
const CURRENT_COST: Readonly<ScryptCost> = { n: 1 << 17, r: 8, p: 1 };
const KEY_LENGTH = 32;
export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;

/**
 * The most memory a stored hash's parameters may ask for: twice the current ones' (256 MiB). A row with more (damaged,
 * or written by hand) is no hash this build checks: its password is refused rather than the process's memory taken.
 */
const MOST_MEMORY = 2 * 128 * CURRENT_COST.r * CURRENT_COST.n;

/**
 * The memory scrypt is allowed for `cost`: what OpenSSL counts it needs (128·r·(N+2) bytes for V, 128·r·p for B) and
 * 1 MiB over it. Node's default (32 MiB) is below what N=2^17, r=8 needs (128 MiB).
 */
function maxmemFor({ n, r, p }: ScryptCost): number {
  return 128 * r * (n + 2) + 128 * r * p + (1 << 20);
}

/**
 * Password hashes take turns, one at a time. scrypt runs on libuv's thread
 * pool (four threads), as do the store's syncs, token signatures and
 * checks and file reads: a burst of sign-in attempts, each about 0.4 s of
 * scrypt, would otherwise hold every thread and stall all of them (and take
 * 128 MiB each). At most MAX_WAITING wait their turn; beyond that a check is
 * refused at once (PasswordChecksBusy) rather than queued longer.
 */
let turn: Promise<unknown> = Promise.resolve();
let waiting = 0;
/**
 * About 1.5 s of waiting at the current cost, as 16 were at N=2^15 (found in review, s24new2: kept at 16 when the
 * cost rose fourfold, a sign-in behind a burst waited 6 s).
 */
export const MAX_WAITING = 4;

/** More password checks are waiting than MAX_WAITING: try again in a moment. */
export class PasswordChecksBusy extends Error {
  constructor() {
    super('Too many password checks are waiting.');
    this.name = 'PasswordChecksBusy';
  }
}

function scryptOnce(password: string, salt: Buffer, cost: ScryptCost): Promise<Buffer> {
  const { n: N, r, p } = cost;
  return new Promise<Buffer>((resolve, reject) =>
    scrypt(password.normalize('NFKC'), salt, KEY_LENGTH, { N, r, p, maxmem: maxmemFor(cost) }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/**
 * The key of `password` at `cost`, in its turn; then, in the same turn and unless `matched(key)` (a right password,
 * which the answer says anyway: its padding would only slow the sign-in and its rehash), scrypt of nothing at each of
 * `padding`.
 */
function derive(password: string, salt: Buffer, cost: ScryptCost, padding: readonly ScryptCost[] = [], matched: (key: Buffer) => boolean = () => false): Promise<Buffer> {
  if (waiting >= MAX_WAITING) return Promise.reject(new PasswordChecksBusy());
  waiting++;
  const mine = turn
    .finally(() => waiting--)
    .then(async () => {
      const key = await scryptOnce(password, salt, cost);
      if (!matched(key)) for (const pad of padding) await scryptOnce('', PADDING_SALT, pad);
      return key;
    });
  turn = mine.catch(() => undefined);
  return mine;
}

const PADDING_SALT = Buffer.alloc(16);

/**
 * The scrypt runs that bring a check at `cost` up to the work of one at the current cost (scrypt's work grows as
 * N·r·p): N=2^15 is padded with N=2^16 and N=2^15 at the current r and p, so that a wrong password costs as long for
 * an account whose hash predates the current cost as for one that has the current cost or does not exist. Found in
 * review (s24new2): an account not signed in since the cost rose answered in 0.09 s, an unknown name in 0.38 s.
 * None for a cost at or above the current one (or one whose work does not divide into the current r and p).
 */
function paddingFor(cost: ScryptCost): ScryptCost[] {
  const unit = CURRENT_COST.r * CURRENT_COST.p;
  const deficit = CURRENT_COST.n * unit - cost.n * cost.r * cost.p;
  if (deficit <= 0 || deficit % unit !== 0) return [];
  const padding: ScryptCost[] = [];
  for (let left = deficit / unit, bit = CURRENT_COST.n; bit >= 2; bit /= 2) {
    if (left >= bit) {
      padding.push({ n: bit, r: CURRENT_COST.r, p: CURRENT_COST.p });
      left -= bit;
    }
  }
  return padding;
}

function format(cost: ScryptCost, salt: Buffer, key: Buffer): string {
  return ['scrypt', cost.n, cost.r, cost.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  return format(CURRENT_COST, salt, await derive(password, salt, CURRENT_COST));
}


/** A hash of nothing at the current parameters, to spend the same time on an account that does not exist. */
const DUMMY = { cost: CURRENT_COST, salt: Buffer.alloc(16), key: Buffer.alloc(KEY_LENGTH) };

/** A stored hash's parameters, salt and key; undefined for anything else, or for parameters past MOST_MEMORY. */
function parseHash(stored: string): { cost: ScryptCost; salt: Buffer; key: Buffer } | undefined {
  const fields = stored.split('$');
  if (fields.length !== 6 || fields[0] !== 'scrypt') return undefined;
  const [n, r, p] = fields.slice(1, 4).map((v) => (/^[1-9][0-9]{0,9}$/.test(v) ? Number(v) : 0)) as [number, number, number];
  // N a power of two above 1 and below 2^(16·r) (scrypt's rules), r and p at least 1, within the memory bound; and no
  // more work (N·r·p) than a current hash's (found in review, s24new3: N=2^17 with p=16 took 5 s a check, holding the
  // queue, and told by its time which account had it; N=2^16 with r=1 threw scrypt's RangeError out of the sign-in).
  if (n < 2 || (n & (n - 1)) !== 0 || r < 1 || p < 1 || p > 16 || 128 * r * n > MOST_MEMORY) return undefined;
  if (n >= 2 ** (16 * r) || n * r * p > CURRENT_COST.n * CURRENT_COST.r * CURRENT_COST.p) return undefined;
  const [salt, key] = fields.slice(4).map((v) => Buffer.from(v, 'base64url')) as [Buffer, Buffer];
  if (salt.length === 0 || key.length === 0) return undefined;
  return { cost: { n, r, p }, salt, key };
}

export async function verifyPassword(password: string, stored: string | null | undefined): Promise<boolean> {
  const readable = stored !== undefined && stored !== null ? parseHash(stored) : undefined;
  // No account, or a stored value this build does not read: the dummy's check, so that the time is a real check's
  // (found in review, s24new3: an unreadable value answered at once).
  const parsed = readable ?? DUMMY;
  if (password.length > MAX_PASSWORD_LENGTH) return false;
  const expected = parsed.key;
  const same = (key: Buffer) => key.length === expected.length && timingSafeEqual(key, expected);
  const actual = await derive(password, parsed.salt, parsed.cost, paddingFor(parsed.cost), (key) => readable !== undefined && same(key));
  return same(actual) && readable !== undefined;
}

/** Whether `stored` was made with other parameters than new hashes get (or is no hash this build reads). */
export function hashIsOutdated(stored: string): boolean {
  const cost = parseHash(stored)?.cost;
  return cost === undefined || cost.n !== CURRENT_COST.n || cost.r !== CURRENT_COST.r || cost.p !== CURRENT_COST.p;
}

/**
 * What to store in place of `stored`, whose password `password` has just been checked right: the same password
 * hashed at the current parameters when `stored` has older ones; undefined when it has the current ones already, or
 * when the hashing is busy (PasswordChecksBusy: the sign-in goes ahead, and the next one tries again).
 */
export async function upgradedHash(password: string, stored: string): Promise<string | undefined> {
  if (!hashIsOutdated(stored)) return undefined;
  return hashPassword(password).catch((error: unknown) => {
    if (error instanceof PasswordChecksBusy) return undefined;
    throw error;
  });
}

/**
 * Why `password` may not be the password of the account `accountName`, or undefined when it may. As NIST SP 800-63B
 * §3.1.1.2 asks: a length, no composition rules (no "a digit and a capital"), and a refusal of values that are
 * obviously weak: only blank characters, one character repeated, or the account's own name in any case. Looked at
 * as it is hashed (NFKC: a full-width "ａａａａ" is "aaaa").
 */
export function passwordProblem(password: string, accountName: string): string | undefined {
  if (password.length < MIN_PASSWORD_LENGTH) return `A password needs at least ${MIN_PASSWORD_LENGTH} characters.`;
  if (password.length > MAX_PASSWORD_LENGTH) return `A password may have at most ${MAX_PASSWORD_LENGTH} characters.`;
  const text = password.normalize('NFKC');
  if (text.trim() === '') return 'A password may not be only spaces or other blank characters.';
  const characters = Array.from(text);
  if (characters.every((c) => c === characters[0])) return 'A password may not be one character repeated.';
  // Names are ASCII (users.ts): lower-casing both compares them ignoring case.
  if (constantTimeEqual(text.trim().toLowerCase(), accountName.toLowerCase())) return "A password may not be the account's name.";
  return undefined;
}
