// The CLI's contracts with the two modules the lead writes: the embedded
// stack (./stack.ts, docs/internals.md "The embedded stack") and the server
// commands (./commands/serve.ts). Both are loaded lazily, so that find-slot
// on its fast path loads neither fastify nor better-sqlite3.
import type { Logger } from 'pino';
import type { Env, LogLevelName, Paths, Ports, Urls } from '../config.js';
import type { CliIo } from './io.js';

export interface StackOptions {
  paths: Paths;
  ports: Ports;
  host: string;
  logger?: Logger;
  /**
   * Without a logger: the level the embedded servers, if this command starts them, log at to `delegate.log` in the
   * data directory (DELEGATE_LOG_LEVEL; src/cli/server-log.ts). Neither: they log nothing.
   */
  logLevel?: LogLevelName;
  /** Told a line for the person when starting the servers here changed something they should know (CalendarAgent moved). */
  notice?: (line: string) => void;
  /**
   * The command being run, with its required options (`find-slot --duration 30m`), its profile (--profile, else
   * DELEGATE_PROFILE) and its environment (for the data directory: DELEGATE_HOME or the XDG directories): the advice to
   * reach servers published at an https URL by that URL instead of these ports. Absent for a command that takes no
   * --agent-url (serve-agent --stdio), whose advice is to connect an MCP client to that URL.
   */
  rerun?: { words: readonly string[]; profile?: string; env: Env };
}

export interface Stack {
  /** Whether this process started the servers (and must close them). */
  embedded: boolean;
  urls: Urls;
  close(): Promise<void>;
}

export interface StackModule {
  ensureStack(options: StackOptions): Promise<Stack>;
  /** Throws ensureStack's exit-1 finding when the servers on the ports are published at an https URL; starts nothing. */
  refusePublishedPorts(options: StackOptions): Promise<void>;
  /** CalendarAgent's https URL when the servers on the ports are published behind a reverse proxy, after one look; starts nothing. */
  publishedAgentUrl(options: Pick<StackOptions, 'ports' | 'host'>): Promise<string | undefined>;
  /** Throws ensureStack's exit-1 finding when the authorization server at `issuer`, on loopback, runs from another data directory; one look, starts nothing. */
  refuseOtherDataDirectoryAt(options: StackOptions, issuer: string): Promise<void>;
  /** Whether the authorization server at `issuer`, on loopback, says it runs from another data directory than `home`; one look, creates nothing. */
  runsFromOtherDataDirectory(issuer: string, home: string): Promise<boolean>;
}

/** `delegate serve`: the three servers in one process until interrupted. */
export interface ServeAllOptions {
  paths: Paths;
  ports: Ports;
  host: string;
  /** The servers' log level (--log-level, DELEGATE_LOG_LEVEL). */
  logLevel: LogLevelName;
  /** How long CalendarAgent waits for the calendar backend (default DEFAULT_CALENDAR_TIMEOUT_MS). */
  calendarTimeoutMs?: number;
}

/** `delegate serve-auth`: the authorization server alone. */
export interface ServeAuthOptions {
  paths: Paths;
  host: string;
  port: number;
  /** Its issuer identifier (default: the one on record in the data directory when it is an https URL, or an http URL of this host and port; else http://<host>:<port>). */
  issuer?: string;
  /** The resources it knows: the calendar backend and CalendarAgent (default: those on record in the data directory, else the default ports'). */
  calendarUrl?: string;
  agentUrl?: string;
  /** --trust-proxy: the reverse proxies whose X-Forwarded-For names the client ([] for none); by default serve.ts's trustedProxies. */
  trustProxy?: readonly string[];
  /** The servers' log level (--log-level, DELEGATE_LOG_LEVEL). */
  logLevel: LogLevelName;
}

/** `delegate serve-calendar`: the calendar backend alone. */
export interface ServeCalendarOptions {
  paths: Paths;
  host: string;
  port: number;
  /** Its own URL, the audience of its tokens (default http://<host>:<port>). */
  resourceUrl: string;
  /** The authorization server whose tokens it accepts. */
  issuer: string;
  /** --trust-proxy: the reverse proxies whose X-Forwarded-For names the client ([] for none); by default serve.ts's trustedProxies. */
  trustProxy?: readonly string[];
  /** The servers' log level (--log-level, DELEGATE_LOG_LEVEL). */
  logLevel: LogLevelName;
}

/** `delegate serve-agent`: CalendarAgent alone. */
export interface ServeAgentOptions {
  paths: Paths;
  host: string;
  port: number;
  /** Its MCP URL, the audience of users' tokens (default http://<host>:<port>/mcp). */
  resourceUrl: string;
  issuer: string;
  calendarUrl: string;
  /** --trust-proxy: the reverse proxies whose X-Forwarded-For names the client ([] for none); by default serve.ts's trustedProxies. */
  trustProxy?: readonly string[];
  /** The servers' log level (--log-level, DELEGATE_LOG_LEVEL). */
  logLevel: LogLevelName;
  /** How long it waits for the calendar backend (default DEFAULT_CALENDAR_TIMEOUT_MS). */
  calendarTimeoutMs?: number;
}

/** Each resolves with the exit code once the server has stopped (after Ctrl-C). */
export interface ServeModule {
  serveAll(options: ServeAllOptions, io: CliIo): Promise<number | void>;
  serveAuth(options: ServeAuthOptions, io: CliIo): Promise<number | void>;
  serveCalendar(options: ServeCalendarOptions, io: CliIo): Promise<number | void>;
  serveAgent(options: ServeAgentOptions, io: CliIo): Promise<number | void>;
}

export async function loadStack(): Promise<StackModule> {
  return import('./stack.js');
}

export async function loadServe(): Promise<ServeModule> {
  return import('./commands/serve.js');
}
