// What the fault tests share: waiting for a server process to be ready,
// whether a tmpfs can be mounted (as root), and
// authenticating as CalendarAgent (private_key_jwt with the key in the data
// directory) to exchange or introspect tokens the way the agent does.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { importJWK, SignJWT, type JWK } from 'jose';
import { postForm } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';
import { expect } from 'vitest';
import { approveInBrowser, killLeftovers, startCli, type Running } from '../e2e/run.js';

/** Resolves once a `delegate serve…` process says it is listening; rejects if it exits first. */
export async function ready(run: Running): Promise<Running> {
  while (!run.stderr().includes('Press Ctrl-C')) {
    if (run.child.exitCode !== null || run.child.signalCode !== null) throw new Error(`the server exited:\n${run.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return run;
}

/** Client authentication as CalendarAgent (RFC 7523), with a fresh single-use assertion. */
export async function agentClientAuth(home: string, issuer: string): Promise<Record<string, string>> {
  const jwk = JSON.parse(await readFile(join(home, 'agent-key.json'), 'utf8')) as JWK;
  const key = await importJWK(jwk, 'ES256');
  const iat = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', ...(jwk.kid ? { kid: jwk.kid } : {}) })
    .setIssuer('calendar-agent')
    .setSubject('calendar-agent')
    .setAudience(issuer)
    .setJti(randomBytes(16).toString('base64url'))
    .setIssuedAt(iat)
    .setExpirationTime(iat + 120)
    .sign(key);
  return {
    client_id: 'calendar-agent',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
  };
}

/** The agent's token exchange (RFC 8693): the user's token for one whose audience is the calendar backend. */
export async function exchangeForCalendar(home: string, issuer: string, calendarUrl: string, userToken: string) {
  return postForm(`${issuer}/token`, {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: userToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    resource: calendarUrl,
    scope: 'freebusy:read',
    ...(await agentClientAuth(home, issuer)),
  });
}

/** Why a tmpfs cannot be mounted here for a test (not Linux, not root, mount refused), or undefined when it can. */
export function tmpfsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux (tmpfs)';
  if (process.getuid?.() !== 0) return 'needs root to mount a tmpfs';
  const dir = mkdtempSync(join(tmpdir(), 'delegate-faults-probe-'));
  try {
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { encoding: 'utf8', timeout: 10_000 });
    if (mounted.status !== 0) return `mount failed: ${(mounted.stderr || mounted.error?.message || '').trim()}`;
    spawnSync('umount', [dir], { timeout: 10_000 });
    return undefined;
  } finally {
    rmdirSync(dir);
  }
}

/** A data directory on a 16 MB tmpfs mounted for the test (as root), with `delegate serve` running on it and the owner signed in. */
export interface TmpfsHome {
  mountPoint: string;
  home: string;
  ports: string[];
  issuer: string;
  calendarUrl: string;
  serve: Running;
}

export async function signedInOnTmpfs(prefix: string): Promise<TmpfsHome> {
  const mountPoint = await mkdtemp(join(tmpdir(), prefix));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', mountPoint], { encoding: 'utf8', timeout: 10_000 });
  if (mounted.status !== 0) throw new Error(`mount failed: ${mounted.stderr}`);
  const home = join(mountPoint, 'home');
  const [auth, calendar] = [await freePort(), await freePort()];
  const ports = ['--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(await freePort())];
  const serve = await ready(startCli(['serve', ...ports], home));
  const login = startCli(['login', '--no-browser', ...ports], home);
  await approveInBrowser(await login.loginUrl);
  const signedIn = await login.done;
  if (signedIn.code !== 0) throw new Error(`login failed: ${signedIn.stderr}`);
  return { mountPoint, home, ports, issuer: `http://127.0.0.1:${auth}`, calendarUrl: `http://127.0.0.1:${calendar}`, serve };
}

/** Stops the server (if still running) and always gives the mount back, whatever the test did to it. */
export async function releaseTmpfs(mountPoint: string | undefined, serve: Running | undefined): Promise<void> {
  serve?.child.kill('SIGKILL');
  await serve?.done;
  killLeftovers();
  if (mountPoint) {
    spawnSync('umount', ['-l', mountPoint], { timeout: 10_000 });
    await rm(mountPoint, { recursive: true, force: true });
  }
}

/** A data directory whose profile `tiny` is a 64 KiB tmpfs mounted for the test (as root): its tokens.json and tokens.lock. */
export interface TinyProfile {
  root: string;
  home: string;
  /** The profile's directory, the tmpfs. */
  tiny: string;
}

export async function mountTinyProfile(prefix: string): Promise<TinyProfile> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  const home = join(root, 'home');
  const tiny = join(home, 'profiles', 'tiny');
  await mkdir(tiny, { recursive: true, mode: 0o700 });
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', tiny], { encoding: 'utf8', timeout: 20_000 });
  if (mounted.status !== 0) {
    await rm(root, { recursive: true, force: true });
    throw new Error(`mount failed: ${mounted.stderr}`);
  }
  return { root, home, tiny };
}

/** Gives the tiny profile's mount back, whatever the test did to it, and removes the data directory. */
export async function releaseTinyProfile(profile: TinyProfile | undefined): Promise<void> {
  if (!profile) return;
  spawnSync('umount', ['-l', profile.tiny], { timeout: 20_000 });
  await rm(profile.root, { recursive: true, force: true });
}

/** Fills a tmpfs, leaving `freeBytes` (whole pages) free: `filler` takes the rest. */
export function fillTmpfs(dir: string, freeBytes: number): void {
  const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
  if (freeBytes > 0) sh('dd', ['if=/dev/zero', `of=${join(dir, 'slack')}`, 'bs=1k', `count=${freeBytes / 1024}`]);
  sh('dd', ['if=/dev/zero', `of=${join(dir, 'filler')}`, 'bs=4k']);
  sh('rm', ['-f', join(dir, 'slack')]);
  expect(Number(sh('df', ['--output=avail', '-B1', dir]).stdout.trim().split('\n').pop())).toBe(freeBytes);
}
