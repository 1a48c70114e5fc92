// A damaged token cache (tokens.json): garbage bytes, JSON cut short, or
// valid JSON of the wrong shape. The built CLI names the file in one line and
// never crashes on it or writes over it: without a terminal, find-slot,
// status and token exit 4 with the hint to run `delegate login` (with the
// ports they were given), leaving the file as it was; a command that may sign
// in keeps the file aside, whole, as tokens.json.corrupt-<time>, says so on
// stderr, and signs in anew; logout keeps it aside the same way and says what
// could not be revoked. A cache that cannot be opened at all (a directory,
// another user's file) still gives `status --json` its document.
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { builtModule } from '../e2e/built.js';
import { approveInBrowser, killLeftovers, runCli, runCliAs, startCli, type Run, type Running } from '../e2e/run.js';
import { ready } from './support.js';

let root: string;
let home: string;
let ports: string[];
let serve: Running;
let goodCache: Buffer;

const cacheFile = () => join(home, 'tokens.json');

beforeAll(async () => {
  builtModule('cli/main.js');
  root = await mkdtemp(join(tmpdir(), 'delegate-faults-cache-'));
  home = join(root, 'home');
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
  serve = await ready(startCli(['serve', ...ports], home));
  const login = startCli(['login', '--no-browser', ...ports], home);
  await approveInBrowser(await login.loginUrl);
  expect((await login.done).code).toBe(0);
  goodCache = await readFile(cacheFile());
}, 90_000);

afterAll(async () => {
  serve?.child.kill('SIGTERM');
  await serve?.done;
  killLeftovers();
  if (root) await rm(root, { recursive: true, force: true });
});

const damages: Array<[string, () => Buffer, RegExp]> = [
  ['garbage bytes', () => randomBytes(512), /is not valid JSON/],
  ['JSON cut short', () => goodCache.subarray(0, Math.floor(goodCache.length / 2)), /is not valid JSON/],
  ['valid JSON of the wrong shape', () => Buffer.from(JSON.stringify({ version: 1, discovery: {}, clients: {}, tokens: [] })), /lacks its discovery, clients or tokens sections/],
];

async function damage(bytes: Buffer): Promise<void> {
  await rm(cacheFile(), { force: true });
  await writeFile(cacheFile(), bytes, { mode: 0o600 });
}

async function keptAside(): Promise<string[]> {
  return (await readdir(home)).filter((name) => name.startsWith('tokens.json.corrupt-'));
}

function expectOneLine(run: Run, code: number, ...patterns: RegExp[]): void {
  expect(run.code, run.stderr).toBe(code);
  expect(run.stdout).toBe('');
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
  expect(run.stderr).toMatch(/^delegate: /);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  for (const pattern of patterns) expect(run.stderr).toMatch(pattern);
}

describe('a damaged token cache, where nobody can sign in', () => {
  it('find-slot, status and token exit 4 naming the file and why, with the hint to run delegate login, and leave it untouched', { timeout: 60_000 }, async () => {
    // Each kind of damage meets one of the three commands; all three read the cache through TokenCache. The command
    // named carries the ports the servers run on where the command was given them (found in review, s18: find-slot
    // and token said plain `delegate login`, which, run as written, signs in at the default ports' servers).
    const login = `\`DELEGATE_HOME=${home} delegate login ${ports.join(' ')}\``;
    const commands: Array<[string[], string]> = [
      [['find-slot', '--duration', '30m', '--json', ...ports], login],
      [['status'], `\`DELEGATE_HOME=${home} delegate login\``],
      [['token', ...ports], login],
    ];
    for (const [i, [_name, bytes, why]] of damages.entries()) {
      const damaged = bytes();
      await damage(damaged);
      const named = new RegExp(`The token cache ${cacheFile().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} `);
      const [command, advised] = commands[i]!;
      const run = await runCli(command, home);
      expectOneLine(run, 4, named, why);
      expect(run.stderr).toContain(advised);
      expect(await readFile(cacheFile())).toEqual(damaged);
      expect(await keptAside()).toEqual([]);
    }
  });
});

describe('status --json on a damaged token cache (found in review: stdout was empty, so `| jq` failed on exactly the state to report)', () => {
  it('prints one JSON document saying the cache cannot be read and why, exits 4, and leaves the file untouched', { timeout: 60_000 }, async () => {
    for (const [_name, bytes, why] of damages) {
      const damaged = bytes();
      await damage(damaged);
      const run = await runCli(['status', '--json'], home);
      expect(run.code, run.stderr).toBe(4);
      expect(run.stderr).toBe('');
      const doc = JSON.parse(run.stdout) as Record<string, unknown>;
      expect(doc).toMatchObject({ profile: 'default', source: 'none', tokenCache: cacheFile(), tokenCacheReadable: false, delegations: [] });
      expect(doc.tokenCacheError).toMatch(why);
      expect(doc.tokenCacheError).toContain(`The token cache ${cacheFile()} `);
      expect(run.stdout.trim().split('\n')).toHaveLength(1);
      expect(await readFile(cacheFile())).toEqual(damaged);
      expect(await keptAside()).toEqual([]);
    }
    // Readable again: the same document says so.
    await damage(goodCache);
    const good = await runCli(['status', '--json'], home);
    expect(good.code, good.stderr).toBe(0);
    expect(JSON.parse(good.stdout)).toMatchObject({ source: 'token cache', tokenCacheReadable: true });
    expect(JSON.parse(good.stdout)).not.toHaveProperty('tokenCacheError');
  });
});

describe('status --json on a token cache that cannot be opened (found in review s15rest: only a damaged one printed the document)', () => {
  it('a directory where tokens.json should be: one JSON document saying it is one, exit 4, and the text output one line, exit 4 too', { timeout: 60_000 }, async () => {
    await rm(cacheFile(), { force: true });
    await mkdir(cacheFile());
    try {
      const run = await runCli(['status', '--json'], home);
      expect(run.code, run.stderr).toBe(4);
      expect(run.stderr).toBe('');
      expect(run.stdout.trim().split('\n')).toHaveLength(1);
      const doc = JSON.parse(run.stdout) as Record<string, unknown>;
      expect(doc).toMatchObject({ profile: 'default', source: 'none', tokenCache: cacheFile(), tokenCacheReadable: false, delegations: [] });
      // Said to be a directory (s25faults), not read as a file; its mode untouched.
      expect(doc.tokenCacheError).toBe(`The token cache ${cacheFile()} is a directory, not a token cache; move it away.`);
      // Without --json, one line on stderr, and the exit --json gives: README's exit 4 is `status` with no usable
      // sign-in, "also when the token cache cannot be read" (found in review, s26: it was 1 here).
      expectOneLine(await runCli(['status'], home), 4, /The token cache .* is a directory, not a token cache; move it away\./);
      expect((await stat(cacheFile())).isDirectory()).toBe(true);
    } finally {
      await rm(cacheFile(), { recursive: true, force: true });
      await damage(goodCache);
    }
  });

  it.runIf(process.getuid?.() === 0)('a cache another user owns (0600, read by nobody): one JSON document naming EACCES, exit 4 (and 4 without --json), the file untouched', { timeout: 60_000 }, async () => {
    // A data directory of nobody's holding a tokens.json that root wrote (as after `sudo delegate login`).
    const theirs = await mkdtemp(join(tmpdir(), 'delegate-faults-eacces-'));
    await chmod(theirs, 0o755);
    const nobodysHome = join(theirs, 'home');
    await mkdir(nobodysHome, { mode: 0o700 });
    await chown(nobodysHome, NOBODY, NOBODY);
    const rootsCache = join(nobodysHome, 'tokens.json');
    await writeFile(rootsCache, goodCache, { mode: 0o600 });
    try {
      const run = await runAsNobody(['status', '--json'], nobodysHome);
      expect(run.code, run.stderr).toBe(4);
      expect(run.stderr).toBe('');
      const doc = JSON.parse(run.stdout) as Record<string, unknown>;
      expect(doc).toMatchObject({ source: 'none', tokenCache: rootsCache, tokenCacheReadable: false, delegations: [] });
      expect(doc.tokenCacheError).toContain(`Cannot read the token cache ${rootsCache}: `);
      expect(doc.tokenCacheError).toMatch(/EACCES/);
      // Without --json, one line and the same exit 4 (found in review, s26: it was 1).
      expectOneLine(await runAsNobody(['status'], nobodysHome), 4, new RegExp(`Cannot read the token cache ${rootsCache.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*EACCES`));
      expect(await readFile(rootsCache)).toEqual(goodCache);
    } finally {
      await rm(theirs, { recursive: true, force: true });
    }
  });
});

const NOBODY = 65534;

/** `node bin/delegate …args` run by `nobody`, with DELEGATE_HOME=home. */
function runAsNobody(args: string[], home: string): Promise<Run> {
  return runCliAs(NOBODY, args, { HOME: home, DELEGATE_HOME: home });
}

describe('a token cache whose discovery entry is malformed (found in review: status said signed in, token said nothing was stored, logout revoked and deleted it)', () => {
  it('is damage like any other: status, token and find-slot exit 4 naming the entry, and logout keeps the file aside whole', { timeout: 60_000 }, async () => {
    const good = JSON.parse(goodCache.toString('utf8')) as { discovery: Record<string, unknown> };
    const [agent] = Object.keys(good.discovery);
    good.discovery[agent!] = { authorizationServerUrl: 12 };
    const damaged = Buffer.from(JSON.stringify(good, null, 2));
    const named = new RegExp(`The token cache ${cacheFile().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has a malformed discovery entry for ${agent!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);
    const login = `\`DELEGATE_HOME=${home} delegate login ${ports.join(' ')}\``;
    for (const [command, advised] of [[['status'], `\`DELEGATE_HOME=${home} delegate login\``], [['token', ...ports], login], [['find-slot', '--duration', '30m', '--json', ...ports], login]] as const) {
      await damage(damaged);
      const run = await runCli([...command], home);
      expectOneLine(run, 4, named);
      expect(run.stderr).toContain(advised);
      expect(await readFile(cacheFile())).toEqual(damaged);
      expect(await keptAside()).toEqual([]);
    }
    const run = await runCli(['logout', ...ports], home);
    const [kept, ...more] = await keptAside();
    expect(more).toEqual([]);
    expectOneLine(run, 1, /none of its tokens could be revoked at the server/, /kept aside as /);
    expect(await readFile(join(home, kept!))).toEqual(damaged);
    await rm(join(home, kept!));
  });
});

describe('a damaged token cache, where the person can sign in', () => {
  it('find-slot --no-browser keeps the damaged file aside byte for byte, says where, and signs in anew', { timeout: 60_000 }, async () => {
    const damaged = randomBytes(300);
    await damage(damaged);
    const run = startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...ports], home);
    await approveInBrowser(await run.loginUrl);
    const done = await run.done;
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout)).toHaveProperty('start');
    const [kept, ...more] = await keptAside();
    expect(more).toEqual([]);
    expect(kept).toMatch(/^tokens\.json\.corrupt-\d{8}T\d{9}Z$/);
    expect(done.stderr).toContain(`The token cache ${cacheFile()} could not be read; it is kept as ${join(home, kept!)}`);
    expect(await readFile(join(home, kept!))).toEqual(damaged);
    expect((await stat(join(home, kept!))).mode & 0o777).toBe(0o600);
    // The new cache is whole.
    const fresh = JSON.parse(await readFile(cacheFile(), 'utf8')) as { version: number; tokens: Record<string, unknown> };
    expect(fresh.version).toBe(1);
    expect(Object.keys(fresh.tokens)).toHaveLength(1);
    await rm(join(home, kept!));
  });

  it('login keeps it aside before opening the sign-in, not after', { timeout: 60_000 }, async () => {
    const damaged = goodCache.subarray(0, 40);
    await damage(damaged);
    const run = startCli(['login', '--no-browser', ...ports], home);
    const link = await run.loginUrl;
    // Before the person has approved anything, the file is already aside and said so.
    const [kept] = await keptAside();
    expect(kept).toBeDefined();
    expect(run.stderr()).toContain(`it is kept as ${join(home, kept!)}`);
    await approveInBrowser(link);
    expect((await run.done).code).toBe(0);
    expect(await readFile(join(home, kept!))).toEqual(damaged);
    expect(JSON.parse(await readFile(cacheFile(), 'utf8'))).toMatchObject({ version: 1 });
    await rm(join(home, kept!));
  });

  it('logout keeps it aside whole, says its tokens could not be revoked and stay valid until they expire, and leaves this computer signed out', { timeout: 60_000 }, async () => {
    const damaged = randomBytes(200);
    await damage(damaged);
    const run = await runCli(['logout', ...ports], home);
    const [kept, ...more] = await keptAside();
    expect(more).toEqual([]);
    expectOneLine(run, 1, /none of its tokens could be revoked at the server: they stay valid there until they expire/, new RegExp(`kept aside as ${join(home, kept!).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    expect(await readFile(join(home, kept!))).toEqual(damaged);
    const status = await runCli(['status'], home);
    expect(status.stderr + status.stdout).toMatch(/[Nn]ot signed in/);
    await rm(join(home, kept!));
  });

  it('a cache others may read is not damaged: its mode is tightened to 0600 and it is used', { timeout: 60_000 }, async () => {
    await damage(goodCache);
    await chmod(cacheFile(), 0o644);
    const run = await runCli(['status'], home);
    expect(run.code, run.stderr).toBe(0);
    expect((await stat(cacheFile())).mode & 0o777).toBe(0o600);
    expect(await keptAside()).toEqual([]);
  });
});
