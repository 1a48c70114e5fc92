// The authorization server's signing keys: ES256, generated on first start and
// kept in the store, published at the JWKS URL. A retired key stays published
// until every token it signed has expired.
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { SIGNING_ALG } from '../delegation/index.js';
import type { SigningKeyRecord, Store } from '../store/index.js';

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
}

export interface KeyRing {
  /** The key new tokens are signed with. */
  current(): SigningKey;
  /** The public JWK Set: the current key and retired keys whose tokens may still be alive. */
  jwks(): { keys: JWK[] };
  /** Verification key for a kid, or undefined. */
  publicKey(kid: string): Promise<CryptoKey | undefined>;
}

/** Loads the signing keys, creating the first one if the store has none. */
export async function loadKeyRing(store: Store, now: () => number, maxTokenLifetimeMs: number): Promise<KeyRing> {
  let records = await store.signingKeys();
  if (!records.some((k) => k.retiredAt === null)) {
    await store.addSigningKey(await newSigningKey(now()));
    records = await store.signingKeys();
  }
  const active = records.filter((k) => k.retiredAt === null).sort((a, b) => b.createdAt - a.createdAt)[0]!;
  const current: SigningKey = { kid: active.kid, privateKey: (await importJWK(active.privateJwk as JWK, SIGNING_ALG)) as CryptoKey };
  const published = records.filter((k) => k.retiredAt === null || k.retiredAt + maxTokenLifetimeMs > now());
  const publicKeys = new Map<string, Promise<CryptoKey>>();
  return {
    current: () => current,
    jwks: () => ({ keys: published.map((k) => ({ ...(k.publicJwk as JWK), kid: k.kid, alg: SIGNING_ALG, use: 'sig' })) }),
    publicKey: async (kid) => {
      const record = published.find((k) => k.kid === kid);
      if (!record) return undefined;
      let key = publicKeys.get(kid);
      if (!key) {
        key = importJWK(record.publicJwk as JWK, SIGNING_ALG) as Promise<CryptoKey>;
        publicKeys.set(kid, key);
      }
      return key;
    },
  };
}

async function newSigningKey(now: number): Promise<SigningKeyRecord> {
  const { privateKey, publicKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return {
    kid,
    alg: SIGNING_ALG,
    privateJwk: { ...(await exportJWK(privateKey)), kid },
    publicJwk: { ...publicJwk, kid },
    createdAt: now,
    retiredAt: null,
  };
}
