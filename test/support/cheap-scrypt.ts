// Test support: node:crypto with scrypt run at N=2^12 whatever N it is asked for (a hash then takes a few
// milliseconds, not the 0.4 s of N=2^17), for test files that count sign-in attempts (rate limits, lockouts, many
// sign-ins in a row) rather than what each costs. Such a file mocks node:crypto with it:
//   vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));
// The hashes stored and the checks both go through it, so they still match. What scrypt is really asked for is
// checked in test/authz/password-cost.test.ts; a burst that must find checks waiting (login-busy) keeps the real cost.
import type * as crypto from 'node:crypto';

const CHEAP_N = 1 << 12;

export function withCheapScrypt(actual: typeof crypto): typeof crypto {
  const scrypt = (password: crypto.BinaryLike, salt: crypto.BinaryLike, keylen: number, options: crypto.ScryptOptions, callback: (err: Error | null, key: Buffer) => void) =>
    actual.scrypt(password, salt, keylen, { ...options, N: Math.min(options.N ?? CHEAP_N, CHEAP_N) }, callback);
  return { ...actual, scrypt: scrypt as typeof crypto.scrypt };
}
