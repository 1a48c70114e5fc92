// The account commands end to end, as scripts use them, on the built CLI
// against `delegate serve`: status, token (and refresh), logout (revocation
// at the server, then the cache gone), DELEGATE_TOKEN's precedence, the exit
// codes 3 (no slot) and 4 (authorization required), --redirect-port and
// --profile.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postForm } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';
import { approveInBrowser, ownerLinkBehind, runCli, type Running, serveInNewHome, startCli, stopServeAndRemove, toolsListStatus } from './run.js';

let home: string;
let ports: string[];
let serve: Running;
let agentUrl: string;

async function runWith(args: string[], env: Record<string, string | undefined> = {}) {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k];
  try {
    return await runCli(args, home);
  } finally {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

const callAgent = (token: string): Promise<number> => toolsListStatus(agentUrl, token);

beforeAll(async () => {
  ({ home, ports, serve } = await serveInNewHome('delegate-e2e-session-'));
  agentUrl = `http://127.0.0.1:${ports[5]}/mcp`;
}, 60_000);

afterAll(() => stopServeAndRemove(serve, home));

describe('account commands, end to end', () => {
  it('with nothing stored: status and token exit 4, and find-slot without a terminal fails at once with the URL and a hint', async () => {
    const status = await runCli(['status'], home);
    expect(status.code).toBe(4);
    expect(status.stdout).toContain('Not signed in');
    const token = await runCli(['token', ...ports], home);
    expect(token.code).toBe(4);
    expect(token.stdout).toBe('');
    expect(token.stderr).toMatch(/^delegate: .*delegate login/);

    const findSlot = await runCli(['find-slot', '--duration', '30m', ...ports], home);
    expect(findSlot.code).toBe(4);
    expect(findSlot.stdout).toBe('');
    const line = findSlot.stderr.trim();
    expect(line.split('\n')).toHaveLength(1);
    expect(line).toContain(agentUrl);
    expect(line).toMatch(/delegate login/);
  });

  it('signs in with a fixed --redirect-port, then status names the agent, the grant, the scopes and the expiry', async () => {
    const redirectPort = await freePort();
    const cli = startCli(['login', '--no-browser', '--redirect-port', String(redirectPort), ...ports], home);
    const link = await cli.loginUrl;
    expect(link).toBe(`http://127.0.0.1:${redirectPort}/start`);
    const next = new URL(await ownerLinkBehind(link)).searchParams.get('next')!;
    expect(new URL(next, 'http://x').searchParams.get('redirect_uri')).toBe(`http://127.0.0.1:${redirectPort}/callback`);
    await approveInBrowser(link);
    expect((await cli.done).code).toBe(0);

    const human = await runCli(['status'], home);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`CalendarAgent at ${agentUrl}`);
    expect(human.stdout).toMatch(/grant\s+grt_/);
    expect(human.stdout).toContain('slots:find');
    expect(human.stdout).toMatch(/access token\s+valid until/);
    const json = await runCli(['status', '--json'], home);
    const parsed = JSON.parse(json.stdout);
    expect(parsed.source).toBe('token cache');
    expect(parsed.delegations).toHaveLength(1);
    expect(parsed.delegations[0]).toMatchObject({ resource: agentUrl, scopes: ['slots:find'], accessTokenValid: true, renewable: true });
    expect(parsed.delegations[0].grantId).toMatch(/^grt_/);
    expect(json.stdout).not.toContain('eyJ'); // no token in the status
    // The account by name, as `grants show` names it, beside its id (found in review, regress21a: only the opaque id).
    const grant = JSON.parse((await runCli(['grants', 'show', parsed.delegations[0].grantId, '--json'], home)).stdout) as { user: string };
    expect(grant.user).not.toMatch(/^usr_/);
    expect(parsed.delegations[0].userName).toBe(grant.user);
    expect(parsed.delegations[0].user).toMatch(/^usr_/);
    expect(human.stdout).toContain(`signed in as      ${grant.user} (${parsed.delegations[0].user}) at http://127.0.0.1:`);
  });

  it('token prints a token the agent accepts, and refreshes an expiring one first', async () => {
    const first = await runCli(['token', ...ports], home);
    expect(first.code).toBe(0);
    const token = first.stdout.trim();
    expect(token.split('.')).toHaveLength(3);
    expect(await callAgent(token)).toBe(200);

    const path = join(home, 'tokens.json');
    const file = JSON.parse(await readFile(path, 'utf8'));
    const entry = Object.values(Object.values(file.tokens)[0] as Record<string, { expires_at: number; refresh_token: string }>)[0]!;
    const spent = entry.refresh_token;
    entry.expires_at = Date.now() + 60_000; // less than the two minutes a printed token must have
    await writeFile(path, JSON.stringify(file), { mode: 0o600 });
    const second = await runCli(['token', ...ports], home);
    expect(second.code).toBe(0);
    expect(second.stdout.trim()).not.toBe(token);
    expect(await callAgent(second.stdout.trim())).toBe(200);
    expect(await readFile(path, 'utf8')).not.toContain(spent);
    // A refresh answer carries no account name (the sign-in's did); the name stored at sign-in stays.
    const [after] = JSON.parse((await runCli(['status', '--json'], home)).stdout).delegations as Array<{ userName: string | null }>;
    expect(after!.userName).toEqual(expect.any(String));
  });

  it('DELEGATE_TOKEN takes precedence: find-slot uses it without the cache, login refuses, a bad one is exit 4', async () => {
    const token = (await runCli(['token', ...ports], home)).stdout.trim();
    const viaEnv = await runWith(['find-slot', '--duration', '30m', '--json', '--profile', 'nobody', ...ports], { DELEGATE_TOKEN: token });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(JSON.parse(viaEnv.stdout)).toHaveProperty('start');
    await expect(stat(join(home, 'profiles', 'nobody', 'tokens.json'))).rejects.toThrow();

    const printed = await runWith(['token', ...ports], { DELEGATE_TOKEN: 'given-by-env' });
    expect(printed.stdout).toBe('given-by-env\n');
    const status = await runWith(['status', '--json'], { DELEGATE_TOKEN: token });
    expect(JSON.parse(status.stdout).source).toBe('DELEGATE_TOKEN');

    const login = await runWith(['login', '--no-browser', ...ports], { DELEGATE_TOKEN: token });
    expect(login.code).toBe(1);
    expect(login.stderr).toMatch(/^delegate: DELEGATE_TOKEN is set/);

    const bad = await runWith(['find-slot', '--duration', '30m', ...ports], { DELEGATE_TOKEN: 'not-a-token' });
    expect(bad.code).toBe(4);
    expect(bad.stderr).toContain('DELEGATE_TOKEN');
  });

  it('a DELEGATE_TOKEN that cannot be a bearer token is refused before any request: one line, exit 4; status says it cannot be read', async () => {
    for (const args of [['find-slot', '--duration', '30m', ...ports], ['token', ...ports], ['busy', ...ports]]) {
      const run = await runWith(args, { DELEGATE_TOKEN: 'abc\ndef' });
      expect(run.code, `${args[0]}: ${run.stderr}`).toBe(4);
      expect(run.stdout).toBe('');
      expect(run.stderr).toBe(
        'delegate: DELEGATE_TOKEN is not a usable access token: it has characters no bearer token has (RFC 6750 §2.1). Unset it to use your stored sign-in, or set a fresh one from `delegate token`.\n',
      );
    }

    const json = await runWith(['status', '--json'], { DELEGATE_TOKEN: 'garbage.token.value' });
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toMatchObject({ source: 'DELEGATE_TOKEN', environmentToken: { readable: false } });
    const text = await runWith(['status'], { DELEGATE_TOKEN: 'abc\ndef' });
    expect(text.code).toBe(4);
    expect(text.stdout).toMatch(/^ {2}token cannot be read: it is not an access token from delegate \(a JWT\), so CalendarAgent will refuse it$/m);
    const readable = JSON.parse((await runWith(['status', '--json'], { DELEGATE_TOKEN: (await runCli(['token', ...ports], home)).stdout.trim() })).stdout);
    expect(readable.environmentToken).toMatchObject({ readable: true, audience: agentUrl });
  });

  it('find-slot exits 3 when no slot of that length fits the window', async () => {
    const run = await runCli(['find-slot', '--duration', '10h', '--json', ...ports], home);
    expect(run.stdout).toBe('');
    expect(run.code, run.stderr).toBe(3);
    expect(run.stderr).toMatch(/^delegate: No free 10h slot/);
  });

  // Found in review (s25docs): the login's last line said to run plain `delegate login` again, which signs in the default profile.
  it('--profile keeps a second sign-in side by side, and its login advises signing in again with that profile', async () => {
    const cli = startCli(['login', '--no-browser', ...ports, '--profile', 'work'], home);
    // For 90 days: the sign-in (its refresh token, 30 days) ends before the delegation, which the last line says.
    await approveInBrowser(await cli.loginUrl, 'approve', { expires_days: '90' });
    const login = await cli.done;
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toMatch(/^This sign-in lasts until .*; run `.*` again after that\.$/m);
    expect(login.stdout).toContain(`; run \`DELEGATE_HOME=${home} delegate login ${ports.join(' ')} --profile work\` again after that.`);
    expect((await stat(join(home, 'profiles', 'work', 'tokens.json'))).mode & 0o777).toBe(0o600);
    const work = JSON.parse((await runCli(['--profile', 'work', 'status', '--json'], home)).stdout);
    const main = JSON.parse((await runCli(['status', '--json'], home)).stdout);
    expect(work.profile).toBe('work');
    expect(work.delegations[0].grantId).not.toBe(main.delegations[0].grantId);
  });

  it('logout revokes at the server, deletes the cache, and the refresh token stops working', async () => {
    const file = JSON.parse(await readFile(join(home, 'tokens.json'), 'utf8'));
    const [issuer, byResource] = Object.entries(file.tokens as Record<string, Record<string, { refresh_token: string }>>)[0]!;
    const refreshToken = Object.values(byResource)[0]!.refresh_token;
    const clientId = file.clients[issuer].client_id as string;
    const run = await runCli(['logout', ...ports], home);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('Revoked the delegation');
    await expect(stat(join(home, 'tokens.json'))).rejects.toThrow();
    // RFC 7009: the refresh token (and with it its family) is dead at the server.
    const refresh = await postForm(`${issuer}/token`, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId });
    expect(refresh.status).toBe(400);
    expect(refresh.body.error).toBe('invalid_grant');
    expect((await runCli(['status'], home)).code).toBe(4);
    const again = await runCli(['logout', ...ports], home);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('Not signed in');
  });
});
