// A resource server whose authorization server is down, or hangs: the keys
// cannot be had, so every token is refused with 503 (fail closed, no verdict
// on the token). Found in review: an issuer that accepted connections and
// never answered made every request wait for its own discovery (5 s for the
// metadata, 5 more for the keys) before its 503. Now a failure holds for the
// Retry-After it announces: the requests in that time are refused at once and
// the issuer is not asked again until it ends. Against a real loopback server.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SignJWT, importJWK, type CryptoKey } from 'jose';
import { VerifierUnavailableError, createBearerVerifier, type BearerRequest } from '../../src/resource/bearer.js';
import { es256Key } from '../support/authz.js';

/** A request whose Authorization header carries `token` as a bearer token (what a verifier reads of it). */
const withBearer = (token: string): BearerRequest => ({ url: '/', headers: { authorization: `Bearer ${token}` } });

const AUDIENCE = 'http://127.0.0.1:8412/mcp';

type Mode = 'hang' | 'refuse' | 'serve';

/** A stand-in authorization server on loopback: hangs (never answers), answers 503, or serves its metadata and keys. */
async function standInIssuer() {
  const key = await es256Key();
  const requests: string[] = [];
  const held: ServerResponse[] = [];
  let mode: Mode = 'hang';
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push(req.url ?? '');
    if (mode === 'hang') return void held.push(res);
    if (mode === 'refuse') return void res.writeHead(503).end();
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/oauth-authorization-server') return void res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    if (req.url === '/jwks') return void res.end(JSON.stringify({ keys: [key.publicJwk] }));
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const privateKey = (await importJWK(key.privateJwk, 'ES256')) as CryptoKey;
  const nowSec = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ client_id: 'c1', scope: 'slots:find', grant_id: 'grt_1' })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: key.privateJwk.kid! })
    .setIssuer(issuer)
    .setSubject('user-1')
    .setAudience(AUDIENCE)
    .setJti('at_1')
    .setIssuedAt(nowSec)
    .setExpirationTime(nowSec + 3600)
    .sign(privateKey);
  return {
    issuer,
    token,
    requests,
    setMode: (m: Mode) => (mode = m),
    close: () => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const outcome = (p: Promise<unknown>) => p.then(() => 'verified' as const, (e: unknown) => e);

describe('the issuer’s keys cannot be had (down or hanging)', () => {
  let as: Awaited<ReturnType<typeof standInIssuer>> | undefined;
  afterEach(async () => as?.close());

  it.each<Mode>(['hang', 'refuse'])('%s: the first request asks the issuer and is refused 503; the next ones within Retry-After are refused without asking it; after it, the issuer is asked again', async (mode) => {
    as = await standInIssuer();
    as.setMode(mode);
    let clock = Date.now();
    const verify = createBearerVerifier({ issuer: as.issuer, audience: AUDIENCE, now: () => clock, keysTimeoutMs: 2_000 });
    const first = await outcome(verify(withBearer(as.token), []));
    expect(first).toBeInstanceOf(VerifierUnavailableError);
    expect((first as VerifierUnavailableError).retryAfterSec).toBe(5);
    expect(as.requests).toEqual(['/.well-known/oauth-authorization-server']);

    // Ten more, 4.9 s of the resource server's clock later: each refused the same way, the issuer never asked.
    clock += 4_900;
    for (let i = 0; i < 10; i++) {
      const err = await outcome(verify(withBearer(as.token), []));
      expect(err).toBeInstanceOf(VerifierUnavailableError);
    }
    expect(as.requests).toHaveLength(1);

    // Once the Retry-After has passed, the issuer is asked again, and when it is back the token is judged.
    clock += 200;
    as.setMode('serve');
    expect(await outcome(verify(withBearer(as.token), []))).toBe('verified');
    expect(as.requests).toEqual(['/.well-known/oauth-authorization-server', '/.well-known/oauth-authorization-server', '/jwks']);
  });
});
