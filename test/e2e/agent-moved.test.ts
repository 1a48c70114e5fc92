// CalendarAgent started on another port on the same data directory is a move:
// the grants given for its old address end (src/authz/agents.ts, the move's
// transaction). Found in review (regress18c): `delegate serve --agent-port X`
// did that without a word, and so did a later command starting the embedded
// servers on the default ports; the person learnt of it only as a new
// consent page. The built CLI, a fresh data directory, spare ports.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { builtModule } from './built.js';
import { approveInBrowser, runCli, startCli, startServer, type Running } from './run.js';

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
