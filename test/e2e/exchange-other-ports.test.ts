// `delegate token exchange` beside `delegate serve` on other ports than the defaults, with the built CLI, as review
// s33deleg ran it: without port options it found no sign-in at the default agent URL and advised only `delegate login`,
// which signs in at the default ports; now it names the sign-in stored for the agent on the other ports, with this
// command run for it by --agent-url, which, followed as written, trades that sign-in's token at the authorization
// server it was made at. `--as` another agent without `--key` is bad usage (exit 2), the exchange never sent.
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtModule } from './built.js';
import { loginApproved, runCli, serveInNewHome, stopServeAndRemove, type Running } from './run.js';

let home: string;
let ports: string[];
let serve: Running;

beforeAll(async () => {
  builtModule('cli/main.js');
  ({ home, ports, serve } = await serveInNewHome('delegate-e2e-exchange-ports-'));
  await loginApproved(ports, home);
}, 90_000);

afterAll(async () => {
  await stopServeAndRemove(serve, home);
});

const port = (flag: string) => ports[ports.indexOf(flag) + 1]!;

describe('token exchange without port options, the sign-in stored for the agent on other ports', () => {
  it('exits 4 naming that sign-in and the command that uses it; that command, run as printed, issues the narrower token', async () => {
    const calendar = `http://127.0.0.1:${port('--calendar-port')}`;
    const agentUrl = `http://127.0.0.1:${port('--agent-port')}/mcp`;
    const issuer = `http://127.0.0.1:${port('--auth-port')}`;
    const first = await runCli(['token', 'exchange', '--audience', calendar, '--scope', 'freebusy:read', '--constraint', 'lookahead_days=3'], home);
    expect([first.code, first.stdout], first.stderr).toEqual([4, '']);
    expect(first.stderr).toContain('No delegation for CalendarAgent at http://127.0.0.1:8412/mcp is stored, and this command never signs in.');
    const advised = new RegExp(`This profile holds a sign-in for the agent at ${agentUrl.replace(/[.]/g, '\\.')}: \`[^\`]* token exchange ([^\`]*)\` uses it\\.\\n$`).exec(first.stderr);
    expect(advised?.[1], first.stderr).toBe(`--audience ${calendar} --scope freebusy:read --constraint lookahead_days=3 --agent-url ${agentUrl}`);
    const followed = await runCli(['token', 'exchange', ...advised![1]!.split(' ')], home);
    expect(followed.code, followed.stderr).toBe(0);
    const token = decodeJwt(followed.stdout.trim());
    expect(token).toMatchObject({ iss: issuer, aud: calendar, scope: 'freebusy:read', act: { sub: 'calendar-agent' } });
    expect(token.authorization_details).toEqual([expect.objectContaining({ lookahead_days: 3, locations: [calendar] })]);
  });

  it('--as another agent without --key is bad usage (exit 2), one line naming --key, nothing exchanged', async () => {
    const before = await runCli(['audit', '--event', 'token_exchanged', '--json'], home);
    const r = await runCli(['token', 'exchange', '--audience', `http://127.0.0.1:${port('--calendar-port')}`, '--as', 'helper', ...ports.slice(0, 2), '--agent-port', port('--agent-port')], home);
    expect([r.code, r.stdout]).toEqual([2, '']);
    expect(r.stderr).toBe("delegate: --as helper needs --key FILE, the private key helper was registered with (the data directory's agent key is calendar-agent's, CalendarAgent's).\n");
    expect((await runCli(['audit', '--event', 'token_exchanged', '--json'], home)).stdout).toBe(before.stdout);
  });
});
