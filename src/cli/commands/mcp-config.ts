// `delegate mcp-config [--client claude-desktop|claude-code|json]`: how an
// MCP client connects to CalendarAgent, both ways: the stdio command it
// spawns (`delegate serve-agent --stdio`, acting under this user's stored
// delegation) and the remote HTTP URL, for clients that do OAuth discovery
// and registration themselves. Servers on the ports published behind an https
// reverse proxy: the remote entry alone, at that URL. The snippet goes to
// stdout; where to put it, to stderr, with a word against the loopback http
// entry on a computer shared with other users.
import { join } from 'node:path';
import { DEFAULT_PORTS, DEFAULT_PROFILE, packageRoot, pathsEnvironment, processEnv, urlsFor, type Env, type Ports } from '../../config.js';
import { delegateInvocation } from '../invocation.js';
import { effectiveProfile } from './agent-access.js';
import { EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { hasControlCharacters, printableClipped } from '../../terminal-text.js';
import { loadStack } from '../contracts.js';

export const MCP_CLIENTS = ['claude-desktop', 'claude-code', 'json'] as const;
export type McpClientName = (typeof MCP_CLIENTS)[number];

export interface McpConfigArgs {
  client: McpClientName;
  ports: Ports;
  host: string;
  profile?: string;
  /** The Node.js binary that runs delegate (absolute: desktop apps do not see the shell's PATH). */
  nodePath: string;
}

export const SERVER_NAME = 'calendar-agent';

export interface StdioLaunch {
  command: string;
  args: string[];
  env?: Record<string, string>;
}

/**
 * The command an MCP client spawns: this Node.js, this package's launcher,
 * the same ports, profile (--profile or DELEGATE_PROFILE), data directory and
 * config file (DELEGATE_HOME, or the XDG directories this shell resolves,
 * absolute: `pathsEnvironment`).
 */
export function stdioLaunch(args: McpConfigArgs, io: CliIo): StdioLaunch {
  const argv = [join(packageRoot(), 'bin', 'delegate'), 'serve-agent', '--stdio', ...sameSetupFlags(args, io)];
  const launch: StdioLaunch = { command: args.nodePath, args: argv };
  const env = pathsEnvironment(io.env);
  if (Object.keys(env).length > 0) launch.env = env;
  return launch;
}

/** Where the servers are, as flags: CalendarAgent's URL (--agent-url, or DELEGATE_AGENT_URL) or the ports not the default. */
interface SameServers {
  ports: Ports;
  agentUrl?: string;
  profile?: string;
}

/**
 * The agent's URL or the ports (those not the default), and the profile (--profile or DELEGATE_PROFILE, unless the
 * default) as flags. The URL as a flag even when it came from DELEGATE_AGENT_URL: the line may be typed where that is
 * not set, and would then sign in at the servers on this machine's ports. Never both: the commands refuse the ports
 * beside --agent-url (access-options.ts serverArgs).
 */
function sameSetupFlags(args: SameServers, io: Pick<CliIo, 'env'>): string[] {
  const flags: string[] = args.agentUrl !== undefined ? ['--agent-url', args.agentUrl] : [];
  for (const [flag, port, fallback] of [
    ['--auth-port', args.ports.auth, DEFAULT_PORTS.auth],
    ['--calendar-port', args.ports.calendar, DEFAULT_PORTS.calendar],
    ['--agent-port', args.ports.agent, DEFAULT_PORTS.agent],
  ] as const) {
    if (port !== fallback && args.agentUrl === undefined) flags.push(flag, String(port));
  }
  // The profile and data directory the client's process must use: it may not inherit this shell's environment.
  const profile = effectiveProfile(io, args.profile);
  if (profile !== undefined && profile !== DEFAULT_PROFILE) flags.push('--profile', profile);
  return flags;
}

/**
 * The `delegate login` a person types in a terminal to sign in for the same
 * data directory, profile and ports as this process, e.g. for a stdio agent
 * an MCP client started with its own environment:
 * `DELEGATE_HOME=/x delegate login --agent-port 9412 --scope busy:read`.
 */
export function loginCommandLine(args: SameServers, io: CliIo, extra: readonly string[] = []): string {
  return sameSetupCommandLine(args, io, ['login', ...extra]);
}

/** `delegate WORDS…` for the same data directory, profile and ports as this process (as loginCommandLine). */
export function sameSetupCommandLine(args: SameServers, io: Pick<CliIo, 'env'>, words: readonly string[]): string {
  // The value quoted, not the whole word: a shell takes `NAME=value` as a setting only when `NAME=` is bare (found in
  // review: `'DELEGATE_HOME=/tmp/a b' delegate login` ran a program of that name).
  return [...pathsSettings(io.env), sameShellCommandLine(args, io, words)].join(' ');
}

/** `NAME=value` for each of pathsEnvironment's variables, the value quoted for a shell, ready to go before a command. */
function pathsSettings(env: Env): string[] {
  return Object.entries(pathsEnvironment(env)).map(([k, v]) => `${k}=${shellQuote(v)}`);
}

/**
 * `delegate WORDS…` with the same profile and ports as this process, e.g. `delegate login --agent-port 9412`, without
 * the data directory: sameSetupCommandLine's, after its settings. Not advice on its own: the shell that ran a command
 * names its data directory only if it was exported, not for a one-command `DELEGATE_HOME=… delegate status` (found in
 * review, s30: status advised this, and the login typed as printed signed in to another data directory).
 */
function sameShellCommandLine(args: SameServers, io: Pick<CliIo, 'env'>, words: readonly string[]): string {
  return delegateCommandLine([...words, ...sameSetupFlags(args, io)], io.env);
}

/**
 * `delegate WORDS…`, each word quoted for a shell as it must be: `delegate calendar remove 'my work'`, `delegate` being
 * what runs this delegate from a shell with `env`'s PATH (src/cli/invocation.ts: `node /…/bin/delegate` when PATH has
 * no `delegate` of this install). `env` defaults to this process's: the shell that ran the command.
 */
export function delegateCommandLine(words: readonly string[], env: Env = processEnv()): string {
  return [...delegateInvocation(env), ...words].map(shellQuote).join(' ');
}

/** The start of every command line a hint prints (delegateCommandLine's, without words), e.g. for a server's pages. */
export function delegateCommand(env: Env = processEnv()): string {
  return delegateInvocation(env).map(shellQuote).join(' ');
}

/**
 * delegateCommand with this data directory (and config file) pinned, as sameSetupCommandLine pins them: for the
 * commands a server's pages show, which the owner runs in some shell, not necessarily the one that started the
 * server (found in review, s27hint: with `DELEGATE_HOME=/x/srv delegate serve`, the page's `… approve` run without it
 * exited 1, "run from another data directory"). Just delegateCommand with the default data directory.
 */
export function sameDataDelegateCommand(env: Env = processEnv()): string {
  return [...pathsSettings(env), delegateCommand(env)].join(' ');
}

export async function mcpConfigCommand(args: McpConfigArgs, io: CliIo): Promise<number> {
  // Servers on these ports published behind an https reverse proxy (the check behind serve-agent --stdio's refusal,
  // stack.ts publishedAgentUrl) are reached by that URL only: the stdio command stops there, and the loopback URL's
  // metadata names the https one, which an MCP client must refuse (RFC 9728 §3.3). Found in review (regress20g).
  const published = await (await loadStack()).publishedAgentUrl(args).catch(() => undefined);
  if (published !== undefined) return publishedConfig(args.client, printableClipped(published, 200), io);
  const launch = stdioLaunch(args, io);
  const url = urlsFor(args.ports, args.host).agentUrl;
  const stdioEntry = { command: launch.command, args: launch.args, ...(launch.env ? { env: launch.env } : {}) };
  switch (args.client) {
    case 'claude-desktop':
      io.stdout.write(`${JSON.stringify({ mcpServers: { [SERVER_NAME]: stdioEntry } }, null, 2)}\n`);
      // Not a custom connector (Settings → Connectors): Claude reaches those
      // from Anthropic's servers, for Claude Desktop too, and they cannot reach
      // this computer's loopback address.
      io.stderr.write(
        [
          'Merge this into claude_desktop_config.json (Settings → Developer → Edit Config), then restart Claude Desktop.',
          `Not as a custom connector (Settings → Connectors): Claude connects to those from Anthropic's servers, which cannot reach ${url} on this computer.`,
        ].join('\n') + '\n',
      );
      break;
    case 'claude-code':
      io.stdout.write(`${claudeCodeCommands(launch, url, approveLine(args, io)).join('\n')}\n`);
      io.stderr.write(`${httpWarning(url)}\n`);
      break;
    case 'json':
      io.stdout.write(
        `${JSON.stringify({ mcpServers: { [SERVER_NAME]: { type: 'stdio', ...stdioEntry }, [HTTP_SERVER_NAME]: { type: 'http', url } } }, null, 2)}\n`,
      );
      io.stderr.write(
        `"${SERVER_NAME}" is the stdio command; "${HTTP_SERVER_NAME}" is the remote URL, for clients on this computer that do OAuth themselves (approve their request with \`${approveLine(args, io)}\`, as the page they open says). Keep the one your client supports.\n${httpWarning(url)}\n`,
      );
      break;
  }
  return EXIT_OK;
}

const HTTP_SERVER_NAME = `${SERVER_NAME}-http`;

/**
 * The line on stderr beside a loopback http entry (stdout stays the snippet). Found in review (s23local): an MCP
 * client set up with that URL sent its bearer token to another user's program that listened on the port while
 * `delegate serve` was stopped, which then replayed it against the agent; delegate's own commands look up who holds a
 * port first (src/http/listener-owner.ts), other MCP clients do not. Said always: whether others log in to this
 * computer is not this command's to know, and may change.
 */
function httpWarning(url: string): string {
  return `Prefer the stdio entry "${SERVER_NAME}" on a computer other people log in to: an HTTP client sends its access token to whatever program listens at ${url}, and while \`delegate serve\` is stopped any user of this computer may listen there (delegate's own commands check who listens; other MCP clients do not).`;
}

const STDIO_COMMENT = ['# stdio: Claude Code starts CalendarAgent, acting under your stored delegation'];
const HTTP_COMMENT = '# or remote HTTP: Claude Code signs in itself (OAuth discovery, registration); the page it opens says to approve with';

/**
 * How the owner approves a remote client's request here (the authorization server signs its owner in from the command
 * line only, and `login` signs in its own request): `delegate approve` with this setup's data directory and ports.
 */
function approveLine(args: McpConfigArgs, io: CliIo): string {
  return sameSetupCommandLine(args, io, ['approve', '<the URL it opens>']);
}

/**
 * The remote entry alone, at the URL CalendarAgent is published at, and on stderr why there is no stdio entry. Claude
 * Desktop's config file takes stdio servers only: it is told to add the URL as a custom connector instead.
 */
function publishedConfig(client: McpClientName, url: string, io: CliIo): number {
  const why = `No stdio entry: delegate's servers on these ports are published behind an https reverse proxy (CalendarAgent at ${url}), where \`delegate serve-agent --stdio\` stops (it finds servers by their ports only). Connect your MCP client to ${url} itself, which signs in there.`;
  switch (client) {
    case 'claude-desktop':
      io.stderr.write(`${why}\nClaude Desktop's config file takes stdio servers only: add ${url} as a custom connector (Settings → Connectors) instead.\n`);
      break;
    case 'claude-code':
      io.stdout.write(`${['# remote HTTP: Claude Code signs in itself (OAuth discovery, registration, your approval in the browser)', claudeCodeHttp(url)].join('\n')}\n`);
      io.stderr.write(`${why}\n`);
      break;
    case 'json':
      io.stdout.write(`${JSON.stringify({ mcpServers: { [HTTP_SERVER_NAME]: { type: 'http', url } } }, null, 2)}\n`);
      io.stderr.write(`${why}\n`);
      break;
  }
  return EXIT_OK;
}

/**
 * Claude Code's `claude mcp add` lines. Its `-e, --env <env...>` takes every
 * word up to the next option, so the server's name goes first, the env flags
 * after it, and `--` ends them before the command (a name after `--env` is
 * taken for a second K=V, and Claude Code stops: "Invalid environment
 * variable format").
 */
export function claudeCodeCommands(launch: StdioLaunch, url: string, approve: string): string[] {
  return [...STDIO_COMMENT, claudeCodeStdio(launch), HTTP_COMMENT, `#   ${approve}`, claudeCodeHttp(url)];
}

function claudeCodeStdio(launch: StdioLaunch): string {
  const envFlags = Object.entries(launch.env ?? {}).map(([k, v]) => `--env ${shellQuote(`${k}=${v}`)} `).join('');
  return `claude mcp add ${SERVER_NAME} ${envFlags}-- ${[launch.command, ...launch.args].map(shellQuote).join(' ')}`;
}

function claudeCodeHttp(url: string): string {
  return `claude mcp add --transport http ${HTTP_SERVER_NAME} ${shellQuote(url)}`;
}

export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_./:=@%+-]+$/.test(word)) return word;
  // A character the message around it would not carry as itself (a newline joined into the line, a tab or a format
  // character written as an escape: src/cli/errors.ts, src/terminal-text.ts) is written in ANSI-C quotes instead, which
  // bash, zsh and ksh (and POSIX sh since 2024) read back to the same string. Found in review (regress18b): a
  // DELEGATE_HOME holding a newline or a tab was printed as another directory, which the advised line then used.
  if (hasControlCharacters(word)) return `$'${[...word].map(ansiC).join('')}'`;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** One character inside $'…': the quote and backslash escaped, controls and format characters as \n, \t or \u/\U escapes. */
function ansiC(c: string): string {
  if (c === "'" || c === '\\') return `\\${c}`;
  if (!hasControlCharacters(c)) return c;
  const named: Record<string, string> = { '\n': '\\n', '\t': '\\t', '\r': '\\r', '\u001b': '\\E' };
  const code = c.codePointAt(0)!;
  return named[c] ?? (code <= 0xffff ? `\\u${code.toString(16).padStart(4, '0')}` : `\\U${code.toString(16).padStart(8, '0')}`);
}
