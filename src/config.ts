// The one place that reads the environment: where state lives (DELEGATE_HOME
// or the platform's XDG directories), the default loopback ports and the URLs
// derived from them. Everything else receives these values as arguments.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Env = Readonly<Record<string, string | undefined>>;

/** The process environment, read here and passed down from the CLI. */
export function processEnv(): Env {
  return process.env;
}

export const DEFAULT_HOST = '127.0.0.1';

export const DEFAULT_PORTS = Object.freeze({ auth: 8410, calendar: 8411, agent: 8412 });

export interface Ports {
  auth: number;
  calendar: number;
  agent: number;
}

/** Files in the data directory. All of them are private to the owner (0600 in a 0700 directory). */
export interface Paths {
  /** The directory of all state. */
  home: string;
  /** SQLite database of the authorization server and the calendar backend. */
  db: string;
  /** The CLI's token cache and client registrations (JSON). */
  tokenCache: string;
  /** Lock file held while the CLI refreshes a token. */
  tokenLock: string;
  /** Private key with which the CLI signs the local owner's login assertion. */
  ownerKey: string;
  /** CalendarAgent's private key for private_key_jwt client authentication. */
  agentKey: string;
  /** User configuration (JSON): time zone, working hours. */
  config: string;
}

/**
 * Where state lives. DELEGATE_HOME holds everything when set; otherwise
 * $XDG_DATA_HOME/delegate (default ~/.local/share/delegate) holds the data
 * and $XDG_CONFIG_HOME/delegate (default ~/.config/delegate) the config file.
 */
export function resolvePaths(env: Env): Paths {
  const explicit = env.DELEGATE_HOME?.trim();
  const home = explicit ? explicit : join(env.XDG_DATA_HOME?.trim() || join(env.HOME || homedir(), '.local', 'share'), 'delegate');
  const configDir = explicit ? explicit : join(env.XDG_CONFIG_HOME?.trim() || join(env.HOME || homedir(), '.config'), 'delegate');
  return {
    home,
    db: join(home, 'delegate.db'),
    tokenCache: join(home, 'tokens.json'),
    tokenLock: join(home, 'tokens.lock'),
    ownerKey: join(home, 'owner-key.json'),
    agentKey: join(home, 'agent-key.json'),
    config: join(configDir, 'config.json'),
  };
}

export interface Urls {
  /** The authorization server's issuer identifier (RFC 8414): no trailing slash. */
  issuer: string;
  /** The calendar backend: audience of calendar tokens. */
  calendarUrl: string;
  /** CalendarAgent's MCP endpoint: audience of the user's tokens. */
  agentUrl: string;
}

export function urlsFor(ports: Ports, host: string = DEFAULT_HOST): Urls {
  const h = host.includes(':') ? `[${host}]` : host;
  return {
    issuer: `http://${h}:${ports.auth}`,
    calendarUrl: `http://${h}:${ports.calendar}`,
    agentUrl: `http://${h}:${ports.agent}/mcp`,
  };
}

/** The package's root directory (for fixtures shipped with it). */
export function packageRoot(): string {
  // src/config.ts and dist/config.js both sit one level below the root.
  return fileURLToPath(new URL('..', import.meta.url));
}

/** The demo calendar every new owner starts with. */
export function demoCalendarPath(): string {
  return join(packageRoot(), 'fixtures', 'owner.ics');
}

/** The machine's IANA time zone, or UTC when it has none. */
export function systemTimeZone(env: Env): string {
  const fromEnv = env.TZ?.trim();
  if (fromEnv && isIanaZone(fromEnv)) return fromEnv;
  const resolved = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return resolved && isIanaZone(resolved) ? resolved : 'UTC';
}

export function isIanaZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Whether the user asked for no colour (https://no-color.org). */
export function noColor(env: Env): boolean {
  return env.NO_COLOR !== undefined && env.NO_COLOR !== '';
}
