// The delegation commands of `delegate` (issue 3), registered on the program
// by one call from program.ts: agents, grants, keys, audit, users, and `token
// exchange`. Like every command, each module is imported only when its
// command runs.
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_HOST, DEFAULT_PORTS, resolvePaths, urlsFor } from '../config.js';
import { parseHttpUrl, parseInstant, parseIssuerUrl, parsePort, parseTimeZone, portsFrom, type PortOptions } from './args.js';
import { calendarOption } from './slot-options.js';
import { accessArgs, addAccessOptions, agentUrlFromEnvChecked, type AccessOptions, type GlobalOptions } from './access-options.js';
import { AUDIT_EVENTS } from './audit-events.js';
import { isValidScopeToken, SCOPE_TOKEN_WORDS } from '../delegation/scopes.js';
import { UsageError } from './errors.js';
import type { CliIo } from './io.js';

interface IssuerOptions {
  authPort?: number;
  issuer?: string;
}

function examples(lines: string[]): string {
  return ['', 'Examples:', ...lines.map((l) => `  ${l}`)].join('\n');
}

function issuerOptions(command: Command, defaultPort = `default ${DEFAULT_PORTS.auth}`): Command {
  return command
    .option('--auth-port <port>', `the authorization server's port (${defaultPort})`, parsePort)
    .option('--issuer <url>', 'the authorization server (default http://127.0.0.1:<auth-port>)', parseIssuerUrl);
}

function issuerOf(options: IssuerOptions): string {
  return options.issuer ?? urlsFor({ ...DEFAULT_PORTS, auth: options.authPort ?? DEFAULT_PORTS.auth }, DEFAULT_HOST).issuer;
}

/** The issuer given by --issuer or --auth-port; undefined: the agents commands take the one the data directory's servers use. */
function givenIssuer(options: IssuerOptions): string | undefined {
  return options.issuer !== undefined || options.authPort !== undefined ? issuerOf(options) : undefined;
}

/** The agents commands' default port: the data directory's, where its servers last ran. */
const RECORDED_PORT = `default: the one this data directory's servers use, else ${DEFAULT_PORTS.auth}`;

const collect = (value: string, prior: string[] = []): string[] => [...prior, value];

/**
 * `agents register --scope`: one scope-token (RFC 6749 §3.3) each time. Found in review (regress21e): 'agenda:write '
 * and 'x"y' were registered, which no authorization request could then name.
 */
function agentScope(value: string, prior: string[] = []): string[] {
  if (!isValidScopeToken(value)) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a scope: ${SCOPE_TOKEN_WORDS}`);
  return [...prior, value];
}

function agentId(value: string): string {
  if (!/^[a-z0-9][a-z0-9._-]{1,63}$/.test(value)) throw new InvalidArgumentError('An agent id is 2–64 lower-case letters, digits, dots, dashes or underscores.');
  return value;
}

export function registerDelegationCommands(program: Command, io: CliIo, setExitCode: (code: number) => void): void {
  const paths = () => resolvePaths(io.env);

  const agents = program
    .command('agents')
    .description('Register and inspect the agents users can delegate to (administrator).')
    .addHelpText('after', examples(['delegate agents list', 'delegate agents show calendar-agent', 'delegate agents register helper --url http://127.0.0.1:9000/mcp --key helper.pub.json …']));
  issuerOptions(
    agents
      .command('register')
      .description('Register an agent: bind it to its resource URL and key; the authorization server signs its identity statement.')
      .argument('<id>', 'the agent’s client id', agentId)
      .requiredOption('--url <url>', 'the resource URL it serves (the audience of tokens for it)', parseHttpUrl)
      .requiredOption('--key <file>', 'its ES256 (P-256) public (or private) key as a JWK file; its kid, or else its RFC 7638 thumbprint, names it')
      .requiredOption('--name <name>', 'its name, as users will see it')
      .option('--software-id <id>', 'software identifier', 'unknown')
      .option('--software-version <version>', 'software version', '0')
      .requiredOption('--operator <name>', 'who runs it')
      .requiredOption('--contact <contact>', 'how to reach its operator')
      .requiredOption('--description <text>', 'what it does, in a sentence')
      .option('--limitation <text>', 'something it will not do (repeatable)', collect, [])
      .option('--scope <scope>', 'a scope users can grant at its URL (repeatable)', agentScope, [])
      .option('--calendar-url <url>', 'a calendar backend it reads free/busy time from (repeatable)', (v: string, p: string[] = []) => [...p, parseHttpUrl(v)], [])
      .option('--json', 'print the registration as JSON'),
    RECORDED_PORT,
  )
    .addHelpText('after', examples(['delegate agents register helper --url http://127.0.0.1:9000/mcp --key helper.pub.json --name Helper --operator "Ops" --contact ops@example.com --description "Drafts agendas" --scope agenda:write']))
    .action(async (id: string, o: Record<string, unknown> & IssuerOptions) => {
      const { agentsRegisterCommand } = await import('./commands/agents.js');
      const issuer = givenIssuer(o);
      setExitCode(
        await agentsRegisterCommand(
          {
            paths: paths(),
            ...(issuer !== undefined ? { issuer } : {}),
            id,
            url: String(o.url),
            keyFile: String(o.key),
            name: String(o.name),
            softwareId: String(o.softwareId),
            softwareVersion: String(o.softwareVersion),
            operator: String(o.operator),
            contact: String(o.contact),
            description: String(o.description),
            limitations: o.limitation as string[],
            scopes: o.scope as string[],
            calendars: o.calendarUrl as string[],
            json: o.json === true,
          },
          io,
        ),
      );
    });
  agents
    .command('list')
    .description('List the registered agents.')
    .option('--json', 'print JSON')
    .addHelpText('after', examples(['delegate agents list', 'delegate agents list --json']))
    .action(async (o: { json?: boolean }) => {
      const { agentsListCommand } = await import('./commands/agents.js');
      setExitCode(await agentsListCommand({ paths: paths(), json: o.json === true }, io));
    });
  issuerOptions(agents.command('show').description('Show an agent and verify its identity statement.').argument('<id>', 'the agent’s client id').option('--json', 'print JSON'), RECORDED_PORT)
    .addHelpText('after', examples(['delegate agents show calendar-agent', 'delegate agents show helper --auth-port 9410']))
    .action(async (id: string, o: { json?: boolean } & IssuerOptions) => {
      const { agentsShowCommand } = await import('./commands/agents.js');
      const issuer = givenIssuer(o);
      setExitCode(await agentsShowCommand({ paths: paths(), id, json: o.json === true, ...(issuer !== undefined ? { issuer } : {}) }, io));
    });

  const grants = program
    .command('grants')
    .description('List, inspect and revoke the delegations you have given.')
    .addHelpText('after', examples(['delegate grants list', 'delegate grants show grt_…', 'delegate grants revoke grt_…']));
  grants
    .command('list')
    .description('List your active grants (--all: revoked and expired ones too).')
    .option('--all', 'include revoked and expired grants')
    .option('--user <name>', 'another account’s grants (administrator): its name (exactly, else in any case when that names one account), or its usr_… id (a removed account’s by its id, or by its old name when no account has that name now)')
    .option('--json', 'print JSON')
    .addHelpText('after', examples(['delegate grants list', 'delegate grants list --all --json']))
    .action(async (o: { all?: boolean; user?: string; json?: boolean }) => {
      const { grantsListCommand } = await import('./commands/grants.js');
      setExitCode(await grantsListCommand({ paths: paths(), all: o.all === true, json: o.json === true, ...(o.user !== undefined ? { user: o.user } : {}) }, io));
    });
  grants
    .command('show')
    .description('Show one grant: agent, client, scopes, limits, expiry.')
    .argument('<id>', 'the grant id (grt_…)')
    .option('--json', 'print JSON')
    .addHelpText('after', examples(['delegate grants show grt_…']))
    .action(async (id: string, o: { json?: boolean }) => {
      const { grantsShowCommand } = await import('./commands/grants.js');
      setExitCode(await grantsShowCommand({ paths: paths(), id, json: o.json === true }, io));
    });
  grants
    .command('revoke')
    .description('Revoke a grant: every token derived from it stops working, everywhere.')
    .argument('<id>', 'the grant id (grt_…)')
    .addHelpText('after', examples(['delegate grants revoke grt_…']))
    .action(async (id: string) => {
      const { grantsRevokeCommand } = await import('./commands/grants.js');
      setExitCode(await grantsRevokeCommand({ paths: paths(), id }, io));
    });

  const keys = program
    .command('keys')
    .description("Rotate the authorization server's signing key (administrator).")
    .addHelpText('after', examples(['delegate keys rotate', 'delegate keys rotate --now   # the key leaked']));
  keys
    .command('rotate')
    .description('Sign with a new key from now on; the old one stays published until its tokens expire (--now: withdrawn at once).')
    .option('--now', 'the old key leaked: withdraw it at once, so that no token it signed is accepted any longer')
    .option('--json', 'print JSON')
    .addHelpText('after', examples(['delegate keys rotate', 'delegate keys rotate --now --json']))
    .action(async (o: { now?: boolean; json?: boolean }) => {
      const { keysRotateCommand } = await import('./commands/keys.js');
      setExitCode(await keysRotateCommand({ paths: paths(), now: o.now === true, json: o.json === true }, io));
    });

  program
    .command('audit')
    .description(
      'Show who acted for whom, through which chain, on what, and when; --verify checks that no record inside the hash chain was changed, removed, inserted or moved, and that no trigger in the database acts on the log (a cut tail or a rewritten chain shows only against a head kept elsewhere: --head).',
    )
    .option('--grant <id>', 'only records of this grant')
    .option('--client <id>', 'only records of this client: an agent’s id, a client’s cli_…, or the URL a client metadata document names it by (repeatable)', collect)
    .addOption(
      // Choices for help and shell completion; the parser, set after them, also takes a comma list (checked by the command).
      new Option('--event <name>', 'only records of this event (repeatable, or a comma list)').choices(AUDIT_EVENTS).argParser((v: string, p: string[] = []) => [...p, ...v.split(',')]),
    )
    .option('--user <name>', 'only records for this account: its name (exactly, else in any case when that names one account), or its usr_… id (a removed account’s by its id, or by its old name when no account has that name now)')
    .option('--since <when>', 'only records since a time (ISO 8601; without an offset, UTC, as the lines print it; a date: from its start) or a span back from now (90s, 30m, 2h, 7d)')
    .option('--until <when>', 'only records until a time (ISO 8601; without an offset, UTC; a date: to its end, as find-slot --to reads it) or a span back from now')
    .option('--json', 'print JSON')
    .option('--verify', 'check the hash chain and name the first edited, deleted, inserted or reordered record; prints the head to keep elsewhere')
    .option('--head <hash>', 'with --verify: a head an earlier --verify printed (at least its first 32 hex digits); the chain must still hold it, or the log was cut or rewritten')
    .addHelpText(
      'after',
      examples([
        'delegate audit --since 1h',
        'delegate audit --grant grt_… --json',
        'delegate audit --event tool_call,freebusy_read --since 1d',
        'delegate audit --client calendar-agent --since 1d',
        'delegate audit --event consent,grant_revoked --user alice',
        'delegate audit --event sign_in_failed --since 2026-05-01 --until 2026-05-02   # 1 and 2 May, UTC',
        'delegate audit --verify',
        'delegate audit --verify --json | jq -r .head >> ~/audit-heads',
        'delegate audit --verify --head "$(tail -1 ~/audit-heads)"',
      ]),
    )
    .action(async (o: { grant?: string; client?: string[]; event?: string[]; user?: string; since?: string; until?: string; json?: boolean; verify?: boolean; head?: string }) => {
      const { auditCommand } = await import('./commands/audit.js');
      setExitCode(
        await auditCommand(
          {
            paths: paths(),
            json: o.json === true,
            verify: o.verify === true,
            ...(o.grant !== undefined ? { grant: o.grant } : {}),
            ...(o.head !== undefined ? { head: o.head } : {}),
            ...(o.client ? { clients: o.client } : {}),
            ...(o.event ? { events: o.event } : {}),
            ...(o.user !== undefined ? { user: o.user } : {}),
            // An empty --since is bad usage, as an empty --until is (found in review, s33audit: it was dropped, and the whole log listed).
            ...(o.since !== undefined ? { since: o.since } : {}),
            ...(o.until !== undefined ? { until: o.until } : {}),
          },
          io,
        ),
      );
    });

  addAccessOptions(
    program
      .command('busy')
      .description('List when you are busy (no event details), through CalendarAgent; the first time, it asks for that permission (busy:read).')
      .option('--from <when>', 'start of the window (ISO 8601; default now)', parseInstant)
      .option('--to <when>', 'end of the window (ISO 8601; default 7 days after the start)', parseInstant)
      .option('--tz <zone>', 'IANA time zone of the answer', parseTimeZone)
      .option('--calendar <name>', 'only this calendar (repeatable)', calendarOption, [])
      .option('--json', 'print {"timeZone","window","busy"} on stdout'),
  )
    .addHelpText(
      'after',
      examples([
        'delegate busy',
        'delegate busy --from 2026-12-01 --to 2026-12-05 --json',
        'delegate busy --no-browser --redirect-port 8765   # with ssh -L 8765:127.0.0.1:8765 from the computer with the browser',
        'delegate login --device --scope busy:read          # allow it from any device first; busy then asks nothing',
      ]),
    )
    .action(async (o: AccessOptions & { from?: string; to?: string; tz?: string; calendar: string[]; json?: boolean }, command: Command) => {
      const { busyCommand } = await import('./commands/busy.js');
      setExitCode(
        await busyCommand(
          {
            ...accessArgs(o, command.optsWithGlobals<GlobalOptions>(), io.env),
            json: o.json === true,
            calendars: o.calendar,
            ...(o.from !== undefined ? { from: o.from } : {}),
            ...(o.to !== undefined ? { to: o.to } : {}),
            ...(o.tz !== undefined ? { timeZone: o.tz } : {}),
          },
          io,
        ),
      );
    });

  const users = program
    .command('users')
    .description('Named accounts for server mode (administrator).')
    .addHelpText('after', examples(["printf '%s' \"$PASSWORD\" | delegate users add alice", 'delegate users list', 'delegate users remove alice']));
  users
    .command('add')
    .description('Add an account; the password is read from stdin (typed at a terminal without being shown, or piped, less one final line break); one holding a line break or other control character is refused.')
    .argument('<name>', 'the account’s name')
    .option('--time-zone <zone>', 'its IANA time zone (default: this computer’s; with --replace, the account’s new zone)', parseTimeZone)
    .option('--replace', 'set the password of an existing account (and its zone, with --time-zone); its delegations stand, and are said')
    .addHelpText('after', examples(['delegate users add carol', "printf '%s' \"$PASSWORD\" | delegate users add alice", 'delegate users add bob < password.txt']))
    .action(async (name: string, o: { timeZone?: string; replace?: boolean }) => {
      const { usersAddCommand } = await import('./commands/users.js');
      setExitCode(await usersAddCommand({ paths: paths(), name, replace: o.replace === true, ...(o.timeZone ? { timeZone: o.timeZone } : {}) }, io));
    });
  users
    .command('list')
    .description('List the accounts: name, local owner or not, time zone (the local owner’s: config.json’s timeZone when it has one), active grants, when added and last signed in (never a password).')
    .option('--all', 'also the accounts users remove retired, shown as "alice (removed)" with when (--json: user_removed_at)')
    .option('--json', 'print JSON')
    .addHelpText('after', examples(['delegate users list', 'delegate users list --all', 'delegate users list --json']))
    .action(async (o: { all?: boolean; json?: boolean }) => {
      const { usersListCommand } = await import('./commands/users.js');
      setExitCode(await usersListCommand({ paths: paths(), json: o.json === true, all: o.all === true }, io));
    });
  users
    .command('remove')
    .description(
      'Remove an account: revoke its grants (their tokens refused everywhere), end its sessions, remove its calendars; the name is free again, for a new account that inherits nothing. Asks first at a terminal.',
    )
    .argument('<name>', 'the account’s name (exactly, where two differ only in case)')
    .option('--yes', 'remove it without asking (needed without a terminal)')
    .addHelpText('after', examples(['delegate users remove alice', 'delegate users remove alice --yes   # in a script']))
    .action(async (name: string, o: { yes?: boolean }) => {
      const { usersRemoveCommand } = await import('./commands/users.js');
      setExitCode(await usersRemoveCommand({ paths: paths(), name, yes: o.yes === true }, io));
    });
  users
    .command('set-time-zone')
    .description('Change an account’s time zone, and nothing else (its password stays).')
    .argument('<name>', 'the account’s name (in any case; exactly, where two differ only in case)')
    .argument('<zone>', 'its new IANA time zone, such as Europe/Berlin or UTC', parseTimeZone)
    .addHelpText('after', examples(['delegate users set-time-zone alice America/New_York']))
    .action(async (name: string, zone: string) => {
      const { usersSetTimeZoneCommand } = await import('./commands/users.js');
      setExitCode(await usersSetTimeZoneCommand({ paths: paths(), name, timeZone: zone }, io));
    });

  const token = program.commands.find((c) => c.name() === 'token');
  if (!token) throw new Error('the token command must be registered before its exchange subcommand');
  issuerOptions(
    token
      .command('exchange')
      .description('Trade a token for a narrower one (RFC 8693) to hand to a sub-agent; prints it on stdout.')
      .requiredOption('--audience <url>', 'where the new token will be used', parseHttpUrl)
      .option('--scope <scope>', 'the scope, no wider than the parent token allows there')
      .option('--constraint <k=v>', 'narrow one limit, the others staying the token’s: calendars=NAME[,NAME…] or lookahead_days=N (1 to 366) (repeatable)', collect, [])
      .option('--subject-token <->', '- reads the token to narrow from stdin; nothing else is taken, never the token itself (other users can read command lines)')
      .option('--subject-token-file <file>', 'read the token to narrow from this file (0600) (default for both: DELEGATE_TOKEN, else your stored token for CalendarAgent)')
      .option('--as <agent>', 'the registered agent making the exchange', agentId, 'calendar-agent')
      .option('--key <file>', 'that agent’s private key as a JWK file, the one it was registered with (no kid: its thumbprint) (default: CalendarAgent’s key in the data directory; needed with any other --as)')
      .option('--for <agent>', 'the sub-agent that may exchange the new token in turn (may_act)', agentId)
      .option('--agent-port <port>', `CalendarAgent's port, for your stored token (default ${DEFAULT_PORTS.agent}; or --agent-url URL, the agent published at that URL)`, parsePort)
      .option('--json', 'print the whole token response'),
    `default ${DEFAULT_PORTS.auth}; with --agent-url, the one its stored sign-in was made at`,
  )
    .addHelpText(
      'after',
      examples([
        'delegate token exchange --audience http://127.0.0.1:8411 --scope freebusy:read --constraint lookahead_days=3',
        'delegate token exchange --audience http://127.0.0.1:8411 --constraint calendars=work --for helper',
        'delegate token exchange --audience http://127.0.0.1:8411 --for helper | helper-agent --token -',
        'delegate token exchange --as helper --key helper.key.json --subject-token - --audience http://127.0.0.1:8411 < handed.txt',
        'delegate token exchange --as helper --key helper.key.json --subject-token-file handed.txt --audience http://127.0.0.1:8411',
      ]),
    )
    .action(async (own: Record<string, unknown> & IssuerOptions, command: Command) => {
      const { storedSignInIssuer, storedSubjectToken, tokenExchangeCommand } = await import('./commands/token-exchange.js');
      // `token` has its own port options (and --agent-url); whichever command parsed them, use them.
      const o = { ...command.optsWithGlobals<Record<string, unknown> & IssuerOptions>(), ...own };
      const ports = portsFrom(o as PortOptions);
      // --agent-url names the agent whose stored sign-in is narrowed (found in review, s33deleg: taken, and ignored);
      // beside a port of the servers on this machine it names two places for one agent, as for `token`.
      const portGiven = o.agentPort !== undefined ? '--agent-port' : o.calendarPort !== undefined ? '--calendar-port' : undefined;
      if (typeof o.agentUrl === 'string' && portGiven !== undefined) {
        throw new UsageError(`--agent-url names CalendarAgent by its URL, and ${portGiven} delegate's servers on this machine; give one of them.`);
      }
      // Else DELEGATE_AGENT_URL, as `token` takes it, unless a port names the agent on this machine (noticed in review,
      // s33deleg: `token` honoured it and `token exchange` did not).
      const agentUrl = typeof o.agentUrl === 'string' ? o.agentUrl : portGiven === undefined ? agentUrlFromEnvChecked(io.env) : undefined;
      // The global --profile too, as every other command (noticed at stop 19: only DELEGATE_PROFILE counted here).
      const profile = typeof o.profile === 'string' ? o.profile : undefined;
      const audience = String(o.audience);
      const access = {
        ports,
        host: DEFAULT_HOST,
        browser: false,
        debug: o.debug === true,
        ...(agentUrl !== undefined ? { agentUrl } : {}),
        ...(profile !== undefined ? { profile } : {}),
        // This command as given, but for where the agent is (the advice adds the ports or --agent-url, and the
        // profile): what a sign-in stored for another agent is used by (agent-access.ts otherSignIns).
        command: [
          'token',
          'exchange',
          '--audience',
          audience,
          ...(o.scope ? ['--scope', String(o.scope)] : []),
          ...(o.constraint as string[]).flatMap((c) => ['--constraint', c]),
          ...(o.as !== 'calendar-agent' ? ['--as', String(o.as)] : []),
          ...(o.key ? ['--key', String(o.key)] : []),
          ...(o.for ? ['--for', String(o.for)] : []),
          ...(o.issuer !== undefined ? ['--issuer', o.issuer] : o.authPort !== undefined ? ['--auth-port', String(o.authPort)] : []),
          ...(o.json === true ? ['--json'] : []),
        ],
      };
      setExitCode(
        await tokenExchangeCommand(
          {
            paths: paths(),
            issuer: issuerOf(o),
            ...(agentUrl !== undefined && givenIssuer(o) === undefined ? { signInIssuer: () => storedSignInIssuer(agentUrl, access, io) } : {}),
            audience,
            constraints: o.constraint as string[],
            as: String(o.as),
            json: o.json === true,
            ...(o.scope ? { scope: String(o.scope) } : {}),
            ...(o.subjectToken ? { subjectToken: String(o.subjectToken) } : {}),
            ...(o.subjectTokenFile ? { subjectTokenFile: String(o.subjectTokenFile) } : {}),
            ...(o.key ? { keyFile: String(o.key) } : {}),
            ...(o.for ? { forAgent: String(o.for) } : {}),
            storedToken: () => storedSubjectToken(access, io),
          },
          io,
        ),
      );
    });
}
