// Refreshing without the user when the authorization server's answer is not
// an OAuth one: the error says what came back (a status, an OAuth error code)
// on one line, and never quotes the response body.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TokenCache, setTokens } from '../../src/client/cache.js';
import { ClientError } from '../../src/client/errors.js';
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
