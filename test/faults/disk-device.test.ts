// The device flow's poll (RFC 8628 §3.4) when the disk fills between the poll
// and the redemption that records its tokens, real: the data directory on a
// tmpfs mounted for the test (as root; skipped, saying why, elsewhere), the
// three servers in this process on it, the disk filled just before the store
// records the tokens. Found in review (s21): the poll spent the device's
// request before the redemption, and handed it back only after a grant
// changed at every reading, so after any other failure (a full or read-only
// store: 500) the device's next poll was "used already" and the approval lost.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { STORE_FULL_DESCRIPTION } from '../../src/delegation/tokens.js';
import { approvedDevice, atAgent, changeBefore, queryRows, startStack, type Stack } from '../security/stack.js';
import { tmpfsUnavailable } from './support.js';

const unavailable = tmpfsUnavailable();
if (unavailable) console.warn(`test/faults/disk-device.test.ts skipped: ${unavailable}`);

let mountPoint: string | undefined;
let stack: Stack | undefined;
const restores: Array<() => void> = [];
afterEach(() => restores.splice(0).forEach((restore) => restore()));

beforeAll(async () => {
  if (unavailable) return;
  mountPoint = await mkdtemp(join(tmpdir(), 'delegate-faults-device-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', mountPoint], { encoding: 'utf8', timeout: 10_000 });
  if (mounted.status !== 0) throw new Error(`mount failed: ${mounted.stderr}`);
  stack = await startStack({ home: join(mountPoint, 'home') });
}, 60_000);

afterAll(async () => {
  await stack?.close();
  if (mountPoint) {
    spawnSync('umount', ['-l', mountPoint], { timeout: 10_000 });
    await rm(mountPoint, { recursive: true, force: true });
  }
});

const filler = () => join(mountPoint!, 'filler');

/** No room left: the write-ahead log emptied (so that a new write needs new space), then the disk filled. */
async function fillTheDisk(): Promise<void> {
  const db = new Database(stack!.paths.db);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  spawnSync('dd', ['if=/dev/zero', `of=${filler()}`, 'bs=64k'], { timeout: 30_000 });
}

/** RFC 8628 §3.5: the device waits its interval (5 s) between polls. */
const interval = () => new Promise((resolve) => setTimeout(resolve, 5_100));

describe.skipIf(unavailable !== undefined)('a device poll whose tokens cannot be recorded: the disk is full', () => {
  it('500 server_error naming the full storage, nothing recorded; once space is freed the next poll gets the tokens, and no poll after it', { timeout: 60_000 }, async () => {
    const { grant, poll } = await approvedDevice(stack!);
    const hook = changeBefore(stack!.store, 'redeemAuthCode', restores, fillTheDisk);
    const full = await poll();
    expect(hook.ran()).toBe(true);
    expect([full.status, full.body.error, full.body.error_description]).toEqual([500, 'server_error', STORE_FULL_DESCRIPTION]);
    await rm(filler());
    const tokensOf = () => queryRows(stack!, 'SELECT jti FROM issued_tokens WHERE grant_id = ?', grant.id);
    expect(tokensOf()).toEqual([]);

    await interval();
    const again = await poll();
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect((await atAgent(stack!, String(again.body.access_token))).status).toBe(200);

    // The code is good once: a poll after the redemption is refused, and takes nothing from the tokens it issued.
    await interval();
    const late = await poll();
    expect([late.status, late.body.error, late.body.error_description]).toEqual([400, 'invalid_grant', 'The device code was used already.']);
    expect(tokensOf()).toHaveLength(1);
    expect((await atAgent(stack!, String(again.body.access_token))).status).toBe(200);
  });
});
