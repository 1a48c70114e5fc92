// A request fetch will not send, to a port on the Fetch standard's list of bad ports (src/bad-ports.ts): undici
// refuses it with 'fetch failed', its cause 'bad port', before it connects anywhere. Found in review (s30): a
// CalendarAgent URL on port 6000 said only "fetch failed". The CLI's options refuse such ports (test/cli/usage-checks);
// this is for one that comes another way: an agent's metadata naming its authorization server there, or a stored URL.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findSlot, type SessionOptions } from '../../src/client/session.js';
import { networkErrorCode, UNSAFE_PORT } from '../../src/client/errors.js';
import { dataDirectoryAt } from '../../src/cli/stack.js';

let home: string;
let server: Server | undefined;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-bad-port-'));
});

afterEach(async () => {
  if (server) await new Promise((resolve) => server!.close(resolve));
  server = undefined;
  await rm(home, { recursive: true, force: true });
});

function options(agentUrl: string): SessionOptions {
  return {
    agentUrl,
    files: { tokenCache: join(home, 'tokens.json'), tokenLock: join(home, 'tokens.lock'), ownerKey: join(home, 'owner-key.json') },
    now: () => Date.now(),
    loginTimeoutMs: 2_000,
    requestTimeoutMs: 5_000,
    presentLoginUrl: async () => undefined,
  };
}

describe('a port that fetch refuses', () => {
  it('is a network failure of its own (nothing was sent, nothing listens there)', async () => {
    const error = await fetch('http://127.0.0.1:6000/').then(() => undefined, (e: unknown) => e);
    expect(networkErrorCode(error)).toBe('ERR_UNSAFE_PORT');
    expect(UNSAFE_PORT).toBe('ERR_UNSAFE_PORT');
  });

  it('CalendarAgent’s: one line naming the port, not "fetch failed"', async () => {
    const error = await findSlot(options('http://127.0.0.1:6000/mcp'), { duration: '30m' }).then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: 'AGENT_UNAVAILABLE' });
    expect((error as Error).message).toBe(
      'Cannot reach CalendarAgent at http://127.0.0.1:6000/mcp: browsers and fetch refuse port 6000 (a "bad port" in the Fetch standard); it must be served on another port.',
    );
  });

  it('its authorization server’s, as the agent’s metadata names it: said so, not "publishes no metadata"', async () => {
    // A stand-in agent: 401 with its resource metadata, which names an authorization server on port 6666.
    server = createServer((req, res) => {
      const origin = `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
      if (req.url?.startsWith('/.well-known/oauth-protected-resource')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ resource: `${origin}/mcp`, authorization_servers: ['http://127.0.0.1:6666'] }));
        return;
      }
      res.writeHead(401, { 'www-authenticate': `Bearer resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`, 'content-type': 'application/json' });
      res.end('{}');
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const agentUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
    const error = await findSlot(options(agentUrl), { duration: '30m' }).then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: 'AGENT_UNAVAILABLE' });
    expect((error as Error).message).toBe(
      `Cannot reach the authorization server of CalendarAgent at ${agentUrl}: it is on a port that browsers and fetch refuse (a "bad port" in the Fetch standard); it must be served on another port.`,
    );
  });

  it('a server of delegate’s probed there: said so, not "accepts connections but does not answer"', async () => {
    const error = await dataDirectoryAt('http://127.0.0.1:6665', home).then(() => undefined, (e: unknown) => e);
    expect((error as Error | undefined)?.message).toBe(
      'The authorization server cannot be on port 6665: browsers and fetch refuse port 6665 (a "bad port" in the Fetch standard). Choose other ports with --auth-port, --calendar-port and --agent-port.',
    );
  });
});
