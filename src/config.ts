// The one place that reads the environment: where state lives (DELEGATE_HOME
// or the platform's XDG directories), the default loopback ports and the URLs
// derived from them. Everything else receives these values as arguments.
import { existsSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BoundedMap } from './bounded-map.js';
import { notARegularFile } from './regular-file.js';
import { refuseUntrustedDirectory } from './trusted-directory.js';

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
  /** Lock file held while a process sets up the data directory and starts its servers (serve, or a command starting the embedded stack). */
  serversLock: string;
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
 * and $XDG_CONFIG_HOME/delegate (default ~/.config/delegate) the config file,
 * a relative XDG directory ignored (xdgBaseDirectory).
 * Throws UntrustedPathError, before anything is created or read there, for a
 * directory another user could swap (a symbolic link of theirs, a directory of
 * theirs, or one on the way that others may write to: refuseUntrustedDirectory).
 */
export function resolvePaths(env: Env): Paths {
  const explicit = delegateHome(env);
  const home = explicit ? explicit : join(xdgDataHome(env), 'delegate');
  const configDir = explicit ? explicit : join(xdgConfigHome(env), 'delegate');
  refuseUntrustedDirectory(home, 'data directory');
  if (configDir !== home) refuseUntrustedDirectory(configDir, 'configuration directory');
  return {
    home,
    db: join(home, 'delegate.db'),
    tokenCache: join(home, 'tokens.json'),
    tokenLock: join(home, 'tokens.lock'),
    serversLock: join(home, 'servers.lock'),
    ownerKey: join(home, 'owner-key.json'),
    agentKey: join(home, 'agent-key.json'),
    config: join(configDir, 'config.json'),
  };
}

function xdgDataHome(env: Env): string {
  return xdgBaseDirectory(env.XDG_DATA_HOME) ?? join(userHome(env), '.local', 'share');
}

function xdgConfigHome(env: Env): string {
  return xdgBaseDirectory(env.XDG_CONFIG_HOME) ?? join(userHome(env), '.config');
}

/**
 * The home directory the default data and configuration directories are under: HOME when it is an absolute path, else
 * the account's own from the user database. Found in review (s31fault): an empty HOME was taken as is (libuv returns
 * it), so the data directory was `.local/share/delegate` under whatever directory a command ran in, each its own; and
 * a user id with no entry in the user database (a container's) failed with "uv_os_homedir returned ENOENT". Neither
 * gives a home: one line says to set DELEGATE_HOME (which is read before this is asked).
 */
function userHome(env: Env): string {
  const fromEnv = absoluteHome(env.HOME);
  if (fromEnv !== undefined) return fromEnv;
  const account = absoluteHome(accountHomeDir());
  if (account !== undefined) return account;
  throw new Error(
    `There is no home directory to keep delegate's data under: HOME is ${env.HOME === undefined ? 'not set' : 'not an absolute path'}, and user id ${process.getuid?.() ?? 'of this process'} has no home in the user database. Set DELEGATE_HOME to a directory of your own (or both XDG_DATA_HOME and XDG_CONFIG_HOME).`,
  );
}

/** `value` when it is an absolute path (HOME, or the user database's home), else undefined. */
function absoluteHome(value: string | undefined): string | undefined {
  return value !== undefined && isAbsolute(value) ? value : undefined;
}

/**
 * An XDG base directory variable's value, or undefined when it is unset, blank or relative: the XDG Base Directory
 * Specification requires absolute paths and has a relative one ignored as invalid. Found in review (s25docs): a
 * relative one was taken from the working directory, so each directory a command ran in had its own data directory,
 * owner and keys. (A relative DELEGATE_HOME is taken from the working directory, as README says.)
 */
function xdgBaseDirectory(value: string | undefined): string | undefined {
  const path = value?.trim();
  return path && isAbsolute(path) ? path : undefined;
}

/**
 * The environment under which another process resolves the same data
 * directory and config file as `env` does here, for a command written into
 * an MCP client's configuration (a desktop app started from its menu has
 * not this shell's environment): DELEGATE_HOME, made absolute, when set;
 * else each XDG base directory, resolved and absolute, when this shell's
 * differs from a plain login's (XDG_DATA_HOME or XDG_CONFIG_HOME set and absolute, or a
 * HOME other than the account's own). Empty when nothing needs pinning.
 * Every variable resolvePaths reads is covered.
 */
export function pathsEnvironment(env: Env, accountHome: string | undefined = accountHomeDir()): Record<string, string> {
  const home = delegateHome(env);
  if (home !== undefined) return { DELEGATE_HOME: home };
  // HOME as userHome takes it: one that is not absolute is not taken, and moves nothing.
  const ownHome = absoluteHome(env.HOME);
  const homeMoved = ownHome !== undefined && (accountHome === undefined || resolve(ownHome) !== resolve(accountHome));
  const pinned: Record<string, string> = {};
  if (xdgBaseDirectory(env.XDG_DATA_HOME) !== undefined || homeMoved) pinned.XDG_DATA_HOME = resolve(xdgDataHome(env));
  if (xdgBaseDirectory(env.XDG_CONFIG_HOME) !== undefined || homeMoved) pinned.XDG_CONFIG_HOME = resolve(xdgConfigHome(env));
  return pinned;
}

/** The account's home directory from the user database, whatever HOME says; undefined where there is none. */
function accountHomeDir(): string | undefined {
  try {
    return userInfo().homedir || undefined;
  } catch {
    return undefined;
  }
}

/**
 * DELEGATE_HOME, made absolute against the working directory once, here: a
 * relative one written into an MCP client's config (or handed to a server
 * started elsewhere) would name another directory. Undefined when unset or blank.
 */
export function delegateHome(env: Env): string | undefined {
  const home = env.DELEGATE_HOME?.trim();
  return home ? resolve(home) : undefined;
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
  return {
    issuer: httpOrigin(host, ports.auth),
    calendarUrl: httpOrigin(host, ports.calendar),
    agentUrl: `${httpOrigin(host, ports.agent)}/mcp`,
  };
}

/** `http://host:port`, an IPv6 address in brackets: a server's own address on `host` (a --host value, without brackets). */
export function httpOrigin(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The package's root directory (for fixtures shipped with it). */
export function packageRoot(): string {
  // src/config.ts and dist/config.js sit one level below the root; the bundle's
  // files (dist/bundle/delegate.mjs and its chunks) two or three: the root is
  // the nearest directory above this file that holds package.json.
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) return fileURLToPath(new URL('..', import.meta.url));
    dir = up;
  }
  return `${dir}/`;
}

/** The demo calendar every new owner starts with. */
export function demoCalendarPath(): string {
  return join(packageRoot(), 'fixtures', 'owner.ics');
}

/** The name of the OS user running this, which the local owner's account takes; `owner` when it has none. */
export function systemUserName(): string {
  try {
    return userInfo().username || 'owner';
  } catch {
    return 'owner';
  }
}

/** The machine's IANA time zone, or UTC when it has none. */
export function systemTimeZone(env: Env): string {
  const fromEnv = env.TZ?.trim();
  const named = fromEnv ? ianaZone(fromEnv) : undefined;
  if (named) return named;
  const resolved = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return (resolved && ianaZone(resolved)) || 'UTC';
}

/**
 * Names already checked, each with its canonical spelling (or null when Intl does not know it). Building an
 * Intl.DateTimeFormat to test a name costs far more than a lookup, and every find_slot checks its zone several
 * times; bounded, because callers choose the name (and Intl takes any capitalisation).
 */
const checkedZones = new BoundedMap<string, string | null>(1_000);

/**
 * `zone` spelled as the time zone database spells it (`europe/berlin` → `Europe/Berlin`, `utc` → `UTC`), or undefined
 * when it is no zone. Found in review: Intl accepts any capitalisation, and an answer echoed `"timeZone":
 * "europe/berlin"`, a name that is not in the database, to clients that compare or look it up. Only the spelling is
 * mended, never the zone: Intl resolves some current names to their older links (`Asia/Kolkata` → `Asia/Calcutta`,
 * `Europe/Kyiv` → `Europe/Kiev`), and a name the user gave is kept as it is (found in review of the first version).
 */
export function ianaZone(zone: string): string | undefined {
  const known = checkedZones.get(zone);
  if (known !== undefined) return known ?? undefined;
  let spelled: string | null;
  try {
    const resolved = new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone;
    spelled = resolved.toLowerCase() === zone.toLowerCase() ? resolved : (zonesByLowerCase().get(zone.toLowerCase()) ?? zone);
  } catch {
    spelled = null;
  }
  checkedZones.set(zone, spelled);
  return spelled ?? undefined;
}

let lowerCaseZones: Map<string, string> | undefined;

/** Intl's zone names by their lower-case spelling (built once, when a name needs it). */
function zonesByLowerCase(): Map<string, string> {
  lowerCaseZones ??= new Map(Intl.supportedValuesOf('timeZone').map((name) => [name.toLowerCase(), name]));
  return lowerCaseZones;
}

export function isIanaZone(zone: string): boolean {
  return ianaZone(zone) !== undefined;
}

/** How many zone names isIanaZone remembers (for tests of its bound). */
export function checkedZoneCount(): number {
  return checkedZones.size;
}

/** Whether the user asked for no colour (https://no-color.org). */
export function noColor(env: Env): boolean {
  return env.NO_COLOR !== undefined && env.NO_COLOR !== '';
}

/**
 * DELEGATE_TOKEN: an access token for CalendarAgent that takes precedence over
 * the token cache (like gh's GH_TOKEN). Undefined when unset or blank.
 */
export function delegateToken(env: Env): string | undefined {
  const token = env.DELEGATE_TOKEN?.trim();
  return token ? token : undefined;
}

/** DELEGATE_PROFILE: the profile used when --profile is not given. */
export function profileFromEnv(env: Env): string | undefined {
  const name = env.DELEGATE_PROFILE?.trim();
  return name ? name : undefined;
}

/**
 * DELEGATE_AGENT_URL: CalendarAgent's MCP URL when `--agent-url` is not given, for the commands that take it (a
 * deployment published at https URLs). Undefined when unset or blank; any other value as written, for the caller to
 * check as it checks the option.
 */
export function agentUrlFromEnv(env: Env): string | undefined {
  const url = env.DELEGATE_AGENT_URL?.trim();
  return url ? url : undefined;
}

export const DEFAULT_PROFILE = 'default';

/** The servers' log levels (pino's), from the most to the least verbose but silent. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

export function isLogLevel(value: string): value is LogLevelName {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

/**
 * DELEGATE_LOG_LEVEL: the servers' log level when --log-level is not given.
 * Undefined when unset or blank; any other value is returned as written, for
 * the caller to check with isLogLevel (an unknown level is bad usage).
 */
export function logLevelFromEnv(env: Env): string | undefined {
  const level = env.DELEGATE_LOG_LEVEL?.trim();
  return level ? level.toLowerCase() : undefined;
}

/**
 * DELEGATE_CIMD_PRIVATE_HOSTS: host names, comma-separated, whose client metadata documents the authorization server
 * fetches even when they resolve to a loopback address, and only loopback (for development: a client whose client_id is
 * https://localhost:8443/client.json; the draft's SSRF section allows no more). Empty when unset: then no such address is
 * fetched from (SSRF; the draft's security considerations).
 */
export function cimdPrivateHostsFromEnv(env: Env): string[] {
  return (env.DELEGATE_CIMD_PRIVATE_HOSTS ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== '');
}

/**
 * A profile's own token cache and lock, for several identities or servers side
 * by side in one data directory: the default profile keeps tokens.json; any
 * other NAME uses profiles/NAME/tokens.json. The servers' files are shared.
 */
export function withProfile(paths: Paths, profile: string | undefined): Paths {
  if (profile === undefined || profile === DEFAULT_PROFILE) return paths;
  const dir = join(paths.home, 'profiles', profile);
  return { ...paths, tokenCache: join(dir, 'tokens.json'), tokenLock: join(dir, 'tokens.lock') };
}

// issue 4: the user's settings in config.json, read for the calendar backend
// and find-slot. A missing file is no settings; a file that is there but not
// what it should be is an error naming the file, never silently ignored.

/**
 * What config.json may say, e.g.
 * `{"timeZone": "Europe/Berlin", "workingHours": "mon-thu 09:00-17:00; fri 09:00-13:00", "tentative": "free"}`.
 * `workingHours` is a string or an object of weekdays, read by src/calendar/working-hours.ts.
 */
export interface UserConfig {
  /** Keys the file has that delegate does not read (a typo such as "tentatve"): warned about, never refused. */
  unknownKeys?: string[];
  timeZone?: string;
  workingHours?: string | Record<string, unknown>;
  /** Whether tentative events count as busy (the default) or free. */
  tentative?: 'busy' | 'free';
  /** What one calendar that cannot be read does to a search: fail it (the default) or skip it. */
  onCalendarError?: 'fail' | 'skip';
}

export class ConfigError extends Error {
  constructor(
    readonly path: string,
    /** What is wrong, without the path. */
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'ConfigError';
  }
}

/** The keys config.json may have. */
export const USER_CONFIG_KEYS = ['timeZone', 'workingHours', 'tentative', 'onCalendarError'] as const;

/** One line about the keys of config.json that delegate does not read, or undefined when there are none. */
export function unknownKeysWarning(path: string, config: UserConfig): string | undefined {
  if (!config.unknownKeys?.length) return undefined;
  const keys = config.unknownKeys.map((k) => JSON.stringify(k)).join(', ');
  return `${path}: ${config.unknownKeys.length === 1 ? 'the key' : 'the keys'} ${keys} ${config.unknownKeys.length === 1 ? 'is' : 'are'} not read (the keys are ${USER_CONFIG_KEYS.join(', ')}).`;
}

/**
 * readUserConfig for a server that needs the settings on every request (the
 * calendar backend): the file is read and checked again only when it has
 * changed (its inode, size, modification or change time differ) or changed
 * so recently that its times cannot be trusted yet, and after a failed read,
 * so an edit takes effect on the next request and a file left alone costs
 * one stat. The stat is synchronous, like every read of the database beside
 * it; no file is no settings.
 */
export function userConfigReader(path: string, now: () => number = Date.now, read: (path: string) => Promise<UserConfig> = readUserConfig): () => Promise<UserConfig> {
  let last: { version: string; config: Promise<UserConfig>; trusted: boolean } | undefined;
  return () => {
    let info;
    try {
      info = statSync(path, { throwIfNoEntry: false });
    } catch {
      last = undefined;
      return read(path); // says why it cannot be read
    }
    if (!info) {
      last = undefined;
      return Promise.resolve({});
    }
    const version = `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    if (last?.version === version && last.trusted) return last.config;
    // A file changed within RACY_MS of being read may change again with the same size and
    // times (a coarse file system clock): it is read again until it has been still that long.
    const config = read(path);
    const entry = { version, config, trusted: now() - Math.max(info.mtimeMs, info.ctimeMs) > RACY_MS };
    last = entry;
    // A failed read (too many open files, a passing I/O error) is not kept: the next request tries again.
    config.catch(() => {
      if (last === entry) last = undefined;
    });
    return config;
  };
}

/** How long after a change a file's times are not trusted to show the next change (as Git treats its index). */
const RACY_MS = 2_000;

/** The settings in the config file at `path` (Paths.config); {} when there is no file. Throws ConfigError. */
export async function readUserConfig(path: string): Promise<UserConfig> {
  let text: string;
  try {
    const kind = notARegularFile(await stat(path), 'a configuration file');
    if (kind !== undefined) throw new ConfigError(path, `it is ${kind}; move it away.`);
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    if ((error as { code?: unknown }).code === 'ENOENT') return {};
    throw new ConfigError(path, 'the configuration file cannot be read.');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ConfigError(path, 'the configuration file is not valid JSON.');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(path, 'the configuration must be a JSON object.');
  const c = raw as Record<string, unknown>;
  const config: UserConfig = {};
  const unknownKeys = Object.keys(c).filter((k) => !(USER_CONFIG_KEYS as readonly string[]).includes(k));
  if (unknownKeys.length > 0) config.unknownKeys = unknownKeys;
  if (c.timeZone !== undefined) {
    const zone = typeof c.timeZone === 'string' ? ianaZone(c.timeZone) : undefined;
    if (zone === undefined) throw new ConfigError(path, '"timeZone" must be an IANA time zone such as Europe/Berlin.');
    config.timeZone = zone;
  }
  if (c.workingHours !== undefined) {
    const w = c.workingHours;
    if (typeof w !== 'string' && (typeof w !== 'object' || w === null || Array.isArray(w))) {
      throw new ConfigError(path, '"workingHours" must be a string such as "mon-fri 09:00-17:00" or an object of weekdays.');
    }
    config.workingHours = w as string | Record<string, unknown>;
  }
  if (c.tentative !== undefined) {
    if (c.tentative !== 'busy' && c.tentative !== 'free') throw new ConfigError(path, '"tentative" must be "busy" or "free".');
    config.tentative = c.tentative;
  }
  if (c.onCalendarError !== undefined) {
    if (c.onCalendarError !== 'fail' && c.onCalendarError !== 'skip') throw new ConfigError(path, '"onCalendarError" must be "fail" or "skip".');
    config.onCalendarError = c.onCalendarError;
  }
  return config;
}

/**
 * What the MCP conformance suite tells a client under test (client mode):
 * the scenario's name, its JSON context (e.g. pre-registered credentials)
 * and, when given, the protocol version to speak.
 */
export interface ConformanceSettings {
  scenario: string | undefined;
  context: Record<string, unknown>;
  protocolVersion: string | undefined;
}

export function conformanceSettings(env: Env): ConformanceSettings {
  let context: Record<string, unknown> = {};
  const raw = env.MCP_CONFORMANCE_CONTEXT?.trim();
  if (raw) {
    const parsed: unknown = JSON.parse(raw);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) context = parsed as Record<string, unknown>;
  }
  return {
    scenario: env.MCP_CONFORMANCE_SCENARIO?.trim() || undefined,
    context,
    protocolVersion: env.MCP_CONFORMANCE_PROTOCOL_VERSION?.trim() || undefined,
  };
}
