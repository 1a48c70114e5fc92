// Many processes with the same expired access token at once: the refresh
// lock lets one of them spend the refresh token, and the others use what it
// wrote. The refresh token is used once (the server logs one refresh grant),
// and its family is not revoked for reuse (a later refresh still works).
// The processes are the built CLI itself (`delegate find-slot`), against
// servers started with `delegate serve`.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { approveInBrowser, killLeftovers, runCli, startCli, startServer, type Running } from './run.js';
import { expireCachedTokens } from '../support/cached-tokens.js';

const PROCESSES = 20;
let home: string;
let ports: string[];
let serve: Running;

beforeEach(async () => {
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-refresh-')), 'home');
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
  serve = await startServer(['serve', ...ports], home);
});

afterEach(async () => {
  killLeftovers();
  await rm(join(home, '..'), { recursive: true, force: true });
});

const expireCachedToken = (): Promise<string> => expireCachedTokens(join(home, 'tokens.json'));

describe('concurrent refresh', () => {
  it(`${PROCESSES} find-slot processes started at once with an expired token all succeed, and the refresh token is spent once`, { timeout: 240_000 }, async () => {
    const first = startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...ports], home);
    await approveInBrowser(await first.loginUrl);
    expect((await first.done).code).toBe(0);

    const spent = await expireCachedToken();
    // All started before any is awaited; none may sign in (a login would wait for a browser that never comes).
    const runs = Array.from({ length: PROCESSES }, () => startCli(['find-slot', '--duration', '30m', '--json', '--login-timeout', '5s', ...ports], home).done);
    const results = await Promise.all(runs);
    expect(results.map((r) => r.code), results.map((r) => r.stderr).join('\n')).toEqual(Array(PROCESSES).fill(0));
    for (const r of results) expect(JSON.parse(r.stdout)).toHaveProperty('start');

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
