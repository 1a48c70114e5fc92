// Errors and advice that say what to do, not only what went wrong (found in
// review regress21a): `token exchange` with no server to answer it, `users
// add` for an account that is there already, and `status` beside a
// DELEGATE_TOKEN, which advised a `delegate login` that refuses while it is set.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { freePort } from '../support/ports.js';
import { fakeIo, type FakeIo } from './fake-io.js';

const PASSWORD = 'a long and secret password';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-what-to-do-'));
  return () => rm(dir, { recursive: true, force: true });
});

async function run(args: string[], env: Record<string, string> = {}, stdin = ''): Promise<FakeIo & { code: number }> {
  const io = fakeIo({ DELEGATE_HOME: join(dir, 'home'), TZ: 'UTC', ...env });
  io.readAll = async () => stdin;
  const code = await runCli(args, io);
  return Object.assign(io, { code });
}

function fakeJwt(claims: Record<string, unknown>): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'ES256', typ: 'at+jwt' })}.${part(claims)}.c2lnbmF0dXJl`;
}

describe('token exchange with no authorization server to answer', () => {
  it('says to start the servers or name the running one (on loopback); exit 1', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const key = join(dir, 'helper.key.json');
    await writeFile(key, JSON.stringify({ ...(await exportJWK(privateKey)), kid: 'helper-1' }));
    const token = join(dir, 'handed.txt');
    await writeFile(token, 'abc', { mode: 0o600 });
    const port = await freePort();
    const refused = await run(['token', 'exchange', '--audience', 'http://127.0.0.1:9001', '--auth-port', String(port), '--as', 'helper', '--key', key, '--subject-token-file', token]);
    expect(refused.code).toBe(1);
    expect(refused.err).toBe(
      `delegate: The authorization server at http://127.0.0.1:${port} did not answer. Start delegate's servers (\`delegate serve\`), or name the running one with --auth-port or --issuer.\n`,
    );
  });
});

describe('users add for an account that is there already', () => {
  it('names --replace, which sets its password; exit 1', async () => {
    expect((await run(['users', 'add', 'alice'], {}, `${PASSWORD}\n`)).code).toBe(0);
    const again = await run(['users', 'add', 'alice'], {}, `${PASSWORD}\n`);
    expect([again.code, again.err]).toEqual([1, 'delegate: There is already an account named alice. To set its password, add --replace: `delegate users add alice --replace`.\n']);
  });
});

describe('status with DELEGATE_TOKEN set and no sign-in stored', () => {
  it('advises the login once DELEGATE_TOKEN is unset (login refuses while it is set), and not "not signed in"', async () => {
    const token = fakeJwt({ sub: 'usr_env', aud: 'http://127.0.0.1:8412/mcp', exp: Date.UTC(2026, 11, 1, 9) / 1000 });
    // A port nothing answers on, so the brief look at the ports (an https deployment there?) finds nothing.
    const status = await run(['status', '--auth-port', String(await freePort())], { DELEGATE_TOKEN: token });
    expect(status.code).toBe(0);
    expect(status.out).toContain('Using DELEGATE_TOKEN from the environment');
    expect(status.out).not.toContain('Not signed in');
    expect(status.out).toMatch(/Besides it, no delegation is stored; to sign in and store one, run `DELEGATE_HOME=\S+ delegate login [^`]*` once DELEGATE_TOKEN is unset\.\n/);
    // and login says the same
    expect((await run(['login'], { DELEGATE_TOKEN: token })).err).toMatch(/first unset DELEGATE_TOKEN/);
  });

  it('without DELEGATE_TOKEN, is not signed in and advises the login alone', async () => {
    const status = await run(['status', '--auth-port', String(await freePort())]);
    expect(status.code).toBe(4);
    expect(status.out).toMatch(/Not signed in: no delegation is stored\. Run `DELEGATE_HOME=\S+ delegate login [^`]*`\.\n/);
  });
});
