// A disk with only a few KiB left, real: a 2 MiB tmpfs (as root; skipped, saying why, elsewhere) filled to 8 or 16 KiB
// short of full. Found in review (s22store): SQLite could not grow the database's -shm file (SQLITE_IOERR_SHMSIZE)
// at the first read, before any write could say SQLITE_FULL, and every command said "the disk failed (disk I/O
// error)" where the disk was only full. asStoreError names the full disk, as for SQLITE_FULL.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { asStoreError, openStore, StoreError } from '../../src/store/index.js';
import { fakeIo } from '../cli/fake-io.js';
import { tmpfsUnavailable } from './support.js';

describe('asStoreError', () => {
  it('names a -shm file that cannot grow (SQLITE_IOERR_SHMSIZE) as the full disk, not a failing one', () => {
    const error = asStoreError(Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_SHMSIZE' }), '/nowhere/delegate.db');
    expect([error.code, error.message]).toEqual(['STORE_FULL', 'The disk holding /nowhere/delegate.db is full.']);
  });
});

const unavailable = tmpfsUnavailable();
if (unavailable) console.warn(`test/faults/disk-nearly-full.test.ts skipped: ${unavailable}`);

let mountPoint: string | undefined;
const home = () => join(mountPoint!, 'home');
const filler = () => join(mountPoint!, 'filler');

beforeAll(async () => {
  if (unavailable) return;
  mountPoint = await mkdtemp(join(tmpdir(), 'delegate-faults-nearly-full-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mountPoint], { encoding: 'utf8', timeout: 10_000 });
  if (mounted.status !== 0) throw new Error(`mount failed: ${mounted.stderr}`);
  openStore(join(home(), 'delegate.db')).close();
});

afterEach(async () => {
  if (mountPoint) await rm(filler(), { force: true });
});

afterAll(async () => {
  if (mountPoint) {
    spawnSync('umount', ['-l', mountPoint], { timeout: 10_000 });
    await rm(mountPoint, { recursive: true, force: true });
  }
});

/** Fills the tmpfs but for `leaveKiB`. */
function fillLeaving(leaveKiB: number): void {
  const df = spawnSync('df', ['-k', '--output=avail', mountPoint!], { encoding: 'utf8' });
  const available = Number(df.stdout.trim().split('\n').pop());
  spawnSync('dd', ['if=/dev/zero', `of=${filler()}`, 'bs=1k', `count=${available - leaveKiB}`], { timeout: 30_000 });
}

describe.skipIf(unavailable !== undefined)('a disk with a few KiB left', () => {
  it.each([8, 16])('with %i KiB left, the store and grants list say the disk is full (exit 1), not that it failed', async (leaveKiB) => {
    fillLeaving(leaveKiB);
    const db = join(home(), 'delegate.db');
    const opened = (() => {
      try {
        openStore(db).close();
        return undefined;
      } catch (error) {
        return error;
      }
    })();
    expect(opened).toBeInstanceOf(StoreError);
    expect([(opened as StoreError).code, (opened as StoreError).message]).toEqual(['STORE_FULL', `The disk holding ${db} is full.`]);
    const io = fakeIo({ DELEGATE_HOME: home() });
    const code = await runCli(['grants', 'list'], io);
    expect([code, io.err]).toEqual([1, `delegate: The disk holding ${db} is full.\n`]);
  });
});
