// The data directory's start lock (servers.lock): one process at a time sets
// the directory up and starts servers; a waiter uses the servers another
// started as soon as they answer, a lock left by a process that died is taken
// over at once, and a start that never ends is a message naming the file.
import { constants } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, open, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolvePaths } from '../../src/config.js';
import { holdStartLock, whileStarting } from '../../src/cli/start-lock.js';
import { CommandFailed } from '../../src/cli/errors.js';

let root: string;
let paths: ReturnType<typeof resolvePaths>;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'delegate-start-lock-'));
  paths = resolvePaths({ DELEGATE_HOME: join(root, 'home') });
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('the start lock', () => {
  it('is servers.lock in the data directory (created 0700), 0600, and gone once released', async () => {
    expect(paths.serversLock).toBe(join(root, 'home', 'servers.lock'));
    const lock = await holdStartLock(paths, Date.now);
    expect((await stat(join(root, 'home'))).mode & 0o777).toBe(0o700);
    expect((await stat(paths.serversLock)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(paths.serversLock, 'utf8')).pid).toBe(process.pid);
    await lock!.release();
    await expect(stat(paths.serversLock)).rejects.toThrow();
  });

  it('lets one start at a time: the second runs once the first is done', async () => {
    const order: string[] = [];
    let releaseFirst!: () => void;
    let firstStarted!: () => void;
    const started = new Promise<void>((resolve) => (firstStarted = resolve));
    const first = whileStarting(paths, Date.now, async () => {
      order.push('first starts');
      const held = new Promise<void>((resolve) => (releaseFirst = resolve));
      firstStarted();
      await held;
      order.push('first listens');
    });
    // The second only once the first holds the lock (a fixed 50 ms could let the second take it first on a loaded machine: s28flake).
    await started;
    const second = whileStarting(paths, Date.now, async () => void order.push('second starts'));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(order).toEqual(['first starts']);
    releaseFirst();
    await Promise.all([first, second]);
    expect(order).toEqual(['first starts', 'first listens', 'second starts']);
  });

  it('a waiter whose servers answer meanwhile (another process started them) goes on without the lock', async () => {
    const holder = await holdStartLock(paths, Date.now);
    let looks = 0;
    const waited = await holdStartLock(paths, Date.now, { lookEveryMs: 50, ready: async () => ++looks >= 2 });
    expect(waited).toBeUndefined();
    expect(looks).toBe(2);
    await holder!.release();
  });

  it('takes over at once a lock left by a process that died while starting', async () => {
    await mkdir(join(root, 'home'), { recursive: true, mode: 0o700 });
    await writeFile(paths.serversLock, JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), nonce: 'dead', created: Date.now() }), { mode: 0o600 });
    const started = Date.now();
    const lock = await holdStartLock(paths, Date.now, { waitMs: 5000 });
    expect(Date.now() - started).toBeLessThan(1000);
    await lock!.release();
  });

  it('gives up after the wait with a message naming the data directory and the lock file', async () => {
    const holder = await holdStartLock(paths, Date.now);
    const error = await holdStartLock(paths, Date.now, { waitMs: 1000, lookEveryMs: 200, ready: async () => false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandFailed);
    expect((error as Error).message).toBe(
      `Another delegate process has been starting the servers of the data directory ${paths.home} for over 1 s, and they do not answer yet. If no delegate process is running, delete ${paths.serversLock}.`,
    );
    await holder!.release();
  });
});

// Found in review (s31fault): a dangling symbolic link at servers.lock spun a core (`find-slot` with no servers
// running, 86% CPU until killed); a FIFO there blocked it for ever. Said at once, and not worked around as a lock file
// that cannot be made is (whileStarting runs without it there): the start does not happen. Awaited, not timed.
describe('servers.lock that is no regular file', () => {
  // Ends a read that the code before the fix left waiting on the FIFO for a writer, before the directory goes.
  afterEach(async () => {
    const lock = paths.serversLock;
    if ((await lstat(lock).catch(() => undefined))?.isFIFO()) await (await open(lock, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined))?.close();
  });

  it.each([
    ['a dangling symbolic link', async () => void (await symlink(join(root, 'nonexistent-target'), paths.serversLock)), 'a symbolic link, not a lock file'],
    ['a FIFO', async () => expect(spawnSync('mkfifo', ['-m', '600', paths.serversLock]).status).toBe(0), 'a special file (a FIFO, socket or device), not a lock file'],
  ])('%s: holdStartLock and whileStarting fail at once, naming it; nothing is started', { timeout: 30_000 }, async (_, make, kind) => {
    await mkdir(join(root, 'home'), { recursive: true, mode: 0o700 });
    await make();
    const said = { code: 'CACHE_IO', message: `The servers' start lock ${paths.serversLock} is ${kind}; move it away.` };
    await expect(holdStartLock(paths, Date.now, { lookEveryMs: 50, ready: async () => false })).rejects.toMatchObject(said);
    let started = false;
    await expect(whileStarting(paths, Date.now, async () => void (started = true), { ready: async () => false })).rejects.toMatchObject(said);
    expect(started).toBe(false);
  });
});
