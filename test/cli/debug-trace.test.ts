// --debug's stack traces name the TypeScript sources, not the minified bundle (bin/delegate turns Node's source maps
// on before the bundle loads, under --debug only; scripts/bundle.mjs writes the maps). The launcher is run as a user
// runs it, on the built bundle. The error is one with no network: a DELEGATE_HOME that is a file.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/config.js';

const dir = mkdtempSync(join(tmpdir(), 'delegate-debug-trace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const notADirectory = join(dir, 'a-file');
writeFileSync(notADirectory, '');

async function status(...args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await promisify(execFile)(process.execPath, [join(packageRoot(), 'bin', 'delegate'), 'status', ...args], {
      env: { ...process.env, DELEGATE_HOME: notADirectory },
      timeout: 20_000,
    });
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

describe('--debug', () => {
  it('prints a stack whose frames of the CLI point into src/*.ts, none into the bundle', async () => {
    const { code, stderr } = await status('--debug');
    expect(code).toBe(4);
    const [line, ...rest] = stderr.trimEnd().split('\n');
    expect(line).toMatch(/^delegate: Cannot read the token cache .*a-file\/tokens\.json: a part of the path is not a directory \(ENOTDIR\)\.$/);
    const frames = rest.filter((l) => l.trimStart().startsWith('at '));
    expect(frames.length).toBeGreaterThan(0);
    expect(frames[0]).toMatch(/\/src\/cli\/commands\/status\.ts:\d+:\d+\)$/);
    expect(frames.filter((f) => f.includes('dist/bundle'))).toEqual([]);
  });

  it('without --debug, one line and no stack', async () => {
    const { code, stderr } = await status();
    expect(code).toBe(4);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('--debug after `--` is an argument, not the option: no source maps, and no stack', async () => {
    const { code, stderr } = await status('--', '--debug');
    expect(code).toBe(2);
    expect(stderr).not.toContain(' at ');
  });
});
