// `delegate users add` refuses a password that is obviously weak (NIST SP 800-63B §3.1.1.2: no composition rules,
// but such values refused): only blank characters, one character repeated, or the account's name in any case. Found
// in review (s24accounts): only the length was checked, so eight spaces were a password. Each is refused as a short
// one is, one line and exit 1, nothing added or changed, nothing recorded; with --replace the password stays.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { verifyPassword } from '../../src/authz/password.js';
import { runCli } from '../../src/cli/program.js';
import { resolvePaths } from '../../src/config.js';
import { openStore, type UserRecord } from '../../src/store/index.js';
import { fakeIo } from './fake-io.js';

let env: Record<string, string>;

beforeEach(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'delegate-weak-passwords-'));
  env = { DELEGATE_HOME: join(dir, 'home'), TZ: 'Europe/Berlin' };
  return () => rm(dir, { recursive: true, force: true });
});

async function usersAdd(args: string[], password: string): Promise<{ code: number; err: string }> {
  const io = fakeIo(env);
  io.readAll = async () => `${password}\n`;
  const code = await runCli(['users', 'add', ...args], io);
  return { code, err: io.err };
}

async function stored(): Promise<{ users: UserRecord[]; records: number }> {
  const store = openStore(resolvePaths(env).db);
  try {
    return { users: await store.listUsers(), records: (await store.listAudit()).length };
  } finally {
    store.close();
  }
}

describe('users add with an obviously weak password', () => {
  it.each([
    ['eight spaces', '        ', 'A password may not be only spaces or other blank characters.'],
    ['tabs and spaces', '\t \t \t \t ', 'A password may not be only spaces or other blank characters.'],
    ['one character repeated', 'xxxxxxxxxxxx', 'A password may not be one character repeated.'],
    ['one digit repeated', '00000000', 'A password may not be one character repeated.'],
    ['the account’s name', 'margaret.h', "A password may not be the account's name."],
    ['the account’s name in capitals', 'MARGARET.H', "A password may not be the account's name."],
  ])('%s: exit 1, one line, nothing added or recorded', async (_what, password, message) => {
    const added = await usersAdd(['margaret.h'], password);
    expect([added.code, added.err]).toEqual([1, `delegate: ${message}\n`]);
    const after = await stored();
    expect(after.users.filter((u) => !u.isOwner)).toEqual([]);
    expect(after.records).toBe(0);
  });

  it('with --replace: the same refusal, and the account keeps its password', async () => {
    expect((await usersAdd(['margaret.h'], 'margaret has a long password')).code).toBe(0);
    const refused = await usersAdd(['margaret.h', '--replace'], 'Margaret.H');
    expect([refused.code, refused.err]).toEqual([1, "delegate: A password may not be the account's name.\n"]);
    const [account] = (await stored()).users;
    expect(await verifyPassword('margaret has a long password', account?.passwordHash)).toBe(true);
  });
});
