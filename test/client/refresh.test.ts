// Refreshing without the user when the authorization server's answer is not
// an OAuth one: the error says what came back (a status, an OAuth error code)
// on one line, and never quotes the response body. And when it never answers:
// the request is bounded, and no other process spends the same refresh token
// while it is open.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TokenCache, setTokens } from '../../src/client/cache.js';
import { ClientError } from '../../src/client/errors.js';
import { validAccessToken } from '../../src/client/credentials.js';
import { refreshCachedTokens } from '../../src/client/refresh.js';

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
