// The token cache: private modes, atomic replacement, refusal of a corrupt
// file, and the cross-process lock that makes concurrent refreshes happen once.
import { mkdtemp, readdir, readFile, rm, stat, writeFile, chmod, mkdir } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { builtModule } from '../e2e/built.js';
import { TokenCache, addPendingRevocation, clientFor, emptyCache, endTokens, forgetPendingRevocations, isExpired, parseCache, PENDING_REVOCATIONS_MAX, setClient, setSignInTokens, setSignInWithClient, setTokens, tokensFor, type PendingRevocation, type StoredTokens } from '../../src/client/cache.js';
import { ClientError } from '../../src/client/errors.js';

let dir: string;
let home: string;
const files = () => ({ tokenCache: join(home, 'tokens.json'), tokenLock: join(home, 'tokens.lock') });
const now = () => 1_700_000_000_000;

function tokens(overrides: Partial<StoredTokens> = {}): StoredTokens {
  return {
    access_token: 'at-1',
    token_type: 'Bearer',
    refresh_token: 'rt-1',
    scope: 'slots:find',
    expires_at: now() + 600_000,
    issuer: 'http://127.0.0.1:8410',
    resource: 'http://127.0.0.1:8412/mcp',
    obtained_at: now(),
    ...overrides,
  };
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-cache-'));
  home = join(dir, 'home');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('TokenCache', () => {
  it('reads an empty cache when there is no file, and creates nothing', async () => {
    const cache = new TokenCache({ files: files(), now });
    expect(await cache.read()).toEqual({ version: 1, discovery: {}, clients: {}, tokens: {} });
    await expect(stat(files().tokenCache)).rejects.toThrow();
  });

  it('writes tokens.json 0600 in a 0700 directory, keyed by issuer and resource', async () => {
    const cache = new TokenCache({ files: files(), now });
    await cache.update((data) => setTokens(data, 'http://127.0.0.1:8412/mcp', tokens()));
    expect((await stat(home)).mode & 0o777).toBe(0o700);
    expect((await stat(files().tokenCache)).mode & 0o777).toBe(0o600);
    const onDisk = JSON.parse(await readFile(files().tokenCache, 'utf8'));
    expect(onDisk.tokens['http://127.0.0.1:8410']['http://127.0.0.1:8412/mcp'].access_token).toBe('at-1');
    expect(tokensFor(await cache.read(), 'http://127.0.0.1:8410', 'http://127.0.0.1:8412/mcp')?.refresh_token).toBe('rt-1');
  });

  it('tightens a looser directory and file', async () => {
    const cache = new TokenCache({ files: files(), now });
    await cache.update((data) => setTokens(data, 'r', tokens()));
    await chmod(home, 0o755);
    await chmod(files().tokenCache, 0o644);
    await cache.read();
    expect((await stat(files().tokenCache)).mode & 0o777).toBe(0o600);
    await cache.update(() => undefined);
    expect((await stat(home)).mode & 0o777).toBe(0o700);
  });

  it('replaces the file atomically and leaves no temp files or lock behind', async () => {
    const cache = new TokenCache({ files: files(), now });
    await cache.update((data) => setTokens(data, 'r', tokens()));
    const before = (await stat(files().tokenCache)).ino;
    await cache.update((data) => setTokens(data, 'r', tokens({ access_token: 'at-2' })));
    // rename() over the old file gives a new inode: the old one was never written in place.
    expect((await stat(files().tokenCache)).ino).not.toBe(before);
    expect(await readdir(home)).toEqual(['tokens.json']);
  });

  it('refuses a corrupt file with a clear error and never overwrites it', async () => {
    await mkdir(home, { recursive: true, mode: 0o700 });
    await writeFile(files().tokenCache, '{"version": 1, "tok', { mode: 0o600 });
    const cache = new TokenCache({ files: files(), now });
    const error = await cache.read().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClientError);
    expect((error as ClientError).code).toBe('CACHE_CORRUPT');
    expect((error as ClientError).message).toContain(files().tokenCache);
    await expect(cache.update((data) => setTokens(data, 'r', tokens()))).rejects.toMatchObject({ code: 'CACHE_CORRUPT' });
    expect(await readFile(files().tokenCache, 'utf8')).toBe('{"version": 1, "tok');
  });

  it('keeps a corrupt file aside byte for byte (never replacing another file), and leaves a readable one where it is', async () => {
    await mkdir(home, { recursive: true, mode: 0o700 });
    const cache = new TokenCache({ files: files(), now });
    expect(await cache.setAsideDamaged()).toBeUndefined(); // no file
    await cache.update((data) => setTokens(data, 'r', tokens()));
    expect(await cache.setAsideDamaged()).toBeUndefined(); // a good file stays
    expect((await cache.read()).tokens).not.toEqual({});
    await writeFile(files().tokenCache, '{"version": 1, "tok', { mode: 0o600 });
    const keptAs = await cache.setAsideDamaged();
    expect(keptAs).toBe(`${files().tokenCache}.corrupt-${new Date(now()).toISOString().replace(/[-:.]/g, '')}`);
    expect(await readFile(keptAs!, 'utf8')).toBe('{"version": 1, "tok');
    expect(await cache.read()).toEqual(emptyCache());
    // The same moment again: the first kept file is not replaced.
    await writeFile(files().tokenCache, 'second', { mode: 0o600 });
    await expect(cache.setAsideDamaged()).rejects.toMatchObject({ code: 'CACHE_IO' });
    expect(await readFile(keptAs!, 'utf8')).toBe('{"version": 1, "tok');
    expect(await readFile(files().tokenCache, 'utf8')).toBe('second');
  });

  it('refuses a file of another version or shape', async () => {
    await mkdir(home, { recursive: true, mode: 0o700 });
    const cache = new TokenCache({ files: files(), now });
    for (const text of ['[]', '{"version":2,"discovery":{},"clients":{},"tokens":{}}', '{"version":1,"discovery":{},"clients":{},"tokens":{"i":{"r":{"x":1}}}}']) {
      await writeFile(files().tokenCache, text, { mode: 0o600 });
      await expect(cache.read()).rejects.toMatchObject({ code: 'CACHE_CORRUPT' });
    }
  });

  it('refuses a file whose discovery entry is malformed, naming the entry, as for the other sections', async () => {
    await mkdir(home, { recursive: true, mode: 0o700 });
    const cache = new TokenCache({ files: files(), now });
    const agent = 'http://127.0.0.1:8412/mcp';
    for (const entry of [{ authorizationServerUrl: 12 }, 'http://127.0.0.1:8410', null, {}, { authorizationServerUrl: 'http://127.0.0.1:8410', authorizationServerMetadata: { token_endpoint: 5 } }, { authorizationServerUrl: 'http://127.0.0.1:8410', resourceMetadata: [] }]) {
      const text = JSON.stringify({ version: 1, discovery: { [agent]: entry }, clients: {}, tokens: { 'http://127.0.0.1:8410': { [agent]: tokens() } } });
      await writeFile(files().tokenCache, text, { mode: 0o600 });
      const error = await cache.read().catch((e: unknown) => e);
      expect(error, JSON.stringify(entry)).toMatchObject({ code: 'CACHE_CORRUPT' });
      expect((error as Error).message).toContain(`${files().tokenCache} has a malformed discovery entry for ${agent}`);
      expect(await readFile(files().tokenCache, 'utf8')).toBe(text);
    }
  });

  it('takes room for a write before it is needed, and writes into it: no temp file or lock is left either way', async () => {
    const cache = new TokenCache({ files: files(), now });
    await cache.update((data) => setTokens(data, 'r', tokens()));
    await cache.withLock(async (txn) => {
      const data = await txn.read();
      const room = await txn.reserve(data);
      expect((await readdir(home)).filter((name) => name.endsWith('.tmp'))).toHaveLength(1);
      setTokens(data, 'r', tokens({ access_token: 'at-2' }));
      await room.write(data);
    });
    expect(tokensFor(await cache.read(), 'http://127.0.0.1:8410', 'r')?.access_token).toBe('at-2');
    expect((await stat(files().tokenCache)).mode & 0o777).toBe(0o600);
    await cache.withLock(async (txn) => void (await txn.reserve(await txn.read()))); // taken, not used: given back
    expect(await readdir(home)).toEqual(['tokens.json']);
  });

  // Found in review: Ctrl-C during a refresh (a command killed while it held room for the cache) left its temp file for good.
  it('removes the room a killed command left (its process gone, the file over 5 minutes old), and nothing else', async () => {
    const cache = new TokenCache({ files: files(), now });
    await cache.update((data) => setTokens(data, 'r', tokens()));
    const gone = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, ['-e', '0']);
      child.on('exit', () => resolve(child.pid!));
    });
    const leftover = (pid: number, hex: string) => join(home, `.tokens.json.${pid}.${hex}.tmp`);
    const old = new Date(Date.now() - 10 * 60_000);
    const { utimes } = await import('node:fs/promises');
    for (const [path, mtime] of [
      [leftover(gone, 'aaaaaaaaaaaa'), old], // killed, long ago: removed
      [leftover(gone, 'bbbbbbbbbbbb'), new Date()], // killed a moment ago (or still finishing on a slow disk): kept
      [leftover(1, 'cccccccccccc'), old], // its process is alive: kept
    ] as const) {
      await writeFile(path, ' '.repeat(100), { mode: 0o600 });
      await utimes(path, mtime, mtime);
    }
    await writeFile(join(home, 'unrelated.tmp'), 'x');
    await cache.withLock(async (txn) => void (await txn.reserve(await txn.read())));
    expect((await readdir(home)).sort()).toEqual([`.tokens.json.${gone}.bbbbbbbbbbbb.tmp`, '.tokens.json.1.cccccccccccc.tmp', 'tokens.json', 'unrelated.tmp'].sort());
  });

  it('loses no change when many writers update at once', async () => {
    const caches = Array.from({ length: 8 }, () => new TokenCache({ files: files(), now }));
    await Promise.all(caches.map((cache, i) => cache.update((data) => setTokens(data, `r${i}`, tokens({ access_token: `at-${i}` })))));
    const data = await caches[0]!.read();
    expect(Object.keys(data.tokens['http://127.0.0.1:8410']!).sort()).toEqual(['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']);
  });
});

describe('a sign-in and the notes that other delegations ended', () => {
  const refused = { refused_at: now(), error: 'invalid_grant' };
  const LOCAL = { issuer: 'http://127.0.0.1:8410', agentUrl: 'http://127.0.0.1:8412/mcp' };
  const REMOTE = { issuer: 'https://auth.example.com', agentUrl: 'https://agent.example.com/mcp' };
  /** The notes left after a sign-in at `at`, from a cache noting that delegations at `ended` ended. */
  function endedAfterSignIn(ended: Array<{ issuer: string; agentUrl: string }>, at: { issuer: string; agentUrl: string }): string[] {
    const data = emptyCache();
    for (const e of ended) endTokens(data, e.issuer, e.agentUrl, refused);
    setSignInTokens(data, at.agentUrl, tokens({ issuer: at.issuer, resource: at.agentUrl }));
    return Object.entries(data.ended ?? {}).flatMap(([issuer, byResource]) => Object.keys(byResource).map((url) => `${issuer} ${url}`));
  }

  it('drops those of the agent it replaces: at the same authorization server, or anywhere on this machine', () => {
    const moved = { issuer: LOCAL.issuer, agentUrl: 'http://127.0.0.1:9412/mcp' };
    expect(endedAfterSignIn([LOCAL], moved)).toEqual([]);
    expect(endedAfterSignIn([LOCAL], { issuer: 'http://127.0.0.1:9410', agentUrl: 'http://localhost:9412/mcp' })).toEqual([]);
    expect(endedAfterSignIn([REMOTE], { issuer: REMOTE.issuer, agentUrl: 'https://agent.example.com/v2/mcp' })).toEqual([]);
  });

  it('keeps those of a deployment elsewhere, signed in to beside it, and a refresh drops none but its own', () => {
    expect(endedAfterSignIn([LOCAL, REMOTE], { issuer: LOCAL.issuer, agentUrl: 'http://127.0.0.1:9412/mcp' })).toEqual([`${REMOTE.issuer} ${REMOTE.agentUrl}`]);
    expect(endedAfterSignIn([LOCAL], { issuer: 'https://auth.other.example', agentUrl: 'https://agent.other.example/mcp' })).toEqual([`${LOCAL.issuer} ${LOCAL.agentUrl}`]);
    // An agent elsewhere whose authorization server is on this machine is no local stack.
    expect(endedAfterSignIn([{ issuer: 'http://127.0.0.1:7410', agentUrl: REMOTE.agentUrl }], LOCAL)).toEqual([`http://127.0.0.1:7410 ${REMOTE.agentUrl}`]);
    const data = emptyCache();
    endTokens(data, LOCAL.issuer, LOCAL.agentUrl, refused);
    setTokens(data, 'http://127.0.0.1:9412/mcp', tokens({ resource: 'http://127.0.0.1:9412/mcp' }));
    expect(data.ended).toEqual({ [LOCAL.issuer]: { [LOCAL.agentUrl]: refused } });
  });
});

describe('a sign-in saved with the client its tokens were issued to (found in review, s26: two logins at once)', () => {
  const issuer = 'http://127.0.0.1:8410';
  const agent = 'http://127.0.0.1:8412/mcp';
  const other = 'http://127.0.0.1:8413/mcp';
  const client = (id: string) => ({ client_id: id, issuer, redirect_uris: ['http://127.0.0.1/callback'] });
  /** An access token shaped as delegate's (a JWT naming its grant); the signature is never read here. */
  const jwt = (grant: string) => `e30.${Buffer.from(JSON.stringify({ grant_id: grant })).toString('base64url')}.sig`;

  it('stores the client beside the tokens, and hands back those it replaced when another client holds them, to revoke', () => {
    const data = emptyCache();
    setClient(data, issuer, client('cli_a'));
    setSignInTokens(data, agent, tokens({ access_token: jwt('grt_a') })); // an older cache's entry: no client_id
    const replaced = setSignInWithClient(data, agent, tokens({ access_token: jwt('grt_b') }), client('cli_b'));
    expect(data.clients[issuer]!.client_id).toBe('cli_b');
    expect(tokensFor(data, issuer, agent)!.client_id).toBe('cli_b');
    expect(replaced).toMatchObject({ issuer, resource: agent, clientId: 'cli_a' });
    expect(tokensFor(replaced!.cache, issuer, agent)!.access_token).toBe(jwt('grt_a'));
    expect(clientFor(replaced!.cache, issuer, tokensFor(replaced!.cache, issuer, agent)!)!.client_id).toBe('cli_a');
  });

  it('hands back the tokens of the same client under another grant, and none under the same grant or of an opaque token', () => {
    const data = emptyCache();
    expect(setSignInWithClient(data, agent, tokens({ access_token: jwt('grt_a') }), client('cli_a'))).toBeUndefined();
    expect(setSignInWithClient(data, agent, tokens({ access_token: jwt('grt_a') }), client('cli_a'))).toBeUndefined();
    expect(setSignInWithClient(data, agent, tokens({ access_token: jwt('grt_b') }), client('cli_a'))).toMatchObject({ clientId: 'cli_a' });
    expect(setSignInWithClient(data, agent, tokens({ access_token: 'opaque' }), client('cli_a'))).toBeUndefined();
  });

  it('keeps tokens of other agents usable: they keep the id of the client they were issued to when another is stored', () => {
    const data = emptyCache();
    setClient(data, issuer, client('cli_a'));
    setSignInTokens(data, other, tokens({ resource: other })); // an older cache's entry, of cli_a
    setSignInWithClient(data, agent, tokens(), client('cli_b'));
    const kept = tokensFor(data, issuer, other)!;
    expect(kept.client_id).toBe('cli_a');
    expect(clientFor(data, issuer, kept)).toEqual({ client_id: 'cli_a', issuer });
    expect(clientFor(data, issuer, tokensFor(data, issuer, agent)!)!.client_id).toBe('cli_b');
  });
});

// Found in review (s27): a replaced sign-in whose revocation failed was forgotten; its token is now kept to revoke later.
describe('pending revocations (a replaced sign-in whose revocation failed)', () => {
  const pending = (n: number): PendingRevocation => ({ issuer: 'http://127.0.0.1:1', resource: 'http://127.0.0.1:2/mcp', client_id: `c${n}`, token: `rt${n}`, token_type_hint: 'refresh_token', failed_at: n });

  it('keeps each token once, the newest PENDING_REVOCATIONS_MAX, and forgets those given', () => {
    const data = emptyCache();
    for (let n = 0; n < PENDING_REVOCATIONS_MAX + 5; n++) addPendingRevocation(data, pending(n));
    addPendingRevocation(data, pending(PENDING_REVOCATIONS_MAX + 4));
    expect(data.pending_revocations!.map((p) => p.token)).toEqual(Array.from({ length: PENDING_REVOCATIONS_MAX }, (_, i) => `rt${i + 5}`));
    forgetPendingRevocations(data, new Set(data.pending_revocations!.map((p) => p.token)));
    expect(data).not.toHaveProperty('pending_revocations');
  });

  it('reads back what it wrote; a malformed entry is dropped alone, never the others nor the cache', () => {
    const data = emptyCache();
    addPendingRevocation(data, pending(1));
    expect(parseCache(JSON.stringify(data), 'tokens.json').pending_revocations).toEqual([pending(1)]);
    const damaged = { ...data, pending_revocations: [pending(2), { ...pending(3), token: 7 }, 'x', { ...pending(4), token_type_hint: 'id_token' }] };
    expect(parseCache(JSON.stringify(damaged), 'tokens.json').pending_revocations).toEqual([pending(2)]);
    expect(parseCache(JSON.stringify({ ...data, pending_revocations: {} }), 'tokens.json')).not.toHaveProperty('pending_revocations');
  });

  // Found in review (s27rev1): the bound held only when adding; a file written by hand (or by another program) with
  // thousands of entries had logout send thousands of revocations.
  it('reads no more than the newest PENDING_REVOCATIONS_MAX, however many the file holds', () => {
    const many = { ...emptyCache(), pending_revocations: Array.from({ length: PENDING_REVOCATIONS_MAX + 10 }, (_, n) => pending(n)) };
    expect(parseCache(JSON.stringify(many), 'tokens.json').pending_revocations!.map((p) => p.token)).toEqual(Array.from({ length: PENDING_REVOCATIONS_MAX }, (_, i) => `rt${i + 10}`));
  });
});

describe('isExpired', () => {
  it('counts a token about to expire as expired, and one without expiry as valid', () => {
    expect(isExpired(tokens({ expires_at: now() + 10_000 }), now())).toBe(true);
    expect(isExpired(tokens({ expires_at: now() + 120_000 }), now())).toBe(false);
    expect(isExpired(tokens({ expires_at: undefined }), now())).toBe(false);
  });
});

describe('the lock across processes (built code: npm test builds first)', () => {
  it('lets exactly one of several processes do the work while the others wait and see its result', async () => {
    // Each child: take the lock; if no token "rt-1" has been spent yet, spend it
    // (append to a log) and write the new token; otherwise do nothing.
    const script = `
      import { TokenCache, setTokens, tokensFor } from ${JSON.stringify(builtModule('client/cache.js'))};
      import { appendFile } from 'node:fs/promises';
      const [tokenCache, tokenLock, log] = process.argv.slice(-3);
      const cache = new TokenCache({ files: { tokenCache, tokenLock }, now: Date.now });
      await cache.withLock(async (txn) => {
        const data = await txn.read();
        const t = tokensFor(data, 'http://127.0.0.1:8410', 'r');
        if (t.refresh_token !== 'rt-1') return;
        await appendFile(log, 'spent rt-1\\n');
        await new Promise((r) => setTimeout(r, 50));
        setTokens(data, 'r', { ...t, access_token: 'at-2', refresh_token: 'rt-2' });
        await txn.write(data);
      });
    `;
    const cache = new TokenCache({ files: files(), now });
    await cache.update((data) => setTokens(data, 'r', tokens()));
    // Separate instances in one process contend on the same file lock, too.
    const log = join(dir, 'spent.log');
    await writeFile(log, '');
    const children = Array.from({ length: 6 }, () =>
      new Promise<number>((resolve, reject) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script, files().tokenCache, files().tokenLock, log], {
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        child.on('error', reject);
        child.on('exit', (code) => resolve(code ?? -1));
      }),
    );
    expect(await Promise.all(children)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(await readFile(log, 'utf8')).toBe('spent rt-1\n');
    expect(tokensFor(await cache.read(), 'http://127.0.0.1:8410', 'r')?.refresh_token).toBe('rt-2');
  });
});
