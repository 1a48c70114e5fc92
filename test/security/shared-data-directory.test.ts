// A data directory that is a shared place (sticky, as /tmp is, or one everyone
// may write to) is refused, its mode left as it is: every command that writes
// would otherwise chmod it 0700 and take it from everyone else. Found at stop
// 34: as root, `DELEGATE_HOME=/tmp` made the machine's /tmp 0700, and other
// users' programs then failed in it (CI's own tests run as another uid did).
// A directory of one's own that others may only read is still tightened. The
// built CLI, and the functions that make the directories, on directories of
// this test's own.
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateAgentKey } from '../../src/agent/identity.js';
import { ensurePrivateDir } from '../../src/client/private-files.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { UntrustedPathError } from '../../src/trusted-directory.js';
import { builtModule } from '../e2e/built.js';
import { runCli } from '../e2e/run.js';
import { freePort } from '../support/ports.js';

let root: string;
beforeAll(() => {
  builtModule('cli/main.js');
  root = mkdtempSync(join(tmpdir(), 'delegate-shared-dir-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A fresh directory of this test's own with `mode` (chmod: the umask does not narrow it). */
function fresh(mode: number): string {
  const dir = mkdtempSync(join(root, 'd-'));
  chmodSync(dir, mode);
  return dir;
}
const modeOf = (dir: string) => statSync(dir).mode & 0o7777;

describe.each([
  ['sticky and everyone may write (as /tmp)', 0o1777, 'everyone may write to it'],
  ['everyone may write', 0o777, 'everyone may write to it'],
  ['sticky', 0o1755, 'sticky, as /tmp is'],
])('a data directory that is shared: %s', (_name, mode, why) => {
  it.each([
    ['users add', ['users', 'add', 'zed'], 'a long and secret password\n'],
    ['calendar add', ['calendar', 'add', 'work', 'ICS'], undefined],
    ['find-slot', ['find-slot', '--duration', '30m', '--json', '--no-browser', '--auth-port', 'PORT', '--calendar-port', 'PORT', '--agent-port', 'PORT'], undefined],
  ])('%s is refused in one line, exit 1; its mode is left and nothing is written in it', async (_cmd, args, stdin) => {
    const dir = fresh(mode);
    const ics = join(root, 'work.ics');
    writeFileSync(ics, 'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nEND:VCALENDAR\r\n');
    const given = await Promise.all(args.map(async (a) => (a === 'ICS' ? ics : a === 'PORT' ? String(await freePort()) : a)));
    const run = await runCli(given, dir, stdin === undefined ? {} : { stdin });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`The data directory ${dir} is a shared directory (mode 0${mode.toString(8)}: ${why}), so it is neither made private nor used: use a directory of your own inside it (DELEGATE_HOME=${join(dir, 'delegate')}).`);
    expect(modeOf(dir)).toBe(mode);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('the functions that make the store, the token cache and the agent key refuse it too, chmod-ing nothing', async () => {
    const dir = fresh(mode);
    await expect(ensurePrivateDir(dir)).rejects.toThrow(UntrustedPathError);
    expect(() => openSqliteStore(join(dir, 'delegate.db'))).toThrow(/is a shared directory/);
    await expect(loadOrCreateAgentKey(join(dir, 'agent-key.json'))).rejects.toThrow(/is a shared directory/);
    expect(modeOf(dir)).toBe(mode);
    expect(existsSync(join(dir, 'delegate.db'))).toBe(false);
  });
});

it('a directory of one’s own that others may only read (0755) is still made private (0700), as README says', async () => {
  const dir = fresh(0o755);
  await ensurePrivateDir(dir);
  expect(modeOf(dir)).toBe(0o700);
});
