// Issue 3 end to end, as an administrator and a user run it: the built CLI
// against `delegate serve` on spare ports. Agents are registered and their
// identity statements verified; the user's grant is listed; a sub-agent gets a
// narrower token by exchange and its calls show in the chain and the audit
// log; exchanges that would widen are refused naming the bound; a
// `--constraint` narrows only what it names; a sub-agent key without a kid
// works on both sides (its thumbprint); revoking the
// grant ends every derived token at both resource servers; a tampered audit
// log is caught; an account is added with its password from stdin.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { es256Key } from '../support/authz.js';
import { ONE_HELPER_AGENT } from '../support/owner-flow.js';
import { freePort } from '../support/ports.js';
import { builtModule, delegateBin, repoRoot } from './built.js';
import { approveInBrowser, killLeftovers, runCli, startCli, startServer, type Running } from './run.js';

let home: string;
let ports: string[];
let issuer: string;
let calendarUrl: string;
let serve: Running;
let helperKeyFile: string;

beforeAll(async () => {
  builtModule('cli/main.js');
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-delegation-')), 'home');
  const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
  ports = ['--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)];
  issuer = `http://127.0.0.1:${auth}`;
  calendarUrl = `http://127.0.0.1:${calendar}`;
  serve = await startServer(['serve', ...ports], home);
  // The hand-offs below (token exchange --for) need a helper agent allowed: chosen on the consent page, as the
  // docs say, since a first consent preselects "No — only CalendarAgent itself".
  const login = startCli(['login', '--no-browser', ...ports], home);
  await approveInBrowser(await login.loginUrl, 'approve', ONE_HELPER_AGENT);
  expect((await login.done).code).toBe(0);
  const helper = await es256Key();
  helperKeyFile = join(home, '..', 'helper-key.json');
  await writeFile(helperKeyFile, JSON.stringify(helper.privateJwk), { mode: 0o600 });
}, 90_000);

afterAll(async () => {
  serve?.child.kill('SIGTERM');
  await serve?.done;
  killLeftovers();
  await rm(join(home, '..'), { recursive: true, force: true });
});

const cli = (...args: string[]) => runCli(args, home);
const auth = ['--auth-port', () => ports[1]!] as const;
const authArgs = () => [auth[0], auth[1](), '--agent-port', ports[5]!];

async function activeGrantId(): Promise<string> {
  const list = await cli('grants', 'list', '--json');
  expect(list.code).toBe(0);
  const grants = JSON.parse(list.stdout) as Array<{ id: string; status: string; agent: string }>;
  expect(grants).toHaveLength(1);
  expect(grants[0]).toMatchObject({ status: 'active', agent: 'CalendarAgent' });
  return grants[0]!.id;
}

describe('agents', () => {
  it('lists CalendarAgent and verifies its identity statement', async () => {
    const list = await cli('agents', 'list', '--json');
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ client_id: 'calendar-agent', name: 'CalendarAgent' })]);
    const show = await cli('agents', 'show', 'calendar-agent', '--auth-port', ports[1]!);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('✓ verified');
    expect(show.stdout).toContain('delegate/calendar-agent');
  });

  it('registers a sub-agent bound to its URL, with a statement that verifies', async () => {
    const reg = await cli('agents', 'register', 'helper', '--url', 'http://127.0.0.1:8/helper', '--key', helperKeyFile, '--name', 'Helper', '--operator', 'Test Ops', '--contact', 'ops@example.test', '--description', 'Checks calendars for a team.', '--limitation', 'Never writes', '--auth-port', ports[1]!);
    expect(reg.code, reg.stderr).toBe(0);
    const show = await cli('agents', 'show', 'helper', '--json', '--auth-port', ports[1]!);
    expect(JSON.parse(show.stdout)).toMatchObject({ client_id: 'helper', verified: true, resource: 'http://127.0.0.1:8/helper' });
  });
});

describe('grants, exchange chains and the audit log', () => {
  it('shows the grant with its limits', async () => {
    const id = await activeGrantId();
    const show = await cli('grants', 'show', id, '--json');
    expect(JSON.parse(show.stdout)).toMatchObject({ id, scopes: ['slots:find'], constraints: [expect.objectContaining({ type: 'calendar', lookahead_days: 30 })] });
  });

  it('a tool call is audited with the full actor chain', async () => {
    expect((await cli('find-slot', '--duration', '30m', '--json', ...ports)).code).toBe(0);
    const audit = JSON.parse((await cli('audit', '--json', '--since', '1h')).stdout) as Array<{ event: string; actors: string[] }>;
    const call = audit.filter((r) => r.event === 'tool_call').at(-1)!;
    // The CLI called the tool for the user; the agent's own hop to the calendar shows in the exchange and read records.
    expect(call.actors[0]).toMatch(/^cli_/);
    const read = audit.filter((r) => r.event === 'freebusy_read').at(-1)!;
    expect(read.actors[0]).toBe('calendar-agent');
    expect(read.actors[1]).toMatch(/^cli_/);
  });

  it('hands a narrower token to a sub-agent, whose calendar call shows it in the chain', async () => {
    const handed = await cli('token', 'exchange', '--audience', calendarUrl, '--scope', 'freebusy:read', '--constraint', 'lookahead_days=3', '--for', 'helper', ...authArgs());
    expect(handed.code, handed.stderr).toBe(0);
    const t1 = handed.stdout.trim();
    // A handed token is the helper's subject token for its own exchange: for the AS, not the backend (which refuses it).
    expect(decodeJwt(t1)).toMatchObject({ aud: issuer, may_act: { sub: 'helper' }, authorization_details: [expect.objectContaining({ locations: [calendarUrl], lookahead_days: 3 })] });

    const own = await runCliWithStdin(['token', 'exchange', '--as', 'helper', '--key', helperKeyFile, '--subject-token', '-', '--audience', calendarUrl, ...authArgs()], t1);
    expect(own.code, own.stderr).toBe(0);
    const t2 = own.stdout.trim();
    expect(decodeJwt(t2).act).toMatchObject({ sub: 'helper', act: { sub: 'calendar-agent' } });

    // Used as it is, the handed token is refused at the backend (RFC 6750 invalid_token): the helper must exchange it.
    const asItIs = await fetch(`${calendarUrl}/freebusy?from=${new Date().toISOString()}&to=${new Date(Date.now() + 86_400_000).toISOString()}`, { headers: { authorization: `Bearer ${t1}` } });
    expect(asItIs.status).toBe(401);
    expect(asItIs.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    // The handed token on the command line (other users read /proc/<pid>/cmdline) is refused before any request;
    // from a private file it is taken.
    const exchangesBefore = (JSON.parse((await cli('audit', '--json')).stdout) as Array<{ event: string }>).filter((r) => r.event === 'token_exchanged').length;
    const literal = await cli('token', 'exchange', '--as', 'helper', '--key', helperKeyFile, '--subject-token', t1, '--audience', calendarUrl, ...authArgs());
    expect(literal.code).toBe(2);
    expect(literal.stdout).toBe('');
    expect(literal.stderr.trim().split('\n')).toHaveLength(1);
    expect(literal.stderr).toContain('--subject-token takes only -');
    expect((JSON.parse((await cli('audit', '--json')).stdout) as Array<{ event: string }>).filter((r) => r.event === 'token_exchanged')).toHaveLength(exchangesBefore);
    const handedFile = join(home, '..', 'handed.txt');
    await writeFile(handedFile, `${t1}\n`, { mode: 0o600 });
    const fromFile = await cli('token', 'exchange', '--as', 'helper', '--key', helperKeyFile, '--subject-token-file', handedFile, '--audience', calendarUrl, ...authArgs());
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(decodeJwt(fromFile.stdout.trim()).act).toMatchObject({ sub: 'helper', act: { sub: 'calendar-agent' } });

    const from = new Date().toISOString();
    const to = new Date(Date.now() + 2 * 86_400_000).toISOString();
    const res = await fetch(`${calendarUrl}/freebusy?from=${from}&to=${to}`, { headers: { authorization: `Bearer ${t2}` } });
    expect(res.status).toBe(200);
    const beyond = await fetch(`${calendarUrl}/freebusy?from=${from}&to=${new Date(Date.now() + 5 * 86_400_000).toISOString()}`, { headers: { authorization: `Bearer ${t2}` } });
    expect(beyond.status).toBe(403);

    const audit = JSON.parse((await cli('audit', '--json')).stdout) as Array<{ event: string; actors: string[] }>;
    const read = audit.filter((r) => r.event === 'freebusy_read').at(-1)!;
    expect(read.actors.slice(0, 2)).toEqual(['helper', 'calendar-agent']);
  });

  // A first consent preselects no helper agent (least privilege): the newcomer's Approve alone gives a grant under
  // which CalendarAgent reads for the user, and --for is refused saying how to allow a helper; doing so lets it through.
  it('under a grant approved as the page preselects (no helper agent), --for is refused, saying how to allow one', async () => {
    const tokenOf = async (profile: string, choices: Record<string, string> = {}) => {
      const login = startCli(['--profile', profile, 'login', '--no-browser', ...ports], home);
      await approveInBrowser(await login.loginUrl, 'approve', choices);
      expect((await login.done).code).toBe(0);
      const file = join(home, '..', `${profile}-token.txt`);
      await writeFile(file, (await cli('--profile', profile, 'token', ...ports)).stdout, { mode: 0o600 });
      return { file, grant: String(decodeJwt((await cli('--profile', profile, 'token', ...ports)).stdout.trim()).grant_id) };
    };
    const solo = await tokenOf('solo');
    expect(JSON.parse((await cli('grants', 'show', solo.grant, '--json')).stdout)).toMatchObject({ max_depth: 1 });
    expect((await cli('--profile', 'solo', 'find-slot', '--duration', '30m', '--json', ...ports)).code).toBe(0);
    const handed = await cli('token', 'exchange', '--subject-token-file', solo.file, '--audience', calendarUrl, '--for', 'helper', ...authArgs());
    expect(handed.code).toBe(1);
    expect(handed.stdout).toBe('');
    expect(handed.stderr).toBe(
      'delegate: The exchange was refused (invalid_request): The delegation allows at most 1 hop from the user; handing this token on (may_act) would allow hop 2. ' +
        `The delegation allows no helper agent (on the consent page: "No — only CalendarAgent itself"). To allow one, end it (\`delegate grants revoke ${solo.grant}\`) and sign in again, choosing "Yes — one helper agent".\n`,
    );
    // As it says: the grant ended, a sign-in choosing a helper agent, and the hand-off is issued.
    expect((await cli('grants', 'revoke', solo.grant)).code).toBe(0);
    const helped = await tokenOf('solo', ONE_HELPER_AGENT);
    const again = await cli('token', 'exchange', '--subject-token-file', helped.file, '--audience', calendarUrl, '--for', 'helper', ...authArgs());
    expect(again.code, again.stderr).toBe(0);
    expect((await cli('grants', 'revoke', helped.grant)).code).toBe(0); // the tests below see the first sign-in's grant alone
  });

  it('refuses exchanges that would widen, naming the bound', async () => {
    const wider = await cli('token', 'exchange', '--audience', calendarUrl, '--constraint', 'lookahead_days=365', ...authArgs());
    expect(wider.code).toBe(1);
    expect(wider.stderr).toMatch(/invalid_authorization_details.*30 days/);
    const scope = await cli('token', 'exchange', '--audience', calendarUrl, '--scope', 'freebusy:read calendar:write', ...authArgs());
    expect(scope.code).toBe(1);
    expect(scope.stderr).toMatch(/invalid_scope/);
    const audience = await cli('token', 'exchange', '--audience', 'http://127.0.0.1:8/elsewhere', ...authArgs());
    expect(audience.stderr).toMatch(/invalid_target/);
  });

  // The AS takes a scope only as RFC 6749 §3.3 writes it (found in review regress21b: " " spent a rotation); what a
  // shell hands over is written that way by the CLI before it is sent, and a --scope naming nothing is bad usage.
  it('--scope as a shell may pass it (a trailing space, a tab, doubled spaces) is sent as RFC 6749 §3.3 writes it; one naming no scope is exit 2, nothing sent', async () => {
    for (const written of ['freebusy:read ', '\tfreebusy:read', 'freebusy:read  freebusy:read']) {
      const r = await cli('token', 'exchange', '--audience', calendarUrl, '--scope', written, ...authArgs());
      expect(r.code, `${JSON.stringify(written)}: ${r.stderr}`).toBe(0);
      expect(decodeJwt(r.stdout.trim()).scope).toBe('freebusy:read');
    }
    const exchangesBefore = (JSON.parse((await cli('audit', '--json')).stdout) as Array<{ event: string }>).length;
    const none = await cli('token', 'exchange', '--audience', calendarUrl, '--scope', ' ', ...authArgs());
    expect(none.code).toBe(2);
    expect(none.stderr.trim().split('\n')).toEqual(['delegate: --scope names no scope; give one, such as --scope freebusy:read, or leave it out.']);
    expect((JSON.parse((await cli('audit', '--json')).stdout) as unknown[]).length).toBe(exchangesBefore);
  });

  // Found in review (readme, finding 7): the CLI sent only the constraints given, and the AS reads a member left
  // out as "no limit", so `calendars=demo` alone was refused for the lookahead the user never mentioned.
  it('--constraint calendars=NAME alone narrows only the calendars: the lookahead stays the parent token’s', async () => {
    const r = await cli('token', 'exchange', '--audience', calendarUrl, '--scope', 'freebusy:read', '--constraint', 'calendars=demo', ...authArgs());
    expect(r.code, r.stderr).toBe(0);
    expect(decodeJwt(r.stdout.trim()).authorization_details).toEqual([
      { type: 'calendar', locations: [calendarUrl], actions: ['freebusy:read'], datatypes: ['freebusy'], calendars: ['demo'], lookahead_days: 30 },
    ]);
    const read = await fetch(`${calendarUrl}/freebusy?from=${new Date().toISOString()}&to=${new Date(Date.now() + 86_400_000).toISOString()}`, { headers: { authorization: `Bearer ${r.stdout.trim()}` } });
    expect(read.status).toBe(200);
  });

  it('--constraint lookahead_days=N alone under a token limited to some calendars keeps those calendars', async () => {
    const handed = await cli('token', 'exchange', '--audience', calendarUrl, '--constraint', 'calendars=demo', '--for', 'helper', ...authArgs());
    expect(handed.code, handed.stderr).toBe(0);
    const own = await runCliWithStdin(['token', 'exchange', '--as', 'helper', '--key', helperKeyFile, '--subject-token', '-', '--audience', calendarUrl, '--constraint', 'lookahead_days=5', ...authArgs()], handed.stdout.trim());
    expect(own.code, own.stderr).toBe(0);
    expect(decodeJwt(own.stdout.trim())).toMatchObject({
      act: { sub: 'helper', act: { sub: 'calendar-agent' } },
      authorization_details: [{ type: 'calendar', locations: [calendarUrl], calendars: ['demo'], lookahead_days: 5 }],
    });
  });

  it('a constraint that would widen is refused (invalid_authorization_details) naming that constraint; nothing issued', async () => {
    const handed = (await cli('token', 'exchange', '--audience', calendarUrl, '--constraint', 'calendars=demo', '--for', 'helper', ...authArgs())).stdout.trim();
    const before = stateCounts();
    const calendars = await runCliWithStdin(['token', 'exchange', '--as', 'helper', '--key', helperKeyFile, '--subject-token', '-', '--audience', calendarUrl, '--constraint', 'calendars=demo,work', ...authArgs()], handed);
    expect(calendars.code).toBe(1);
    expect(calendars.stdout).toBe('');
    expect(calendars.stderr.trim().split('\n')).toHaveLength(1);
    expect(calendars.stderr).toMatch(/refused \(invalid_authorization_details\): .*calendar work not allowed.*--constraint calendars=demo,work/);
    const lookahead = await cli('token', 'exchange', '--audience', calendarUrl, '--constraint', 'calendars=demo', '--constraint', 'lookahead_days=31', ...authArgs());
    expect(lookahead.code).toBe(1);
    expect(lookahead.stderr).toMatch(/refused \(invalid_authorization_details\): .*30 days ahead, not 31.*--constraint lookahead_days=31/);
    expect(lookahead.stderr).not.toContain('calendars=demo');
    // Each refused request spent its client assertion's jti (the client was authenticated; RFC 7523 §3 replay rule)
    // and is on the audit log as token_exchange_refused (at most once per subject token and error code a minute: the
    // helper's is new, the CLI's token may have been refused the same way earlier in this file); nothing else.
    const { usedOnce: spentBefore, audit: auditBefore, refused: refusedBefore, ...restBefore } = before;
    const { usedOnce: spentAfter, audit: auditAfter, refused: refusedAfter, ...restAfter } = stateCounts();
    expect(restAfter).toEqual(restBefore);
    expect(spentAfter - spentBefore).toBe(2);
    expect(refusedAfter - refusedBefore).toBeGreaterThanOrEqual(1);
    expect(auditAfter - auditBefore).toBe(refusedAfter - refusedBefore);
  });

  // Found in review (readme, finding 6): `agents register` took a JWK without kid (registering it under its RFC 7638
  // thumbprint), but `token exchange --key` with the same key stopped with "The agent key has no kid."
  it('a sub-agent key without a kid, as Node exports it, works for `agents register` and for its own exchange', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const privateFile = join(home, '..', 'helper2.key.json');
    const publicFile = join(home, '..', 'helper2.pub.json');
    await writeFile(privateFile, JSON.stringify(privateKey.export({ format: 'jwk' })), { mode: 0o600 });
    await writeFile(publicFile, JSON.stringify(publicKey.export({ format: 'jwk' })), { mode: 0o644 });
    const reg = await cli('agents', 'register', 'helper2', '--url', 'http://127.0.0.1:8/helper2', '--key', publicFile, '--name', 'Helper 2', '--operator', 'Test Ops', '--contact', 'ops@example.test', '--description', 'Checks calendars.', '--auth-port', ports[1]!);
    expect(reg.code, reg.stderr).toBe(0);
    const handed = await cli('token', 'exchange', '--audience', calendarUrl, '--for', 'helper2', ...authArgs());
    expect(handed.code, handed.stderr).toBe(0);
    const own = await runCliWithStdin(['token', 'exchange', '--as', 'helper2', '--key', privateFile, '--subject-token', '-', '--audience', calendarUrl, ...authArgs()], handed.stdout.trim());
    expect(own.code, own.stderr).toBe(0);
    expect(decodeJwt(own.stdout.trim()).act).toMatchObject({ sub: 'helper2', act: { sub: 'calendar-agent' } });
  });

  it('a key without a kid registered under another kid is refused by the AS (keys are found by exact kid); nothing issued', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const privateFile = join(home, '..', 'helper3.key.json');
    const publicFile = join(home, '..', 'helper3.pub.json');
    await writeFile(privateFile, JSON.stringify(privateKey.export({ format: 'jwk' })), { mode: 0o600 });
    await writeFile(publicFile, JSON.stringify({ ...publicKey.export({ format: 'jwk' }), kid: 'ops-key-1' }), { mode: 0o644 });
    const reg = await cli('agents', 'register', 'helper3', '--url', 'http://127.0.0.1:8/helper3', '--key', publicFile, '--name', 'Helper 3', '--operator', 'Test Ops', '--contact', 'ops@example.test', '--description', 'Checks calendars.', '--auth-port', ports[1]!);
    expect(reg.code, reg.stderr).toBe(0);
    const handed = (await cli('token', 'exchange', '--audience', calendarUrl, '--for', 'helper3', ...authArgs())).stdout.trim();
    const before = stateCounts();
    const own = await runCliWithStdin(['token', 'exchange', '--as', 'helper3', '--key', privateFile, '--subject-token', '-', '--audience', calendarUrl, ...authArgs()], handed);
    expect(own.code).toBe(1);
    expect(own.stdout).toBe('');
    expect(own.stderr.trim().split('\n')).toHaveLength(1);
    expect(own.stderr).toMatch(/refused \(invalid_client\).*has no kid, so it was named by its RFC 7638 thumbprint/);
    expect(stateCounts()).toEqual(before);
  });

  it('verifies the audit log, and names a record edited in the database', async () => {
    const ok = await cli('audit', '--verify');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/intact: \d+ records/);
    const db = new Database(join(home, 'delegate.db'));
    db.prepare("UPDATE audit_log SET event = 'nothing_happened' WHERE seq = 2").run();
    db.close();
    const bad = await cli('audit', '--verify');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/Record 2 was changed/);
    const repair = new Database(join(home, 'delegate.db'));
    repair.prepare("UPDATE audit_log SET event = (SELECT 'sign_in') WHERE seq = 2 AND event = 'nothing_happened'").run();
    repair.close();
  });

  it('revoking the grant ends the user’s tokens at the agent and the sub-agent’s at the calendar', async () => {
    const handed = (await cli('token', 'exchange', '--audience', calendarUrl, ...authArgs())).stdout.trim();
    const userToken = (await cli('token', ...ports)).stdout.trim();
    const id = await activeGrantId();
    const revoke = await cli('grants', 'revoke', id);
    expect(revoke.code).toBe(0);
    const started = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - started < 10_000) {
      const res = await fetch(`${calendarUrl}/freebusy?from=${new Date().toISOString()}&to=${new Date(Date.now() + 86_400_000).toISOString()}`, { headers: { authorization: `Bearer ${handed}` } });
      status = res.status;
      if (status === 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(401);
    const after = await cli('find-slot', '--duration', '30m', '--json', ...ports);
    expect(after.code).toBe(4);
    // The user's token can no longer be exchanged; the CLI says why (RFC 8693 §2.2.2: invalid_request).
    const exchanged = await runCliWithStdin(['token', 'exchange', '--subject-token', '-', '--audience', calendarUrl, ...authArgs()], userToken);
    expect(exchanged.code).toBe(1);
    expect(exchanged.stderr).toMatch(/refused \(invalid_request\): The (subject token has been revoked|delegation behind the subject token has ended)\./);
    expect((await cli('grants', 'list', '--json')).stdout.trim()).toBe('[]');
  });
});

describe('users', () => {
  it('adds an account with the password read from stdin, stored hashed', async () => {
    const add = await runCliWithStdin(['users', 'add', 'alice'], 'a long enough password\n');
    expect(add.code, add.stderr).toBe(0);
    const db = new Database(join(home, 'delegate.db'), { readonly: true });
    const row = db.prepare('SELECT password_hash FROM users WHERE name = ?').get('alice') as { password_hash: string };
    db.close();
    expect(row.password_hash).toMatch(/^scrypt\$/);
    expect(row.password_hash).not.toContain('a long enough password');
    const weak = await runCliWithStdin(['users', 'add', 'bob'], 'short\n');
    expect(weak.code).toBe(1);
    expect(weak.stderr).toMatch(/at least 8 characters/);
  });
});

/** Rows in the tables an exchange writes (tokens, spent assertion jtis, audit records): equal before and after a refusal. */
function stateCounts(): { issued: number; usedOnce: number; exchanges: number; audit: number; refused: number } {
  const db = new Database(join(home, 'delegate.db'), { readonly: true });
  try {
    const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
    return {
      issued: count('SELECT count(*) AS n FROM issued_tokens'),
      usedOnce: count('SELECT count(*) AS n FROM used_once'),
      exchanges: count("SELECT count(*) AS n FROM audit_log WHERE event = 'token_exchanged'"),
      audit: count('SELECT count(*) AS n FROM audit_log'),
      refused: count("SELECT count(*) AS n FROM audit_log WHERE event = 'token_exchange_refused'"),
    };
  } finally {
    db.close();
  }
}

function runCliWithStdin(args: string[], input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [delegateBin, ...args], { cwd: repoRoot, env: { ...process.env, DELEGATE_HOME: home, NO_COLOR: '1' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}
