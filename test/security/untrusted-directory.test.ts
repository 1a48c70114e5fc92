// A data directory that another user of the machine could swap is refused before anything is created, chmod-ed or
// read there, as OpenSSH's StrictModes does. Found in review (s23local): mallory ran `mkdir -m 1777 /tmp/team;
// ln -s /home/alice/site /tmp/team/alice-delegate`, alice ran `DELEGATE_HOME=/tmp/team/alice-delegate delegate
// serve`, and /home/alice/site became drwx------ holding agent-key.json and delegate.db; the link could later name
// any other directory of alice's. Here `nobody` plays alice (or root does), and a spare uid nobody has plays mallory,
// its files made with chown; the built CLI runs `calendar add`, which sets up the data directory with the store.
// Root only, as CI runs.
import { chmodSync, chownSync, existsSync, lchownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateAgentKey } from '../../src/agent/identity.js';
import { ensurePrivateDir, tightenMode } from '../../src/client/private-files.js';
import { resolvePaths } from '../../src/config.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { UntrustedPathError } from '../../src/trusted-directory.js';
import { builtModule, repoRoot } from '../e2e/built.js';
import { runCliAs, type Run } from '../e2e/run.js';

const NOBODY = 65534;
/** Mallory: a uid no account has, owning what the test makes for them. */
const MALLORY = 4242;
const ROOT = 0;

let root: string;

beforeAll(() => {
  builtModule('cli/main.js');
  root = mkdtempSync(join(tmpdir(), 'delegate-untrusted-'));
  chmodSync(root, 0o755);
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

/** A fresh directory below the test's own, `mode`, owned by `uid`. */
function dirOf(name: string, uid: number, mode: number): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  chownSync(dir, uid, uid);
  chmodSync(dir, mode);
  return dir;
}

/** `delegate calendar add mine … --no-check` as `uid`, with only the variables given (HOME /nonexistent unless given). */
function addCalendarAs(uid: number, env: Record<string, string>): Promise<Run> {
  return runCliAs(uid, ['calendar', 'add', 'mine', join(repoRoot, 'fixtures', 'owner.ics'), '--no-check'], { HOME: '/nonexistent', ...env });
}

/** A symbolic link `name/team/link` owned by mallory, in mallory's 1777 directory, to `name/site` (0755), which is `owner`'s. */
function plantedLink(name: string, owner: number): { link: string; site: string } {
  const team = dirOf(`${name}/team`, MALLORY, 0o1777);
  const site = dirOf(`${name}/site`, owner, 0o755);
  const link = join(team, 'link');
  symlinkSync(site, link);
  lchownSync(link, MALLORY, MALLORY);
  return { link, site };
}

function expectRefused(run: Run, line: string): void {
  expect(run.code, run.stderr).toBe(1);
  expect(run.stdout).toBe('');
  expect(run.stderr).toBe(`delegate: ${line}\n`);
}

const mode = (path: string): number => statSync(path).mode & 0o7777;

/**
 * `calendar add` as `uid` with DELEGATE_HOME=`dir` refused with `line`, and `dir` left as it was: an existing one
 * (made 0755 by the test) neither chmod-ed nor filled, a missing one not created.
 */
async function expectRefusedAt(uid: number, dir: string, line: string): Promise<void> {
  const existed = existsSync(dir);
  expectRefused(await addCalendarAs(uid, { DELEGATE_HOME: dir }), line);
  if (!existed) return expect(existsSync(dir)).toBe(false);
  expect(mode(dir)).toBe(0o755);
  expect(readdirSync(dir)).toEqual([]);
}

describe.runIf(process.getuid?.() === 0)('a data directory another user could swap', { timeout: 30_000 }, () => {
  it('is refused when it is another user’s symbolic link (the review’s /tmp/team/alice-delegate): what it names is neither chmod-ed nor filled', async () => {
    const { link, site } = plantedLink('planted', NOBODY);
    const run = await addCalendarAs(NOBODY, { DELEGATE_HOME: link });
    expectRefused(run, `The data directory ${link} is a symbolic link of another user (uid ${MALLORY}), who could point it at any directory: use a directory of your own (DELEGATE_HOME).`);
    expect(mode(site)).toBe(0o755);
    expect(readdirSync(site)).toEqual([]);
  });

  it('is refused when the directory is another user’s: root writes nothing into it and leaves its mode', async () => {
    const theirs = dirOf('foreign/theirs', MALLORY, 0o777);
    const run = await addCalendarAs(ROOT, { DELEGATE_HOME: theirs });
    expectRefused(run, `The data directory ${theirs} belongs to another user (uid ${MALLORY}): use a directory of your own (DELEGATE_HOME).`);
    expect(mode(theirs)).toBe(0o777);
    expect(readdirSync(theirs)).toEqual([]);
  });

  it('is refused when a directory on its way is writable by others and owned by neither this user nor root (not sticky): an existing one is left, a missing one not created', async () => {
    const shared = dirOf('open/shared', MALLORY, 0o775);
    const mine = dirOf('open/shared/mine', NOBODY, 0o755);
    const why = (dir: string) => `The data directory ${dir} lies in ${shared}, which another user (uid ${MALLORY}) owns and others may write to (mode 0775), so it could be replaced: use a directory of your own (DELEGATE_HOME).`;
    await expectRefusedAt(NOBODY, mine, why(mine));
    await expectRefusedAt(ROOT, join(shared, 'new'), why(join(shared, 'new')));
  });

  it('is refused through the XDG variables too, the configuration directory included', async () => {
    const shared = dirOf('xdg/shared', MALLORY, 0o777);
    const own = dirOf('xdg/own', NOBODY, 0o700);
    const data = join(shared, 'delegate');
    expectRefused(
      await addCalendarAs(NOBODY, { XDG_DATA_HOME: shared, XDG_CONFIG_HOME: own }),
      `The data directory ${data} lies in ${shared}, which another user (uid ${MALLORY}) owns and others may write to (mode 0777), so it could be replaced: use a directory of your own (DELEGATE_HOME).`,
    );
    expectRefused(
      await addCalendarAs(NOBODY, { XDG_DATA_HOME: own, XDG_CONFIG_HOME: shared }),
      `The configuration directory ${data} lies in ${shared}, which another user (uid ${MALLORY}) owns and others may write to (mode 0777), so it could be replaced: use a directory of your own (DELEGATE_HOME).`,
    );
    expect(readdirSync(own)).toEqual([]);
    expect(readdirSync(shared)).toEqual([]);
  });

  // Found in review (s23new, low): each of these was accepted. The other user renames the owner's data directory
  // away and another directory of the owner's into its place; the owner's next command chmods that one 0700 and
  // fills it. OpenSSH's secure_path refuses all three.
  it('is refused when a directory on its way is root’s but writable by a group (setgid 2775, not sticky), which another user may be in', async () => {
    const shared = dirOf('group/shared', ROOT, 0o2775);
    chownSync(shared, ROOT, MALLORY);
    chmodSync(shared, 0o2775);
    const mine = dirOf('group/shared/mine', NOBODY, 0o755);
    const why = (dir: string) => `The data directory ${dir} lies in ${shared}, which the users of group ${MALLORY} may write to (mode 02775, not sticky), so another user could replace it: use a directory of your own (DELEGATE_HOME).`;
    await expectRefusedAt(NOBODY, mine, why(mine));
    await expectRefusedAt(ROOT, join(shared, 'root'), why(join(shared, 'root')));
  });

  it('is refused in another user’s sticky 1777 directory, even when the entry is this user’s (its owner may rename entries)', async () => {
    const team = dirOf('sticky/team', MALLORY, 0o1777);
    const mine = dirOf('sticky/team/nobody', NOBODY, 0o755);
    await expectRefusedAt(
      NOBODY,
      mine,
      `The data directory ${mine} lies in ${team}, which another user (uid ${MALLORY}) owns and others may write to (mode 01777), so it could be replaced: use a directory of your own (DELEGATE_HOME).`,
    );
  });

  it('is refused in a directory of another user’s that no one else may write to (0755), and deeper below it', async () => {
    const theirs = dirOf('theirs/home', MALLORY, 0o755);
    const mine = dirOf('theirs/home/nobody', NOBODY, 0o755);
    const why = (dir: string) => `The data directory ${dir} lies in ${theirs}, which another user (uid ${MALLORY}) owns, so it could be replaced: use a directory of your own (DELEGATE_HOME).`;
    await expectRefusedAt(NOBODY, mine, why(mine));
    await expectRefusedAt(NOBODY, join(mine, 'delegate'), why(join(mine, 'delegate')));
  });

  it('is refused in an OpenShift-style home: another uid’s, group 0, 0775 (HOME’s default data directory)', async () => {
    const home = dirOf('openshift/home', MALLORY, 0o775);
    chownSync(home, MALLORY, ROOT);
    chmodSync(home, 0o775);
    const data = join(home, '.local', 'share', 'delegate');
    expectRefused(
      await addCalendarAs(NOBODY, { HOME: home }),
      `The data directory ${data} lies in ${home}, which another user (uid ${MALLORY}) owns and others may write to (mode 0775), so it could be replaced: use a directory of your own (DELEGATE_HOME).`,
    );
    expect(readdirSync(home)).toEqual([]);
  });

  it('still works in a sticky directory of root’s others may write to (/tmp itself), with missing directories on the way created', async () => {
    const inTmp = join(tmpdir(), `delegate-untrusted-${process.pid}-${Date.now()}`);
    try {
      const run = await addCalendarAs(NOBODY, { DELEGATE_HOME: inTmp });
      expect(run.code, run.stderr).toBe(0);
      expect(statSync(inTmp)).toMatchObject({ uid: NOBODY });
      expect(mode(inTmp)).toBe(0o700);
      const deeper = join(inTmp, 'missing', 'middle', 'data');
      const again = await addCalendarAs(NOBODY, { DELEGATE_HOME: deeper });
      expect(again.code, again.stderr).toBe(0);
      expect(readdirSync(deeper)).toContain('delegate.db');
    } finally {
      rmSync(inTmp, { recursive: true, force: true });
    }
  });

  it('still works in a directory only this user’s private group may write to (umask 002: root’s own group here)', async () => {
    // root:root is root's private group on the images CI uses (no other user's primary group, no members).
    const shared = dirOf('private-group/shared', ROOT, 0o775);
    const run = await addCalendarAs(ROOT, { DELEGATE_HOME: join(shared, 'data') });
    expect(run.code, run.stderr).toBe(0);
    expect(readdirSync(join(shared, 'data'))).toContain('delegate.db');
  });

  it('still works for root in its own home and in a container whose HOME is /, and for root’s own symbolic link', async () => {
    const home = dirOf('roots/home', ROOT, 0o700);
    const run = await addCalendarAs(ROOT, { HOME: home });
    expect(run.code, run.stderr).toBe(0);
    expect(mode(join(home, '.local', 'share', 'delegate'))).toBe(0o700);
    expect(() => resolvePaths({ HOME: '/' })).not.toThrow();
    expect(() => resolvePaths({ HOME: '/root' })).not.toThrow();
    const link = join(root, 'roots', 'link');
    symlinkSync(home, link);
    expect(resolvePaths({ DELEGATE_HOME: link }).home).toBe(link);
  });
});

describe.runIf(process.getuid?.() === 0)('ensurePrivateDir, tightenMode, the store and the agent key, under the CLI’s check', () => {
  it('ensurePrivateDir refuses another user’s link, chmod-ing nothing (root could chmod anything)', async () => {
    const { link, site } = plantedLink('private', ROOT);
    await expect(ensurePrivateDir(join(link, 'profiles', 'work'))).rejects.toThrow(UntrustedPathError);
    expect(mode(site)).toBe(0o755);
    expect(readdirSync(site)).toEqual([]);
  });

  it('the store and the agent key refuse it too, before the data directory is created or chmod-ed', async () => {
    const { link, site } = plantedLink('store', ROOT);
    expect(() => openSqliteStore(join(link, 'delegate.db'))).toThrow(`The database ${join(link, 'delegate.db')} could not be used: The data directory ${link} is a symbolic link of another user (uid ${MALLORY})`);
    await expect(loadOrCreateAgentKey(join(link, 'agent-key.json'))).rejects.toThrow(UntrustedPathError);
    expect(mode(site)).toBe(0o755);
    expect(readdirSync(site)).toEqual([]);
  });

  it('tightenMode chmods no file of another user’s, even as root', async () => {
    const dir = dirOf('private/files', ROOT, 0o700);
    const file = join(dir, 'tokens.json');
    writeFileSync(file, '{}', { mode: 0o644 });
    chownSync(file, MALLORY, MALLORY);
    chmodSync(file, 0o644);
    await expect(tightenMode(file, 0o600)).rejects.toThrow(`${file} belongs to another user (uid ${MALLORY}): it is not made private, nor used.`);
    expect(mode(file)).toBe(0o644);
  });
});
