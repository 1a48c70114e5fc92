// A delegation the authorization server refuses to renew (invalid_grant) while
// the token cache cannot be written (its rename fails, EBUSY): `delegate token`
// in-process, with a fake terminal and a token endpoint of the test's own on
// loopback. Found in review (s31fault): the command said only "Cannot write the
// token cache …" (CACHE_IO, exit 1), never that the delegation had ended nor
// which `delegate login` signs in again. Now: the ended finding with this run's
// login, exit 4, and the write's failure said after it, on one line.
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { freePort } from '../support/ports.js';
import { fakeIo } from './fake-io.js';

/** While set, a write into room reserved for the cache fails at its rename, as over a file mounted in its place after the room was taken. */
let renameBusy = false;
vi.mock('../../src/client/private-files.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/client/private-files.js')>();
  return {
    ...actual,
    reservePrivateFileReplacement: async (path: string, bytes: number) => {
      const room = await actual.reservePrivateFileReplacement(path, bytes);
      return {
        commit: async (text: string) => {
          if (!renameBusy) return room.commit(text);
          await room.release();
          throw Object.assign(new Error(`EBUSY: resource busy or locked, rename '${path}.tmp' -> '${path}'`), { code: 'EBUSY' });
        },
        release: room.release,
      };
    },
  };
});

let home: string;
let server: Server | undefined;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-cli-ended-not-saved-'));
});

afterEach(async () => {
  renameBusy = false;
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
  await rm(home, { recursive: true, force: true });
});

/** A token endpoint on loopback that refuses every refresh as a replay (400 invalid_grant), and makes the cache's next rename fail; it counts the requests. */
async function refusingTokenEndpoint(): Promise<{ issuer: string; posts: () => number }> {
  let posts = 0;
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      posts++;
      renameBusy = true;
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_grant', error_description: 'The refresh token was replayed.' }));
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { issuer: `http://127.0.0.1:${(server.address() as { port: number }).port}`, posts: () => posts };
}

describe('a refusal the token cache cannot be told of', () => {
  it('`delegate token` says the delegation ended, with this run’s login, exit 4, and that the cache could not be written; on one line', async () => {
    const { issuer, posts } = await refusingTokenEndpoint();
    const agentUrl = `http://127.0.0.1:${await freePort()}/mcp`; // never reached: the token is refreshed at the issuer only
    const io = fakeIo({ DELEGATE_HOME: home });
    const now = io.now();
    const cache = {
      version: 1,
      discovery: {
        [agentUrl]: {
          authorizationServerUrl: issuer,
          resourceMetadata: { resource: agentUrl, resource_name: 'CalendarAgent', authorization_servers: [issuer] },
          authorizationServerMetadata: { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, response_types_supported: ['code'] },
        },
      },
      clients: { [issuer]: { client_id: 'cli_abc', issuer } },
      tokens: { [issuer]: { [agentUrl]: { access_token: 'at-1', token_type: 'Bearer', refresh_token: 'rt-1', expires_at: now - 60_000, issuer, resource: agentUrl, obtained_at: now - 700_000 } } },
    };
    const file = join(home, 'tokens.json');
    await writeFile(file, JSON.stringify(cache), { mode: 0o600 });

    const code = await runCli(["token", "--agent-url", agentUrl], io);
    expect(code, io.err + io.out).toBe(4);
    expect(io.out).toBe('');
    expect(posts()).toBe(1);
    expect(io.err.split('\n')).toHaveLength(2); // one line
    expect(io.err).toMatch(
      new RegExp(
        `^delegate: The delegation stored for CalendarAgent at ${agentUrl} has ended: the authorization server ${issuer} refused to renew it \\(invalid_grant: The refresh token was replayed\\.\\), ` +
          `and this command never signs in\\. Run \`DELEGATE_HOME=\\S+ delegate login --agent-url ${agentUrl.replace(/\./g, '\\.')}\` to sign in again\\. ` +
          `Cannot write the token cache ${file}: it is busy, or a mount point \\(EBUSY\\)\\. The token cache still holds the ended sign-in: \`delegate status\` shows it as stored until you sign in again\\.\\n$`,
      ),
    );
    expect(io.err).not.toContain('rt-1');
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(cache); // unchanged: the write failed
  });
});
