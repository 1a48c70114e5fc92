// The account and integration commands of `delegate` (issue 5), registered on
// the program by one call from program.ts: status, token, logout,
// mcp-config and completion. Like every command, each module is imported
// only when its command runs.
import { Command, Option } from 'commander';
import { DEFAULT_HOST, DEFAULT_PORTS } from '../config.js';
import { parsePort, portsFrom, type PortOptions } from './args.js';
import type { CliIo } from './io.js';
import type { AgentAccessArgs } from './commands/agent-access.js';

interface ProfileOption {
  profile?: string;
  debug?: boolean;
}

function examples(lines: string[]): string {
  return ['', 'Examples:', ...lines.map((l) => `  ${l}`)].join('\n');
}

function addPortOptions(command: Command): Command {
  return command
    .option('--auth-port <port>', `authorization server port (default ${DEFAULT_PORTS.auth})`, parsePort)
    .option('--calendar-port <port>', `calendar backend port (default ${DEFAULT_PORTS.calendar})`, parsePort)
    .option('--agent-port <port>', `CalendarAgent port (default ${DEFAULT_PORTS.agent})`, parsePort);
}

function accessArgs(options: PortOptions, globals: ProfileOption): AgentAccessArgs {
  return {
    ports: portsFrom(options),
    host: DEFAULT_HOST,
    browser: true,
    debug: globals.debug === true,
    ...(globals.profile !== undefined ? { profile: globals.profile } : {}),
  };
}

export function registerSessionCommands(program: Command, io: CliIo, setExitCode: (code: number) => void): void {
  const globals = (command: Command): ProfileOption => command.optsWithGlobals<ProfileOption>();

  program
    .command('status')
    .description('Show who is signed in, for which agent, under which grant, with which scopes, and until when.')
    .option('--json', 'print one JSON object')
    .addHelpText('after', examples(['delegate status', 'delegate status --json | jq .delegations[0].scopes', 'delegate --profile work status']))
    .action(async (options: { json?: boolean }, command: Command) => {
      const { statusCommand } = await import('./commands/status.js');
      const profile = globals(command).profile;
      setExitCode(await statusCommand({ json: options.json === true, ...(profile !== undefined ? { profile } : {}) }, io));
    });

  addPortOptions(
    program
      .command('token')
      .description('Print a valid access token for CalendarAgent on stdout (refreshed first if it is about to expire). Never signs in.'),
  )
    .addHelpText(
      'after',
      examples([
        'delegate token',
        'curl -H "Authorization: Bearer $(delegate token)" http://127.0.0.1:8412/mcp …',
        'npx @modelcontextprotocol/inspector@1.0.3 --cli http://127.0.0.1:8412/mcp --transport http --header "Authorization: Bearer $(delegate token)" --method tools/list',
      ]),
    )
    .action(async (options: PortOptions, command: Command) => {
      const { tokenCommand } = await import('./commands/token.js');
      setExitCode(await tokenCommand(accessArgs(options, globals(command)), io));
    });

  addPortOptions(program.command('logout').description('Revoke your stored tokens at the authorization server, then delete them from this computer.'))
    .addHelpText('after', examples(['delegate logout', 'delegate --profile work logout']))
    .action(async (options: PortOptions, command: Command) => {
      const { logoutCommand } = await import('./commands/logout.js');
      setExitCode(await logoutCommand(accessArgs(options, globals(command)), io));
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
