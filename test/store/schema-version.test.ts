// A database written by a newer delegate (its schema version above what this
// build knows) is refused, read-write and read-only alike, with a message that
// says why, and is left exactly as it was. Found in review (store-keys): an
// older build (two versions side by side, or a downgrade) opened and wrote
// such a database without a word, applying its own older rules to it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { openStore, openStoreReadOnly, StoreError } from '../../src/store/index.js';
import { MIGRATIONS } from '../../src/store/schema.js';
import { fakeIo } from '../cli/fake-io.js';

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'delegate-store-newer-'));
  path = join(dir, 'delegate.db');
  const store = openStore(path);
  store.close();
  const db = new Database(path);
  db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
  db.pragma('journal_mode = DELETE'); // one file, so that "left as it was" compares its bytes
  db.close();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const newer = `was written by a newer delegate (schema ${MIGRATIONS.length + 1}; this one knows up to ${MIGRATIONS.length})`;

describe('a database from a newer delegate', () => {
  it('is refused by openStore and openStoreReadOnly, and left as it was', () => {
    const before = readFileSync(path);
    for (const open of [openStore, openStoreReadOnly]) {
      let error: unknown;
      try {
        open(path).close();
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(StoreError);
      expect((error as Error).message).toContain(newer);
    }
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  it('makes a command that opens it say so in one line and exit 1', async () => {
    const io = fakeIo({ DELEGATE_HOME: dir });
    expect(await runCli(['grants', 'list'], io)).toBe(1);
    expect(io.out).toBe('');
    expect(io.err.trim().split('\n')).toHaveLength(1);
    expect(io.err).toContain(newer);
  });
});
