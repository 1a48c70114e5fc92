// What `delegate login` asks for (session.ts loginScope): the stored sign-in's
// scopes only while the authorization server still renews its delegation.
// Found at stop 21: after `delegate grants revoke` login asked again for the
// revoked sign-in's scopes, read from the cache without asking the server.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TokenCache, endedFor, setTokens, tokensFor } from '../../src/client/cache.js';
import { loginScope } from '../../src/client/session.js';

const issuer = 'http://127.0.0.1:8410';
const agentUrl = 'http://127.0.0.1:8412/mcp';
const now = () => 1_700_000_000_000;
let dir: string;
let files: { tokenCache: string; tokenLock: string; ownerKey: string };
let requests: number;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-login-scope-'));
  files = { tokenCache: join(dir, 'tokens.json'), tokenLock: join(dir, 'tokens.lock'), ownerKey: join(dir, 'owner.key') };
  requests = 0;
  await new TokenCache({ files, now }).update((data) => {
    data.discovery[agentUrl] = {
      authorizationServerUrl: issuer,
      authorizationServerMetadata: { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, response_types_supported: ['code'] },
    } as never;
    data.clients[issuer] = { client_id: 'cli_abc', issuer } as never;
    // Unexpired: only the question makes this login renew it.
    setTokens(data, agentUrl, { access_token: 'at-1', token_type: 'Bearer', refresh_token: 'rt-1', scope: 'slots:find busy:read', expires_at: now() + 300_000, issuer, resource: agentUrl, obtained_at: now() });
  });
});

afterEach(() => rm(dir, { recursive: true, force: true }));

/** loginScope with the authorization server answering `answer`, and what it told the person of an ended delegation. */
async function scopeAsked(answer: () => Response, asked: string[] = []): Promise<{ scope: string | undefined; ended: string[] }> {
  const ended: string[] = [];
  const fetchFn = async () => {
    requests++;
    return answer();
  };
  const scope = await loginScope({ agentUrl, files, now, fetchFn, delegationEndedBeforeSignIn: (reason) => ended.push(reason) }, asked);
  return { scope, ended };
}

const stored = async () => {
  const data = await new TokenCache({ files, now }).read();
  return { tokens: tokensFor(data, issuer, agentUrl), ended: endedFor(data, issuer, agentUrl) };
};

describe('login after the stored delegation was revoked', () => {
  it('asks for slots:find only (the agent’s first ask), says the delegation ended, and keeps the refusal in the tokens’ place', async () => {
    const { scope, ended } = await scopeAsked(() => Response.json({ error: 'invalid_grant', error_description: 'The delegation behind this token was revoked.' }, { status: 400 }));
    expect(scope).toBeUndefined();
    expect(ended).toEqual(['invalid_grant: The delegation behind this token was revoked.']);
    expect(await stored()).toMatchObject({ tokens: undefined, ended: { error: 'invalid_grant' } });
  });

  it('with --scope busy:read, asks for it (the person asked now), and asks the server nothing', async () => {
    expect((await scopeAsked(() => Response.json({}, { status: 500 }), ['busy:read'])).scope).toBe('slots:find busy:read');
    expect(requests).toBe(0);
  });
});

describe('login while the stored delegation stands', () => {
  it('keeps its scopes once the server renewed it', async () => {
    const { scope, ended } = await scopeAsked(() => Response.json({ access_token: 'at-2', token_type: 'Bearer', expires_in: 600, refresh_token: 'rt-2', scope: 'slots:find busy:read' }));
    expect([scope, ended, requests]).toEqual(['slots:find busy:read', [], 1]);
    expect((await stored()).tokens?.access_token).toBe('at-2');
  });

  it('keeps them as stored when the server cannot say (503), the tokens untouched', async () => {
    const { scope, ended } = await scopeAsked(() => Response.json({ error: 'temporarily_unavailable' }, { status: 503 }));
    expect([scope, ended]).toEqual(['slots:find busy:read', []]);
    expect((await stored()).tokens?.access_token).toBe('at-1');
  });
});
