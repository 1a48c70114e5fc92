// Many processes with the same expired access token at once: the refresh
// lock lets one of them spend the refresh token, and the others use what it
// wrote. The refresh token is used once (the server logs one refresh grant),
// and its family is not revoked for reuse (a later refresh still works).
// The processes call the built client session directly, against servers
// started with `delegate serve`.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { builtModule, repoRoot } from './built.js';
import { approveInBrowser, killLeftovers, runCli, startCli, type Running } from './run.js';

// Enough to contend for the lock; issue 5 raises it to 20 once the calendar backend answers faster under load.
const PROCESSES = 6;
let home: string;
let ports: string[];
let serve: Running;

beforeEach(async () => {
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-refresh-')), 'home');
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
  serve = startCli(['serve', ...ports], home);
  while (!serve.stderr().includes('Press Ctrl-C')) {
    if (serve.child.exitCode !== null) throw new Error(`delegate serve exited:\n${serve.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

afterEach(async () => {
  killLeftovers();
  await rm(join(home, '..'), { recursive: true, force: true });
});

async function expireCachedToken(): Promise<string> {
  const path = join(home, 'tokens.json');
  const file = JSON.parse(await readFile(path, 'utf8'));
  let refreshToken = '';
  for (const byResource of Object.values(file.tokens as Record<string, Record<string, { expires_at: number; refresh_token: string }>>)) {
    for (const entry of Object.values(byResource)) {
      entry.expires_at = 0;
      refreshToken = entry.refresh_token;
    }
  }
  await writeFile(path, JSON.stringify(file), { mode: 0o600 });
  return refreshToken;
}

/** One process that finds a slot through the built client session, without the CLI around it. */
function findSlotProcess(agentUrl: string): Promise<{ code: number | null; stderr: string }> {
  const script = `
    import { findSlot } from ${JSON.stringify(builtModule('client/session.js'))};
    const home = process.env.DELEGATE_HOME;
    const files = { tokenCache: home + '/tokens.json', tokenLock: home + '/tokens.lock', ownerKey: home + '/owner-key.json' };
    const result = await findSlot({ agentUrl: ${JSON.stringify(agentUrl)}, files, now: Date.now }, { duration: '30m' });
    process.exit(result.found ? 0 : 3);
  `;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: repoRoot,
      env: { ...process.env, DELEGATE_HOME: home },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

describe('concurrent refresh', () => {
  it(`${PROCESSES} processes with an expired token all succeed, and the refresh token is spent once`, { timeout: 120_000 }, async () => {
    const first = startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...ports], home);
    await approveInBrowser(await first.loginUrl);
    expect((await first.done).code).toBe(0);

    const spent = await expireCachedToken();
    const agentUrl = `http://127.0.0.1:${ports[5]}/mcp`;
    const results = await Promise.all(Array.from({ length: PROCESSES }, () => findSlotProcess(agentUrl)));
    expect(results.map((r) => r.code), results.map((r) => r.stderr).join('\n')).toEqual(Array(PROCESSES).fill(0));

    const refreshGrants = serve.stderr().split('\n').filter((line) => line.includes('"grant_type":"refresh_token"'));
    expect(refreshGrants).toHaveLength(1);
    expect(serve.stderr()).not.toContain(spent); // and no token in the server's log

    // The family was not revoked for reuse: the rotated refresh token still works, without the user.
    await expireCachedToken();
    const later = await runCli(['find-slot', '--duration', '30m', '--json', '--no-browser', '--login-timeout', '5s', ...ports], home);
    expect(later.stderr).not.toMatch(/login|authorize/);
    expect(later.code).toBe(0);
  });
});
