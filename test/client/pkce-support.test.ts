// The provider's PKCE check on discovered metadata (src/client/pkce-support.ts):
// what it refuses, that the conformance client's 2025-03-26 fallback lets
// only a server without metadata through, and that a refusal keeps nothing
// and comes before any client registration.
// The CLI's own refusals are in test/e2e/authorization-server-pkce.test.ts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TokenCache } from '../../src/client/cache.js';
import { isClientError } from '../../src/client/errors.js';
import { pkceRefusal } from '../../src/client/pkce-support.js';
import { CacheOAuthProvider } from '../../src/client/provider.js';

const ISSUER = 'http://127.0.0.1:8410';
const RESOURCE = 'http://127.0.0.1:8412/mcp';
const metadata = (methods?: unknown) => ({
  issuer: ISSUER,
  authorization_endpoint: `${ISSUER}/authorize`,
  token_endpoint: `${ISSUER}/token`,
  response_types_supported: ['code'],
  ...(methods === undefined ? {} : { code_challenge_methods_supported: methods }),
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-pkce-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function provider(legacyMetadataFallback: boolean) {
  const cache = new TokenCache({ files: { tokenCache: join(dir, 'tokens.json'), tokenLock: join(dir, 'tokens.lock') }, now: Date.now });
  return { cache, provider: new CacheOAuthProvider({ cache, snapshot: await cache.read(), resource: RESOURCE, now: Date.now, legacyMetadataFallback }) };
}

describe('pkceRefusal', () => {
  it.each([
    ['S256 alone', ['S256']],
    ['S256 among others', ['plain', 'S256']],
  ])('lets a server through that lists %s', (_name, methods) => {
    expect(pkceRefusal(ISSUER, metadata(methods))).toBeUndefined();
  });

  it.each([
    ['no metadata', undefined, 'publishes no metadata (RFC 8414)'],
    ['no code_challenge_methods_supported', metadata(), 'does not say in its metadata that it supports PKCE'],
    ['only plain', metadata(['plain']), 'its code_challenge_methods_supported: ["plain"]'],
    ['an empty list', metadata([]), 'its code_challenge_methods_supported: []'],
    ['a string, not a list', metadata('S256'), 'its code_challenge_methods_supported: "S256"'],
    ['lower-case s256', metadata(['s256']), 'its code_challenge_methods_supported: ["s256"]'],
  ])('refuses %s: AUTHORIZATION_FAILED naming the issuer and the rule', (_name, found, words) => {
    const refusal = pkceRefusal(ISSUER, found);
    expect(isClientError(refusal, 'AUTHORIZATION_FAILED')).toBe(true);
    expect(refusal!.message).toContain(`The authorization server ${ISSUER} `);
    expect(refusal!.message).toContain(words);
    expect(refusal!.message).toContain('"Authorization Code Protection"');
  });
});

describe('CacheOAuthProvider: discovery that finds no S256', () => {
  const refused = (e: unknown) => isClientError(e, 'AUTHORIZATION_FAILED');

  it('keeps nothing, and refuses when the SDK next asks for a client (before it registers), with or without the legacy fallback', async () => {
    for (const legacy of [false, true]) {
      const { cache, provider: p } = await provider(legacy);
      await p.saveDiscoveryState({ authorizationServerUrl: ISSUER, authorizationServerMetadata: metadata(['plain']) as never });
      expect((await cache.read()).discovery).toEqual({});
      await expect(p.clientInformation()).rejects.toSatisfy(refused);
    }
  });

  it('refuses a server without metadata, unless the conformance client asks for the 2025-03-26 fallback', async () => {
    const strict = await provider(false);
    await strict.provider.saveDiscoveryState({ authorizationServerUrl: ISSUER });
    await expect(strict.provider.clientInformation()).rejects.toSatisfy(refused);
    expect((await strict.cache.read()).discovery).toEqual({});

    const legacy = await provider(true);
    await legacy.provider.saveDiscoveryState({ authorizationServerUrl: ISSUER });
    expect(await legacy.provider.clientInformation()).toBeUndefined();
    expect((await legacy.cache.read()).discovery[RESOURCE]?.authorizationServerUrl).toBe(ISSUER);
  });

  it('keeps metadata that lists S256 (control)', async () => {
    const { cache, provider: p } = await provider(false);
    await p.saveDiscoveryState({ authorizationServerUrl: ISSUER, authorizationServerMetadata: metadata(['S256']) as never });
    expect(await p.clientInformation()).toBeUndefined();
    expect((await cache.read()).discovery[RESOURCE]?.authorizationServerUrl).toBe(ISSUER);
  });
});
