// What the commands print from stored data, written there by others (a
// client's name, an agent's reported tool name, a calendar's name): control
// characters are shown as escapes, so a value can neither print a forged line
// nor erase the real one (found in review: `delegate audit` printed a reported
// tool name holding "\n…" as a whole fake record, and "\r\e[2K…" erased the
// line on a terminal; `delegate grants list` did the same with a client_name).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../src/config.js';
import { auditCommand } from '../../src/cli/commands/audit.js';
import { grantsListCommand, grantsShowCommand } from '../../src/cli/commands/grants.js';
import { printable } from '../../src/cli/shown.js';
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
    await store.createGrant({ id: 'grt_1', userId: 'usr_1', clientId: 'cli_evil', resource: 'http://127.0.0.1:9/mcp', scope: 'slots:find', authorizationDetails: [], maxDepth: 1, createdAt: now, expiresAt: now + 86_400_000, revokedAt: null });
    store.close();
    const list = fakeIo(undefined, () => now);
    expect(await grantsListCommand({ paths, all: true, json: false }, list)).toBe(0);
    expect(list.out.split('\n')).toHaveLength(2);
    expect(inert(list.out.replace(/\t/g, ' '))).toBe(true);
    expect(list.out).toContain('via \\r\\e[2Kgrt_fake\\tactive\\tCalendarAgent via delegate CLI\\n');
    const show = fakeIo(undefined, () => now);
    expect(await grantsShowCommand({ paths, id: 'grt_1', json: false }, show)).toBe(0);
    expect(inert(show.out)).toBe(true);
    expect(show.out).toContain('  through:     \\r\\e[2Kgrt_fake');
  });
});
