// The authorization server's signing keys: ES256, generated on first start and
// kept in the store, published at the JWKS URL. A rotation (`delegate keys
// rotate`, rotateSigningKeys below) makes a new key current and retires the
// old one, which stays published until every token it signed has expired; a
// running server follows it without a restart (the ring asks the store before
// each use whether the keys changed).
import { createPrivateKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { SIGNING_ALG } from '../delegation/index.js';
import type { SigningKeyRecord, Store } from '../store/index.js';

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  /** The same private key for node:crypto, which signs on the calling thread (access-token.ts). */
  keyObject: KeyObject;
}

export interface KeyRing {
  /** The key new tokens and statements are signed with: the store's current key, as it is now. */
  current(): Promise<SigningKey>;
  /** The public JWK Set: the current key and retired keys whose tokens may still be alive. */
  jwks(): Promise<{ keys: JWK[] }>;
  /** Verification key for an access token's kid (a published key), or undefined. */
  publicKey(kid: string): Promise<CryptoKey | undefined>;
  /**
   * Verification key for an agent identity statement's kid: the current key
   * only. A rotation re-signs every statement with the new key in its own
   * transaction, so a statement signed with a retired key is not one this
   * server stands by now (with `--now`, one forged with a leaked key).
   */
  statementKey(kid: string): Promise<CryptoKey | undefined>;
}

/**
 * Loads the signing keys, creating the first one if the store has none current. The
 * ring re-reads them whenever the store's stamp says they may have changed,
 * so it needs no restart after a rotation; which keys are published is
 * decided at each call, so a retired key leaves the JWKS once its tokens expired.
 */
export async function loadKeyRing(store: Store, now: () => number, maxTokenLifetimeMs: number): Promise<KeyRing> {
  // Looked at first, so that a key is generated only when there may be none; added only if there is still none when
  // written (another process, `serve` beside `agents register` on a new data directory, may add one in between).
  // The key is on the audit log from its first day, as every rotation is (signing_key_rotated): which key signed the
  // tokens of a period can be traced (noticed at stop 30: only the keys after a rotation were recorded). Its id only.
  if (!(await store.signingKeys()).some((k) => k.retiredAt === null)) {
    const key = await newSigningKey(now());
    await store.addSigningKeyIfNone(key, { event: 'signing_key_created', detail: { by: 'setup', kid: key.kid } });
  }

  let stamp: string | undefined;
  let records: SigningKeyRecord[] = [];
  // A stamp is read before the keys it stands for: a change between the two is seen at the next call.
  const fresh = async (): Promise<SigningKeyRecord[]> => {
    const latest = await store.signingKeysStamp();
    if (latest !== stamp) {
      records = await store.signingKeys();
      stamp = latest;
    }
    return records;
  };
  const published = (all: SigningKeyRecord[]) => all.filter((k) => isPublished(k, now(), maxTokenLifetimeMs));

  const privateKeys = new Map<string, Promise<CryptoKey>>();
  const keyObjects = new Map<string, KeyObject>();
  const keyObject = (kid: string, jwk: Record<string, unknown>) => {
    let key = keyObjects.get(kid);
    if (!key) {
      key = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' });
      keyObjects.set(kid, key);
    }
    return key;
  };
  const publicKeys = new Map<string, Promise<CryptoKey>>();
  const imported = (cache: Map<string, Promise<CryptoKey>>, kid: string, jwk: Record<string, unknown>) => {
    let key = cache.get(kid);
    if (!key) {
      key = importJWK(jwk as JWK, SIGNING_ALG) as Promise<CryptoKey>;
      cache.set(kid, key);
    }
    return key;
  };
  const verificationKey = async (kid: string, among: SigningKeyRecord[]) => {
    const record = among.find((k) => k.kid === kid);
    return record ? imported(publicKeys, kid, record.publicJwk) : undefined;
  };

  return {
    current: async () => {
      const active = currentKey(await fresh());
      if (!active) throw new Error('The store holds no current signing key.');
      return { kid: active.kid, privateKey: await imported(privateKeys, active.kid, active.privateJwk), keyObject: keyObject(active.kid, active.privateJwk) };
    },
    jwks: async () => ({ keys: published(await fresh()).map((k) => ({ ...(k.publicJwk as JWK), kid: k.kid, alg: SIGNING_ALG, use: 'sig' })) }),
    publicKey: async (kid) => verificationKey(kid, published(await fresh())),
    statementKey: async (kid) => {
      const active = currentKey(await fresh());
      return active ? verificationKey(kid, [active]) : undefined;
    },
  };
}

/** The key new tokens are signed with: the newest one not retired. */
export function currentKey(records: readonly SigningKeyRecord[]): SigningKeyRecord | undefined {
  return records.filter((k) => k.retiredAt === null).sort((a, b) => b.createdAt - a.createdAt)[0];
}

/** Published while current, and after its retirement for as long as a token it signed may live. */
function isPublished(key: SigningKeyRecord, now: number, maxTokenLifetimeMs: number): boolean {
  return key.retiredAt === null || key.retiredAt + maxTokenLifetimeMs > now;
}

export async function newSigningKey(now: number): Promise<SigningKeyRecord> {
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
