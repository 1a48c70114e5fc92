// The `delegate` command line: the commander program, its commands and
// options, and runCli(argv, io), which runs one command and returns its exit
// code instead of exiting (main.ts exits). Each command's module is imported
// only when that command runs, so `find-slot` never loads the servers.
import { Command, CommanderError, Help, Option } from 'commander';
import { DEFAULT_HOST, DEFAULT_PORTS, LOG_LEVELS, resolvePaths, urlsFor, type LogLevelName } from '../config.js';
import {
  HTTPS_RULE,
  collectTrustedProxies,
  hostIsLoopback,
  parseHttpUrl,
  parseIssuerUrl,
  parseInstant,
  parseListenHost,
  parseNamedHost,
  parseListenPort,
  parsePort,
  parseProfile,
  parseSlotDuration,
  parseTimeZone,
  parseWait,
  portsFrom,
  type PortOptions,
  parseLogLevel,
  refuseBadPortReachedDirectly,
  serveLogLevel,
} from './args.js';
import { loadServe } from './contracts.js';
import { EXIT_OK, UsageError, errorText, exitCodeFor, joinedLines } from './errors.js';
import type { CliIo } from './io.js';
import { packageVersion } from './version.js';
import { registerSessionCommands } from './program-session.js';
import { registerCalendarCommands } from './program-calendar.js';
import { registerDelegationCommands } from './program-delegation.js';
import { addSlotSearchOptions, slotSearchArgs, type SlotSearchOptions } from './slot-options.js';
import { accessArgs, addAccessOptions, collectScopes, type AccessOptions, type GlobalOptions } from './access-options.js';

interface FindSlotOptions extends AccessOptions, SlotSearchOptions {
  duration: string;
  json?: boolean;
  from?: string;
  to?: string;
  tz?: string;
}

/** Runs the command line `argv` (without node and script) and returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = EXIT_OK;
  const program = buildProgram(io, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    // Commander has already said what was wrong with the command line.
    if (!(error instanceof CommanderError)) io.stderr.write(errorText(error, wantsDebug(argv)));
    return exitCodeFor(error);
  }
}

/** The environment an authorization server reads, for the help of the commands that run one (serve, serve-auth). */
const SERVE_AUTH_ENVIRONMENT =
  'Environment: DELEGATE_HOME, DELEGATE_LOG_LEVEL (--log-level), DELEGATE_CIMD_PRIVATE_HOSTS (host names, comma-separated, whose client metadata documents are fetched even from a loopback address: development only, it loosens the SSRF refusal).';

export function buildProgram(io: CliIo, setExitCode: (code: number) => void): Command {
  const program = new Command('delegate')
    .description('Authorize an AI agent to act for you, and use it: CalendarAgent finds free time in your calendar.')
    .version(packageVersion(), '-V, --version')
    .option('--debug', 'show stack traces of errors')
    .option('--profile <name>', 'use this profile’s own stored sign-in (default: $DELEGATE_PROFILE, else "default")', parseProfile)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  delegate find-slot --duration 30m',
        '  delegate login --device',
        '  delegate status --json',
        '',
        'Environment: DELEGATE_TOKEN (used before any stored sign-in), DELEGATE_PROFILE, DELEGATE_HOME, DELEGATE_AGENT_URL (--agent-url), DELEGATE_LOG_LEVEL (the serve commands; a command that starts the servers itself: their log, delegate.log in the data directory), DELEGATE_CIMD_PRIVATE_HOSTS (serve, serve-auth), NO_COLOR.',
        'Exit codes: 0 ok, 1 error, 2 bad usage, 3 no free slot found, 4 authorization required.',
      ].join('\n'),
    );

  const globals = (command: Command): GlobalOptions => command.optsWithGlobals<GlobalOptions>();

  addAccessOptions(
    addSlotSearchOptions(
      program
        .command('find-slot')
        .description('Find the first free slot of the given length in your calendar, signing in first if needed.')
        .requiredOption('-d, --duration <duration>', 'length of the slot: 30m, 1h, 1h30m, 45 (minutes) or PT45M', parseSlotDuration)
        .option('--json', 'print only {"start","end","timeZone"} on stdout (with --limit, an array of them)')
        .option('--from <when>', 'start of the search window (ISO 8601; default now)', parseInstant)
        .option('--to <when>', 'end of the search window (ISO 8601; default 7 days after the start)', parseInstant)
        .option('--tz <zone>', 'IANA time zone of the search (working hours, dates without an offset) and the result (default: the calendar owner’s)', parseTimeZone),
    ),
  )
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  delegate find-slot --duration 30m',
        '  delegate find-slot --duration 1h --from 2026-12-01 --tz Europe/Berlin --json',
        '  delegate find-slot --duration 45m --within 3d --min-notice 2h --buffer-after 10m --limit 3',
        "  delegate find-slot --duration 1h30m --working-hours 'mon-thu 08:00-16:00' --calendar work --tentative free --json",
        '  delegate find-slot --duration 30m --no-browser --auth-port 18510 --calendar-port 18511 --agent-port 18512',
        '  delegate find-slot --duration 30m --agent-url https://agent.example.com/mcp   # a deployment behind an https reverse proxy',
      ].join('\n'),
    )
    .action(async (options: FindSlotOptions, command: Command) => {
      const { findSlotCommand } = await import('./commands/find-slot.js');
      setExitCode(
        await findSlotCommand(
          {
            ...accessArgs(options, globals(command), io.env),
            duration: options.duration,
            json: options.json === true,
            ...(options.from !== undefined ? { from: options.from } : {}),
            ...(options.to !== undefined ? { to: options.to } : {}),
            ...(options.tz !== undefined ? { timeZone: options.tz } : {}),
            search: slotSearchArgs(options),
          },
          io,
        ),
      );
    });

  addAccessOptions(
    program
      .command('login')
      .description('Sign in and approve CalendarAgent in the browser, and say what was authorized.')
      .option('--device', 'sign in with a code, from a browser on any device (RFC 8628): for when the browser cannot reach this computer')
      .option('--scope <scope>', 'also ask for this permission (repeatable), e.g. busy:read for `delegate busy`; the ones you approved before are kept while that approval stands', collectScopes, []),
  )
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  delegate login',
        '  delegate login --no-browser                  # print the link; paste the address the browser ends on if it runs elsewhere',
        '  delegate login --no-browser --redirect-port 8765   # with ssh -L 8765:127.0.0.1:8765 from the computer with the browser',
        '  delegate login --device                      # open the page on any device and check the code',
        '  delegate login --device --scope busy:read    # and allow `delegate busy` too, so that it asks nothing',
        '  delegate login --agent-url https://agent.example.com/mcp   # sign in at a deployment published at https URLs',
      ].join('\n'),
    )
    .action(async (options: AccessOptions & { device?: boolean; scope: string[] }, command: Command) => {
      const { loginCommand } = await import('./commands/login.js');
      setExitCode(await loginCommand({ ...accessArgs(options, globals(command), io.env), device: options.device === true, scopes: options.scope }, io));
    });

  program
    .command('serve')
    .description('Run the authorization server, the calendar backend and CalendarAgent in this process, until Ctrl-C.')
    .option('--auth-port <port>', `authorization server port (default ${DEFAULT_PORTS.auth})`, parsePort)
    .option('--calendar-port <port>', `calendar backend port (default ${DEFAULT_PORTS.calendar})`, parsePort)
    .option('--agent-port <port>', `CalendarAgent port (default ${DEFAULT_PORTS.agent})`, parsePort)
    .option('--host <host>', 'loopback address to listen on and to name in its http URLs, such as 127.0.0.1 or ::1', parseNamedHost, DEFAULT_HOST)
    .option('--calendar-timeout <wait>', 'how long CalendarAgent waits for the calendar backend: 2s, 500ms (default 5s)', parseWait)
    .addOption(logLevelOption())
    .addHelpText(
      'after',
      ['', 'Examples:', '  delegate serve', '  delegate serve --auth-port 18510 --calendar-port 18511 --agent-port 18512', '  delegate serve --log-level debug', '', SERVE_AUTH_ENVIRONMENT].join('\n'),
    )
    .action(async (options: PortOptions & { host: string; logLevel?: LogLevelName; calendarTimeout?: number }, command: Command) => {
      const logLevel = serveLogLevel(options.logLevel, io.env, globals(command).debug === true);
      const serve = await loadServe();
      const code = await serve.serveAll(
        {
          paths: resolvePaths(io.env),
          ports: portsFrom(options),
          host: options.host,
          logLevel,
          ...(options.calendarTimeout !== undefined ? { calendarTimeoutMs: options.calendarTimeout } : {}),
        },
        io,
      );
      setExitCode(code ?? EXIT_OK);
    });

  program
    .command('serve-auth')
    .description('Run the authorization server alone.')
    .option('--port <port>', `port (default ${DEFAULT_PORTS.auth})`, parseListenPort)
    .option('--host <host>', 'address to listen on (other than loopback: with --issuer, --calendar-url and --agent-url given as https URLs, as behind an https reverse proxy)', parseListenHost, DEFAULT_HOST)
    .option('--issuer <url>', 'its issuer identifier (default: the one on record in the data directory when it is an https URL, whatever the host and port, or an http URL of this host and port; else http://<host>:<port>)', parseIssuerUrl)
    .option('--calendar-url <url>', `the calendar backend it issues tokens for (default: the one on record in the data directory, else http://<host>:${DEFAULT_PORTS.calendar})`, parseHttpUrl)
    .option('--agent-url <url>', `CalendarAgent’s MCP URL it issues tokens for (default: the one on record in the data directory, else http://<host>:${DEFAULT_PORTS.agent}/mcp)`, parseHttpUrl)
    .addOption(trustProxyOption())
    .addOption(logLevelOption())
    .addHelpText(
      'after',
      ['', 'Examples:', '  delegate serve-auth', '  delegate serve-auth --port 8410 --calendar-url http://127.0.0.1:8411 --agent-url http://127.0.0.1:8412/mcp', '', SERVE_AUTH_ENVIRONMENT].join('\n'),
    )
    .action(async (options: SingleServerOptions, command: Command) => {
      const logLevel = serveLogLevel(options.logLevel, io.env, globals(command).debug === true);
      refuseHttpUrlsOffLoopback('serve-auth', options.host, [
        ['--issuer', options.issuer],
        ['--calendar-url', options.calendarUrl],
        ['--agent-url', options.agentUrl],
      ]);
      const serve = await loadServe();
      const code = await serve.serveAuth(
        {
          paths: resolvePaths(io.env),
          host: options.host,
          port: options.port ?? DEFAULT_PORTS.auth,
          ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
          ...(options.calendarUrl !== undefined ? { calendarUrl: options.calendarUrl } : {}),
          ...(options.agentUrl !== undefined ? { agentUrl: options.agentUrl } : {}),
          ...trustedProxiesGiven(options),
          logLevel,
        },
        io,
      );
      setExitCode(code ?? EXIT_OK);
    });

  program
    .command('serve-calendar')
    .description('Run the calendar backend alone.')
    .addHelpText('after', [
        '',
        'Examples:',
        '  delegate serve-calendar',
        '  delegate serve-calendar --port 8411 --auth-url http://127.0.0.1:8410',
        '  delegate serve-calendar --url https://calendar.example.com --auth-url https://auth.example.com   # behind an https reverse proxy',
      ].join('\n'))
    .option('--port <port>', `port (default ${DEFAULT_PORTS.calendar})`, parseListenPort)
    .option('--host <host>', 'address to listen on (other than loopback: with --url and --auth-url given as https URLs, as behind an https reverse proxy)', parseListenHost, DEFAULT_HOST)
    .option('--url <url>', 'its own URL, as clients reach it and as tokens name it (default http://<host>:<port>; behind an https reverse proxy, the proxy’s https URL)', parseHttpUrl)
    .option('--auth-url <url>', 'the authorization server whose tokens it accepts', parseIssuerUrl)
    .addOption(new Option('--issuer <url>', 'same as --auth-url').argParser(parseIssuerUrl))
    .addOption(trustProxyOption())
    .addOption(logLevelOption())
    .action(async (options: SingleServerOptions, command: Command) => {
      const logLevel = serveLogLevel(options.logLevel, io.env, globals(command).debug === true);
      const issuer = authServerOf(options);
      refuseHttpUrlsOffLoopback('serve-calendar', options.host, [
        ['--url', options.url],
        ['--auth-url', issuer],
      ]);
      const port = options.port ?? DEFAULT_PORTS.calendar;
      const defaults = urlsFor({ ...DEFAULT_PORTS, calendar: port }, options.host);
      refuseBadPortReachedDirectly('serve-calendar', port, options.url ?? defaults.calendarUrl);
      const serve = await loadServe();
      const code = await serve.serveCalendar(
        {
          paths: resolvePaths(io.env),
          host: options.host,
          port,
          resourceUrl: options.url ?? defaults.calendarUrl,
          issuer: issuer ?? defaults.issuer,
          ...trustedProxiesGiven(options),
          logLevel,
        },
        io,
      );
      setExitCode(code ?? EXIT_OK);
    });

  program
    .command('serve-agent')
    .description('Run CalendarAgent (MCP over Streamable HTTP at /mcp, or at the path of --url) alone, or with --stdio for an MCP client that starts it.')
    .option('--stdio', 'serve MCP on stdin/stdout under your stored delegation (signing in first if there is none)')
    .option('--auth-port <port>', `authorization server port (default ${DEFAULT_PORTS.auth}); over HTTP, the same as --auth-url http://<host>:<port>`, parsePort)
    .option('--calendar-port <port>', `calendar backend port (default ${DEFAULT_PORTS.calendar}); over HTTP, the same as --calendar-url http://<host>:<port>`, parsePort)
    .option('--agent-port <port>', `with --stdio: CalendarAgent’s HTTP port, whose delegation it uses; over HTTP, the same as --port (default ${DEFAULT_PORTS.agent})`, parsePort)
    .option('--port <port>', `port (default ${DEFAULT_PORTS.agent}; not with --stdio)`, parseListenPort)
    .option('--host <host>', 'address to listen on (other than loopback: with --url, --auth-url and --calendar-url given as https URLs, as behind an https reverse proxy; with --stdio, loopback only)', parseListenHost, DEFAULT_HOST)
    .option('--url <url>', 'its own MCP URL, as clients reach it and as tokens name it (default http://<host>:<port>/mcp; behind an https reverse proxy, the proxy’s https URL; not with --stdio)', parseHttpUrl)
    .option('--auth-url <url>', 'the authorization server (not with --stdio, which takes --auth-port)', parseIssuerUrl)
    .addOption(new Option('--issuer <url>', 'same as --auth-url').argParser(parseIssuerUrl))
    .option('--calendar-url <url>', 'the calendar backend it reads busy time from (not with --stdio, which takes --calendar-port)', parseHttpUrl)
    .option('--calendar-timeout <wait>', 'how long it waits for the calendar backend: 2s, 500ms (default 5s)', parseWait)
    .addOption(trustProxyOption('; not with --stdio'))
    .addOption(logLevelOption())
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  delegate serve-agent --port 8412 --auth-url http://127.0.0.1:8410 --calendar-url http://127.0.0.1:8411',
        '  delegate serve-agent --url https://agent.example.com/mcp --auth-url https://auth.example.com --calendar-url https://calendar.example.com   # behind an https reverse proxy',
        '  delegate serve-agent --stdio          # what `delegate mcp-config` tells MCP clients to run',
      ].join('\n'),
    )
    .action(async (options: SingleServerOptions & PortOptions & { stdio?: boolean; calendarTimeout?: number }, command: Command) => {
      const logLevel = serveLogLevel(options.logLevel, io.env, globals(command).debug === true);
      if (options.stdio) {
        refuseStdioHostOffLoopback(options.host);
        refuseHttpOptionsWithStdio(options);
        const { serveAgentStdioCommand } = await import('./commands/serve-agent-stdio.js');
        setExitCode(await serveAgentStdioCommand(accessArgs({ ...options, browser: true }, globals(command)), io, logLevel, options.calendarTimeout));
        return;
      }
      // Over HTTP the port options name the same servers as the URL ones: --auth-port N is the authorization server at http://<host>:N.
      const port = sameValue(options.port, '--port', options.agentPort, '--agent-port') ?? DEFAULT_PORTS.agent;
      const defaults = urlsFor({ ...DEFAULT_PORTS, agent: port }, options.host);
      const byPort = urlsFor({ auth: options.authPort ?? DEFAULT_PORTS.auth, calendar: options.calendarPort ?? DEFAULT_PORTS.calendar, agent: port }, options.host);
      const issuer = sameValue(authServerOf(options), options.authUrl !== undefined ? '--auth-url' : '--issuer', options.authPort !== undefined ? byPort.issuer : undefined, '--auth-port');
      const calendarUrl = sameValue(options.calendarUrl, '--calendar-url', options.calendarPort !== undefined ? byPort.calendarUrl : undefined, '--calendar-port');
      refuseHttpUrlsOffLoopback('serve-agent', options.host, [
        ['--url', options.url],
        ['--auth-url', options.authPort === undefined ? issuer : undefined],
        ['--calendar-url', options.calendarPort === undefined ? calendarUrl : undefined],
      ]);
      refuseBadPortReachedDirectly('serve-agent', port, options.url ?? defaults.agentUrl);
      const serve = await loadServe();
      const code = await serve.serveAgent(
        {
          paths: resolvePaths(io.env),
          host: options.host,
          port,
          resourceUrl: options.url ?? defaults.agentUrl,
          issuer: issuer ?? defaults.issuer,
          calendarUrl: calendarUrl ?? defaults.calendarUrl,
          ...trustedProxiesGiven(options),
          logLevel,
          ...(options.calendarTimeout !== undefined ? { calendarTimeoutMs: options.calendarTimeout } : {}),
        },
        io,
      );
      setExitCode(code ?? EXIT_OK);
    });

  registerSessionCommands(program, io, setExitCode);
  registerCalendarCommands(program, io, setExitCode);
  registerDelegationCommands(program, io, setExitCode);
  sayUsageErrorsInOneLine(program, [program.name()]);
  helpWithoutNoise(program);
  return program;
}

/**
 * Every command's --help without what commander adds that says nothing to the reader: "(default: [])" after a
 * repeatable option that starts empty (login --scope, busy --calendar, token exchange --constraint), and "(choices:
 * "busy", "free")" after an option whose value is already spelled `<busy|free>` (--tentative, --on-calendar-error).
 * Found in review (s30). Only the help: the options parse as before (a repeatable one still starts as [], a choice
 * outside its list is still refused).
 */
function helpWithoutNoise(command: Command): void {
  command.configureHelp({
    optionDescription(option: Option): string {
      const quiet: Partial<Option> = {};
      if (Array.isArray(option.defaultValue) && option.defaultValue.length === 0) quiet.defaultValue = undefined;
      if (option.argChoices !== undefined && option.flags.includes(`<${option.argChoices.join('|')}>`)) quiet.argChoices = undefined;
      const shown = Object.keys(quiet).length === 0 ? option : Object.assign(Object.create(Object.getPrototypeOf(option) as object) as Option, option, quiet);
      return Help.prototype.optionDescription.call(this, shown);
    },
  });
  for (const sub of command.commands) helpWithoutNoise(sub);
}

/** Every command's usage errors (commander reports one on the command it was parsing) as usageLine, naming that command's help. */
function sayUsageErrorsInOneLine(command: Command, path: string[]): void {
  command.configureOutput({ outputError: (text, write) => write(usageLine(text, path)) });
  for (const sub of command.commands) sayUsageErrorsInOneLine(sub, [...path, sub.name()]);
}

/**
 * Commander's usage error as one line: "error: unknown command 'bogus'\n(Did
 * you mean logout?)" becomes "delegate: unknown command 'bogus' (did you mean
 * logout?) (see `delegate --help`)", like every other error of the CLI, and
 * says where the command's usage is told (found in review, regress21a:
 * "missing required argument 'name'" and "unknown option '--bogus'" said
 * nothing more).
 */
function usageLine(text: string, path: readonly string[]): string {
  // Joined first (joinedLines: linear, where a pattern of white space around a newline was not), then the suggestion.
  const message = joinedLines(text.replace(/^error: /, '')).replace(/ \(Did you mean/g, ' (did you mean');
  return `delegate: ${message} (see \`${path.join(' ')} --help\`)\n`;
}

/**
 * --log-level on the serve commands (logs go to stderr as JSON lines). Its
 * choices are declared for help and shell completion; parseLogLevel, set after
 * them, still reads a level in any case.
 */
function logLevelOption(): Option {
  return new Option('--log-level <level>', 'server log verbosity (default: $DELEGATE_LOG_LEVEL, else info; debug under --debug)').choices(LOG_LEVELS).argParser(parseLogLevel);
}

/**
 * --trust-proxy on serve-auth, serve-calendar and serve-agent: which peers' X-Forwarded-For names the client, for the
 * per-address limits (sign-in failures, registrations, new metadata-document clients, device requests). Its default
 * (src/cli/commands/serve.ts, trustedProxies) depends on the server's own URL, which serve-auth may take from the
 * data directory, so it is decided there.
 */
function trustProxyOption(extra = ''): Option {
  return new Option(
    '--trust-proxy <addresses>',
    `reverse proxies whose X-Forwarded-For names the client: IP addresses or CIDR ranges, comma-separated (repeatable), "loopback", or "none" (default: loopback when its own URL is https and it listens on loopback, else none${extra})`,
  ).argParser(collectTrustedProxies);
}

/** --trust-proxy as the serve commands take it: only when given. */
function trustedProxiesGiven(options: SingleServerOptions): { trustProxy?: string[] } {
  return options.trustProxy !== undefined ? { trustProxy: options.trustProxy } : {};
}

/**
 * --auth-url or its synonym --issuer; both naming different servers is bad
 * usage (found in review: the first silently won).
 */
function authServerOf(options: SingleServerOptions): string | undefined {
  return sameValue(options.authUrl, '--auth-url', options.issuer, '--issuer');
}

/** The one value two options give (either alone, or both the same); two different ones are bad usage, said in one line. */
function sameValue<T>(value: T | undefined, flag: string, other: T | undefined, otherFlag: string): T | undefined {
  if (value !== undefined && other !== undefined && value !== other) {
    throw new UsageError(`${flag} ${String(value)} and ${otherFlag} ${String(other)} name different servers; give one of them.`);
  }
  return value ?? other;
}

/**
 * serve-agent --stdio finds the servers by port, as find-slot does, and listens
 * on no port: the HTTP mode's --port and URLs would be ignored (found in
 * review), so they are bad usage, naming what to give instead.
 */
function refuseHttpOptionsWithStdio(options: SingleServerOptions): void {
  const instead: Array<[keyof SingleServerOptions, string, string]> = [
    ['port', '--port', 'it listens on no port (--agent-port names the HTTP agent whose delegation it uses)'],
    ['authUrl', '--auth-url', 'give the authorization server’s port with --auth-port'],
    ['issuer', '--issuer', 'give the authorization server’s port with --auth-port'],
    ['calendarUrl', '--calendar-url', 'give the calendar backend’s port with --calendar-port'],
    ['url', '--url', 'it has no URL of its own'],
    ['trustProxy', '--trust-proxy', 'it takes no requests from a proxy'],
  ];
  const given = instead.find(([key]) => options[key] !== undefined);
  if (given) throw new UsageError(`${given[1]} does not apply to serve-agent --stdio: ${given[2]}.`);
}

/**
 * serve-agent --stdio reaches the servers at http://<host>:<port>: plain http, which OAuth allows only on loopback
 * (HTTPS_RULE). Found in review (s18): `serve --host <LAN address>` and its siblings published http URLs to the network.
 */
function refuseStdioHostOffLoopback(host: string): void {
  if (!hostIsLoopback(host)) throw new UsageError(`--host ${host}: serve-agent --stdio reaches the servers at http://<host>:<port>, and ${HTTPS_RULE}; give a loopback address, such as 127.0.0.1.`);
}

/**
 * A server's own URL and those of the servers it reaches, where a flag does not give them, are http://<host>:<port>
 * (serve-auth: or those on record for that host, src/cli/commands/serve.ts): on a host that is not loopback, plain
 * http, which OAuth forbids (HTTPS_RULE; RFC 8414 §2 for the issuer, RFC 9728 §2 for a resource). Found in review
 * (s18). A given URL was already judged by its parser (parseHttpUrl), so --host may be any address once all of them
 * are given: the server behind an https reverse proxy, its public URL given with --issuer or --url, which must then be
 * https. `urls` lists each flag with the value it gave, or undefined when the URL would be made from --host (a
 * --auth-port, say), the server's own first.
 */
function refuseHttpUrlsOffLoopback(command: string, host: string, urls: ReadonlyArray<readonly [string, string | undefined]>): void {
  if (hostIsLoopback(host)) return;
  const missing = urls.filter(([, given]) => given === undefined);
  if (missing.length > 0) {
    const flags = missing.map(([flag]) => flag).join(', ');
    throw new UsageError(`--host ${host} without ${flags}: ${command} would name them http://<host>:<port>, and ${HTTPS_RULE}; give ${flags} as https URLs, or a loopback --host.`);
  }
  // The first is the server's own URL. Published on loopback, nothing off this machine has a reason to reach it: a
  // listener off loopback would only offer plain http to the network (found in review, regress19a: `serve-calendar
  // --host 0.0.0.0 --url http://127.0.0.1:P` answered requests from the LAN that named 127.0.0.1:P as Host).
  const [flag, own] = urls[0]!;
  if (!own!.startsWith('https://')) {
    throw new UsageError(`--host ${host} with ${flag} ${own}: a listener off loopback is for an https reverse proxy, whose URL ${flag} gives; give ${flag} as an https URL, or a loopback --host.`);
  }
}

interface SingleServerOptions {
  port?: number;
  logLevel?: LogLevelName;
  host: string;
  issuer?: string;
  authUrl?: string;
  calendarUrl?: string;
  agentUrl?: string;
  /** serve-calendar's and serve-agent's own URL. */
  url?: string;
  /** --trust-proxy: the reverse proxies whose X-Forwarded-For is believed ([] for none); undefined when not given. */
  trustProxy?: string[];
}

/** Whether --debug appears among the options (before a `--`), even if parsing failed. */
function wantsDebug(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--debug');
}
