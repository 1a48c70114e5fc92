// The words a hint starts with (src/cli/invocation.ts delegateInvocation), for the PATH of the shell it is typed in:
// bare `delegate` only when PATH's `delegate` is this launcher and PATH's `node` the one running (the launcher starts
// with `#!/usr/bin/env node`); otherwise node and the launcher's absolute path.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { delegateInvocation } from '../../src/cli/invocation.js';
import { packageRoot } from '../../src/config.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A PATH directory holding this launcher as `delegate`, and `node` as this node or, with `otherNode`, a script of its own. */
function pathDir(otherNode: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'delegate-invocation-'));
  dirs.push(dir);
  symlinkSync(join(packageRoot(), 'bin', 'delegate'), join(dir, 'delegate'));
  if (otherNode) {
    writeFileSync(join(dir, 'node'), '#!/bin/sh\necho "another node" >&2; exit 1\n');
    chmodSync(join(dir, 'node'), 0o755);
  } else {
    symlinkSync(process.execPath, join(dir, 'node'));
  }
  return dir;
}

describe('delegateInvocation', () => {
  const launcher = join(packageRoot(), 'bin', 'delegate');

  it('bare `delegate` when PATH has this launcher and this node', () => {
    expect(delegateInvocation({ PATH: `${pathDir(false)}:/usr/bin:/bin` })).toEqual(['delegate']);
  });

  // Found in review (s27rev4): with another node first on PATH, bare `delegate` ran under it.
  it('node (this one, by its path) and the launcher when PATH’s node is another', () => {
    expect(delegateInvocation({ PATH: `${pathDir(true)}:/usr/bin:/bin` })).toEqual([process.execPath, launcher]);
  });

  it('node and the launcher when PATH has no delegate; node_modules directories on PATH are passed over', () => {
    const dir = mkdtempSync(join(tmpdir(), 'delegate-invocation-'));
    dirs.push(dir);
    const bin = join(dir, 'node_modules', '.bin');
    mkdirSync(bin, { recursive: true });
    symlinkSync(launcher, join(bin, 'delegate')); // as npm exec puts it first on PATH for the command it runs
    symlinkSync(process.execPath, join(bin, 'node'));
    const words = delegateInvocation({ PATH: `${bin}:/usr/bin:/bin` });
    expect(words.at(-1)).toBe(launcher);
    expect(words).toHaveLength(2);
  });
});
