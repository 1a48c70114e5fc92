// The options of the commands that use CalendarAgent and may sign in
// (find-slot, busy, login): where the servers are, and how to sign in. One
// place, so that every such command takes the same ones, and `login` one more:
// --scope, the permissions to ask for on top of those it keeps.
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_HOST, DEFAULT_PORTS } from '../config.js';
import { checkRedirectPort, parsePort, parseWait, portsFrom, type PortOptions } from './args.js';
import type { AgentAccessArgs } from './commands/agent-access.js';

export interface AccessOptions extends PortOptions {
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
  return command
    .option('--no-browser', 'print the sign-in link on stderr without opening a browser')
    .option('--auth-port <port>', `authorization server port (default ${DEFAULT_PORTS.auth})`, parsePort)
    .option('--calendar-port <port>', `calendar backend port (default ${DEFAULT_PORTS.calendar})`, parsePort)
    .option('--agent-port <port>', `CalendarAgent port (default ${DEFAULT_PORTS.agent})`, parsePort)
    .option('--login-timeout <wait>', 'how long to wait for the sign-in: 90s, 5m (default 5m; for login --device, until its code expires)', parseWait)
    .option('--redirect-port <port>', 'listen for the browser’s return on this port (forward it with ssh -L) instead of a random one', parsePort);
}

export function accessArgs(options: AccessOptions, globals: GlobalOptions): AgentAccessArgs {
  const ports = portsFrom(options);
  checkRedirectPort(options.redirectPort, ports);
  const args: AgentAccessArgs = {
    ports,
    host: options.host ?? DEFAULT_HOST,
    browser: options.browser,
    debug: globals.debug === true,
  };
  if (options.loginTimeout !== undefined) args.loginTimeoutMs = options.loginTimeout;
  if (options.redirectPort !== undefined) args.redirectPort = options.redirectPort;
  if (globals.profile !== undefined) args.profile = globals.profile;
  return args;
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
