// Refreshing without the user when the authorization server's answer is not
// an OAuth one: the error says what came back (a status, an OAuth error code)
// on one line, and never quotes the response body. And when it never answers:
// the request is bounded, and no other process spends the same refresh token
// while it is open. And when the new tokens cannot be written after the
// refresh token was spent: this process keeps them and never posts the spent
// one again.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TokenCache, endedFor, setTokens, tokensFor } from '../../src/client/cache.js';
import { ClientError, endedNotNoted, isDelegationEnded } from '../../src/client/errors.js';
import { storedSignIns, validAccessToken } from '../../src/client/credentials.js';
import { refreshCachedTokens } from '../../src/client/refresh.js';

/** While set, every write of a cache file fails as on a full disk, even into room reserved before (a file system that allocates on every write). */
let diskFull = false;
const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
/** While set, a write into reserved room fails at its rename, as over a file mounted in the cache's place after the room was taken. */
let renameBusy = false;
const ebusy = () => Object.assign(new Error("EBUSY: resource busy or locked, rename '.tokens.json.tmp' -> 'tokens.json'"), { code: 'EBUSY' });
vi.mock('../../src/client/private-files.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/client/private-files.js')>();
  return {
    ...actual,
    writePrivateFileAtomic: async (path: string, text: string) => {
      if (diskFull) throw enospc();
      return actual.writePrivateFileAtomic(path, text);
    },
    reservePrivateFileReplacement: async (path: string, bytes: number) => {
      const room = await actual.reservePrivateFileReplacement(path, bytes);
      return {
        commit: async (text: string) => {
          if (diskFull || renameBusy) {
            await room.release();
            throw diskFull ? enospc() : ebusy();
          }
          return room.commit(text);
        },
        release: room.release,
      };
    },
  };
});

const issuer = 'http://127.0.0.1:8410';
const resource = 'http://127.0.0.1:8412/mcp';
const now = () => 1_700_000_000_000;
let dir: string;
let cache: TokenCache;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-refresh-'));
  cache = new TokenCache({ files: { tokenCache: join(dir, 'tokens.json'), tokenLock: join(dir, 'tokens.lock') }, now });
  await cache.update((data) => {
    data.discovery[resource] = {
      authorizationServerUrl: issuer,
      authorizationServerMetadata: { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, response_types_supported: ['code'] },
    } as never;
    data.clients[issuer] = { client_id: 'cli_abc', issuer } as never;
    setTokens(data, resource, { access_token: 'at-1', token_type: 'Bearer', refresh_token: 'rt-1', expires_at: now() - 60_000, issuer, resource, obtained_at: now() - 700_000 });
  });
});

afterEach(async () => {
  diskFull = false;
  renameBusy = false;
  await rm(dir, { recursive: true, force: true });
});

async function failure(answer: () => Response): Promise<ClientError> {
  const error = await refreshCachedTokens({ cache, issuer, resource, now, fetchFn: async () => answer() }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ClientError);
  return error as ClientError;
}

describe('a refresh the authorization server does not answer as one', () => {
  it('an HTML page: the status only, never the page', async () => {
    const error = await failure(() => new Response('<!DOCTYPE HTML>\n<html><body><h1>Error response</h1></body></html>', { status: 501, headers: { 'content-type': 'text/html' } }));
    expect(error.code).toBe('REFRESH_FAILED');
    expect(error.message).toBe(`Could not refresh the access token at ${issuer}: it answered HTTP 501 with no OAuth error.`);
  });

  it('an OAuth error: its code and description', async () => {
    const error = await failure(() => Response.json({ error: 'temporarily_unavailable', error_description: 'try later' }, { status: 503 }));
    expect(error.message).toBe(`Could not refresh the access token at ${issuer}: temporarily_unavailable: try later`);
  });
});

describe('a refresh the authorization server refuses (RFC 6749 §5.2): the delegation has ended, and what finds no tokens after says so', () => {
  const files = () => ({ ...cache.files, ownerKey: join(dir, 'owner-key.json') });
  const refusing = (body: Record<string, string>) => vi.fn(async () => Response.json(body, { status: 400 }));
  const refusal = (fetchFn: ReturnType<typeof refusing>) =>
    validAccessToken({ agentUrl: resource, files: files(), now, fetchFn }).then(
      () => undefined,
      (e: unknown) => e as ClientError,
    );

  it('the tokens go and the refusal is kept in their place; `delegate token` says the delegation ended and why, on this run and the next (found in review: "No delegation … is stored")', async () => {
    const fetchFn = refusing({ error: 'invalid_grant', error_description: 'The refresh token has expired.' });
    const first = await refusal(fetchFn);
    expect(isDelegationEnded(first)).toBe(true);
    expect(first).toMatchObject({
      code: 'AUTHORIZATION_REQUIRED',
      detail: `The delegation stored for CalendarAgent at ${resource} has ended: the authorization server ${issuer} refused to renew it (invalid_grant: The refresh token has expired.)`,
    });
    const data = await cache.read();
    expect(tokensFor(data, issuer, resource)).toBeUndefined();
    expect(endedFor(data, issuer, resource)).toEqual({ refused_at: now(), error: 'invalid_grant', error_description: 'The refresh token has expired.' });
    // The next run has no token to post: the same words, from the cache alone.
    const again = await refusal(fetchFn);
    expect(again?.detail).toBe(first?.detail);
    expect(fetchFn).toHaveBeenCalledTimes(1);
    // status reads it too, without the network.
    expect((await storedSignIns(cache.files, now)).ended).toEqual([
      { issuer, resource, agentUrl: resource, resourceName: undefined, refusedAt: now(), error: 'invalid_grant', errorDescription: 'The refresh token has expired.' },
    ]);
  });

  it('a new sign-in forgets it', async () => {
    await refusal(refusing({ error: 'invalid_grant', error_description: 'The delegation behind this token was revoked.' }));
    await cache.update((data) => setTokens(data, resource, { access_token: 'at-2', token_type: 'Bearer', refresh_token: 'rt-2', expires_at: now() + 600_000, issuer, resource, obtained_at: now() }));
    const data = await cache.read();
    expect(endedFor(data, issuer, resource)).toBeUndefined();
    expect(data.ended).toBeUndefined();
    expect(await validAccessToken({ agentUrl: resource, files: files(), now })).toBe('at-2');
  });

  // Found at stop 19: the authorization server moved to another port, and the sign-in there left the old server's note.
  it('a new sign-in at another authorization server for the same agent forgets it too; one for another agent does not', async () => {
    await refusal(refusing({ error: 'invalid_grant', error_description: 'The delegation behind this token was revoked.' }));
    const moved = 'http://127.0.0.1:8420';
    const other = 'http://127.0.0.1:8422/mcp';
    await cache.update((data) => setTokens(data, other, { access_token: 'at-o', token_type: 'Bearer', expires_at: now() + 600_000, issuer: moved, resource: other, obtained_at: now() }));
    expect(endedFor(await cache.read(), issuer, resource)).toBeDefined();
    await cache.update((data) => setTokens(data, resource, { access_token: 'at-2', token_type: 'Bearer', refresh_token: 'rt-2', expires_at: now() + 600_000, issuer: moved, resource, obtained_at: now() }));
    const data = await cache.read();
    expect(data.ended).toBeUndefined();
    expect((await storedSignIns(cache.files, now)).ended).toEqual([]);
  });

  it('without a description, what invalid_grant means; another server’s control characters are shown, never sent', async () => {
    expect((await refusal(refusing({ error: 'invalid_grant' })))?.detail).toMatch(/refused to renew it \(invalid_grant: revoked or expired\)$/);
    await cache.update((data) => setTokens(data, resource, { access_token: 'at-1', token_type: 'Bearer', refresh_token: 'rt-1', expires_at: now() - 60_000, issuer, resource, obtained_at: now() - 700_000 }));
    const said = await refusal(refusing({ error: 'invalid_grant', error_description: 'gone\u001b[2K\nforged line' }));
    expect(said?.detail).toMatch(/\(invalid_grant: gone\\e\[2K\\nforged line\)$/);
  });

  // Found in review (regress19b): a 503 whose body said invalid_grant ended the sign-in (the SDK reads the body alone);
  // and a 2 MB description went into the private cache whole.
  it('a 5xx is no refusal, whatever its body says: the tokens stay, nothing is noted, and the failure is said as one', async () => {
    const fetchFn = vi.fn(async () => Response.json({ error: 'invalid_grant', error_description: 'db locked' }, { status: 503 }));
    const error = await refusal(fetchFn);
    expect(error).toMatchObject({ code: 'REFRESH_FAILED' });
    expect(isDelegationEnded(error)).toBe(false);
    const data = await cache.read();
    expect(tokensFor(data, issuer, resource)?.refresh_token).toBe('rt-1');
    expect(data.ended).toBeUndefined();
  });

  it('keeps at most 500 code points of the description, and reads no longer note back', async () => {
    await refusal(refusing({ error: 'invalid_grant', error_description: `${'😀'.repeat(499)}${'A'.repeat(2_000_000)}` }));
    const raw = await readFile(cache.files.tokenCache, 'utf8');
    expect(raw.length).toBeLessThan(10_000);
    const note = endedFor(await cache.read(), issuer, resource)!;
    expect([...note.error_description!]).toHaveLength(500);
    expect(note.error_description!.endsWith('😀A')).toBe(true);
    expect(note.error).toBe('invalid_grant');
    // One written longer (by hand, or by an older build) is dropped on reading, as a malformed one is.
    await cache.update((data) => {
      (data as unknown as { ended: unknown }).ended = { [issuer]: { [resource]: { refused_at: now(), error: 'invalid_grant', error_description: 'A'.repeat(501) } } };
    });
    expect((await cache.read()).ended).toBeUndefined();
  });

  // Found in review (s31fault): the write after the refusal failed (EBUSY: a file mounted in the cache's place), and
  // the command said only "Cannot write the token cache", never that the sign-in had ended; the next posted the dead
  // refresh token again and said the same.
  it('a refusal the cache cannot be told of: still the ended error, with the write failure said; the dead refresh token is not posted again in this run', async () => {
    const fetchFn = vi.fn(async () => {
      renameBusy = true;
      return Response.json({ error: 'invalid_grant', error_description: 'The refresh token was replayed.' }, { status: 400 });
    });
    const first = await refusal(fetchFn);
    expect(isDelegationEnded(first)).toBe(true);
    expect(first).toMatchObject({
      code: 'AUTHORIZATION_REQUIRED',
      detail: `The delegation stored for CalendarAgent at ${resource} has ended: the authorization server ${issuer} refused to renew it (invalid_grant: The refresh token was replayed.)`,
    });
    expect(first!.message).toBe(
      `${first!.detail}. Cannot write the token cache ${cache.files.tokenCache}: it is busy, or a mount point (EBUSY). ` +
        'The token cache still holds the ended sign-in: `delegate status` shows it as stored until you sign in again. Run `delegate login` to sign in again.',
    );
    expect(endedNotNoted(first!)).toMatch(/^Cannot write the token cache .*\(EBUSY\)\. The token cache still holds the ended sign-in/);
    // Nothing changed on disk: the refused tokens are still there, and no note.
    const data = await cache.read();
    expect(tokensFor(data, issuer, resource)?.refresh_token).toBe('rt-1');
    expect(data.ended).toBeUndefined();
    // The same words again in this process, without posting the dead refresh token a second time.
    const again = await refusal(fetchFn);
    expect(again?.message).toBe(first!.message);
    expect(fetchFn).toHaveBeenCalledTimes(1);
    await expect(refreshCachedTokens({ cache, issuer, resource, now, fetchFn })).resolves.toBeUndefined();
    expect(fetchFn).toHaveBeenCalledTimes(1);
  });

  it('a malformed note is dropped when the cache is read, never a reason to set the cache aside', async () => {
    await cache.update((data) => {
      (data as unknown as { ended: unknown }).ended = { [issuer]: { [resource]: { error: 42 } } };
    });
    const data = await cache.read();
    expect(data.ended).toBeUndefined();
    expect(tokensFor(data, issuer, resource)?.access_token).toBe('at-1');
  });
});

describe('a refresh the authorization server never answers (it accepts, and stays silent)', () => {
  /** A token endpoint that never answers; it notes how many requests were open at once, and the refresh tokens posted. */
  async function silentServer() {
    let open = 0;
    const seen = { mostAtOnce: 0, refreshTokens: [] as string[] };
    const server = createServer((req) => {
      open += 1;
      seen.mostAtOnce = Math.max(seen.mostAtOnce, open);
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => seen.refreshTokens.push(new URLSearchParams(body).get('refresh_token') ?? ''));
      req.socket.on('close', () => (open -= 1));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const silent = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    // The cached discovery points the refresh at it.
    await cache.update((data) => {
      (data.discovery[resource]!.authorizationServerMetadata as { token_endpoint: string }).token_endpoint = `${silent}/token`;
    });
    // However the test ends, no request is left open for ever.
    const stop = setTimeout(() => server.closeAllConnections(), 5_000);
    return {
      seen,
      close: async () => {
        clearTimeout(stop);
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  }

  it('two processes: each request is bounded, the lock is not broken while its holder waits, and the token is never posted twice at once', async () => {
    const server = await silentServer();
    try {
      // Two processes' caches (same files), on the real clock; a lock untouched for 150 ms counts as abandoned.
      const files = cache.files;
      const [a, b] = [0, 1].map(() => new TokenCache({ files, now: Date.now, lock: { staleAfterMs: 150 } }));
      const results = await Promise.allSettled(
        [a!, b!].map((c) => refreshCachedTokens({ cache: c, issuer, resource, now: Date.now, requestTimeoutMs: 400 })),
      );
      for (const result of results) {
        expect(result.status).toBe('rejected');
        expect((result as PromiseRejectedResult).reason).toMatchObject({ code: 'REFRESH_FAILED', message: `Could not refresh the access token at ${issuer}: it did not answer in time.` });
      }
      expect(server.seen.refreshTokens).toEqual(['rt-1', 'rt-1']); // one after the other, each once
      expect(server.seen.mostAtOnce).toBe(1);
      await expect(readFile(files.tokenLock)).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await server.close();
    }
  });

  it('`delegate token` (validAccessToken, with no fetch of its own) gives up on it too', async () => {
    const server = await silentServer();
    try {
      const files = { ...cache.files, ownerKey: join(dir, 'owner-key.json') };
      const error = await validAccessToken({ agentUrl: resource, files, now: Date.now, requestTimeoutMs: 300 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      // Given up by the client, not ended by the server (the test's own stop, at 5 s, says something else).
      expect(error).toMatchObject({ code: 'REFRESH_FAILED', message: `Could not refresh the access token at ${issuer}: it did not answer in time.` });
    } finally {
      await server.close();
    }
  });
});

describe('a refresh whose new tokens cannot be written (the disk full after the refresh token was spent)', () => {
  /** A token endpoint that rotates: each refresh token once, for at-<n+1> and rt-<n+1>; it notes every refresh token posted, and fills the disk as it answers. */
  function rotatingServer(fillDisk: boolean) {
    const posted: string[] = [];
    const fetchFn = async (_url: unknown, init?: RequestInit) => {
      const spent = new URLSearchParams(String(init?.body)).get('refresh_token') ?? '';
      posted.push(spent);
      if (fillDisk) diskFull = true;
      const n = Number(spent.slice(3)) + 1;
      return Response.json({ access_token: `at-${n}`, token_type: 'Bearer', refresh_token: `rt-${n}`, expires_in: 600 });
    };
    return { posted, fetchFn };
  }
  const onDisk = async () => JSON.parse(await readFile(cache.files.tokenCache, 'utf8')).tokens[issuer][resource] as { access_token: string; refresh_token: string };

  it('the run goes on with the new tokens and is told; the spent refresh token is never posted again, and the new pair is saved once there is room', async () => {
    const as = rotatingServer(true);
    const notSaved: ClientError[] = [];
    let clock = now();
    const refresh = () => refreshCachedTokens({ cache, issuer, resource, now: () => clock, fetchFn: as.fetchFn, notSaved: (e) => notSaved.push(e) });

    expect((await refresh())?.access_token).toBe('at-2');
    expect(as.posted).toEqual(['rt-1']);
    expect(notSaved).toHaveLength(1);
    expect(notSaved[0]).toMatchObject({ code: 'CACHE_IO' });
    expect(notSaved[0]!.message).toMatch(/^Cannot write the token cache .*tokens\.json: the disk is full \(ENOSPC\)\. The refreshed sign-in could not be saved/);
    expect((await onDisk()).refresh_token).toBe('rt-1'); // still the spent one on disk

    // The cache still looks expired: the next refresh in this process posts nothing, and uses what it kept.
    expect((await refresh())?.access_token).toBe('at-2');
    expect(as.posted).toEqual(['rt-1']);

    // Room again: the kept pair is written, still without a request.
    diskFull = false;
    expect((await refresh())?.access_token).toBe('at-2');
    expect(as.posted).toEqual(['rt-1']);
    expect(await onDisk()).toMatchObject({ access_token: 'at-2', refresh_token: 'rt-2' });

    // When that one expires in turn, its own refresh token is the one spent.
    clock += 20 * 60_000;
    const as2 = rotatingServer(false);
    expect((await refreshCachedTokens({ cache, issuer, resource, now: () => clock, fetchFn: as2.fetchFn }))?.access_token).toBe('at-3');
    expect(as2.posted).toEqual(['rt-2']);
  });

  it('without anyone to tell, it is an error that says the sign-in is spent, and a retry in the same process posts nothing', async () => {
    const as = rotatingServer(true);
    const refresh = () => refreshCachedTokens({ cache, issuer, resource, now, fetchFn: as.fetchFn });
    await expect(refresh()).rejects.toMatchObject({ code: 'CACHE_IO', message: expect.stringMatching(/the refresh token stored there is spent/) });
    expect((await refresh())?.access_token).toBe('at-2');
    expect(as.posted).toEqual(['rt-1']);
  });
});
