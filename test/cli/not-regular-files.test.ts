// The files delegate reads for what they hold at a fixed place (the agent's and the owner's keys, the token cache,
// config.json), found to be a directory or a FIFO: one line saying so and to move it away, exit 1 (`status`: 4, no
// usable sign-in, as README's exit codes say), and nothing changed. Found in review (s25faults): a directory named
// agent-key.json or owner-key.json was "readable by other users (mode 755); make it 0600", and once chmod-ed "cannot
// be read (EISDIR)"; tokens.json as a directory was chmod-ed 0600 (its x bits taken) before EISDIR was said; a FIFO
// would be read for ever.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateAgentKey } from '../../src/agent/identity.js';
import { runCli } from '../../src/cli/program.js';
import { loadOrCreateOwnerKey } from '../../src/client/owner-login.js';
import { readUserConfig } from '../../src/config.js';
import { fakeIo } from './fake-io.js';

let home: string;

beforeEach(async () => {
  home = join(await mkdtemp(join(tmpdir(), 'delegate-not-files-')), 'home');
  await mkdir(home, { mode: 0o700 });
});

afterEach(async () => {
  await rm(join(home, '..'), { recursive: true, force: true });
});

/** A directory at `path` with `mode` (umask aside: chmod-ed by mkdir's caller below). */
async function directoryAt(path: string, mode: number): Promise<void> {
  await mkdir(path);
  spawnSync('chmod', [mode.toString(8), path]);
}

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

describe('a key file that is a directory', () => {
  it.each([0o755, 0o700])('agent-key.json, mode %o: the agent key file is a directory, move it away; left as it is', async (mode) => {
    const path = join(home, 'agent-key.json');
    await directoryAt(path, mode);
    await expect(loadOrCreateAgentKey(path)).rejects.toMatchObject({
      code: 'not_a_file',
      message: `The agent key file ${path} is a directory, not a key file; move it away.`,
    });
    expect(await modeOf(path)).toBe(mode);
  });

  it.each([0o755, 0o700])('owner-key.json, mode %o: the owner key is a directory, move it away; left as it is', async (mode) => {
    const path = join(home, 'owner-key.json');
    await directoryAt(path, mode);
    await expect(loadOrCreateOwnerKey(path)).rejects.toThrow(`The owner key ${path} is a directory, not a key file; move it away.`);
    expect(await modeOf(path)).toBe(mode);
  });

  it('owner-key.json a FIFO: said to be one, not read (for ever)', async () => {
    const path = join(home, 'owner-key.json');
    expect(spawnSync('mkfifo', ['-m', '600', path]).status).toBe(0);
    await expect(loadOrCreateOwnerKey(path)).rejects.toThrow(`The owner key ${path} is a special file (a FIFO, socket or device), not a key file; move it away.`);
  });
});

describe('the token cache as a directory', () => {
  it.each([
    // status: exit 4, README's "`status` with no usable sign-in (also when the token cache cannot be read)" (review s26: it was 1).
    [['status'], 4],
    [['logout'], 1],
  ])('delegate %j: one line, exit %i; the directory keeps its mode', async (argv, code) => {
    const path = join(home, 'tokens.json');
    await directoryAt(path, 0o755);
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(argv, io)).toBe(code);
    expect(io.err).toContain(`delegate: The token cache ${path} is a directory, not a token cache; move it away.\n`);
    expect(io.err.split('\n').filter((line) => line.startsWith('delegate:'))).toHaveLength(1);
    expect(await modeOf(path)).toBe(0o755);
  });
});

describe('config.json as a directory', () => {
  it('is said to be one, and to be moved away', async () => {
    const path = join(home, 'config.json');
    await directoryAt(path, 0o755);
    await expect(readUserConfig(path)).rejects.toThrow(`${path}: it is a directory, not a configuration file; move it away.`);
  });
});

// Found in review (s25new2): the check above refused a pipe named on the command line as "a special file", so
// `--key <(pass show …)`, `--key /dev/stdin` and `--subject-token-file <(…)`, which worked before, stopped working.
describe('a pipe named on the command line (--key, --subject-token-file)', () => {
  const writers: ChildProcess[] = [];
  afterEach(() => {
    // A writer whose pipe nobody opened (the command refused it) would wait for ever.
    for (const writer of writers.splice(0)) writer.kill();
  });

  /** A FIFO at `path` that a child process fills with `text` once it is opened for reading. */
  function pipeAt(path: string, text: string): void {
    expect(spawnSync('mkfifo', ['-m', '600', path]).status).toBe(0);
    const writer = spawn('sh', ['-c', `printf %s "$0" > "$1"`, text, path], { stdio: 'ignore' });
    writer.unref();
    writers.push(writer);
  }

  it('agents register --key <pipe> reads the key from it and registers the agent', async () => {
    const { publicKey } = await generateKeyPair('ES256', { extractable: true });
    const key = join(home, 'key.pipe');
    pipeAt(key, JSON.stringify(await exportJWK(publicKey)));
    const io = fakeIo({ DELEGATE_HOME: home });
    const code = await runCli(['agents', 'register', 'helper', '--url', 'http://127.0.0.1:8/helper', '--key', key, '--name', 'Helper', '--operator', 'Ops', '--contact', 'ops@example.test', '--description', 'Drafts agendas'], io);
    expect([code, io.err]).toEqual([0, expect.not.stringContaining('special file')]);
    expect(io.out + io.err).toContain('Registered Helper as helper');
  });

  it('agents register --key <a directory> is still refused as one', async () => {
    const key = join(home, 'key.d');
    await directoryAt(key, 0o700);
    const io = fakeIo({ DELEGATE_HOME: home });
    const code = await runCli(['agents', 'register', 'helper', '--url', 'http://127.0.0.1:8/helper', '--key', key, '--name', 'Helper', '--operator', 'Ops', '--contact', 'ops@example.test', '--description', 'Drafts agendas'], io);
    expect(code).toBe(1);
    expect(io.err).toContain(`delegate: The key file ${key} is a directory, not a key file.`);
  });

  it('token exchange --subject-token-file <pipe> reads the token from it (and goes on to the key and the server)', async () => {
    const token = join(home, 'token.pipe');
    pipeAt(token, 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln');
    const io = fakeIo({ DELEGATE_HOME: home });
    await runCli(['token', 'exchange', '--as', 'helper', '--key', join(home, 'absent.json'), '--subject-token-file', token, '--audience', 'http://127.0.0.1:8/cal', '--auth-port', '8'], io);
    expect(io.err).not.toContain('special file');
    expect(io.err).not.toContain('token file');
  });
});
