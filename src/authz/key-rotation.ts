// Rotating the authorization server's signing key (`delegate keys rotate`):
// a new ES256 key becomes current and the old one is retired, in one
// transaction with the re-signing of every agent's identity statement and its
// audit record. A retired key stays published until the last access token it
// signed has expired (DESIGN.md "Tokens"); one withdrawn as leaked (`--now`)
// is deleted at once, and nothing it signed verifies from then on: its id goes
// on the revocation list, which resource servers holding an older copy of the
// JWKS follow within moments. Running servers follow on their next signature
// or JWKS request (keys.ts).
import { SignJWT, importJWK, jwtVerify, type CryptoKey, type JWK } from 'jose';
import { SIGNING_ALG } from '../delegation/index.js';
import type { SigningKeyRecord, SigningKeyRotation, Store } from '../store/index.js';
import { AGENT_STATEMENT_TYP } from './agent-statement.js';
import { currentKey, newSigningKey } from './keys.js';

export interface RotationOptions {
  now: number;
  /** The longest an access token lives (the AS's accessTokenSec): how long the old key stays published. */
  maxTokenLifetimeMs: number;
  /** The old key is thought leaked: delete it now rather than keep it published. */
  withdraw: boolean;
  /** Who rotated, for the audit record (`cli`). */
  by: string;
}

export interface RotationResult {
  kid: string;
  previousKid: string;
  /** Until when the old key stays published (ms); `now` when withdrawn. */
  publishedUntil: number;
  /** Agents whose identity statement was re-signed with the new key. */
  resigned: string[];
  /** Agents whose statement did not verify against the old key either: left as it was, to be registered again. */
  notVerified: string[];
}

/**
 * How long a withdrawn key's id stays on the revocation list. A resource
 * server uses its copy of the JWKS for up to 5 minutes (JWKS_MAX_AGE_MS in
 * src/resource/bearer.ts) and would accept, meanwhile, what the leaked key
 * signs; the list reaches it within moments. A day covers any copy with room
 * to spare; an entry costs a few bytes.
 */
export const WITHDRAWN_KEY_LISTED_MS = 24 * 3600_000;

/** Another rotation or agent registration committed between preparing and writing: prepared again, this many times. */
const ATTEMPTS = 5;

export async function rotateSigningKeys(store: Store, options: RotationOptions): Promise<RotationResult> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const previous = currentKey(await store.signingKeys());
    if (!previous) throw new Error('There is no signing key to rotate yet: the authorization server creates one when it first starts.');
    const next = await newSigningKey(options.now);
    const statements = await resignStatements(store, previous, next);
    const publishedUntil = options.withdraw ? options.now : options.now + options.maxTokenLifetimeMs;
    const rotation: SigningKeyRotation = {
      previousKid: previous.kid,
      next,
      at: options.now,
      withdraw: options.withdraw,
      ...(options.withdraw ? { withdrawnListedUntil: options.now + Math.max(WITHDRAWN_KEY_LISTED_MS, options.maxTokenLifetimeMs) } : {}),
      statements,
      record: {
        event: 'signing_key_rotated',
        detail: {
          by: options.by,
          kid: next.kid,
          previous_kid: previous.kid,
          withdrawn: options.withdraw,
          previous_published_until: new Date(publishedUntil).toISOString(),
          statements_resigned: statements.filter((s) => s.after !== s.before).map((s) => s.clientId),
        },
      },
    };
    if (await store.rotateSigningKey(rotation)) {
      return {
        kid: next.kid,
        previousKid: previous.kid,
        publishedUntil,
        resigned: statements.filter((s) => s.after !== s.before).map((s) => s.clientId),
        notVerified: statements.filter((s) => s.before !== null && s.after === s.before).map((s) => s.clientId),
      };
    }
  }
  throw new Error('The signing keys or the agents kept changing while the rotation was prepared; nothing was changed. Try again.');
}

/**
 * Each agent's statement, and the same claims signed with the next key. Only
 * a statement the old key verifies is re-signed: re-signing whatever is
 * stored would turn a statement nobody signed into one this server vouches for.
 */
async function resignStatements(store: Store, previous: SigningKeyRecord, next: SigningKeyRecord): Promise<SigningKeyRotation['statements']> {
  const oldKey = (await importJWK(previous.publicJwk as JWK, SIGNING_ALG)) as CryptoKey;
  const newKey = (await importJWK(next.privateJwk as JWK, SIGNING_ALG)) as CryptoKey;
  const agents = await store.listClients('agent');
  return Promise.all(
    agents.map(async (client) => {
      const statement = client.metadata.agent_statement;
      const before = typeof statement === 'string' ? statement : null;
      if (before === null) return { clientId: client.clientId, before, after: null };
      try {
        const { payload } = await jwtVerify(before, oldKey, { algorithms: [SIGNING_ALG], typ: AGENT_STATEMENT_TYP, subject: client.clientId });
        // The same claims (issuer, subject, when it was first made, what it says): only the signature is new.
        const after = await new SignJWT(payload).setProtectedHeader({ alg: SIGNING_ALG, typ: AGENT_STATEMENT_TYP, kid: next.kid }).sign(newKey);
        return { clientId: client.clientId, before, after };
      } catch {
        return { clientId: client.clientId, before, after: before };
      }
    }),
  );
}
