// The CLI's token cache on a disk that is full or read-only, made real with a
// small tmpfs mounted (as root; skipped, saying why, elsewhere) over one
// profile's directory while the servers' data stays on a roomy disk. Found in
// review: with no room for the refreshed tokens, `delegate token` spent the
// refresh token (twice), could not save the new one, and the next command
// replayed the spent one, which revoked the family and lost the sign-in; a
// lock file created on the full disk stayed behind empty and made every
// command wait 60 s; a read-only cache was reported as an unreachable server.
// Now: no room, nothing is sent and the command says so in one line (exit 1);
// once there is room the next command refreshes once, and the server records
// no replay.
import { spawnSync } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { builtModule } from '../e2e/built.js';
import { approveInBrowser, killLeftovers, runCli, startCli, type Run, type Running } from '../e2e/run.js';
import { fillTmpfs, mountTinyProfile, ready, releaseTinyProfile, tmpfsUnavailable, type TinyProfile } from './support.js';

const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });

const unavailable = tmpfsUnavailable();
if (unavailable) console.log(`test/faults/token-cache-disk.test.ts skipped: ${unavailable}`);

let profile: TinyProfile | undefined;
let home: string;
/** The profile's directory, a 64 KiB tmpfs: its tokens.json and tokens.lock. */
let tiny: string;
let ports: string[];
let serve: Running | undefined;

const cli = (args: string[]) => runCli(['--profile', 'tiny', ...args], home);
const slotArgs = () => ['find-slot', '--duration', '30m', '--json', ...ports];

beforeAll(async () => {
  if (unavailable) return;
  builtModule('cli/main.js');
  profile = await mountTinyProfile('delegate-faults-cachedisk-');
  ({ home, tiny } = profile);
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
  serve = await ready(startCli(['serve', ...ports], home));
  const login = startCli(['--profile', 'tiny', 'login', '--no-browser', ...ports], home);
  await approveInBrowser(await login.loginUrl);
  expect((await login.done).code).toBe(0);
}, 90_000);

afterAll(async () => {
  serve?.child.kill('SIGTERM');
  await serve?.done;
  killLeftovers();
  await releaseTinyProfile(profile);
});

/** Makes the stored access token expired, so that the next command must refresh it first. */
async function expire(): Promise<void> {
  const file = join(tiny, 'tokens.json');
  const cache = JSON.parse(await readFile(file, 'utf8')) as { tokens: Record<string, Record<string, { expires_at: number }>> };
  for (const byResource of Object.values(cache.tokens)) for (const entry of Object.values(byResource)) entry.expires_at = Date.now() - 60_000;
  await writeFile(file, JSON.stringify(cache, null, 2));
}

/** Fills the tmpfs, leaving `freeBytes` (whole pages) free. */
const fill = (freeBytes: number) => fillTmpfs(tiny, freeBytes);

async function unfill(): Promise<void> {
  await rm(join(tiny, 'filler'), { force: true });
}

/** How many refreshes, and refresh-token replays, the authorization server has recorded. */
function refreshes(): { refreshed: number; replayed: number } {
  const db = new Database(join(home, 'delegate.db'), { readonly: true, fileMustExist: true });
  try {
    const count = (event: string) => (db.prepare('SELECT count(*) AS n FROM audit_log WHERE event = ?').get(event) as { n: number }).n;
    return { refreshed: count('token_refreshed'), replayed: count('refresh_replay') };
  } finally {
    db.close();
  }
}

function expectOneLine(run: Run, code: number, message: RegExp): void {
  expect(run.code, run.stderr).toBe(code);
  expect(run.stdout).toBe('');
  expect(run.stderr.trim().split('\n'), run.stderr).toHaveLength(1);
  expect(run.stderr).toMatch(/^delegate: /);
  expect(run.stderr).toMatch(message);
  expect(run.stderr).not.toMatch(/Cannot reach/);
}

const escaped = (path: string) => path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe.skipIf(unavailable !== undefined)('the token cache on a full or read-only disk', () => {
  it('no room to save refreshed tokens: nothing is sent, one line, exit 1; once there is room, the next command refreshes once and nothing is replayed', { timeout: 90_000 }, async () => {
    await expire();
    const before = refreshes();
    fill(4096); // room for tokens.lock, not for a new cache
    for (const args of [['token', ...ports], slotArgs()]) {
      expectOneLine(
        await cli(args),
        1,
        new RegExp(`Cannot make room to save the token cache ${escaped(join(tiny, 'tokens.json'))}: the disk is full \\(ENOSPC\\)\\. The access token was not refreshed \\(nothing was sent\\); free some space`),
      );
    }
    expect(refreshes()).toEqual(before); // the refresh token was never posted
    expect((await readdir(tiny)).sort()).toEqual(['filler', 'tokens.json']); // no lock, no temp file left

    await unfill();
    const token = await cli(['token', ...ports]);
    expect(token.code, token.stderr).toBe(0);
    expect(token.stdout.trim()).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(token.stderr).toBe('');
    expect(refreshes()).toEqual({ refreshed: before.refreshed + 1, replayed: before.replayed });
    // What was saved serves the next command: no refresh, no replay, the delegation stands.
    const slot = await cli(slotArgs());
    expect(slot.code, slot.stderr).toBe(0);
    expect(refreshes()).toEqual({ refreshed: before.refreshed + 1, replayed: before.replayed });
  });

  it('no room for the lock file itself: one line naming it, no empty lock left behind, and the next command does not wait for it', { timeout: 90_000 }, async () => {
    await expire();
    const before = refreshes();
    fill(0);
    expectOneLine(await cli(['token', ...ports]), 1, new RegExp(`Cannot use the token cache's lock ${escaped(join(tiny, 'tokens.lock'))}: the disk is full \\(ENOSPC\\)\\.$`, 'm'));
    expect((await readdir(tiny)).sort()).toEqual(['filler', 'tokens.json']);
    expect(refreshes()).toEqual(before);

    await unfill();
    const started = Date.now();
    const token = await cli(['token', ...ports]);
    expect(token.code, token.stderr).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000); // not the 60 s of a lock that looks held
    expect(refreshes()).toEqual({ refreshed: before.refreshed + 1, replayed: before.replayed });
  });

  it('read-only: a command that must refresh says the token cache cannot be locked, not that the servers cannot be reached', { timeout: 90_000 }, async () => {
    await expire();
    const before = refreshes();
    expect(sh('mount', ['-o', 'remount,ro', tiny]).status).toBe(0);
    try {
      for (const args of [slotArgs(), ['token', ...ports], ['logout', ...ports]]) {
        expectOneLine(await cli(args), 1, new RegExp(`Cannot use the token cache's lock ${escaped(join(tiny, 'tokens.lock'))}: the file system is read-only \\(EROFS\\)\\.$`, 'm'));
      }
      // Reading goes on.
      const status = await cli(['status']);
      expect(status.code, status.stderr).toBe(0);
    } finally {
      expect(sh('mount', ['-o', 'remount,rw', tiny]).status).toBe(0);
    }
    expect(refreshes()).toEqual(before);
    const slot = await cli(slotArgs());
    expect(slot.code, slot.stderr).toBe(0);
  });
});
