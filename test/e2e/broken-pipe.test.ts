// `delegate … | head -1`: when the reader of stdout goes away, the CLI stops
// quietly with the status of a process ended by SIGPIPE (141), as `git log |
// head` does; an unhandled EPIPE was a stack trace on stderr.
import { spawn } from 'node:child_process';
import { openSync, closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { delegateBin, repoRoot } from './built.js';

function withClosedStdout(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [delegateBin, ...args], { cwd: repoRoot, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader is gone before the first line
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('a closed stdout (broken pipe)', () => {
  it.each(['completion bash', 'audit --help', '--help'])('delegate %s exits 141 with nothing on stderr', async (command) => {
    const run = await withClosedStdout(command.split(' '));
    expect(run.stderr).toBe('');
    expect(run.code).toBe(141);
  });
});

function withStdoutTo(path: string, args: string[], home: string): Promise<{ code: number | null; stderr: string }> {
  const out = openSync(path, 'w');
  return new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [delegateBin, ...args], { cwd: repoRoot, env: { ...process.env, NO_COLOR: '1', DELEGATE_HOME: home }, stdio: ['ignore', out, 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  }).finally(() => closeSync(out));
}

// Found in review (s25faults): any other write error (a full disk under `audit --json > file`) ended the command as
// an uncaught error: Node printed the bundle's minified source line and a stack, about 5 KB on stderr.
describe('a stdout that cannot be written (/dev/full: no space left)', () => {
  it.each(['completion bash', 'audit --json', 'calendar list'])('delegate %s exits 1 with one line saying so', async (command) => {
    const home = mkdtempSync(join(tmpdir(), 'delegate-full-'));
    try {
      const run = await withStdoutTo('/dev/full', command.split(' '), join(home, 'h'));
      // (calendar list says first, on stderr, that nothing is set up yet)
      expect(run.stderr.split('\n').at(-2)).toBe('delegate: The command could not write to standard output: no space left on device (ENOSPC). Nothing more was written there.');
      expect(run.stderr).not.toMatch(/^\s+at |Error:/m);
      expect(run.stderr.split('\n').length).toBeLessThanOrEqual(3);
      expect(run.code).toBe(1);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
