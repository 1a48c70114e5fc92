// A find_slot call whose argument has a credential's shape, through `delegate
// serve-agent --stdio` spawned by the real MCP SDK client. POST /audit refuses
// a report whose detail holds a credential by name or shape (audit-report.ts),
// and the stdio agent withholds a result it could not record: found by the s24
// brief, a calendar named like a JWT (a name `delegate calendar add` takes)
// made every find_slot over stdio that named it fail for the user. The agent
// now puts a marker in the value's place (src/delegation/secrets.ts), so the
// report is taken, the result returned, and the log never holds the value.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { approveInBrowser, connectStdioAgent, killLeftovers, runCli, startCli, startServer } from './run.js';

/** Three base64url runs joined by dots, the first starting `eyJ`: a compact JWT's shape, and a calendar name the CLI takes. */
const JWT_SHAPED = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln';
const ICS = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//delegate e2e//EN', 'END:VCALENDAR', ''].join('\r\n');

let dir: string;
let home: string;
let ports: string[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-e2e-stdio-shaped-'));
  home = join(dir, 'home');
  ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
});

afterEach(async () => {
  killLeftovers();
  await rm(dir, { recursive: true, force: true });
});

describe('serve-agent --stdio and a credential-shaped argument', () => {
  it('returns find_slot’s result, and the audit log holds the marker, never the value', { timeout: 90_000 }, async () => {
    await writeFile(join(dir, 'empty.ics'), ICS);
    const added = await runCli(['calendar', 'add', JWT_SHAPED, join(dir, 'empty.ics')], home);
    expect(added.code, added.stderr).toBe(0);
    const serve = await startServer(['serve', ...ports], home);
    const login = startCli(['login', '--no-browser', ...ports], home);
    await approveInBrowser(await login.loginUrl);
    expect((await login.done).code).toBe(0);

    const { client } = await connectStdioAgent(ports, home, 'stdio-credential-shaped-test');
    try {
      const result = await client.callTool({ name: 'find_slot', arguments: { duration: '30m', calendars: [JWT_SHAPED] } }, undefined, { timeout: 60_000 });
      expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
      expect((result.structuredContent as { found: boolean }).found).toBe(true);
    } finally {
      await client.close();
    }

    const audit = await runCli(['audit', '--event', 'tool_call,freebusy_read', '--json'], home);
    expect(audit.code, audit.stderr).toBe(0);
    const records = JSON.parse(audit.stdout) as Array<{ event: string; detail: Record<string, unknown> }>;
    const calls = records.filter((r) => r.event === 'tool_call');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.detail).toMatchObject({ tool: 'find_slot', outcome: 'ok', arguments: { duration: '30m', calendars: ['[redacted]'] }, reported_by: 'calendar-agent' });
    expect(audit.stdout).not.toContain(JWT_SHAPED);
    serve.child.kill('SIGTERM');
    await serve.done;
  });
});
