// The local owner's sign-in link: the key file, the assertion's claims and
// lifetime, and the link's shape.
import { mkdtemp, readFile, rm, stat, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { decodeProtectedHeader, importJWK, jwtVerify, type JWK } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateOwnerKey, loginLinkFor, ownerLoginApplies, signOwnerAssertion } from '../../src/client/owner-login.js';

let dir: string;
let keyPath: string;
const ISSUER = 'http://127.0.0.1:8410';
const now = () => Date.now();

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-owner-'));
  keyPath = join(dir, 'home', 'owner-key.json');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function publicHalf(jwk: JWK): JWK {
  const { d: _d, ...pub } = jwk;
  return pub;
}

describe('owner key', () => {
  it('is created once, 0600 in a 0700 directory, as an ES256 private JWK with kid', async () => {
    const [a, b] = await Promise.all([loadOrCreateOwnerKey(keyPath), loadOrCreateOwnerKey(keyPath)]);
    expect(a).toEqual(b); // racing creators end with one key
    expect(a).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', kid: expect.any(String), d: expect.any(String) });
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'home'))).mode & 0o777).toBe(0o700);
    expect(await loadOrCreateOwnerKey(keyPath)).toEqual(a);
  });

  it('is refused, not replaced, when others can read it or it is not a key', async () => {
    await loadOrCreateOwnerKey(keyPath);
    await chmod(keyPath, 0o644);
    await expect(loadOrCreateOwnerKey(keyPath)).rejects.toMatchObject({ code: 'OWNER_KEY' });
    await writeFile(keyPath, 'not json', { mode: 0o600 });
    await chmod(keyPath, 0o600);
    await expect(loadOrCreateOwnerKey(keyPath)).rejects.toMatchObject({ code: 'OWNER_KEY' });
    expect(await readFile(keyPath, 'utf8')).toBe('not json');
  });
});

describe('owner assertion', () => {
  it('carries iss delegate-cli, sub owner, aud the issuer, a 256-bit jti, the digest of its next, and lives at most 120 s', async () => {
    const key = await loadOrCreateOwnerKey(keyPath);
    const fixed = 1_800_000_000_000;
    const next = '/authorize?client_id=c&state=s';
    const jwt = await signOwnerAssertion({ key, issuer: ISSUER, now: () => fixed, lifetimeSec: 600, next });
    expect(decodeProtectedHeader(jwt)).toMatchObject({ alg: 'ES256', kid: key.kid });
    const { payload } = await jwtVerify(jwt, await importJWK(publicHalf(key), 'ES256'), {
      issuer: 'delegate-cli',
      subject: 'owner',
      audience: ISSUER,
      currentDate: new Date(fixed),
    });
    expect(payload.iat).toBe(fixed / 1000);
    expect(payload.exp! - payload.iat!).toBe(120);
    expect(Buffer.from(payload.jti!, 'base64url').length).toBeGreaterThanOrEqual(16);
    expect(payload.next_sha256).toBe(createHash('sha256').update(next).digest('base64url'));
    const other = await signOwnerAssertion({ key, issuer: ISSUER, now: () => fixed, next });
    expect(decodeJti(other)).not.toBe(payload.jti);
  });
});

describe('login link', () => {
  const AGENT = 'http://127.0.0.1:8412/mcp';
  const authorizationUrl = new URL(`${ISSUER}/authorize?response_type=code&client_id=c&state=s&resource=${encodeURIComponent('http://127.0.0.1:8412/mcp')}`);

  it('is <issuer>/login/owner with the assertion and next = the authorization path and query', async () => {
    const link = new URL(await loginLinkFor({ authorizationUrl, issuer: ISSUER, agentUrl: AGENT, serverDataDirectory: 'this', ownerKeyPath: keyPath, now }));
    expect(`${link.origin}${link.pathname}`).toBe(`${ISSUER}/login/owner`);
    expect(link.searchParams.get('next')).toBe(`${authorizationUrl.pathname}${authorizationUrl.search}`);
    const key = await loadOrCreateOwnerKey(keyPath);
    await jwtVerify(link.searchParams.get('assertion')!, await importJWK(publicHalf(key), 'ES256'), { audience: ISSUER });
    expect(link.href).not.toMatch(/[\s"<>]/); // one unbroken token on its line
  });

  // Found in review: only 127.0.0.1, [::1] and localhost counted as this machine, so an authorization server on
  // 127.0.0.2 (`serve-auth --host 127.0.0.2`) or ::ffff:127.0.0.1 got the plain URL, and the owner no way to sign in.
  it('applies to an authorization server on any loopback address, for a URL on its origin only', () => {
    for (const issuer of ['http://127.0.0.2:8410', 'http://[::ffff:127.0.0.1]:8410', 'http://localhost:8410', 'http://[::1]:8410']) {
      expect(ownerLoginApplies(issuer, new URL(`${new URL(issuer).origin}/authorize?client_id=c`), AGENT, 'this'), issuer).toBe(true);
    }
    expect(ownerLoginApplies('http://127.0.0.2:8410', new URL('http://127.0.0.1:8410/authorize?client_id=c'), AGENT, 'this')).toBe(false);
    expect(ownerLoginApplies('http://[::ffff:10.0.0.1]:8410', new URL('http://[::ffff:10.0.0.1]:8410/authorize?client_id=c'), AGENT, 'this')).toBe(false);
  });

  // Found in review (regress20c): an agent published elsewhere whose metadata names an authorization server on this
  // machine's loopback got the owner's sign-in link for it, and an owner key made in the data directory.
  it('is the plain authorization URL for an agent that is not on this machine, whatever authorization server it names', async () => {
    const local = new URL('http://127.0.0.1:8410/authorize?client_id=c');
    for (const agent of ['https://evil.example.test/mcp', 'http://192.0.2.7:8412/mcp']) {
      expect(ownerLoginApplies('http://127.0.0.1:8410', local, agent, 'this'), agent).toBe(false);
      expect(await loginLinkFor({ authorizationUrl: local, issuer: 'http://127.0.0.1:8410', agentUrl: agent, serverDataDirectory: 'this', ownerKeyPath: keyPath, now })).toBe(local.href);
    }
    await expect(stat(keyPath)).rejects.toThrow(); // no owner key made for it
    expect(ownerLoginApplies('http://127.0.0.1:8410', local, 'http://[::1]:8412/mcp', 'this')).toBe(true);
  });

  it('is the plain authorization URL when the server is not on this machine', async () => {
    const remote = new URL('https://as.example.com/authorize?client_id=c');
    expect(ownerLoginApplies('https://as.example.com', remote, AGENT, 'this')).toBe(false);
    expect(await loginLinkFor({ authorizationUrl: remote, issuer: 'https://as.example.com', agentUrl: AGENT, serverDataDirectory: 'this', ownerKeyPath: keyPath, now })).toBe(remote.href);
    await expect(stat(keyPath)).rejects.toThrow(); // no key created for nothing
  });
});

function decodeJti(jwt: string): string {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')).jti;
}
