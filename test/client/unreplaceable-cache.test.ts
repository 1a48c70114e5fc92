// A token cache that a rename cannot replace: tokens.json a symbolic link, or a
// single file mounted in its place (Docker's `-v ./tokens.json:…`, a bind
// mount; /proc/self/mountinfo is made to list it here, so that no root is
// needed: test/e2e/cache-mounted.test.ts mounts one for real). Found in
// review (s31fault): the refresh token was spent, then the rename failed
// (EBUSY), and a symbolic link was silently replaced by a regular file. Now
// nothing is sent, nothing is redeemed and nothing is written: one CACHE_IO
// line says why and the way out.
import { lstat, mkdir, mkdtemp, readFile, readlink, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TokenCache, roomForSignIn, setTokens } from '../../src/client/cache.js';
import { ClientError } from '../../src/client/errors.js';
import { mountPointsIn, refuseUnreplaceable } from '../../src/client/private-files.js';
import { refreshCachedTokens } from '../../src/client/refresh.js';

/** What /proc/self/mountinfo reads as, while set (null: it cannot be read, as where there is no /proc); the real file otherwise. */
let mountinfo: string | null | undefined;
/** A file whose lstat says another device than its directory's, while set (an overlayfs over two file systems does so). */
let otherDevice: string | undefined;
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  const readFileSeen = (async (path: unknown, ...rest: unknown[]) => {
    if (path === '/proc/self/mountinfo' && mountinfo === null) throw Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    if (path === '/proc/self/mountinfo' && mountinfo !== undefined) return mountinfo;
    return (actual.readFile as (...args: unknown[]) => unknown)(path, ...rest);
  }) as typeof actual.readFile;
  const lstatSeen = (async (path: unknown, ...rest: unknown[]) => {
    const info = await (actual.lstat as (...args: unknown[]) => Promise<import('node:fs').Stats>)(path, ...rest);
    if (path === otherDevice) info.dev += 1;
    return info;
  }) as typeof actual.lstat;
  return { ...actual, default: { ...actual, readFile: readFileSeen, lstat: lstatSeen }, readFile: readFileSeen, lstat: lstatSeen };
});

const issuer = 'http://127.0.0.1:8410';
const resource = 'http://127.0.0.1:8412/mcp';
const now = () => 1_700_000_000_000;
let dir: string;
let cache: TokenCache;

/** mountinfo's escapes (proc(5)): space, tab, newline and backslash as three octal digits. */
const escaped = (path: string) => path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
const mountLine = (point: string) => `1402 1380 259:1 /tmp/x/mounted-tokens.json ${escaped(point)} rw,relatime - ext4 /dev/root rw\n`;
const ROOT_LINE = '1380 1300 0:52 / / rw,relatime master:1 - overlay overlay rw\n';

async function signedInCache(home: string): Promise<TokenCache> {
  const c = new TokenCache({ files: { tokenCache: join(home, 'tokens.json'), tokenLock: join(home, 'tokens.lock') }, now });
  await c.update((data) => {
    data.discovery[resource] = {
      authorizationServerUrl: issuer,
      authorizationServerMetadata: { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, response_types_supported: ['code'] },
    } as never;
    data.clients[issuer] = { client_id: 'cli_abc', issuer } as never;
    setTokens(data, resource, { access_token: 'at-1', token_type: 'Bearer', refresh_token: 'rt-1', expires_at: now() - 60_000, issuer, resource, obtained_at: now() - 700_000 });
  });
  return c;
}

beforeEach(async () => {
  // A space and a backslash in the path: mountinfo escapes them.
  dir = await mkdtemp(join(tmpdir(), 'delegate cache\\ '));
  cache = await signedInCache(join(dir, 'home'));
});

afterEach(async () => {
  mountinfo = undefined;
  otherDevice = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** A token endpoint that would rotate the refresh token; it notes every request. */
function tokenEndpoint() {
  return vi.fn(async () => Response.json({ access_token: 'at-2', token_type: 'Bearer', refresh_token: 'rt-2', expires_in: 600 }));
}

async function refreshError(fetchFn: ReturnType<typeof tokenEndpoint>): Promise<ClientError> {
  const error = await refreshCachedTokens({ cache, issuer, resource, now, fetchFn }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ClientError);
  return error as ClientError;
}

describe('tokens.json mounted in place (a single-file mount)', () => {
  beforeEach(async () => {
    mountinfo = ROOT_LINE + mountLine(await realpath(cache.files.tokenCache));
  });

  it('a refresh posts nothing: one line says why, that nothing was sent, and the way out; the file is as it was', async () => {
    const before = await readFile(cache.files.tokenCache, 'utf8');
    const fetchFn = tokenEndpoint();
    const error = await refreshError(fetchFn);
    expect(fetchFn).not.toHaveBeenCalled();
    expect(error.code).toBe('CACHE_IO');
    expect(error.message).toBe(
      `The token cache ${cache.files.tokenCache} is a mount point (a single file mounted there): it cannot be saved, since saving renames a new file over it. ` +
        'The access token was not refreshed (nothing was sent). Mount the directory that holds it instead, or point DELEGATE_HOME at a directory mounted whole.',
    );
    expect(error.message).not.toContain('\n');
    expect(await readFile(cache.files.tokenCache, 'utf8')).toBe(before);
  });

  it('a sign-in takes no room for its tokens, so redeems no code', async () => {
    await expect(roomForSignIn(cache)).rejects.toMatchObject({
      code: 'CACHE_IO',
      message: expect.stringMatching(/ is a mount point .* The sign-in was not completed \(nothing was redeemed, so nothing was issued\)\. Mount the directory/),
    });
  });

  it('nothing else is written over it either', async () => {
    await expect(cache.update((data) => void (data.clients[issuer] = { client_id: 'cli_other', issuer } as never))).rejects.toMatchObject({
      code: 'CACHE_IO',
      message: expect.stringMatching(/^The token cache .* is a mount point/),
    });
  });

  it('a mount of the directory that holds it is no mount of the file: it is used as ever', async () => {
    mountinfo = ROOT_LINE + mountLine(await realpath(join(dir, 'home')));
    const fetchFn = tokenEndpoint();
    expect((await refreshCachedTokens({ cache, issuer, resource, now, fetchFn }))?.access_token).toBe('at-2');
    expect(fetchFn).toHaveBeenCalledTimes(1);
  });
});

describe('tokens.json a symbolic link', () => {
  let target: string;
  beforeEach(async () => {
    const elsewhere = join(dir, 'elsewhere');
    await mkdir(elsewhere, { mode: 0o700 });
    target = join(elsewhere, 'tokens.json');
    await writeFile(target, await readFile(cache.files.tokenCache, 'utf8'), { mode: 0o600 });
    await rm(cache.files.tokenCache);
    await symlink(target, cache.files.tokenCache);
  });

  it('a refresh posts nothing, and the link stays a link to the same file, unchanged', async () => {
    const before = await readFile(target, 'utf8');
    const fetchFn = tokenEndpoint();
    const error = await refreshError(fetchFn);
    expect(fetchFn).not.toHaveBeenCalled();
    expect(error.code).toBe('CACHE_IO');
    expect(error.message).toBe(
      `The token cache ${cache.files.tokenCache} is a symbolic link: it is not saved through it, since saving renames a new file over it, which would replace the link. ` +
        'The access token was not refreshed (nothing was sent). Link the directory that holds it instead, or point DELEGATE_HOME at the directory of the file it names.',
    );
    expect((await lstat(cache.files.tokenCache)).isSymbolicLink()).toBe(true);
    expect(await readlink(cache.files.tokenCache)).toBe(target);
    expect(await readFile(target, 'utf8')).toBe(before);
  });

  it('it is still read through (a command with a valid token needs no write)', async () => {
    expect((await cache.read()).clients[issuer]?.client_id).toBe('cli_abc');
  });
});

describe('what can be replaced', () => {
  it('no file yet (the first sign-in), or a regular file in a directory of its own', async () => {
    await expect(refuseUnreplaceable(join(dir, 'home', 'absent.json'))).resolves.toBeUndefined();
    mountinfo = ROOT_LINE;
    await expect(refuseUnreplaceable(cache.files.tokenCache)).resolves.toBeUndefined();
  });

  // Found in review (s31fix): on an overlayfs whose layers are on different file systems (a tmpfs over a read-only
  // root), a regular file's st_dev is not its directory's; taken for a mount point, every sign-in there was refused.
  it("a file whose device is not its directory's, which the mount table does not list: written as ever", async () => {
    otherDevice = cache.files.tokenCache;
    mountinfo = ROOT_LINE;
    await expect(refuseUnreplaceable(cache.files.tokenCache)).resolves.toBeUndefined();
    const fetchFn = tokenEndpoint();
    expect((await refreshCachedTokens({ cache, issuer, resource, now, fetchFn }))?.access_token).toBe('at-2');
    expect(fetchFn).toHaveBeenCalledTimes(1);
  });

  // Found in review (s31fix2): `mount --bind H A` with H/tokens.json mounted on its own; DELEGATE_HOME=A. The table
  // lists only H/tokens.json, and a rename at A/tokens.json fails alike (EBUSY). Here A is a link to the data directory,
  // which stat sees as the same directory, as it sees a bind mount's.
  it('a file mounted under another path to its directory (a bind mount of the directory) is taken for a mount point', async () => {
    const other = join(dir, 'other-path');
    await symlink(join(dir, 'home'), other);
    mountinfo = ROOT_LINE + mountLine(join(other, 'tokens.json'));
    await expect(refuseUnreplaceable(cache.files.tokenCache)).rejects.toMatchObject({ name: 'NotReplaceableError', kind: 'mount point' });
    // A namesake in another directory is not it.
    await mkdir(join(dir, 'elsewhere'));
    mountinfo = ROOT_LINE + mountLine(join(dir, 'elsewhere', 'tokens.json'));
    await expect(refuseUnreplaceable(cache.files.tokenCache)).resolves.toBeUndefined();
  });

  it("where the mount table cannot be read, a file whose device is not its directory's is taken for a mount point", async () => {
    otherDevice = cache.files.tokenCache;
    mountinfo = null;
    await expect(refuseUnreplaceable(cache.files.tokenCache)).rejects.toMatchObject({ name: 'NotReplaceableError', kind: 'mount point' });
    otherDevice = undefined;
    await expect(refuseUnreplaceable(cache.files.tokenCache)).resolves.toBeUndefined();
  });

  it('mountinfo: the fifth field of each line, its octal escapes undone', () => {
    const points = mountPointsIn(ROOT_LINE + mountLine('/home/a b\\c/x\ty\nz/tokens.json'));
    expect(points).toEqual(new Set(['/', '/home/a b\\c/x\ty\nz/tokens.json']));
  });
});
