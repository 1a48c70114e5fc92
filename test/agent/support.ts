// Test support for CalendarAgent: an issuer key that signs access tokens the
// way delegate's authorization server does (RFC 9068), and servers on
// ephemeral loopback ports that are closed after each test.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type JWK, type JWTVerifyGetKey } from 'jose';
import type { AccessTokenClaims } from '../../src/delegation/index.js';

export interface TestIssuer {
  issuer: string;
  keys: JWTVerifyGetKey;
  publicJwk: JWK;
  /** Signs an access token; `claims` override the defaults, `header` the protected header. */
  token(claims?: Partial<AccessTokenClaims> & Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
}

export async function testIssuer(issuer: string, defaults: Partial<AccessTokenClaims>, now: () => number = Date.now): Promise<TestIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid: 'test-key', alg: 'ES256', use: 'sig' };
  const keys = createLocalJWKSet({ keys: [publicJwk] });
  return {
    issuer,
    keys,
    publicJwk,
    async token(claims = {}, header = {}) {
      const iat = Math.floor(now() / 1000);
      const payload = {
        iss: issuer,
        sub: 'owner',
        client_id: 'delegate-cli',
        scope: 'slots:find',
        grant_id: 'grant-1',
        iat,
        exp: iat + 300,
        jti: randomBytes(12).toString('base64url'),
        ...defaults,
        ...claims,
      };
      return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'test-key', ...header }).sign(privateKey);
    },
  };
}

/** Listens on an ephemeral loopback port and returns the server's origin. */
export async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

/** A port that was free a moment ago (for servers whose URL must be known before they are built). */
export { freePort } from '../support/ports.js';
