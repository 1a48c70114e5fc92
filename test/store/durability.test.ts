// Group commit without blocking the event loop (src/store/wal-sync.ts): the
// store commits without syncing, and a write method resolves only after a
// sync of the WAL that began after its commit. The sync here is one the test
// holds open, so it can check what a caller sees before and after it; the
// real one (fileSync) is checked on a real file.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, StoreError, type Store } from '../../src/store/index.js';
import { fileSync, GroupSync } from '../../src/store/wal-sync.js';

/** A sync the test finishes by hand: each call is recorded with the moment it began. */
function heldSync() {
  const calls: Array<{ finish(): void; fail(err: Error): void; began: number }> = [];
  let clock = 0;
  const sync = () =>
    new Promise<void>((resolve, reject) => {
      calls.push({ finish: resolve, fail: reject, began: clock++ });
    });
  return { sync, calls, tick: () => clock++ };
}

const settledState = async (p: Promise<unknown>): Promise<'pending' | 'resolved' | 'rejected'> => {
  const marker = Symbol('pending');
  const outcome = await Promise.race([p.then(() => 'resolved' as const, () => 'rejected' as const), new Promise((r) => setImmediate(() => r(marker)))]);
  return outcome === marker ? 'pending' : (outcome as 'resolved' | 'rejected');
};

describe('GroupSync', () => {
  it('starts a sync at once when none is running', async () => {
    const held = heldSync();
    const group = new GroupSync(held.sync);
    const first = group.settled();
    expect(held.calls).toHaveLength(1);
    expect(await settledState(first)).toBe('pending');
    held.calls[0]!.finish();
    expect(await settledState(first)).toBe('resolved');
  });

  it('makes callers who ask while a sync runs wait for the next one, which they all share', async () => {
    const held = heldSync();
    const group = new GroupSync(held.sync);
    const first = group.settled();
    // These writes committed after the running sync began: it may not cover them.
    const later = [group.settled(), group.settled(), group.settled()];
    expect(held.calls).toHaveLength(1);
    held.calls[0]!.finish();
    expect(await settledState(first)).toBe('resolved');
    for (const p of later) expect(await settledState(p)).toBe('pending');
    expect(held.calls).toHaveLength(2); // one more sync for the three of them
    held.calls[1]!.finish();
    for (const p of later) expect(await settledState(p)).toBe('resolved');
    expect(held.calls).toHaveLength(2);
  });

  it('rejects the callers of a sync that failed, and the next caller gets a fresh sync', async () => {
    const held = heldSync();
    const group = new GroupSync(held.sync);
    const first = group.settled();
    const second = group.settled();
    held.calls[0]!.fail(new Error('EIO'));
    await expect(first).rejects.toThrow('EIO');
    // The failed sync says nothing of writes after it began: they wait for their own.
    expect(await settledState(second)).toBe('pending');
    held.calls[1]!.finish();
    await expect(second).resolves.toBeUndefined();
    const third = group.settled();
    expect(held.calls).toHaveLength(3);
    held.calls[2]!.finish();
    await expect(third).resolves.toBeUndefined();
  });
});

describe('fileSync', () => {
  it('syncs a real file; refuses a missing one while open, and has nothing to do for it once closed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'delegate-sync-'));
    try {
      const path = join(dir, 'file');
      const missing = fileSync(join(dir, 'absent'));
      await expect(missing()).rejects.toMatchObject({ code: 'ENOENT' });
      await missing.close();
      await expect(missing()).resolves.toBeUndefined();
      writeFileSync(path, 'x');
      const sync = fileSync(path);
      await expect(sync()).resolves.toBeUndefined();
      await expect(sync()).resolves.toBeUndefined();
      await sync.close();
      await expect(sync()).resolves.toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the store acknowledges a write only once the WAL is synced', () => {
  let dir: string;
  let store: Store;
  let held: ReturnType<typeof heldSync>;
  let other: Database.Database;

  const user = (id: string) => ({ id, name: id, passwordHash: null, isOwner: false, timeZone: 'UTC', createdAt: 1 });
  const grant = (id: string) => ({
    id,
    userId: 'usr_1',
    clientId: 'cli_1',
    resource: 'http://127.0.0.1:1/mcp',
    scope: 'calendar.read',
    authorizationDetails: [],
    maxDepth: 1,
    createdAt: 1,
    expiresAt: Date.now() + 3_600_000,
    revokedAt: null,
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'delegate-durable-'));
    held = heldSync();
    store = openStore(join(dir, 'delegate.db'), { syncFile: held.sync });
    other = new Database(join(dir, 'delegate.db'), { readonly: true });
  });

  afterEach(() => {
    other.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Finishes every sync asked for so far, in order. */
  const finishAll = () => held.calls.forEach((c) => c.finish());

  it('a write is committed before its sync is asked for, and resolves only after it', async () => {
    const created = store.createUser(user('usr_1'));
    // Committed (another connection sees it) and a sync is under way.
    expect(other.prepare('SELECT id FROM users WHERE id = ?').get('usr_1')).toEqual({ id: 'usr_1' });
    expect(held.calls).toHaveLength(1);
    expect(await settledState(created)).toBe('pending');
    held.calls[0]!.finish();
    expect(await settledState(created)).toBe('resolved');
  });

  it('holds transactions (a revocation) and audit records the same way', async () => {
    const createdUser = store.createUser(user('usr_1'));
    finishAll();
    await createdUser;
    const client = store.createClient({
      clientId: 'cli_1',
      clientName: null,
      kind: 'public',
      secretHash: null,
      redirectUris: [],
      grantTypes: [],
      tokenEndpointAuthMethod: 'none',
      jwks: null,
      resource: null,
      metadata: {},
      createdAt: 1,
    } as never);
    finishAll();
    await client;
    const created = store.createGrant(grant('grt_1'));
    finishAll();
    await created;

    const revoked = store.revokeGrant('grt_1', Date.now(), 'test');
    const audited = store.appendAudit({ event: 'grant_revoked', grant: 'grt_1' }, Date.now());
    expect(await settledState(revoked)).toBe('pending');
    expect(await settledState(audited)).toBe('pending');
    // The audit record was committed (next turn) while the revocation's sync ran: that sync cannot cover it.
    finishAll();
    await expect(revoked).resolves.toBe(true);
    expect(await settledState(audited)).toBe('pending');
    finishAll();
    await expect(audited).resolves.toMatchObject({ event: 'grant_revoked' });
  });

  it('answers a read without waiting for any sync', async () => {
    const created = store.createUser(user('usr_1'));
    const callsBefore = held.calls.length;
    await expect(store.userById('usr_1')).resolves.toMatchObject({ id: 'usr_1' });
    expect(held.calls).toHaveLength(callsBefore);
    finishAll();
    await created;
  });

  it('after a failed sync, tells the writer and refuses all further work: what is on disk is unknown', async () => {
    const created = store.createUser(user('usr_1'));
    held.calls[0]!.fail(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    const error = await created.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ code: 'STORE_OPEN_FAILED' });
    expect(String((error as Error).message)).toContain(`The database ${join(dir, 'delegate.db')} could not be written to disk (EIO: i/o error, fdatasync)`);
    // A later sync could succeed over a WAL the kernel failed to write: nothing is acknowledged after this.
    const calls = held.calls.length;
    await expect(store.createUser(user('usr_2'))).rejects.toBe(error);
    await expect(store.appendAudit({ event: 'x' }, 1)).rejects.toBe(error);
    await expect(store.userById('usr_1')).rejects.toBe(error);
    expect(held.calls).toHaveLength(calls);
    expect(other.prepare('SELECT id FROM users WHERE id = ?').get('usr_2')).toBeUndefined();
  });

  it('holds back the revocation list and the audit log until what they show is on disk', async () => {
    const created = store.createUser(user('usr_1'));
    finishAll();
    await created;
    const page = store.revocationsSince(0, Date.now());
    const audit = store.listAudit();
    expect(await settledState(page)).toBe('pending');
    expect(await settledState(audit)).toBe('pending');
    finishAll();
    await expect(page).resolves.toMatchObject({ cursor: expect.any(Number) });
    // The second asked while the first's sync ran: it waits for the next one.
    expect(await settledState(audit)).toBe('pending');
    finishAll();
    await expect(audit).resolves.toEqual([]);
  });
});

describe('the WAL that is synced', () => {
  it('is the one beside the real database file when the database file is a symbolic link', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'delegate-durable-link-'));
    try {
      mkdirSync(join(dir, 'real'));
      writeFileSync(join(dir, 'real', 'delegate.db'), '');
      symlinkSync(join(dir, 'real', 'delegate.db'), join(dir, 'delegate.db'));
      const store = openStore(join(dir, 'delegate.db'));
      // The kept handle refuses a missing WAL: a write resolves only if the right file was synced.
      await expect(store.createUser({ id: 'usr_1', name: 'a', passwordHash: null, isOwner: false, timeZone: 'UTC', createdAt: 1 })).resolves.toBeUndefined();
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
