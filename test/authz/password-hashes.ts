// Test support: a password hash in the stored format (`scrypt$N$r$p$salt$key`, src/authz/password.ts) made with any
// scrypt parameters, such as the N=2^15 of hashes stored before the parameters were raised.
import { randomBytes, scryptSync } from 'node:crypto';

export function hashWithCost(password: string, n: number, r = 8, p = 1): string {
  const salt = randomBytes(16);
  const key = scryptSync(password.normalize('NFKC'), salt, 32, { N: n, r, p, maxmem: 256 * 1024 * 1024 });
  return ['scrypt', n, r, p, salt.toString('base64url'), key.toString('base64url')].join('$');
}
