// A key file given on the command line that is missing is said to be
// missing (exit 1, as for a calendar file that does not exist), not to hold
// no key; one that is there but is no key still says so. A directory given
// as a key file or a token file is said to be one (found in review,
// s25faults: "does not hold a JSON Web Key"; the token file's 755 "readable
// by other users").
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { freePort } from '../support/ports.js';
import { fakeIo } from './fake-io.js';

let home: string;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-keys-'));
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
  await rm(`${home}-token`, { recursive: true, force: true });
});

const register = (key: string) => ['agents', 'register', 'helper', '--url', 'http://127.0.0.1:9000/mcp', '--key', key, '--name', 'Helper', '--operator', 'Ops', '--contact', 'ops@example.com', '--description', 'Drafts agendas'];
// The token to narrow comes from a file (never the command line); it lives outside the data directory checked below.
const exchange = async (key: string) => {
  const tokenFile = join(`${home}-token`, 'handed.txt');
  await mkdir(dirname(tokenFile), { recursive: true });
  await writeFile(tokenFile, 'abc', { mode: 0o600 });
  return ['token', 'exchange', '--audience', 'http://127.0.0.1:9001', '--auth-port', String(await freePort()), '--subject-token-file', tokenFile, '--key', key];
};

describe('key files', () => {
  it.each([
    ['agents register --key', async (key: string) => register(key)],
    ['token exchange --key', exchange],
  ])('%s naming a missing file says it does not exist, exit 1', async (_what, argv) => {
    const missing = join(home, 'nope.json');
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(await argv(missing), io)).toBe(1);
    expect(io.err).toBe(`delegate: The key file ${missing} does not exist.\n`);
    expect(await readdir(home)).toEqual([]);
  });

  it.each([
    ['agents register --key', async (key: string) => register(key)],
    ['token exchange --key', exchange],
  ])('%s naming a directory says it is one, exit 1', async (_what, argv) => {
    const directory = join(home, 'key.json');
    await mkdir(directory);
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(await argv(directory), io)).toBe(1);
    expect(io.err).toBe(`delegate: The key file ${directory} is a directory, not a key file.\n`);
  });

  it('token exchange --subject-token-file naming a directory (mode 755) says it is one, exit 1', async () => {
    const argv = await exchange(join(home, 'nope.json'));
    const file = argv[argv.indexOf('--subject-token-file') + 1]!;
    await rm(file);
    await mkdir(file, { mode: 0o755 });
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(argv, io)).toBe(1);
    expect(io.err).toBe(`delegate: The token file ${file} is a directory, not a token file.\n`);
  });

  it('agents register --key naming a file that is no key still says so', async () => {
    const notKey = join(home, 'notes.txt');
    await writeFile(notKey, 'not a key');
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(register(notKey), io)).toBe(1);
    expect(io.err).toBe(`delegate: ${notKey} does not hold a JSON Web Key.\n`);
  });
});
