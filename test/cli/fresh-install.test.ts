// The administrator's listings on a fresh installation (a new DELEGATE_HOME):
// nothing to list is not an error. They exit 0, print valid JSON with --json,
// and bootstrap nothing: no owner is created by looking.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { openStore } from '../../src/store/index.js';
import { fakeIo } from './fake-io.js';

let home: string;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-fresh-'));
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

async function accounts(): Promise<number> {
  const store = openStore(join(home, 'delegate.db'));
  try {
    return (await store.listUsers()).length;
  } finally {
    store.close();
  }
}

describe('a fresh installation', () => {
  it.each([
    ['grants list --json (was exit 1, nothing on stdout)', ['grants', 'list', '--json']],
    ['grants list --all --json', ['grants', 'list', '--all', '--json']],
    ['agents list --json', ['agents', 'list', '--json']],
    ['audit --json', ['audit', '--json']],
  ])('%s: exit 0 and an empty JSON array, with no owner created', async (_what, argv) => {
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(argv, io)).toBe(0);
    expect(JSON.parse(io.out)).toEqual([]);
    expect(io.err).toBe('');
    expect(await accounts()).toBe(0);
  });

  it('grants list: exit 0, nothing on stdout, and says so on stderr', async () => {
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['grants', 'list'], io)).toBe(0);
    expect(io.out).toBe('');
    expect(io.err).toBe('No active grants. (--all shows revoked and expired ones.)\n');
    expect(await accounts()).toBe(0);
  });

  it('grants list --user names an account that must exist (exit 1)', async () => {
    const io = fakeIo({ DELEGATE_HOME: home });
    expect(await runCli(['grants', 'list', '--user', 'nobody'], io)).toBe(1);
    expect(io.err).toBe('delegate: There is no account named nobody.\n');
  });
});
