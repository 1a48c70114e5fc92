// `delegate … | head -1`: when the reader of stdout goes away, the CLI stops
// quietly with the status of a process ended by SIGPIPE (141), as `git log |
// head` does; an unhandled EPIPE was a stack trace on stderr.
import { spawn } from 'node:child_process';
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
