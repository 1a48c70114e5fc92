// The CLI's one-time callback listener (src/client/loopback.ts) is bound to
// 127.0.0.1 and nothing else: a listener on every address would take a code,
// or a request for /start, from any host that can reach this machine (RFC
// 8252 §8.3: the loopback interface only). Probed from outside, on loopback:
// the same port through another address of the machine (127.0.0.2, which
// reaches a socket bound to 0.0.0.0 as a LAN address would) is refused at
// connect, while 127.0.0.1 is answered. Found by mutation (s32 M2): binding
// the listener to 0.0.0.0 left every test green.
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { TokenCache } from '../../src/client/cache.js';
import type { ClientError } from '../../src/client/errors.js';
import { startLoopbackListener } from '../../src/client/loopback.js';
import { CacheOAuthProvider, type AuthorizationRequestContext } from '../../src/client/provider.js';
import { ownerCode, redeemCode, startStack, stateChangedBy, type Stack } from './stack.js';

/** Whether a TCP connection to host:port is accepted (true) or refused (false); bounded. */
function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${host}:${port} within 5 s`));
    }, 5_000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNREFUSED') resolve(false);
      else reject(err);
    });
  });
}

describe('the CLI’s callback listener is reachable on 127.0.0.1 only', () => {
  it('accepts a connection on 127.0.0.1 (the control) and refuses the same port on another address of the machine', async () => {
    const listener = await startLoopbackListener({ timeoutMs: 5_000 });
    try {
      const url = new URL(listener.redirectUrl);
      expect(url.hostname).toBe('127.0.0.1');
      const port = Number(url.port);
      expect(await connects('127.0.0.1', port)).toBe(true);
      // 127.0.0.2 is this machine too (127/8 is loopback on Linux) but not the address the listener must be bound to.
      expect(await connects('127.0.0.2', port)).toBe(false);
    } finally {
      await listener.close();
    }
  });
});

// The `state` the CLI sends and then requires on its callback (loopback.ts judgeParams) is what keeps another local
// program from ending the sign-in or injecting its own code (SECURITY.md, "A real code injected into the CLI's
// callback listener"): it must be fresh and unguessable for each authorization request (RFC 6749 §10.12, RFC 9700
// §2.1: at least 128 bits). Found by mutation (s32 M2): a constant state left every test green.
describe('the CLI’s state is fresh and unguessable for each authorization request', () => {
  it('is 256 random bits, base64url, different for each request and each sign-in', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'delegate-mut-state-'));
    try {
      const provider = async () => {
        const cache = new TokenCache({ files: { tokenCache: join(dir, 'tokens.json'), tokenLock: join(dir, 'tokens.lock') }, now: Date.now });
        return new CacheOAuthProvider({ cache, snapshot: await cache.read(), resource: 'http://127.0.0.1:8412/mcp', now: Date.now });
      };
      const first = await provider();
      const second = await provider();
      const states = [await first.state(), await first.state(), await second.state()];
      for (const state of states) {
        expect(state).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(Buffer.from(state, 'base64url').length).toBeGreaterThanOrEqual(32);
      }
      expect(new Set(states).size).toBe(states.length);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// RFC 9207 at the CLI, end to end: the real authorization server says in its RFC 8414 metadata that it names itself
// (`iss`) in every authorization response, and the CLI's provider (src/client/provider.ts) must hold its callback
// to that promise, so that a response without `iss` (an authorization server mix-up: another server's code, with
// this sign-in's state) is refused (ISSUER_MISMATCH) and never redeemed. The listener's own check is tested with a
// context made by hand (test/client/loopback.test.ts, test/security/redirect-codes.test.ts); here the context is
// the one the provider makes from what discovery found at the real servers. Found by mutation (s32 M2): a provider
// that never asked for `iss` (requireIss: false whatever the metadata says) left every test green.
describe('the CLI requires iss on its callback when the real authorization server promised it (RFC 9207)', () => {
  let stack: Stack;
  let dir: string;
  beforeAll(async () => {
    stack = await startStack();
    dir = await mkdtemp(join(tmpdir(), 'delegate-mut-iss-'));
  });
  afterAll(async () => {
    await stack?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses a real code delivered with this sign-in’s state and no iss: 400, ISSUER_MISMATCH, nothing redeemed', async () => {
    const listener = await startLoopbackListener({ timeoutMs: 5_000 });
    try {
      const cache = new TokenCache({ files: { tokenCache: join(dir, 'tokens.json'), tokenLock: join(dir, 'tokens.lock') }, now: Date.now });
      let context: AuthorizationRequestContext | undefined;
      const provider = new CacheOAuthProvider({
        cache,
        snapshot: await cache.read(),
        resource: stack.agentUrl,
        now: Date.now,
        redirectUrl: listener.redirectUrl,
        ignoreCachedTokens: true,
        ignoreCachedDiscovery: true,
        onAuthorizationUrl: async (_url, given) => {
          context = given;
          listener.expect(given);
        },
      });
      // Discovery from the agent's metadata to the real AS, registration, and the authorization request, as a sign-in makes them.
      expect(await auth(provider, { serverUrl: new URL(stack.agentUrl), fetchFn: fetch })).toBe('REDIRECT');
      expect(context?.issuer).toBe(stack.issuer);
      const waiting = listener.waitForCode().catch((e: ClientError) => e);
      // Another client's real code (what a mix-up delivers), with this sign-in's own state and no iss.
      const injected = await ownerCode(stack);
      const url = new URL(listener.redirectUrl);
      url.search = new URLSearchParams({ code: injected.code, state: context!.state }).toString();
      const { result, changed } = await stateChangedBy(stack, async () => {
        const res = await fetch(url);
        return { status: res.status, outcome: await waiting };
      });
      expect(result.status).toBe(400);
      expect(result.outcome).toMatchObject({ code: 'ISSUER_MISMATCH' });
      expect(changed).toEqual([]);
      // Untouched: the code is still unredeemed at the AS.
      expect((await redeemCode(stack, injected)).status).toBe(200);
    } finally {
      await listener.close();
    }
  });
});
