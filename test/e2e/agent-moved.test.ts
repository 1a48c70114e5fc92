// CalendarAgent started on another port on the same data directory is a move:
// the grants given for its old address end (src/authz/agents.ts, the move's
// transaction). Found in review (regress18c): `delegate serve --agent-port X`
// did that without a word, and so did a later command starting the embedded
// servers on the default ports; the person learnt of it only as a new
// consent page. The built CLI, a fresh data directory, spare ports.
//
// And a sign-in at the agent's new URL replaces the old URL's: `status` (and
// --json) shows the new delegation, not the old URL's tokens, whose grant the
// move ended; the same when every port moved (another issuer, on this
// machine). Tokens kept for a deployment elsewhere (--agent-url, https),
// signed in beside the local stack, stay. Found at the last stop (noticed, not
// touched): the old URL's tokens, never used again, showed as a second
// delegation, "usable", until `logout`, where `gh auth status` shows only
// live accounts.
import { createServer, type Socket } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { builtModule } from './built.js';
import { approveInBrowser, loginApproved, runCli, startCli, startServer, type Running } from './run.js';
import { testNamesEnv } from './tls-proxy.js';

let root: string | undefined;
let serve: Running | undefined;

afterEach(async () => {
  if (serve && serve.child.exitCode === null) {
    serve.child.kill('SIGTERM');
    await serve.done;
  }
  serve = undefined;
  if (root) await rm(root, { recursive: true, force: true });
  root = undefined;
});

async function stop(server: Running): Promise<void> {
  server.child.kill('SIGTERM');
  await server.done;
}

describe('CalendarAgent started on another port (a move)', () => {
  it('serve says it moved and that the delegation for the old address ended; a start that moves nothing says nothing', { timeout: 120_000 }, async () => {
    builtModule('cli/main.js');
    root = await mkdtemp(join(tmpdir(), 'delegate-e2e-agent-moved-'));
    const home = join(root, 'home');
    const [auth, calendar, agent, other] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const flags = (agentPort: number) => ['--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agentPort)];

    serve = await startServer(['serve', ...flags(agent)], home);
    const login = startCli(['login', '--no-browser', ...flags(agent)], home);
    await approveInBrowser(await login.loginUrl);
    expect((await login.done).code).toBe(0);
    await stop(serve);

    serve = await startServer(['serve', ...flags(agent)], home);
    expect(serve.stderr()).not.toContain('CalendarAgent moved');
    await stop(serve);

    serve = await startServer(['serve', ...flags(other)], home);
    expect(serve.stderr()).toContain(
      `CalendarAgent moved from http://127.0.0.1:${agent}/mcp to http://127.0.0.1:${other}/mcp: the 1 delegation given for the old address ended, and each app asks for approval again (\`delegate audit\` lists them as grant_revoked).\n`,
    );
    await stop(serve);
    serve = undefined;

    // A command that starts the servers itself on the first port moves it back, and says so too.
    const back = await runCli(['find-slot', '--duration', '30m', '--json', ...flags(agent)], home);
    expect(back.stderr).toContain(`CalendarAgent moved from http://127.0.0.1:${other}/mcp to http://127.0.0.1:${agent}/mcp: no delegation was given for the old address.\n`);
  });
});

// Found in review (s29): setup ran before the servers listened, so a serve refused for a port in use had moved
// CalendarAgent already, and ended the user's delegation with it.
describe('a serve refused for a port in use', () => {
  it('moves nothing and ends no delegation: serve on a taken --agent-port, and serve-auth on a taken port naming a new agent URL', { timeout: 120_000 }, async () => {
    root = await mkdtemp(join(tmpdir(), 'delegate-e2e-agent-moved-'));
    const home = join(root, 'home');
    const [auth, calendar, agent, taken] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const flags = (authPort: number, agentPort: number) => ['--auth-port', String(authPort), '--calendar-port', String(calendar), '--agent-port', String(agentPort)];
    serve = await startServer(['serve', ...flags(auth, agent)], home);
    await loginApproved(flags(auth, agent), home);
    await stop(serve);
    serve = undefined;
    const grants = async () => JSON.parse((await runCli(['grants', 'list', '--json'], home)).stdout) as unknown;
    const before = await grants();
    expect(JSON.stringify(before)).toContain(`http://127.0.0.1:${agent}/mcp`);

    // Another program holds the port: it accepts connections and never answers.
    const held = new Set<Socket>();
    const holder = createServer((socket) => void held.add(socket));
    await new Promise<void>((resolve) => holder.listen(taken, '127.0.0.1', resolve));
    try {
      const refused = await runCli(['serve', ...flags(auth, taken)], home);
      expect([refused.code, refused.stdout, refused.stderr]).toEqual([1, '', `delegate: Port ${taken} is already in use, so CalendarAgent cannot start. Is delegate serve already running?\n`]);
      const authRefused = await runCli(
        ['serve-auth', '--port', String(taken), '--issuer', `http://127.0.0.1:${taken}`, '--calendar-url', `http://127.0.0.1:${calendar}`, '--agent-url', `http://127.0.0.1:${auth}/mcp`],
        home,
      );
      expect([authRefused.code, authRefused.stderr]).toEqual([1, `delegate: Port ${taken} is already in use, so the authorization server cannot start. Is delegate serve already running?\n`]);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
    expect(await grants()).toEqual(before);
    // And the agent is still bound where it was: a serve on the old ports moves nothing.
    serve = await startServer(['serve', ...flags(auth, agent)], home);
    expect(serve.stderr()).not.toContain('CalendarAgent moved');
  });
});

/** A deployment elsewhere that the person signed in to with --agent-url beside the local stack. */
const REMOTE = { issuer: 'https://auth.delegate.test', agentUrl: 'https://agent.delegate.test/mcp' };

type StatusJson = { delegations: Array<{ issuer: string; agentUrl: string; usable: boolean }> };

const urlOf = (flags: string[]) => ({ issuer: `http://127.0.0.1:${flags[1]}`, agentUrl: `http://127.0.0.1:${flags[5]}/mcp` });

/**
 * `delegate login --no-browser` approved in "the browser". Names under .test answer 127.0.0.1 in its process
 * (tls-proxy.ts testNamesEnv), so that nothing it might ask the deployment elsewhere leaves this machine.
 */
async function signIn(home: string, flags: string[]): Promise<void> {
  const cli = startCli(['login', '--no-browser', ...flags], home, { env: testNamesEnv() });
  await approveInBrowser(await cli.loginUrl);
  const run = await cli.done;
  expect(run.code, run.stderr).toBe(0);
}

async function status(home: string): Promise<{ code: number | null; text: string; json: StatusJson }> {
  const [text, json] = await Promise.all([runCli(['status'], home), runCli(['status', '--json'], home)]);
  expect(json.code).toBe(text.code);
  return { code: text.code, text: text.stdout, json: JSON.parse(json.stdout) as StatusJson };
}

async function moveTo(home: string, flags: string[]): Promise<void> {
  await stop(serve!);
  serve = await startServer(['serve', ...flags], home);
}

describe('CalendarAgent moved to another port, and a new sign-in at its new URL', () => {
  it('status shows the new delegation and the other deployment’s, not the old URL’s tokens, whose grant the move ended', { timeout: 120_000 }, async () => {
    root = await mkdtemp(join(tmpdir(), 'delegate-e2e-agent-moved-'));
    const home = join(root, 'home');
    const ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
    serve = await startServer(['serve', ...ports], home);
    const cache = join(home, 'tokens.json');
    const portsWith = (flag: string, port: number) => ports.map((p, i) => (ports[i - 1] === flag ? String(port) : p));

    await signIn(home, ports);
    // The deployment elsewhere: its tokens and client as a sign-in there leaves them (an hour left on the access token).
    const file = JSON.parse(await readFile(cache, 'utf8'));
    const now = Date.now();
    file.clients[REMOTE.issuer] = { client_id: 'remote-client', issuer: REMOTE.issuer };
    file.tokens[REMOTE.issuer] = {
      [REMOTE.agentUrl]: { access_token: 'remote-access', token_type: 'Bearer', refresh_token: 'remote-refresh', expires_at: now + 3_600_000, issuer: REMOTE.issuer, resource: REMOTE.agentUrl, obtained_at: now },
    };
    await writeFile(cache, JSON.stringify(file), { mode: 0o600 });
    const old = urlOf(ports);
    expect((await status(home)).json.delegations).toEqual(
      expect.arrayContaining([expect.objectContaining({ ...old, usable: true }), expect.objectContaining({ ...REMOTE, usable: true })]),
    );
    const [oldGrant] = JSON.parse((await runCli(['grants', 'list', '--json'], home)).stdout) as Array<{ id: string }>;

    /** The servers moved to `flags`, the person signs in there: status shows that delegation and the other deployment's, and nothing of `before`. */
    const movedAndSignedIn = async (flags: string[], before: string): Promise<void> => {
      await moveTo(home, flags);
      await signIn(home, flags);
      const after = await status(home);
      expect(after.code, after.text).toBe(0);
      expect(after.json.delegations).toHaveLength(2);
      expect(after.json.delegations).toEqual(
        expect.arrayContaining([expect.objectContaining({ ...urlOf(flags), usable: true }), expect.objectContaining({ ...REMOTE, usable: true })]),
      );
      expect(after.text).not.toContain(before);
      expect(after.text).toContain(`Agent at ${REMOTE.agentUrl}`);
    };

    // CalendarAgent on another port (a move: the same authorization server), and the person signs in at its new URL.
    const agentMoved = portsWith('--agent-port', await freePort());
    await movedAndSignedIn(agentMoved, old.agentUrl);
    // The authorization server ended the old URL's grant when the agent moved: nothing live was forgotten.
    const grants = JSON.parse((await runCli(['grants', 'list', '--all', '--json'], home)).stdout) as Array<{ id: string; status: string }>;
    expect(grants.find((g) => g.id === oldGrant!.id)?.status).toBe('revoked');

    // Every server on another port (the authorization server too: another issuer, on this machine): the same.
    const allMoved = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
    await movedAndSignedIn(allMoved, urlOf(agentMoved).agentUrl);
    const kept = JSON.parse(await readFile(cache, 'utf8'));
    expect(kept.tokens[REMOTE.issuer][REMOTE.agentUrl].refresh_token).toBe('remote-refresh');
  });
});
