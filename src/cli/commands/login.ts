// `delegate login`: signs in through the browser and approves CalendarAgent
// even when a cached delegation would do, then says what was authorized:
// the agent, the scopes in words, and until when. Refuses while
// DELEGATE_TOKEN is set (gh's rule): that token would be used, not this login.
// With --device it signs in with a code on any device (RFC 8628) instead.
// It asks for what the stored sign-in holds (so `busy`'s permission is kept)
// while the authorization server still renews it (not after `grants revoke`),
// and what --scope adds, never for more.
import { delegateToken, systemTimeZone } from '../../config.js';
import type { DeviceCodePrompt } from '../../client/device.js';
import { login, loginScope, loginWithDevice } from '../../client/session.js';
import { CommandFailed, EXIT_OK, UsageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { authorizationLines } from '../output.js';
import { startSpinner, stylesFor, type Spinner } from '../terminal.js';
import { withAgentAccess, type AgentAccessArgs, type CommandLine } from './agent-access.js';

export interface LoginArgs extends AgentAccessArgs {
  /** Sign in with the device authorization grant (RFC 8628) instead of the loopback redirect. */
  device?: boolean;
  /** Permissions to ask for on top of those the stored sign-in holds (--scope), e.g. busy:read. */
  scopes?: string[];
}

export async function loginCommand(args: LoginArgs, io: CliIo): Promise<number> {
  if (args.device && args.redirectPort !== undefined) {
    // --no-browser is accepted with --device, which never opens a browser anyway; a port for a listener that is never started is a mistake.
    throw new UsageError('--redirect-port does not apply to --device: the device sign-in needs no listener on this computer. Use one or the other.');
  }
  if (delegateToken(io.env) !== undefined) {
    throw new CommandFailed(
      'DELEGATE_TOKEN is set, and delegate uses it instead of any stored sign-in. To sign in and store a delegation, first unset DELEGATE_TOKEN.',
    );
  }
  let spinner: Spinner | undefined;
  // Both work without a terminal: --device only waits, and --no-browser prints the link and waits for the browser's return.
  const noTerminalAdvice = (command: CommandLine) =>
    `Run \`${command('login')}\` in a terminal, or \`${command('login', '--device')}\` (a code to approve on any device) or \`${command('login', '--no-browser')}\` (a link to open), which need none.`;
  const summary = await withAgentAccess({ ...args, noTerminalAdvice, command: ['login', ...(args.device ? ['--device'] : [])] }, io, async (base) => {
    const scope = await loginScope(base, args.scopes ?? []);
    const session = scope === undefined ? base : { ...base, scope };
    if (!args.device) return login(session);
    try {
      return await loginWithDevice({
        ...session,
        presentDeviceCode: async (prompt) => {
          spinner = presentDeviceCode(io, prompt);
        },
        loginSettled: () => spinner?.stop(),
      });
    } finally {
      spinner?.stop();
    }
  });
  // The advice to sign in again names this run's profile, ports and data directory, as its other advice does (found in
  // review, s25docs: `delegate --profile work login` said plain `delegate login`, which signs in the default profile).
  const { sameSetupCommandLine } = await import('./mcp-config.js');
  io.stdout.write(`${authorizationLines(summary, systemTimeZone(io.env), sameSetupCommandLine(args, io, ['login'])).join('\n')}\n`);
  return EXIT_OK;
}

/**
 * Where to go and which code to check, the link alone on its line (the first
 * URL on stderr, as for a browser sign-in). It needs no terminal: nothing is
 * asked, the CLI only waits.
 */
function presentDeviceCode(io: CliIo, prompt: DeviceCodePrompt): Spinner {
  const styles = stylesFor(io);
  const minutes = Math.max(1, Math.round((prompt.expiresAt - io.now()) / 60_000));
  io.stderr.write(`${styles.bold('To sign in, open this link in a browser on any device that reaches the authorization server:')}\n`);
  io.stderr.write(`${prompt.link}\n`);
  io.stderr.write(`and check that the page shows the code ${styles.bold(prompt.userCode)}. The link works once, for the next ${minutes} minutes.\n`);
  if (prompt.verificationUriComplete && prompt.verificationUriComplete !== prompt.link) {
    io.stderr.write(`Signed in there already? Open ${prompt.verificationUriComplete} (or type the code at ${prompt.verificationUri}).\n`);
  }
  return startSpinner(io, 'Waiting for your approval…');
}
