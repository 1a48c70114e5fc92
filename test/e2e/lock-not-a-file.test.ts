// A lock file of the data directory (tokens.lock, servers.lock) that is a symbolic link or a FIFO, on the built CLI.
// Found in review (s31fault): with a dangling symbolic link at tokens.lock and the access token expired, `delegate
// token` spun a core (85% CPU) with no output until killed; at servers.lock, `find-slot` with no servers running did
// the same; a FIFO at either blocked the command for ever. Now: one line naming the file, saying what it is and to move
// it away, exit 1, the file left as it is and nothing sent. Awaited with a generous test timeout, not timed.
import { spawnSync } from 'node:child_process';
import { constants, readFileSync, readdirSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readlink, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { builtModule } from './built.js';
import { serveInNewHome, startCli, stopServeAndRemove, storeSignIn, type Running } from './run.js';

let home: string;
let ports: string[];
let serve: Running;
let others: string;

beforeAll(async () => {
  builtModule('cli/main.js');
  ({ home, ports, serve } = await serveInNewHome('delegate-e2e-lock-not-a-file-'));
  others = await mkdtemp(join(tmpdir(), 'delegate-e2e-lock-not-a-file-others-'));
}, 60_000);

afterAll(async () => {
  await stopServeAndRemove(serve, home);
  await rm(others, { recursive: true, force: true });
});

const portOf = (flag: string) => Number(ports[ports.indexOf(flag) + 1]);

// What a case made and ran, undone after it whatever its end (before the fix, the command never ended).
let lock: string | undefined;
let command: Running | undefined;
afterEach(async () => {
  command?.child.kill('SIGKILL');
  command = undefined;
  if (lock === undefined) return;
  // Ends a read that the CLI before the fix left waiting on the FIFO for a writer.
  if ((await lstat(lock).catch(() => undefined))?.isFIFO()) await (await open(lock, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined))?.close();
  await rm(lock, { force: true });
  lock = undefined;
});

/** The built CLI's run of `args` on `dataDirectory`, killed after the case if it has not ended. */
function run(args: string[], dataDirectory: string) {
  command = startCli(args, dataDirectory);
  return command.done;
}

const makers = {
  'a dangling symbolic link': async (path: string) => void (await symlink('/tmp/nonexistent-target-of-a-delegate-test', path)),
  'a FIFO': async (path: string) => expect(spawnSync('mkfifo', ['-m', '600', path]).status).toBe(0),
};
const kinds = { 'a dangling symbolic link': 'a symbolic link, not a lock file', 'a FIFO': 'a special file (a FIFO, socket or device), not a lock file' };

describe('a lock file of the data directory that is no regular file', () => {
  it.each(Object.keys(makers) as Array<keyof typeof makers>)(
    'tokens.lock %s, the access token expired: `delegate token` says so in one line, exit 1, sends nothing and changes nothing',
    { timeout: 60_000 },
    async (what) => {
      lock = join(home, 'tokens.lock');
      const now = Date.now();
      await storeSignIn(home, { auth: portOf('--auth-port'), agent: portOf('--agent-port') }, {
        accessToken: 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJvd25lciJ9.c2ln',
        refreshToken: 'a-refresh-token-never-sent',
        expiresAt: now - 60_000,
        obtainedAt: now - 3_600_000,
        clientId: 'a-client',
      });
      const before = readFileSync(join(home, 'tokens.json'));
      await makers[what](lock);
      const token = await run(['token', ...ports], home);
      expect(token.code, token.stderr).toBe(1);
      expect(token.stdout).toBe('');
      expect(token.stderr.trim().split('\n')).toEqual([`delegate: The token cache's lock ${lock} is ${kinds[what]}; move it away.`]);
      expect(readFileSync(join(home, 'tokens.json')).equals(before)).toBe(true);
      expect(serve.stderr()).not.toContain('a-refresh-token-never-sent');
      if (what === 'a dangling symbolic link') expect(await readlink(lock)).toBe('/tmp/nonexistent-target-of-a-delegate-test');
      else expect((await lstat(lock)).isFIFO()).toBe(true);
    },
  );

  it.each(Object.keys(makers) as Array<keyof typeof makers>)(
    'servers.lock %s, no servers running: `delegate find-slot` says so in one line, exit 1, and starts nothing',
    { timeout: 60_000 },
    async (what) => {
      const own = join(others, what.replace(/\W+/g, '-'));
      await mkdir(own, { mode: 0o700 });
      lock = join(own, 'servers.lock');
      await makers[what](lock);
      const free = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
      const findSlot = await run(['find-slot', '--duration', '30m', '--no-browser', '--login-timeout', '5s', ...free], own);
      expect(findSlot.code, findSlot.stderr).toBe(1);
      expect(findSlot.stdout).toBe('');
      expect(findSlot.stderr.trim().split('\n')).toEqual([`delegate: The servers' start lock ${lock} is ${kinds[what]}; move it away.`]);
      expect(what === 'a FIFO' ? (await lstat(lock)).isFIFO() : (await lstat(lock)).isSymbolicLink()).toBe(true);
      expect(readdirSync(own)).toEqual(['servers.lock']); // nothing set up: no database, no keys
    },
  );
});
