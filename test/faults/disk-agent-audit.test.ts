// CalendarAgent (serve-agent) whose data directory is read-only, made real
// with a read-only bind mount of the directory the authorization server and
// the calendar backend write (as root; skipped, saying why, elsewhere): the
// token exchange and the calendar read are recorded, the tool call cannot
// be, so its result is withheld. Found in review: the withheld result said
// "Try again shortly", which a read-only store never mends; it names the
// store instead, as the authorization server's server_error does. And a call
// that failed (the calendar backend stopped) says it was not recorded, naming
// the read-only store the same way.
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { killLeftovers, loginApproved, runCli, startServer, type Running } from '../e2e/run.js';
import { tmpfsUnavailable } from './support.js';

const unavailable = tmpfsUnavailable();
if (unavailable) console.log(`test/faults/disk-agent-audit.test.ts skipped (it bind-mounts as root): ${unavailable}`);

let root: string | undefined;
let readOnly: string | undefined;
let home: string;
let flags: string[];
let calendarUrl: string;
const servers: Running[] = [];

beforeAll(async () => {
  if (unavailable) return;
  root = await mkdtemp(join(tmpdir(), 'delegate-faults-agent-audit-'));
  home = join(root, 'home');
  readOnly = join(root, 'read-only');
  const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
  flags = ['--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)];
  const urls = { issuer: `http://127.0.0.1:${auth}`, calendar: `http://127.0.0.1:${calendar}`, agent: `http://127.0.0.1:${agent}/mcp` };
  calendarUrl = urls.calendar;
  servers.push(await startServer(['serve-auth', '--port', String(auth), '--issuer', urls.issuer, '--calendar-url', urls.calendar, '--agent-url', urls.agent], home));
  servers.push(await startServer(['serve-calendar', '--port', String(calendar), '--auth-url', urls.issuer], home));
  // The same directory, read-only, for CalendarAgent alone: its key is read, its records cannot be written.
  await mkdir(readOnly);
  for (const args of [['--bind', home, readOnly], ['-o', 'remount,ro,bind', readOnly]]) {
    const mounted = spawnSync('mount', args, { encoding: 'utf8', timeout: 10_000 });
    if (mounted.status !== 0) throw new Error(`mount ${args.join(' ')} failed: ${mounted.stderr}`);
  }
  servers.push(await startServer(['serve-agent', '--port', String(agent), '--auth-url', urls.issuer, '--calendar-url', urls.calendar], readOnly));
  await loginApproved(flags, home);
}, 60_000);

afterAll(async () => {
  for (const server of servers.splice(0)) {
    server.child.kill('SIGTERM');
    await server.done;
  }
  killLeftovers();
  if (readOnly) spawnSync('umount', ['-l', readOnly], { timeout: 10_000 });
  if (root) await rm(root, { recursive: true, force: true });
});

describe.skipIf(unavailable !== undefined)('CalendarAgent on a read-only data directory', () => {
  it('withholds find_slot’s result, naming the read-only storage of the audit log, without "Try again shortly"', { timeout: 60_000 }, async () => {
    const slot = await runCli(['find-slot', '--duration', '30m', '--json', ...flags], home);
    expect(slot.code).toBe(1);
    expect(slot.stdout).toBe('');
    expect(slot.stderr).toBe(
      'delegate: find_slot ran, but the call could not be recorded in the audit log, so its result is withheld: its storage is read-only, and nothing can be recorded until it is made writable.\n',
    );
    // The exchange and the calendar read behind it were recorded where they were made; the call itself was not.
    const records = JSON.parse((await runCli(['audit', '--json'], home)).stdout) as Array<{ event: string }>;
    expect(records.map((r) => r.event)).toContain('freebusy_read');
    expect(records.map((r) => r.event)).not.toContain('tool_call');
    expect(servers.every((s) => s.child.exitCode === null)).toBe(true);
  });

  // Found in review: a call that failed kept its own message, and its note said only that it was not recorded.
  it('a call that failed (the calendar backend stopped) keeps its message, and its note names the read-only storage', { timeout: 60_000 }, async () => {
    const calendar = servers[1]!;
    calendar.child.kill('SIGTERM');
    await calendar.done;
    const slot = await runCli(['find-slot', '--duration', '30m', '--json', ...flags], home);
    expect(slot.code).toBe(1);
    expect(slot.stdout).toBe('');
    // The calendar's own advice (it may be back shortly) stays; the note adds what only a person mends.
    expect(slot.stderr).toBe(
      `delegate: The calendar at ${calendarUrl} could not be reached. Try again shortly. This call could not be recorded in the audit log: its storage is read-only, and nothing can be recorded until it is made writable.\n`,
    );
  });
});
