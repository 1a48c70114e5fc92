// Parsing and checking option values: each parser either returns the value
// the command works with or throws commander's InvalidArgumentError, which
// becomes a one-line usage error (exit code 2).
import { isIP } from 'node:net';
import { InvalidArgumentError } from 'commander';
import { readSlotDuration, readSpan } from '../calendar/search-options.js';
import { coveringWindow, parseWindowBound, parseWindowRequest } from '../calendar/window.js';
import { canonicalResource, isAnyLoopbackHost } from '../delegation/resource.js';
import { badPortText, isBadPort } from '../bad-ports.js';
import { DEFAULT_PORTS, ianaZone, isLogLevel, LOG_LEVELS, logLevelFromEnv, type Env, type LogLevelName, type Ports, urlsFor } from '../config.js';
import { UsageError } from './errors.js';

/**
 * A port option (--auth-port, --calendar-port, --agent-port, --redirect-port; the split servers' --port is
 * parseListenPort's): a whole number from 1 to 65535, and not one that browsers and fetch refuse (src/bad-ports.ts;
 * found in review, s30: `serve --auth-port 6665` started and polled for ever, `login --redirect-port 6667` printed a
 * link Chromium refuses).
 */
export function parsePort(value: string): number {
  const port = parseListenPort(value);
  if (isBadPort(port)) throw new InvalidArgumentError(badPortRefusal(port));
  return port;
}

/**
 * The --port of serve-auth, serve-calendar and serve-agent: a whole number from 1 to 65535. A port browsers and fetch
 * refuse is judged once the server's own URL is known (refuseBadPortReachedDirectly): behind an https reverse proxy
 * only the proxy connects to it (found in review, s30fix: `serve-calendar --port 6000 --url https://…` was refused).
 */
export function parseListenPort(value: string): number {
  const port = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new InvalidArgumentError('A port is a whole number from 1 to 65535.');
  return port;
}

/**
 * A split server's --port (parseListenPort) that browsers and fetch refuse, when its own URL (`published`: its --url
 * or --issuer, else the one it takes by default) is plain http on that port: then clients connect to the port itself,
 * and none could. Said as parsePort says it, in commander's words for an option's value (exit 2). Behind an https
 * reverse proxy (an https URL), or an http one on another port, only the proxy connects to it: taken.
 */
export function refuseBadPortReachedDirectly(command: string, port: number, published: string): void {
  const url = new URL(published);
  if (!isBadPort(port) || url.protocol !== 'http:' || Number(url.port || 80) !== port) return;
  throw new UsageError(`option '--port <port>' argument '${port}' is invalid. ${badPortRefusal(port)} (see \`delegate ${command} --help\`)`);
}

/** The refusal of a port that browsers and fetch refuse, the same in every option. */
function badPortRefusal(port: number): string {
  const text = badPortText(port);
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}; choose another.`;
}

/**
 * `delegate serve --host`: the address it listens on is also the one its URLs
 * name (the issuer, and the resource URLs that tokens are bound to), so it
 * must be one a client can reach: not a wildcard. And those URLs are plain
 * http, which OAuth allows only on loopback (OAuth 2.1 §1.5; found in review,
 * s18: `serve --host <LAN address>` published an http issuer to the network),
 * so it must be a loopback address: serve has no https URLs to give instead.
 */
export function parseNamedHost(value: string): string {
  // As URLs write it, brackets or not (`[::1]` was refused as no host; noticed at stop 19).
  const host = parseListenHost(value.trim());
  if (host === '' || ['0.0.0.0', '::', '[::]', '*'].includes(host)) {
    throw new InvalidArgumentError(
      'serve names its servers by this address in their URLs and token audiences, so it cannot be a wildcard; give a loopback address, such as 127.0.0.1.',
    );
  }
  // It must make URLs the servers accept (canonicalResource, as the AS checks the agent's resource), and nothing but the host in them.
  const { issuer, agentUrl } = urlsFor(DEFAULT_PORTS, host);
  const named = canonicalResource(issuer);
  if (named === undefined || canonicalResource(agentUrl) === undefined || new URL(named).pathname !== '/' || new URL(named).search !== '') {
    throw new InvalidArgumentError('Expected a host name or an IP address, such as 127.0.0.1: it makes the servers’ URLs (http://<host>:<port>).');
  }
  if (!hostIsLoopback(host)) {
    throw new InvalidArgumentError(
      `serve names its servers http://<host>:<port>, and ${HTTPS_RULE}; give a loopback address (for a deployment, run serve-auth with --issuer https://… behind an https reverse proxy).`,
    );
  }
  return host;
}

/**
 * Why an OAuth URL may not be plain http on another host, said the same way by every refusal. OAuth 2.1 §1.5 (which
 * the MCP authorization spec's Communication Security section makes a MUST), RFC 8414 §2 for the issuer and RFC 9728
 * §2 for a resource all require https; delegate's own loopback URLs are http on purpose (SECURITY.md: loopback
 * traffic never leaves the machine).
 */
export const HTTPS_RULE = 'OAuth requires https on any host but this machine’s loopback (127.0.0.0/8, ::1, localhost; OAuth 2.1 §1.5)';

/** Whether a --host value (an IPv6 address with or without brackets) is any loopback address (its URLs are http: HTTPS_RULE); false when it makes no URL. */
export function hostIsLoopback(host: string): boolean {
  const hostname = urlHostname(host);
  return hostname !== undefined && isAnyLoopbackHost(hostname);
}

/**
 * A --host value as the URLs the servers publish write it (IPv6 without its brackets): `::ffff:127.0.0.1` is
 * ::ffff:7f00:1, `127.1` 127.0.0.1, `0::1` ::1. Clients send that spelling as Host, which the servers answer for
 * (found in review: `serve --host ::ffff:127.0.0.1` published http://[::ffff:127.0.0.1]:8410 and answered 421 at
 * it). A value that is no host alone is kept as given, for the checks and listen() to refuse.
 */
export function parseListenHost(value: string): string {
  const hostname = urlHostname(value.trim());
  return hostname === undefined ? value : hostname.replace(/^\[(.*)\]$/, '$1');
}

/** The `hostname` of http://<host>/ as the URL parser writes it, or undefined when `host` is not a host alone. */
function urlHostname(host: string): string | undefined {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  try {
    const url = new URL(`http://${bare.includes(':') ? `[${bare}]` : bare}`);
    return url.port === '' && url.pathname === '/' && url.search === '' && url.hash === '' && url.username === '' && url.password === '' ? url.hostname : undefined;
  } catch {
    return undefined;
  }
}

/** `--trust-proxy loopback`: the proxy on this machine (127.0.0.0/8 and ::1, as @fastify/proxy-addr names them). */
export const LOOPBACK_PROXIES = 'loopback';

/**
 * `--trust-proxy` (repeatable, comma-separated): the reverse proxies whose X-Forwarded-For names the client, as IP
 * addresses or CIDR ranges, or `loopback`; `none` alone trusts none. A range of /0 would trust every peer, so any
 * client could name its own address and escape every per-address limit: refused.
 */
export function collectTrustedProxies(value: string, prior: string[] | undefined): string[] {
  const entries = value.split(',').map((entry) => entry.trim());
  if (entries.length === 1 && entries[0] === 'none' && prior === undefined) return [];
  const bad = entries.find((entry) => !isProxyAddress(entry));
  if (prior?.length === 0 || bad !== undefined) {
    throw new InvalidArgumentError(
      `${bad === undefined || bad === 'none' ? '"none" stands alone' : `${JSON.stringify(bad)} is no proxy address`}: give IP addresses or CIDR ranges (not /0) of the reverse proxies, comma-separated, or "loopback", or "none".`,
    );
  }
  return [...new Set([...(prior ?? []), ...entries])];
}

/** An IP address, a CIDR range of one with a prefix from 1 to its length, or `loopback`. */
function isProxyAddress(entry: string): boolean {
  if (entry === LOOPBACK_PROXIES) return true;
  const [address, prefix, ...rest] = entry.split('/');
  const family = isIP(address!);
  if (family === 0 || rest.length > 0) return false;
  return prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) >= 1 && Number(prefix) <= (family === 4 ? 32 : 128));
}

/** Whether `url` (absolute) is plain http on a host that is not loopback: no OAuth URL may be (HTTPS_RULE). */
export function plainHttpOffLoopback(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  // Any loopback address (IPv4-mapped too): OAuth 2.1 §1.5 excepts traffic that stays on this machine, not three names.
  return protocol === 'http:' && !isAnyLoopbackHost(hostname);
}

/**
 * An authorization server's issuer (`--issuer`, `--auth-url`): an http(s) origin, with no path or query. Found in
 * review: `serve-auth --issuer http://127.0.0.1:8410/tenant` started, but served its metadata only at the root (which
 * RFC 8414 §3.1 reserves for an issuer without a path) and its endpoints at the root too, so no MCP client could
 * discover it, and delegate's own parts looked for the metadata in two different places.
 */
export function parseIssuerUrl(value: string): string {
  const url = parseHttpUrl(value);
  const { pathname, search } = new URL(url);
  if (pathname !== '/' || search !== '') {
    throw new InvalidArgumentError('Expected the authorization server’s origin, such as http://127.0.0.1:8410, with no path or query: delegate’s authorization server answers at the root of its origin.');
  }
  return url;
}

/**
 * An absolute URL an OAuth party is reached at (an issuer, a resource, an audience), without a trailing slash: https,
 * or http on loopback only (HTTPS_RULE).
 */
export function parseHttpUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('Expected an absolute URL such as http://127.0.0.1:8410.');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError('Expected an http or https URL.');
  // `#` anywhere, an empty fragment too (`…/mcp#`, which the parser drops from hash; found in review, regress20c): RFC 8707 §2.
  if (url.hash || value.includes('#') || url.username || url.password) throw new InvalidArgumentError('The URL may not carry a fragment or credentials.');
  // Found in review (regress19a): `--url https://cal.example.com/?tenant=1` was taken and printed, and no sign-in could
  // complete (the query was kept here and dropped or misplaced elsewhere). A resource has none (RFC 8707 §2), nor has an issuer.
  if (url.search || value.includes('?')) throw new InvalidArgumentError('The URL may not carry a query (RFC 8707 §2: it names a resource or a server).');
  // Found in review (s18): `serve-auth --issuer http://auth.example.com:8410` started and published every endpoint over http.
  if (plainHttpOffLoopback(url.href)) throw new InvalidArgumentError(`Expected an https URL: ${HTTPS_RULE}.`);
  // As a port option's (parsePort): found in review (s30), `--agent-url http://127.0.0.1:6000/mcp` ended in "fetch failed".
  if (url.port !== '' && isBadPort(Number(url.port))) throw new InvalidArgumentError(badPortRefusal(Number(url.port)));
  return url.href.replace(/\/+$/, '');
}

/**
 * The longest wait: a week, well inside what a timer can hold (2^31 - 1 ms, about 24.8 days; a longer one fires at
 * once, so `--login-timeout 1000h` gave up at once).
 */
const MAX_WAIT_MS = 7 * 86_400_000;

/**
 * A time span for waiting: "90s", "5m", "1h", "1d", or plain seconds, up to 7d; returned in ms. Found in review
 * (s25docs): `1d` was refused while `24h` was taken, and README writes spans as `15m`, `2h`, `3d`.
 */
export function parseWait(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!match) throw new InvalidArgumentError('Expected a time span such as 90s, 5m, 1h or 1d.');
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  const ms = Math.round(Number(match[1]) * unit);
  if (ms <= 0) throw new InvalidArgumentError('The time span must be longer than zero.');
  if (ms > MAX_WAIT_MS) throw new InvalidArgumentError('The time span may be 7d at most.');
  return ms;
}

/** A time zone option, spelled as the time zone database spells it. */
export function parseTimeZone(value: string): string {
  const zone = ianaZone(value);
  if (zone === undefined) throw new InvalidArgumentError('Expected an IANA time zone such as Europe/Berlin or UTC.');
  return zone;
}

/** An ISO 8601 date or date-time, read as the agent reads a window's bound (no 31 February); passed on as written. */
export function parseInstant(value: string): string {
  if (parseWindowBound(value.trim()) === undefined) {
    throw new InvalidArgumentError('Expected an ISO 8601 date or time such as 2026-12-01 or 2026-12-01T09:00:00+01:00.');
  }
  return value;
}

/** The options that make a search window, as commander hands them over (each already read by its parser). */
export interface WindowOptions {
  from?: string;
  to?: string;
  timeZone?: string;
  within?: string;
  minNotice?: string;
}

const WINDOW_FLAGS = { from: '--from', to: '--to', timeZone: '--tz', within: '--within', minNotice: '--min-notice' } as const;

/**
 * The window that --from, --to, --tz and find-slot's --within and
 * --min-notice make together, judged as the agent judges it before it reads
 * any calendar (parseWindowRequest, coveringWindow): one that ends before it
 * starts, has passed or is too long is bad usage, said in the options' names.
 */
export function checkWindowOptions(options: WindowOptions, now: number): void {
  const ms = (field: 'within' | 'minNotice') => {
    const text = options[field];
    if (text === undefined) return {};
    const read = readSpan(field, text);
    if (!read.ok) throw new UsageError(`${WINDOW_FLAGS[field]}: ${read.message}`);
    return { [`${field}Ms`]: read.value };
  };
  const request = parseWindowRequest(options);
  const window = request.ok ? coveringWindow({ ...request.value, ...ms('within'), ...ms('minNotice') }, now) : request;
  if (!window.ok) throw new UsageError(inOptionTerms(window.message, options));
}

/** The agent's message about a window in the options' names: '"to" must be later than "from"' is '--to must be later than --from'. */
function inOptionTerms(message: string, options: WindowOptions): string {
  const named = message.replace(/"(from|to)"/g, (_quoted, name: 'from' | 'to') => (options[name] !== undefined || name === 'to' ? WINDOW_FLAGS[name] : `${WINDOW_FLAGS[name]} (now)`));
  if (named !== message) return named;
  const given = (Object.keys(WINDOW_FLAGS) as Array<keyof WindowOptions>).filter((k) => options[k] !== undefined).map((k) => `${WINDOW_FLAGS[k]} ${options[k]}`);
  return `${given.join(' ')}: ${message}`;
}

/** A meeting length for find-slot ("30m", "1h30m", "45", "PT45M"), read as the agent will read it, up to its limit; passed on as written. */
export function parseSlotDuration(value: string): string {
  const read = readSlotDuration(value);
  if (!read.ok) throw new InvalidArgumentError(read.message);
  return value.trim();
}

export interface PortOptions {
  authPort?: number;
  calendarPort?: number;
  agentPort?: number;
}

const PORT_FLAGS = [
  ['auth', 'authPort', '--auth-port'],
  ['calendar', 'calendarPort', '--calendar-port'],
  ['agent', 'agentPort', '--agent-port'],
] as const;

/** The three servers' ports: the options given, else the defaults. Two the same is bad usage, before anything starts. */
export function portsFrom(options: PortOptions): Ports {
  const ports: Ports = {
    auth: options.authPort ?? DEFAULT_PORTS.auth,
    calendar: options.calendarPort ?? DEFAULT_PORTS.calendar,
    agent: options.agentPort ?? DEFAULT_PORTS.agent,
  };
  PORT_FLAGS.forEach(([part, option, flag], i) => {
    for (const [otherPart, otherOption, otherFlag] of PORT_FLAGS.slice(i + 1)) {
      if (ports[part] !== ports[otherPart]) continue;
      const defaulted = [options[option] === undefined ? flag : undefined, options[otherOption] === undefined ? otherFlag : undefined].filter((f) => f !== undefined);
      throw new UsageError(`${flag} and ${otherFlag} are both ${ports[part]}${defaulted.length > 0 ? ` (the default of ${defaulted.join(' and ')})` : ''}; each server needs its own port.`);
    }
  });
  return ports;
}

/** --redirect-port, which must not be one of the servers' ports. */
export function checkRedirectPort(redirectPort: number | undefined, ports: Ports): void {
  const taken = PORT_FLAGS.find(([part]) => ports[part] === redirectPort);
  if (taken) throw new UsageError(`--redirect-port and ${taken[2]} are both ${redirectPort}; the sign-in listener needs a port of its own.`);
}

/** A profile name: letters, digits, dot, dash and underscore (it names a directory). */
export function parseProfile(value: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(value)) {
    throw new InvalidArgumentError('A profile name is 1–64 letters, digits, ".", "-" or "_", not starting with "." or "-".');
  }
  return value;
}

/** A server log level: one of pino's, case-insensitive. */
export function parseLogLevel(value: string): LogLevelName {
  const level = value.trim().toLowerCase();
  if (!isLogLevel(level)) throw new InvalidArgumentError(`A log level is one of ${LOG_LEVELS.join(', ')}.`);
  return level;
}

/** The serve commands' log level: --log-level, else DELEGATE_LOG_LEVEL, else debug under --debug, else info. */
export function serveLogLevel(flag: LogLevelName | undefined, env: Env, debug: boolean): LogLevelName {
  if (flag) return flag;
  const fromEnv = logLevelFromEnv(env);
  if (fromEnv !== undefined) {
    if (!isLogLevel(fromEnv)) throw new UsageError(`DELEGATE_LOG_LEVEL=${fromEnv.slice(0, 40)} is not a log level; use one of ${LOG_LEVELS.join(', ')}.`);
    return fromEnv;
  }
  return debug ? 'debug' : 'info';
}
