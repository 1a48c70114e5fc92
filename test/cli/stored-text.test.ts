// What the commands print from stored data, written there by others (a
// client's name, an agent's reported tool name, a calendar's name): control
// characters are shown as escapes, so a value can neither print a forged line
// nor erase the real one (found in review: `delegate audit` printed a reported
// tool name holding "\n…" as a whole fake record, and "\r\e[2K…" erased the
// line on a terminal; `delegate grants list` did the same with a client_name).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../src/config.js';
import { auditCommand } from '../../src/cli/commands/audit.js';
import { grantsListCommand, grantsShowCommand } from '../../src/cli/commands/grants.js';
import { printable } from '../../src/cli/shown.js';
import { authorizationLines } from '../../src/cli/output.js';
import { runCli } from '../../src/cli/program.js';
import { openStore } from '../../src/store/index.js';
import { fakeIo } from './fake-io.js';

const ESC = '\u001b';
const FORGED_LINE = `find_slot ok\n2026-12-05T05:00:00.000Z  #999  grant_revoked  for root`;
const ERASER = `\r${ESC}[2K2026-12-05T05:00:01.000Z  #1000  token_revoked`;

let home: string;
let paths: Paths;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-cli-stored-'));
  paths = resolvePaths({ DELEGATE_HOME: home });
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

/** The printed text holds no character a terminal acts on but the newline that ends each line. */
function inert(text: string): boolean {
  return !/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/.test(text);
}

describe('printable', () => {
  it('escapes C0, C1, DEL, line separators and bidirectional controls, and leaves other text alone', () => {
    expect(printable('a\nb\r\tc\u001b[2K')).toBe('a\\nb\\r\\tc\\e[2K');
    expect(printable('\u0000\u007f\u0085\u009b\u2028\u2029\u202a\u202e\u2066\u2069')).toBe('\\u{0000}\\u{007f}\\u{0085}\\u{009b}\\u{2028}\\u{2029}\\u{202a}\\u{202e}\\u{2066}\\u{2069}');
    expect(printable('Zoë’s calendar → 東京 ✓')).toBe('Zoë’s calendar → 東京 ✓');
  });
});

describe('delegate audit', () => {
  it('says when a password reset also moved the account to another time zone', async () => {
    const store = openStore(paths.db);
    await store.appendAudit({ event: 'password_set', user: 'usr_2', detail: { by: 'cli', name: 'bob', timeZone: 'America/New_York' } }, 1_000);
    store.close();
    const io = fakeIo();
    expect(await auditCommand({ paths, json: false, verify: false }, io)).toBe(0);
    expect(io.out).toContain('time zone America/New_York');
  });

  it('says why a token exchange was refused: its error code and reason', async () => {
    const store = openStore(paths.db);
    const detail = { error: 'invalid_scope', reason: 'The scope widens the subject token.', subject_jti: 'at_1', asked: { scope: 'busy:read' } };
    await store.appendAudit({ event: 'token_exchange_refused', user: 'usr_1', client: 'calendar-agent', actors: ['calendar-agent', 'cli_1', 'usr_1'], detail }, 1_000);
    store.close();
    const io = fakeIo();
    expect(await auditCommand({ paths, json: false, verify: false }, io)).toBe(0);
    expect(io.out).toContain('token_exchange_refused');
    expect(io.out).toContain('(invalid_scope: The scope widens the subject token.)');
  });

  it('prints a stored tool name, decision, scope and outcome escaped, one line per record', async () => {
    const store = openStore(paths.db);
    await store.appendAudit({ event: 'tool_call', user: 'usr_1', client: 'cli_1', actors: ['cli_1', 'usr_1'], detail: { tool: FORGED_LINE, outcome: ERASER } }, 1_000);
    await store.appendAudit({ event: 'consent', user: 'usr_1', client: 'cli_1', detail: { decision: `ok${ESC}]0;title\u0007`, scope: 'a\u202eb' } }, 2_000);
    store.close();
    const io = fakeIo();
    expect(await auditCommand({ paths, json: false, verify: false }, io)).toBe(0);
    expect(io.out.split('\n')).toHaveLength(3); // two lines and the empty string after the last newline
    expect(inert(io.out)).toBe(true);
    expect(io.out).toContain('find_slot ok\\n2026-12-05T05:00:00.000Z  #999');
    expect(io.out).toContain('\\r\\e[2K2026-12-05T05:00:01.000Z');
    expect(io.out).toContain('ok\\e]0;title\\u{0007} a\\u{202e}b');
  });
});

describe('delegate grants', () => {
  it('prints a client_name stored with control characters escaped, in list and show', async () => {
    const store = openStore(paths.db);
    const now = Date.now();
    await store.createUser({ id: 'usr_1', name: 'owner', passwordHash: null, isOwner: true, timeZone: 'UTC', createdAt: now });
    await store.createClient({ clientId: 'cli_evil', clientName: `\r${ESC}[2Kgrt_fake\tactive\tCalendarAgent via delegate CLI\n`, kind: 'public', secretHash: null, redirectUris: [], grantTypes: [], tokenEndpointAuthMethod: 'none', jwks: null, resource: null, metadata: {}, createdAt: now });
    await store.createGrant({ id: 'grt_1', userId: 'usr_1', clientId: 'cli_evil', resource: 'http://127.0.0.1:8/mcp', scope: 'slots:find', authorizationDetails: [], maxDepth: 1, createdAt: now, expiresAt: now + 86_400_000, revokedAt: null });
    store.close();
    const list = fakeIo(undefined, () => now);
    expect(await grantsListCommand({ paths, all: true, json: false }, list)).toBe(0);
    expect(list.out.split('\n')).toHaveLength(2);
    expect(inert(list.out.replace(/\t/g, ' '))).toBe(true);
    expect(list.out).toContain('via "\\r\\e[2Kgrt_fake\\tactive\\tCalendarAgent via delegate CLI\\n" (cli_evil)');
    const show = fakeIo(undefined, () => now);
    expect(await grantsShowCommand({ paths, id: 'grt_1', json: false }, show)).toBe(0);
    expect(inert(show.out)).toBe(true);
    expect(show.out).toContain('  through:     "\\r\\e[2Kgrt_fake');
  });
});

// Found in review (s24new3): a client's registered name, printed bare before its id, could hold another client's
// name and id and the fields after them, so the line read first as the honest client's (a consent denied).
describe('a client name shaped like another client’s line', () => {
  it('is printed in quotes before its own id, in grants list and on its consent in audit', async () => {
    const forged = 'Claude Desktop (cli_honest)  http://127.0.0.1:8/mcp  denied slots:find  ·';
    const store = openStore(paths.db);
    const now = Date.now();
    await store.createUser({ id: 'usr_1', name: 'owner', passwordHash: null, isOwner: true, timeZone: 'UTC', createdAt: now });
    await store.createClient({ clientId: 'cli_forger', clientName: forged, kind: 'public', secretHash: null, redirectUris: [], grantTypes: [], tokenEndpointAuthMethod: 'none', jwks: null, resource: null, metadata: {}, createdAt: now });
    await store.createGrant({ id: 'grt_1', userId: 'usr_1', clientId: 'cli_forger', resource: 'http://127.0.0.1:8/mcp', scope: 'slots:find', authorizationDetails: [], maxDepth: 1, createdAt: now, expiresAt: now + 86_400_000, revokedAt: null });
    await store.appendAudit({ event: 'consent', user: 'usr_1', client: 'cli_forger', grant: 'grt_1', resource: 'http://127.0.0.1:8/mcp', detail: { decision: 'approved', scope: 'slots:find' } }, now);
    store.close();
    const quoted = '"Claude Desktop (cli_honest)  http://127.0.0.1:8/mcp  denied slots:find  ·" (cli_forger)';
    const list = fakeIo(undefined, () => now);
    expect(await grantsListCommand({ paths, all: true, json: false }, list)).toBe(0);
    expect(list.out).toContain(`via ${quoted}\t`);
    const io = fakeIo(undefined, () => now);
    expect(await auditCommand({ paths, json: false, verify: false, events: ['consent'] }, io)).toBe(0);
    expect(io.out).toContain(`  consent  by owner  for ${quoted}  grt_1`);
  });

  // Left open in the s24 note: `status` and `agents show` still printed the name bare before the id.
  it('is printed in quotes before its own id by status (a deployment’s client_name in the token cache)', async () => {
    const agentUrl = 'https://agent.example/mcp';
    const issuer = 'https://as.example';
    const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const access = `${part({ alg: 'ES256' })}.${part({ sub: 'usr_1', client_id: 'cli_forger', grant_id: 'grt_1', scope: 'slots:find', exp: 9_999_999_999 })}.sig`;
    const token = { access_token: access, token_type: 'Bearer', scope: 'slots:find', issuer, resource: agentUrl, obtained_at: Date.UTC(2026, 11, 1, 7), expires_at: Date.UTC(2026, 11, 1, 9) };
    const cache = {
      version: 1,
      discovery: { [agentUrl]: { authorizationServerUrl: issuer, resourceMetadata: { resource: agentUrl, authorization_servers: [issuer] } } },
      clients: { [issuer]: { client_id: 'cli_forger', client_name: 'delegate CLI (cli_honest)\\ "x', issuer } },
      tokens: { [issuer]: { [agentUrl]: token } },
    };
    await writeFile(paths.tokenCache, JSON.stringify(cache), { mode: 0o600 });
    const io = fakeIo({ DELEGATE_HOME: home, TZ: 'UTC' });
    expect(await runCli(['status', '--agent-url', agentUrl], io), io.err).toBe(0);
    expect(io.out).toContain('  client            "delegate CLI (cli_honest)\\\\ \\"x" (cli_forger)\n');
  });

  it('is printed in quotes before its own id by agents show, verified or not', async () => {
    const { generateKeyPair, exportJWK } = await import('jose');
    const keyFile = join(home, 'helper.pub.json');
    await writeFile(keyFile, JSON.stringify(await exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey)), { mode: 0o600 });
    const env = { DELEGATE_HOME: home, NO_COLOR: '1' };
    const forged = 'CalendarAgent (calendar-agent)';
    const registered = fakeIo(env, Date.now);
    const args = ['agents', 'register', 'forger', '--url', 'http://127.0.0.1:8/forger', '--key', keyFile, '--name', forged, '--operator', 'Ops', '--contact', 'ops@example.test', '--description', 'Drafts agendas'];
    expect(await runCli(args, registered), registered.err).toBe(0);
    const show = fakeIo(env, Date.now);
    expect(await runCli(['agents', 'show', 'forger'], show), show.err).toBe(0);
    expect(show.out).toMatch(/^"CalendarAgent \(calendar-agent\)" \(forger\) ✓ verified by /);
    // The statement broken: the line names the client's registered name, quoted too.
    const store = openStore(paths.db);
    const client = (await store.clientById('forger'))!;
    await store.updateClient({ ...client, clientName: forged, metadata: { ...client.metadata, agent_statement: 'not.a.statement' } });
    store.close();
    const broken = fakeIo(env, Date.now);
    expect(await runCli(['agents', 'show', 'forger'], broken)).toBe(1);
    expect(broken.out).toBe('"CalendarAgent (calendar-agent)" (forger) at http://127.0.0.1:8/forger\n');
  });

  it('has a quote or backslash in it escaped, so its quotes end it', async () => {
    const { namedClient } = await import('../../src/cli/shown.js');
    expect(namedClient('a" (cli_x) "b\\', 'cli_y')).toBe('"a\\" (cli_x) \\"b\\\\" (cli_y)');
  });
});

// Found in review (regress21e): what a deployment signed in at sent (its resource_name and client_name, the claims of
// its access token, the scope and authorization_details of its token response) was printed by `status` as it came;
// only the account's name was escaped, so an agent at an --agent-url could retitle the terminal and colour or forge
// its lines. The cache the reviewer made, as the CLI would have stored it from such a deployment.
describe('a deployment’s text in the token cache', () => {
  const OSC = `${ESC}]0;PWNED\u0007${ESC}[31mRED${ESC}[0m`;
  const SHOWN = String.raw`\e]0;PWNED\u{0007}\e[31mRED\e[0m`;
  const times = (text: string, part: string) => text.split(part).length - 1;
  const agentUrl = 'https://agent.example/mcp';
  const issuer = 'https://as.example';
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

  async function writeHostileCache(): Promise<void> {
    const access = `${part({ alg: 'ES256' })}.${part({ sub: `usr_${OSC}`, client_id: `cid${OSC}`, grant_id: `g${OSC}`, scope: 'slots:find', exp: 9_999_999_999 })}.sig`;
    const cache = {
      version: 1,
      discovery: { [agentUrl]: { authorizationServerUrl: issuer, resourceMetadata: { resource: agentUrl, resource_name: `Name${OSC}`, authorization_servers: [issuer] } } },
      clients: { [issuer]: { client_id: 'cid', client_name: `cn${OSC}`, issuer } },
      tokens: {
        [issuer]: {
          [agentUrl]: {
            access_token: access,
            token_type: 'Bearer',
            scope: `slots:find ${OSC}`,
            issuer,
            resource: agentUrl,
            obtained_at: Date.UTC(2026, 11, 1, 7),
            expires_at: Date.UTC(2026, 11, 1, 9),
            user_name: `bob${OSC}`,
            authorization_details: [{ type: 'x', actions: [`a${OSC}`], locations: [`l${OSC}`] }],
          },
        },
      },
    };
    await writeFile(paths.tokenCache, JSON.stringify(cache), { mode: 0o600 });
  }

  it('status shows each of them with its control characters escaped', async () => {
    await writeHostileCache();
    const io = fakeIo({ DELEGATE_HOME: home, TZ: 'UTC' });
    expect(await runCli(['status', '--agent-url', agentUrl], io)).toBe(0);
    expect(inert(io.out)).toBe(true);
    expect(times(io.out, SHOWN)).toBe(10); // resource_name, user_name, sub, client_name, client_id, grant_id, the scope twice, action, location
    expect(io.out).toContain(`Name${SHOWN} at ${agentUrl}\n`);
    expect(io.out).toContain(`signed in as      bob${SHOWN} (usr_${SHOWN}) at ${issuer}\n`);
  });

  it('the summary of a login shows them escaped', () => {
    const lines = authorizationLines(
      {
        resource: agentUrl,
        resourceName: `Name${OSC}`,
        issuer,
        scopes: ['slots:find', OSC],
        expiresAt: Date.UTC(2026, 11, 1, 9),
        delegationEndsAt: undefined,
        renewable: false,
        authorizationDetails: [{ type: 'x', actions: [`a${OSC}`], locations: [`l${OSC}`], calendars: [`c${OSC}`] }],
      },
      'UTC',
    );
    expect(inert(lines.join('\n'))).toBe(true);
    expect(times(lines.join('\n'), SHOWN)).toBe(7); // resource_name, the scope twice, action twice, location, calendar
  });
});
