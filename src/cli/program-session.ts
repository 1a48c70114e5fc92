// The account and integration commands of `delegate` (issue 5), registered on
// the program by one call from program.ts: status, token, logout,
// approve, mcp-config and completion. Like every command, each module is imported
// only when its command runs.
import { Command, Option } from 'commander';
import { DEFAULT_HOST } from '../config.js';
import { parseWait, portsFrom, type PortOptions } from './args.js';
import type { CliIo } from './io.js';
import { addPortOptions, addServerOptions, serverArgs, type ServerOptions } from './access-options.js';

interface ProfileOption {
  profile?: string;
  debug?: boolean;
}

function examples(lines: string[]): string {
  return ['', 'Examples:', ...lines.map((l) => `  ${l}`)].join('\n');
}

export function registerSessionCommands(program: Command, io: CliIo, setExitCode: (code: number) => void): void {
  const globals = (command: Command): ProfileOption => command.optsWithGlobals<ProfileOption>();

  addServerOptions(
    program
      .command('status')
      .description('Show who is signed in, for which agent, under which grant, with which scopes, and until when (with --agent-url, for that agent only).')
      .option('--json', 'print one JSON object'),
  )
    .addHelpText(
      'after',
      examples(['delegate status', 'delegate status --json | jq .delegations[0].scopes', 'delegate --profile work status', 'delegate status --agent-url https://agent.example.com/mcp']),
    )
    .action(async (options: ServerOptions & { json?: boolean }, command: Command) => {
      const { statusCommand } = await import('./commands/status.js');
      const { ports, agentUrl, profile } = serverArgs(options, globals(command), io.env);
      setExitCode(await statusCommand({ json: options.json === true, ports, ...(agentUrl !== undefined ? { agentUrl } : {}), ...(profile !== undefined ? { profile } : {}) }, io));
    });

  addServerOptions(
    program
      .command('token')
      .description('Print a valid access token for CalendarAgent on stdout (refreshed first if it is about to expire). Never signs in.'),
  )
    .addHelpText(
      'after',
      examples([
        'delegate token',
        'delegate token --agent-url https://agent.example.com/mcp',
        'curl -H "Authorization: Bearer $(delegate token)" http://127.0.0.1:8412/mcp …',
        'npx @modelcontextprotocol/inspector@1.0.3 --cli http://127.0.0.1:8412/mcp --transport http --header "Authorization: Bearer $(delegate token)" --method tools/list',
      ]),
    )
    .action(async (options: ServerOptions, command: Command) => {
      const { tokenCommand } = await import('./commands/token.js');
      setExitCode(await tokenCommand(serverArgs(options, globals(command), io.env), io));
    });

  addServerOptions(
    program
      .command('logout')
      .description('Revoke your stored tokens at the authorization server (and those of a sign-in replaced at the same time whose revocation failed), then delete them from this computer (with --agent-url, those for that agent only).'),
  )
    .addHelpText('after', examples(['delegate logout', 'delegate --profile work logout', 'delegate logout --agent-url https://agent.example.com/mcp']))
    .action(async (options: ServerOptions, command: Command) => {
      const { logoutCommand } = await import('./commands/logout.js');
      setExitCode(await logoutCommand(serverArgs(options, globals(command), io.env), io));
    });

  addPortOptions(
    program
      .command('approve')
      .description('Approve or deny, in your browser, a request another app (an MCP client doing its own OAuth) made to your authorization server: its /authorize URL, or a device’s user code.')
      .argument('<request>', 'the /authorize URL the app opened (quote it), or the user code a device shows (BCDF-GHJK)')
      .option('--no-browser', 'print the link on stderr without opening a browser')
      .option('--login-timeout <wait>', 'how long to wait for the browser to open the link: 90s, 5m (default 5m)', parseWait),
  )
    .addHelpText(
      'after',
      [
        examples([
          "delegate approve 'http://127.0.0.1:8410/authorize?response_type=code&client_id=…'   # as the page the app opened says",
          'delegate approve BCDF-GHJK                 # the code a device shows',
          "delegate approve --no-browser --auth-port 18410 'http://127.0.0.1:18410/authorize?…'",
          "delegate approve 'http://[::1]:8410/device?user_code=BCDF-GHJK'   # a server started with serve --host ::1",
        ]),
        '',
        'The link signs you in for that one request only, once, within 2 minutes; the authorization server then always shows',
        'its consent page. The URL must be on this data directory’s authorization server (found by its port, as `login` finds it,',
        'on the loopback address the URL names: 127.0.0.1, or [::1] for `serve --host ::1`).',
        'Exit codes: 0 the browser was sent on to the consent page, 1 error (no server there, another data directory, a request',
        'the server does not wait on: a code no device shows, or one it refuses, such as an unknown app; nobody opened the link',
        'in time), 2 bad usage (a URL of another server or page, DELEGATE_AGENT_URL set).',
      ].join('\n'),
    )
    .action(async (target: string, options: ServerOptions & { browser: boolean; loginTimeout?: number }, command: Command) => {
      const { approveCommand } = await import('./commands/approve.js');
      const { ports, agentUrl, profile } = serverArgs(options, globals(command), io.env);
      setExitCode(
        await approveCommand(
          target,
          {
            ports,
            host: DEFAULT_HOST,
            browser: options.browser,
            ...(agentUrl !== undefined ? { agentUrl } : {}),
            ...(profile !== undefined ? { profile } : {}),
            ...(options.loginTimeout !== undefined ? { loginTimeoutMs: options.loginTimeout } : {}),
          },
          io,
        ),
      );
    });

  addPortOptions(
    program
      .command('mcp-config')
      .description('Print how an MCP client connects to CalendarAgent: the stdio command, and the remote HTTP URL.')
      .addOption(new Option('--client <client>', 'the format').choices(['claude-desktop', 'claude-code', 'json']).default('json')),
  )
    .addHelpText(
      'after',
      examples(['delegate mcp-config', 'delegate mcp-config --client claude-desktop', 'delegate mcp-config --client claude-code | sh']),
    )
    .action(async (options: PortOptions & { client: 'claude-desktop' | 'claude-code' | 'json' }, command: Command) => {
      const { mcpConfigCommand } = await import('./commands/mcp-config.js');
      const profile = globals(command).profile;
      setExitCode(
        await mcpConfigCommand(
          { client: options.client, ports: portsFrom(options), host: DEFAULT_HOST, nodePath: process.execPath, ...(profile !== undefined ? { profile } : {}) },
          io,
        ),
      );
    });

  program
    .command('completion')
    .description('Print a shell completion script.')
    .addArgument(new Command().createArgument('<shell>', 'bash, zsh or fish').choices(['bash', 'zsh', 'fish']))
    .addHelpText(
      'after',
      examples(['source <(delegate completion bash)      # in ~/.bashrc', 'source <(delegate completion zsh)       # in ~/.zshrc', 'delegate completion fish > ~/.config/fish/completions/delegate.fish']),
    )
    .action(async (shell: 'bash' | 'zsh' | 'fish') => {
      const { completionCommand } = await import('./commands/completion.js');
      setExitCode(await completionCommand(shell, program, io));
    });
}
