// A child process in network and mount namespaces of its own (unshare(1)): a
// loopback interface and no other, and /etc/resolv.conf naming 127.0.0.1. For
// tests whose subject would otherwise reach past this machine (a connection to
// a public address, a DNS query): there, nothing can leave. Needs Linux, root,
// unshare(1) and ip(8); the tests are skipped, saying why, elsewhere.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Brings loopback up, puts $0 over /etc/resolv.conf, then runs the rest of the command line. */
const SETUP = 'ip link set lo up && mount --bind "$0" /etc/resolv.conf && exec "$@"';

/** A resolv.conf naming 127.0.0.1, in a directory of its own, and how to remove it. */
function resolvConfFile(): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'delegate-netns-'));
  writeFileSync(join(dir, 'resolv.conf'), 'nameserver 127.0.0.1\n');
  return { path: join(dir, 'resolv.conf'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Why a child cannot be run in its own namespaces here (not Linux, not root, unshare or ip missing or refused), or undefined. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux (network namespaces)';
  if (process.getuid?.() !== 0) return 'needs root to unshare a network namespace';
  const resolvConf = resolvConfFile();
  try {
    const probe = spawnSync('unshare', ['-n', '-m', 'sh', '-c', SETUP, resolvConf.path, 'true'], { encoding: 'utf8', timeout: 10_000 });
    return probe.status === 0 ? undefined : `unshare -n -m with loopback up failed: ${(probe.stderr || probe.error?.message || `status ${probe.status}`).trim()}`;
  } finally {
    resolvConf.remove();
  }
}

export interface ChildResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node --import tsx <script> ...args` (script relative to the repository) in its own namespaces; killed after `timeoutMs`. */
export async function runInNetns(script: string, args: string[], options: { timeoutMs: number; env?: Record<string, string> }): Promise<ChildResult> {
  const resolvConf = resolvConfFile();
  try {
    return await new Promise<ChildResult>((resolve, reject) => {
      const argv = ['-n', '-m', 'sh', '-c', SETUP, resolvConf.path, process.execPath, '--import', 'tsx', join(repoRoot, script), ...args];
      const child = spawn('unshare', argv, { cwd: repoRoot, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
      child.on('error', reject);
      child.on('close', (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      });
    });
  } finally {
    resolvConf.remove();
  }
}
