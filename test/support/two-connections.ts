// Two store connections on one SQLite file, as two processes hold them, made afresh for each test (its directory
// removed after it): for tests that interleave another process's write between one's look and its write.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';

/** Before each test, `opened(store, other)` with two new connections on one new database; both closed after it. */
export function twoConnectionsEachTest(prefix: string, opened: (store: Store, other: Store) => void): void {
  let dir: string;
  let connections: Store[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    connections = [openStore(join(dir, 'delegate.db')), openStore(join(dir, 'delegate.db'))];
    opened(connections[0]!, connections[1]!);
  });
  afterEach(() => {
    for (const connection of connections) connection.close();
    rmSync(dir, { recursive: true, force: true });
  });
}
