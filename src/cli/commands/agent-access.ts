// What find-slot and login share: make sure the servers are there (or start
// them in this process, docs/internals.md "The embedded stack"), then give
// the client session what it needs, including how to show the user a
// sign-in link: on stderr on a line of its own, and in the browser unless
// --no-browser.
import { resolvePaths, type Ports } from '../../config.js';
import type { SessionOptions } from '../../client/session.js';
import { loadStack } from '../contracts.js';
import type { CliIo } from '../io.js';
import { packageVersion } from '../version.js';

export interface AgentAccessArgs {
  ports: Ports;
  /** The host the servers listen on and are reached at. */
  host: string;
  /** Open the sign-in link in a browser (else only print it). */
  browser: boolean;
  /** How long to wait for the browser (ms); the client's default when absent. */
  loginTimeoutMs?: number;
  debug: boolean;
}

/** Runs `work` with the stack up and a session configured for this user; stops an embedded stack after. */
export async function withAgentAccess<T>(args: AgentAccessArgs, io: CliIo, work: (session: SessionOptions) => Promise<T>): Promise<T> {
  const paths = resolvePaths(io.env);
  const { ensureStack } = await loadStack();
  const stack = await ensureStack({ paths, ports: args.ports, host: args.host });
  try {
    const session: SessionOptions = {
      agentUrl: stack.urls.agentUrl,
      files: paths,
      now: () => io.now(),
      presentLoginUrl: (url) => presentLoginUrl(io, url, args.browser),
      clientInfo: { name: 'delegate-cli', version: packageVersion() },
    };
    if (args.loginTimeoutMs !== undefined) session.loginTimeoutMs = args.loginTimeoutMs;
    return await work(session);
  } finally {
    await stack.close();
  }
}

/**
 * The sign-in link alone on its line, so that it can be copied or picked out
 * by a script; the browser is opened only after it is printed, since `open`
 * succeeds even where no browser exists.
 */
async function presentLoginUrl(io: CliIo, url: string, browser: boolean): Promise<void> {
  io.stderr.write(
    browser
      ? 'Sign in and approve in your browser. If no browser opened, open this link:\n'
      : 'To sign in and approve, open this link in a browser on this computer:\n',
  );
  io.stderr.write(`${url}\n`);
  if (browser) await io.openBrowser(url);
  io.stderr.write('Waiting for your approval…\n');
}
