// A signing-key rotation is written all at once or not at all: the store
// refuses one prepared against keys or agents that changed since (another
// rotation, an agent registered in between, whose statement signed with the
// old key would otherwise be left for no key to verify). And `delegate keys
// rotate` as the administrator runs it, on a fresh and on a set-up directory.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeAgent, registerAgent } from '../../src/authz/agents.js';
import { rotateSigningKeys } from '../../src/authz/key-rotation.js';
import { currentKey, loadKeyRing, newSigningKey } from '../../src/authz/keys.js';
import { runCli } from '../../src/cli/program.js';
import { openStore, type Store } from '../../src/store/index.js';
import { es256Key } from '../support/authz.js';
import { fakeIo } from '../cli/fake-io.js';

const ISSUER = 'http://127.0.0.1:9410';
let dir: string;
let store: Store;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'delegate-key-rotation-'));
  store = openStore(join(dir, 'delegate.db'));
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function agent(id: string, now: number) {
  const key = await es256Key();
  await registerAgent(
    store,
    ISSUER,
    {
      clientId: id,
      resourceUrl: `http://127.0.0.1:9/${id}`,
      scopes: ['x:y'],
      jwks: { keys: [key.publicJwk as Record<string, unknown>] },
      downstream: [],
      profile: { name: id, softwareId: id, softwareVersion: '1', operator: { name: 'o', contact: 'o@example.test' }, description: 'd', limitations: [] },
    },
    now,
  );
}

describe('Store.rotateSigningKey', () => {
  it('writes nothing when the current key or the agents changed since the rotation was prepared', async () => {
    const now = Date.UTC(2026, 0, 1);
    await loadKeyRing(store, () => now, 600_000);
    await agent('one', now);
    const keys = await store.signingKeys();
    const previous = currentKey(keys)!;
    const statement = String((await store.clientById('one'))!.metadata.agent_statement);
    const rotation = (previousKid: string, statements: Array<{ clientId: string; before: string | null; after: string | null }>) =>
      newSigningKey(now).then((next) => store.rotateSigningKey({ previousKid, next, at: now, withdraw: false, statements, record: { event: 'signing_key_rotated', detail: { by: 'test' } } }));
    const audit = (await store.listAudit()).length;

    expect(await rotation('not-the-current-kid', [{ clientId: 'one', before: statement, after: 'x' }])).toBe(false);
    // An agent registered after the statements were read.
    await agent('two', now);
    expect(await rotation(previous.kid, [{ clientId: 'one', before: statement, after: 'x' }])).toBe(false);

    expect(await store.signingKeys()).toEqual(keys);
    expect((await store.clientById('one'))!.metadata.agent_statement).toBe(statement);
    expect((await store.listAudit()).length).toBe(audit);
  });

  it('rotateSigningKeys re-signs every agent, records the rotation, and keeps the old key until its tokens expire', async () => {
    const now = Date.UTC(2026, 0, 1);
    await loadKeyRing(store, () => now, 600_000);
    await agent('one', now);
    await agent('two', now);
    const result = await rotateSigningKeys(store, { now, maxTokenLifetimeMs: 600_000, withdraw: false, by: 'cli' });
    expect(result.resigned.sort()).toEqual(['one', 'two']);
    expect(result.publishedUntil).toBe(now + 600_000);
    const keys = await store.signingKeys();
    expect(keys.find((k) => k.kid === result.previousKid)?.retiredAt).toBe(now);
    expect(currentKey(keys)?.kid).toBe(result.kid);
    for (const id of ['one', 'two']) expect((await describeAgent(store, ISSUER, id, now + 3_600_000))?.verification).toMatchObject({ ok: true });
    const [record] = (await store.listAudit()).filter((r) => r.event === 'signing_key_rotated');
    expect(record?.detail).toMatchObject({ by: 'cli', kid: result.kid, previous_kid: result.previousKid, withdrawn: false });
    expect(JSON.stringify(record)).not.toContain('"d":');
  });
});

describe('delegate keys rotate', () => {
  it('on a directory with no database yet: says the servers create the key, and creates nothing', async () => {
    const home = join(dir, 'fresh');
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['keys', 'rotate'], io)).toBe(1);
    expect(io.err).toContain('There is no signing key to rotate yet');
    expect(existsSync(home)).toBe(false);
  });

  it('prints the new key and until when the old one stays published', async () => {
    const now = Date.UTC(2026, 11, 1, 8);
    await loadKeyRing(store, () => now, 600_000);
    const old = currentKey(await store.signingKeys())!.kid;
    const io = fakeIo({ DELEGATE_HOME: dir }, () => now);
    expect(await runCli(['keys', 'rotate'], io)).toBe(0);
    const kid = currentKey(await store.signingKeys())!.kid;
    expect(io.out).toContain(`New signing key ${kid}`);
    expect(io.out).toContain(`The old key ${old} stays published until 2026-12-01T08:10:00.000Z`);
    // The audit log names both keys, the first one from its creation: which key signed which period's tokens.
    const audit = fakeIo({ DELEGATE_HOME: dir }, () => now);
    expect(await runCli(['audit', '--event', 'signing_key_created,signing_key_rotated'], audit)).toBe(0);
    expect(audit.out).toBe(
      `2026-12-01T08:00:00.000Z  #1  signing_key_created  by setup  key ${old}\n` + `2026-12-01T08:00:00.000Z  #2  signing_key_rotated  by cli  key ${kid} retiring ${old}\n`,
    );
  });
});
