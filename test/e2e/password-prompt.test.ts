// `delegate users add NAME` at a real terminal (a pseudo-terminal from
// util-linux `script`): the password typed is not shown, Backspace corrects
// it, Enter ends it and a new line follows; both lines sent at once fill both
// prompts; Ctrl-C cancels with exit code 130 and adds nothing. From a pipe it
// is read as before. A name taken is said before any prompt (found at stop 21:
// both prompts first), and one taken by another process while the prompts
// wait is refused in the same words.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyPassword } from '../../src/authz/password.js';
import { openStore } from '../../src/store/index.js';
import { delegateBin, repoRoot } from './built.js';
import { addAccount } from './run.js';

const SCRIPT = '/usr/bin/script';
let home: string;

beforeAll(async () => {
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-password-')), 'home');
});

afterAll(async () => {
  await rm(join(home, '..'), { recursive: true, force: true });
});

/**
 * Runs `delegate users add …` on a pseudo-terminal, types each of `answers` once its prompt shows (key by key, or
 * with `atOnce` in one write), and returns the screen and the exit code.
 */
async function atTerminal(
  args: string[],
  answers: string[],
  options: { atOnce?: boolean; whenAsked?: () => Promise<void> } = {},
): Promise<{ screen: string; code: number | null }> {
  const command = [process.execPath, delegateBin, 'users', 'add', ...args].map((w) => `'${w}'`).join(' ');
  const child = spawn(SCRIPT, ['-qfec', command, '/dev/null'], { cwd: repoRoot, env: { ...process.env, DELEGATE_HOME: home, NO_COLOR: '1', TERM: 'xterm' } });
  let screen = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (screen += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
    const prompts = () => screen.split(`Password for ${args[0]}`).length - 1;
    for (const [n, keys] of answers.entries()) {
      const started = Date.now();
      while (prompts() <= n) {
        if (child.exitCode !== null || Date.now() - started > 20_000) throw new Error(`no prompt ${n + 1}:\n${screen}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // Something that happens while the first prompt waits (another process at work on the same data directory).
      if (n === 0) await options.whenAsked?.();
      // Key by key, as a person types (a terminal may send several at once too: the reader takes both).
      if (options.atOnce) child.stdin.write(keys);
      else for (const key of keys) {
        child.stdin.write(key);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    // A reader that waits for more (as one reading to the end of input would) is not waited for long.
    const code = await Promise.race([exited, new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000))]);
    return { code, screen };
  } finally {
    child.kill('SIGKILL');
  }
}

async function passwordHashOf(name: string): Promise<string | null | undefined> {
  const store = openStore(join(home, 'delegate.db'));
  try {
    return (await store.userByName(name))?.passwordHash;
  } finally {
    store.close();
  }
}

describe.skipIf(!existsSync(SCRIPT))('users add at a terminal', () => {
  it('does not show the password typed; Backspace corrects it, Enter ends it with a new line, and it is asked twice', { timeout: 60_000 }, async () => {
    const { screen, code } = await atTerminal(['frank'], ['secretpass99x\u007f\r', 'secretpass99\r']);
    expect(code, screen).toBe(0);
    expect(screen).not.toContain('secretpass');
    expect(screen).toMatch(/Password for frank: \r?\n(?:\r?\n)?Password for frank, again: \r?\n(?:\r?\n)?Added frank\./);
    expect(await verifyPassword('secretpass99', await passwordHashOf('frank'))).toBe(true);
  });

  it('two passwords that differ: exit 1, one line, nothing added (a typo nobody saw never becomes the password)', { timeout: 60_000 }, async () => {
    const { screen, code } = await atTerminal(['ivan'], ['secretpass99\r', 'secretpasss99\r']);
    expect(code, screen).toBe(1);
    expect(screen).not.toContain('secretpass');
    expect(screen).toContain('delegate: The two passwords typed differ: ivan was not added.');
    expect(await passwordHashOf('ivan')).toBeUndefined();
  });

  it('both lines in one write (pasted, or a script driving the terminal): the second fills the confirmation, nothing shown (found in review s15rest: it waited at "again:")', { timeout: 60_000 }, async () => {
    const { screen, code } = await atTerminal(['judy'], ['secretpass42\rsecretpass42\r'], { atOnce: true });
    expect(code, screen).toBe(0);
    expect(screen).not.toContain('secretpass');
    expect(screen).toMatch(/Password for judy: \r?\n(?:\r?\n)?Password for judy, again: \r?\n(?:\r?\n)?Added judy\./);
    expect(await verifyPassword('secretpass42', await passwordHashOf('judy'))).toBe(true);
  });

  it('Ctrl-C cancels: exit 130, one line, nothing added', { timeout: 60_000 }, async () => {
    const { screen, code } = await atTerminal(['grace'], ['halfway\u0003']);
    expect(code, screen).toBe(130);
    expect(screen).not.toContain('halfway');
    expect(screen).toContain('delegate: Cancelled: grace was not added.');
    expect(await passwordHashOf('grace')).toBeUndefined();
  });

  const takenLine = (name: string) =>
    `delegate: There is already an account named ${name}. To set its password, add --replace: \`delegate users add ${name} --replace\`.`;

  it('an account there already: said at once, in one line with what to do, before any prompt; exit 1, its password unchanged', { timeout: 60_000 }, async () => {
    expect((await addAccount(home, 'mallory', 'pipedpass11')).code).toBe(0);
    const { screen, code } = await atTerminal(['mallory'], []);
    expect(code, screen).toBe(1);
    expect(screen).not.toContain('Password for');
    expect(screen.trim().split(/\r?\n/)).toEqual([takenLine('mallory')]);
    expect(await verifyPassword('pipedpass11', await passwordHashOf('mallory'))).toBe(true);
  });

  it('an account added by another process while the prompts wait: the same line, exit 1, no crash; the other password stays', { timeout: 60_000 }, async () => {
    const { screen, code } = await atTerminal(['oscar'], ['secretpass55\r', 'secretpass55\r'], {
      whenAsked: async () => expect((await addAccount(home, 'oscar', 'pipedpass22')).code).toBe(0),
    });
    expect(code, screen).toBe(1);
    expect(screen).not.toContain('secretpass');
    expect(screen.trim().split(/\r?\n/).at(-1)).toBe(takenLine('oscar'));
    expect(await verifyPassword('pipedpass22', await passwordHashOf('oscar'))).toBe(true);
  });

  it('from a pipe, reads stdin as before', async () => {
    const child = spawn(process.execPath, [delegateBin, 'users', 'add', 'heidi'], { cwd: repoRoot, env: { ...process.env, DELEGATE_HOME: home } });
    child.stdin.end('pipedpass77\n');
    expect(await new Promise((resolve) => child.on('exit', resolve))).toBe(0);
    expect(await verifyPassword('pipedpass77', await passwordHashOf('heidi'))).toBe(true);
  });
});
