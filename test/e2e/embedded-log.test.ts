// DELEGATE_LOG_LEVEL with a command that starts the embedded servers (find-slot, login: no servers run), end to end
// on the built CLI. Found in review (s35logs): `DELEGATE_LOG_LEVEL=trace find-slot --json` on a fresh data directory
// printed no log line anywhere, so a 500 in the embedded stack was invisible. Now the servers log to delegate.log in
// the data directory (appended, 0600); the command's stdout stays its one JSON object, its stderr free of log lines.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { killLeftovers, loginApproved, startCli } from './run.js';

let home: string;
let ports: string[];

beforeAll(async () => {
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-embedded-log-')), 'home');
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
});

afterAll(async () => {
  killLeftovers();
  await rm(join(home, '..'), { recursive: true, force: true });
});

describe('DELEGATE_LOG_LEVEL with the embedded servers', () => {
  it('without it, nothing is written; with it, find-slot --json prints one JSON object and its servers log to delegate.log (0600)', async () => {
    await loginApproved(ports, home);
    expect(existsSync(join(home, 'delegate.log'))).toBe(false);

    const run = await startCli(['find-slot', '--duration', '30m', '--json', ...ports], home, { env: { DELEGATE_LOG_LEVEL: 'info' } }).done;
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ start: expect.any(String) });
    expect(run.stderr).not.toContain('"level"');

    const file = join(home, 'delegate.log');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.msg === 'request completed' && (l.req as { path?: string }).path === '/mcp' && l.tool === 'find_slot')).toMatchObject({ server: 'agent', level: 30 });
    expect(lines.some((l) => (l.req as { path?: string } | undefined)?.path === '/freebusy' && l.server === 'calendar')).toBe(true);
  }, 60_000);

  it('with a value that is no level, find-slot says so in one line on stderr and goes on; its servers log nothing', async () => {
    await rm(join(home, 'delegate.log'), { force: true });
    const run = await startCli(['find-slot', '--duration', '30m', '--json', ...ports], home, { env: { DELEGATE_LOG_LEVEL: 'verbose' } }).done;
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ start: expect.any(String) });
    expect(run.stderr).toBe('delegate: warning: DELEGATE_LOG_LEVEL=verbose is not a log level (trace, debug, info, warn, error, fatal, silent); servers this command starts itself log nothing.\n');
    expect(existsSync(join(home, 'delegate.log'))).toBe(false);
  }, 60_000);
});
