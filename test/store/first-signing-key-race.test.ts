// The first signing key of a new data directory, added by two processes at once: the first `serve` and an
// `agents register` (which takes no start lock) each load the key ring, find no current key, and add one. Found in
// review (s28race): both were added, so two keys were current (both in the JWKS), and an agent statement signed with
// one failed the consent page's check against the other (statementKey: the current key only). Now the look and the
// write are one IMMEDIATE transaction (Store.addSigningKeyIfNone), and the second process takes the first one's key.
import { describe, expect, it } from 'vitest';
import { twoConnectionsEachTest } from '../support/two-connections.js';
import { loadKeyRing, newSigningKey, type KeyRing } from '../../src/authz/keys.js';
import type { Store } from '../../src/store/index.js';

const NOW = Date.UTC(2026, 11, 7);
let store: Store;
let other: Store; // another process's connection
twoConnectionsEachTest('delegate-first-key-race-', (opened, another) => {
  [store, other] = [opened, another];
});

const current = async (s: Store) => (await s.signingKeys()).filter((k) => k.retiredAt === null);

describe('two processes loading the key ring of a new data directory at once', () => {
  it('the second looks before the first adds its key: one current key, which both rings sign with', async () => {
    let first: KeyRing | undefined;
    // `store` looks for a current key, and the other process loads its ring (adding the key) before `store` goes on.
    const raced = new Proxy(store, {
      get(target, key) {
        if (key === 'signingKeys') {
          return async () => {
            const keys = await target.signingKeys();
            first ??= await loadKeyRing(other, () => NOW, 600_000);
            return keys;
          };
        }
        const value = Reflect.get(target, key) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const second = await loadKeyRing(raced, () => NOW, 600_000);
    expect(first).toBeDefined();

    const keys = await current(store);
    expect(keys).toHaveLength(1);
    expect((await first!.current()).kid).toBe(keys[0]!.kid);
    expect((await second.current()).kid).toBe(keys[0]!.kid);
    expect((await second.jwks()).keys.map((k) => k.kid)).toEqual([keys[0]!.kid]);
    expect(await second.statementKey(keys[0]!.kid)).toBeDefined();
    // The key added is on the audit log once, by its id, whichever process added it; the one that found it added none.
    expect(await keyRecords(store)).toEqual([{ by: 'setup', kid: keys[0]!.kid }]);
  });
});

/** The details of the signing_key_created records on the audit log. */
const keyRecords = async (s: Store) => (await s.listAudit()).filter((r) => r.event === 'signing_key_created').map((r) => r.detail);

describe('the first signing key on the audit log', () => {
  it('is recorded once, by its id and never its key material, and a ring loaded again records nothing', async () => {
    await loadKeyRing(store, () => NOW, 600_000);
    await loadKeyRing(other, () => NOW + 1000, 600_000);
    const [key] = await current(store);
    expect(await keyRecords(store)).toEqual([{ by: 'setup', kid: key!.kid }]);
    const [record] = (await store.listAudit()).filter((r) => r.event === 'signing_key_created');
    expect(record!.at).toBe(NOW);
    expect(JSON.stringify(record)).not.toContain(String((key!.privateJwk as { d: string }).d));
  });
});

describe('Store.addSigningKeyIfNone', () => {
  it('adds the key when none is current, and otherwise returns the current one, from either connection', async () => {
    const a = await newSigningKey(NOW);
    const b = await newSigningKey(NOW + 1);
    expect((await other.addSigningKeyIfNone(a)).kid).toBe(a.kid);
    expect(await store.addSigningKeyIfNone(b)).toEqual(a);
    expect((await current(store)).map((k) => k.kid)).toEqual([a.kid]);
  });
});
