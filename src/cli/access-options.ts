// The options of the commands that use CalendarAgent and may sign in
// (find-slot, busy, login): where the servers are, and how to sign in. One
// place, so that every such command takes the same ones, and `login` one more:
// --scope, the permissions to ask for on top of those it keeps. Where the
// servers are is also what the account commands (status, token, logout) take.
import { Command, InvalidArgumentError } from 'commander';
import { agentUrlFromEnv, DEFAULT_HOST, DEFAULT_PORTS, type Env } from '../config.js';
import { checkRedirectPort, parseHttpUrl, parsePort, parseWait, portsFrom, type PortOptions } from './args.js';
import type { AgentAccessArgs } from './commands/agent-access.js';
import { UsageError } from './errors.js';

/** Where the servers are: their ports on this machine, or CalendarAgent's URL (a deployment published elsewhere). */
export interface ServerOptions extends PortOptions {
  agentUrl?: string;
}

export interface AccessOptions extends ServerOptions {
  browser: boolean;
  host?: string;
  loginTimeout?: number;
  redirectPort?: number;
}

export interface GlobalOptions {
  debug?: boolean;
  profile?: string;
}

/** The options find-slot, busy and login share: where the servers are, and how to sign in. */
export function addAccessOptions(command: Command): Command {
  return addServerOptions(command.option('--no-browser', 'print the sign-in link on stderr without opening a browser'))
    .option('--login-timeout <wait>', 'how long to wait for the sign-in: 90s, 5m (default 5m; for login --device, until its code expires)', parseWait)
    .option('--redirect-port <port>', 'listen for the browser’s return on this port (forward it with ssh -L) instead of a random one', parsePort);
}

/** The three servers' ports on this machine (mcp-config takes only these). */
export function addPortOptions(command: Command): Command {
  return command
    .option('--auth-port <port>', `authorization server port (default ${DEFAULT_PORTS.auth})`, parsePort)
    .option('--calendar-port <port>', `calendar backend port (default ${DEFAULT_PORTS.calendar})`, parsePort)
    .option('--agent-port <port>', `CalendarAgent port (default ${DEFAULT_PORTS.agent})`, parsePort);
}

/** The ports, or CalendarAgent's URL instead: the commands that talk to the agent or its authorization server. */
export function addServerOptions(command: Command): Command {
  return addPortOptions(command).option(
    '--agent-url <url>',
    'CalendarAgent’s MCP URL where it is published at an https URL (behind a reverse proxy): no server on this machine is started or probed (default: $DELEGATE_AGENT_URL)',
    parseHttpUrl,
  );
}

export function accessArgs(options: AccessOptions, globals: GlobalOptions, env?: Env): AgentAccessArgs {
  const args = serverArgs(options, globals, env);
  // No server of this machine is used with --agent-url, so no port of theirs can collide with the listener's (found in
  // review, regress20c: `busy --agent-url X --redirect-port 8412` was refused for the default agent port).
  if (args.agentUrl === undefined) checkRedirectPort(options.redirectPort, args.ports);
  args.host = options.host ?? DEFAULT_HOST;
  args.browser = options.browser;
  if (options.loginTimeout !== undefined) args.loginTimeoutMs = options.loginTimeout;
  if (options.redirectPort !== undefined) args.redirectPort = options.redirectPort;
  return args;
}

/**
 * Where the servers are, with the global options: the ports on this machine, or CalendarAgent's URL (`--agent-url`,
 * else DELEGATE_AGENT_URL when `env` is given and no port option is: a flag on the command line wins over the
 * environment, as everywhere). `--agent-url` with a port option names two places for one agent: bad usage.
 */
export function serverArgs(options: ServerOptions, globals: GlobalOptions, env?: Env): AgentAccessArgs {
  const portGiven = options.authPort !== undefined ? '--auth-port' : options.calendarPort !== undefined ? '--calendar-port' : options.agentPort !== undefined ? '--agent-port' : undefined;
  if (options.agentUrl !== undefined && portGiven !== undefined) {
    throw new UsageError(`--agent-url names CalendarAgent by its URL, and ${portGiven} delegate's servers on this machine; give one of them.`);
  }
  const agentUrl = options.agentUrl ?? (portGiven === undefined && env !== undefined ? agentUrlFromEnvChecked(env) : undefined);
  return {
    ports: portsFrom(options),
    host: DEFAULT_HOST,
    browser: true,
    debug: globals.debug === true,
    ...(agentUrl !== undefined ? { agentUrl } : {}),
    ...(globals.profile !== undefined ? { profile: globals.profile } : {}),
  };
}

/** DELEGATE_AGENT_URL, judged as --agent-url is (https, or http on loopback; no query, credentials or fragment). */
export function agentUrlFromEnvChecked(env: Env): string | undefined {
  const value = agentUrlFromEnv(env);
  if (value === undefined) return undefined;
  try {
    return parseHttpUrl(value);
  } catch (error) {
    throw new UsageError(`DELEGATE_AGENT_URL: ${(error as Error).message}`);
  }
}

/**
 * `login --scope`: one scope, or several separated by spaces or commas, each a
 * scope-token (RFC 6749 §3.3); repeatable. Collected in order, without repeats.
 */
export function collectScopes(value: string, prior: string[] = []): string[] {
  const scopes = value.split(/[\s,]+/).filter(Boolean);
  if (scopes.length === 0 || scopes.some((s) => !/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s))) {
    throw new InvalidArgumentError('A scope is a word such as busy:read (several: separated by spaces or commas).');
  }
  return [...new Set([...prior, ...scopes])];
}
