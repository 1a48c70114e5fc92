// Group commit for the SQLite store, without blocking the event loop.
//
// The store commits with `synchronous = NORMAL` (WAL): a commit writes its
// frames to the -wal file and returns without an fsync, so the server is not
// stopped for the few milliseconds a sync takes on a disk (3.7 ms on the
// machine the benchmarks ran on). Before a write is acknowledged, the store
// waits here: one fdatasync of the -wal file, run on libuv's thread pool,
// makes durable every commit written before it began, so writes that arrive
// together share a sync. The guarantee is FULL's (a write the server
// acknowledged survives a power cut, not only a killed process: a spent
// refresh token or code, or a revoked grant, cannot come back); NORMAL itself
// keeps the -wal and the database consistent around checkpoints
// (https://www.sqlite.org/pragma.html#pragma_synchronous, https://www.sqlite.org/wal.html).

import { open, type FileHandle } from 'node:fs/promises';

/** Makes what was written to the file durable. */
export type SyncFile = () => Promise<void>;

/**
 * fdatasync of the file at `path` on the thread pool, through one handle
 * opened at the first sync and kept: SQLite keeps the -wal file (the same
 * inode: a checkpoint truncates it, never replaces it) while a connection is
 * open, so a missing file is an error. Once closed, each sync opens the file
 * for itself, and a file that is gone (the last connection removes the WAL
 * after checkpointing it) has nothing left to sync.
 */
export function fileSync(path: string): SyncFile & { close(): Promise<void> } {
  let handle: Promise<FileHandle> | undefined;
  let closed = false;
  const sync = async () => {
    if (closed) {
      let h: FileHandle;
      try {
        h = await open(path, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      try {
        await h.datasync();
      } finally {
        await h.close();
      }
      return;
    }
    const pending = (handle ??= open(path, 'r'));
    const h = await pending.catch((err: unknown) => {
      if (handle === pending) handle = undefined;
      throw err;
    });
    await h.datasync();
  };
  return Object.assign(sync, {
    async close() {
      closed = true;
      const h = await handle?.catch(() => undefined);
      handle = undefined;
      await h?.close();
    },
  });
}

/**
 * At most one sync of a file running at a time, and at most one waiting to
 * start after it; everyone who asks while one is waiting shares it.
 */
export class GroupSync {
  private running: Promise<void> | undefined;
  private waiting: Promise<void> | undefined;

  constructor(private readonly sync: SyncFile) {}

  /** Resolves once everything written to the file before this call is on disk. */
  settled(): Promise<void> {
    if (this.waiting) return this.waiting;
    if (!this.running) return this.start();
    // The sync under way may have begun before the caller's write: the caller needs the next one.
    const after = this.running.then(noop, noop);
    this.waiting = after.then(() => {
      this.waiting = undefined;
      return this.start();
    });
    return this.waiting;
  }

  private start(): Promise<void> {
    const run: Promise<void> = this.sync().finally(() => {
      if (this.running === run) this.running = undefined;
    });
    this.running = run;
    return run;
  }
}

const noop = (): void => undefined;
