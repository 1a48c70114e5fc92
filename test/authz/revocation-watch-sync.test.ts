// A held request for the revocation list costs the disk nothing while nothing
// is revoked. The AS reads the revocation head every few milliseconds while a
// resource server's long poll is held (always, with resource servers attached);
// found in review: each of those reads waited for a sync of the WAL, so an idle
// AS called fdatasync 40 times a second. Only the answer that leaves the
// process waits for the disk. Real server, real SQLite, the WAL synced for real
// through a counter.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAuthServer } from '../../src/authz/index.js';
import { openStore } from '../../src/store/index.js';
import { fileSync } from '../../src/store/wal-sync.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('a held revocation list request on an idle server', () => {
  it('reads the head many times and syncs the WAL only for the answers', { timeout: 30_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'delegate-watch-sync-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'delegate.db');
    const wal = fileSync(`${path}-wal`);
    let syncs = 0;
    const store = openStore(path, {
      syncFile: async () => {
        syncs++;
        await wal();
      },
    });
    cleanups.push(() => wal.close());
    cleanups.push(() => store.close());
    // How often the server looks at the head while it holds the request (the store's own method, counted).
    const readHead = store.revocationHead.bind(store);
    let headReads = 0;
    store.revocationHead = async () => {
      headReads++;
      return readHead();
    };
    const app = await buildAuthServer({ issuer: 'http://127.0.0.1', store, sweepIntervalMs: 0 });
    cleanups.push(() => app.close());
    const address = await app.listen({ port: 0, host: '127.0.0.1' });

    const { cursor } = (await (await fetch(`${address}/revocations?since=0`)).json()) as { cursor: number };
    const before = syncs;
    const held = await fetch(`${address}/revocations?since=${cursor}&wait=2`);
    expect(((await held.json()) as { grants: string[] }).grants).toEqual([]);
    // The read the request is first answered from, and the one after the hold: nothing in between.
    expect(syncs - before).toBeLessThanOrEqual(2);
    expect(headReads).toBeGreaterThan(10);
  });
});
