// Secrets from outside and on disk: password guessing is rate limited and
// starts no session; every secret comparison in the source goes through a
// constant-time helper (a source scan: what it proves is stated below; and,
// over HTTP, the CSRF, PKCE and client-secret checks are seen handing the
// refused value to constantTimeEqual, through a pass-through mock); the
// data directory, database and key files are private even under a permissive
// umask; and a whole flow (a wrong password then password sign-in, consent,
// code, token with a client secret, refresh, exchange, find_slot, a refused
// exchange, revocation, the device flow behind the owner's sign-in link, a
// refused poll, introspection) writes none of its secrets to the three
// servers' logs, captured at trace level, nor stores any of them in the
// database in the clear.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { addUser } from '../../src/authz/index.js';
import { addressKey } from '../../src/authz/login.js';
import { openDataStore } from '../../src/cli/servers.js';
import { resolvePaths } from '../../src/config.js';
import { constantTimeEqual, hashSecret } from '../../src/authz/crypto.js';
import { TokenCache } from '../../src/client/cache.js';
import { ownerAssertion, ownerLink } from '../support/authz.js';
import { Browser, DEVICE_CODE_GRANT, csrfOf, authorizeUrl, callbackParams, hiddenField, parseConsentForm, pkcePair, postForm, postJson, registerDeviceClient } from '../support/oauth-flow.js';
import { openAsOwner } from '../support/owner-flow.js';
import { initializeBody, mcpHeaders, rawRequest } from '../agent/http.js';
import { createHash } from 'node:crypto';
import { JWT_BEARER, REDIRECT, agentAssertion, expectStrictPage, exchangeAsAgent, startStack, stateChangedBy, type Stack } from './stack.js';

// Sign-ins by the dozen, counted by the rate limits: scrypt at N=2^12 here (test/support/cheap-scrypt.ts).
vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

// constantTimeEqual as the servers import it, wrapped to record its calls and passing every
// call through to the real one: the behavioural check below sees which values the CSRF, PKCE
// and client-secret checks hand it; every other test here runs the real helper unchanged.
vi.mock('../../src/authz/crypto.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/authz/crypto.js')>();
  return { ...actual, constantTimeEqual: vi.fn(actual.constantTimeEqual) };
});


describe('login brute force', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
    await addUser(stack.store, { name: 'frank', password: 'frank has a long password', timeZone: 'UTC' }, Date.now());
  });
  afterAll(async () => stack?.close());

  it('after 5 wrong passwords the account is blocked (429, Retry-After), even for the right password, and no session is created', async () => {
    const browser = new Browser();
    let page = await browser.get(`${stack.issuer}/login?next=%2Fgrants`);
    const attempt = (password: string) => browser.post(`${stack.issuer}/login`, { csrf: csrfOf(page.html), next: '/grants', username: 'frank', password });
    for (let i = 0; i < 5; i++) {
      const { result, changed } = await stateChangedBy(stack, () => attempt(`guess number ${i}`));
      expect(result.status).toBe(400);
      // A refused sign-in is recorded on the audit log by design (sign_in_failed); no session appears.
      expect(changed).toEqual(['audit_log']);
      page = result;
    }
    const { result: blocked, changed } = await stateChangedBy(stack, () => attempt('frank has a long password'));
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expectStrictPage('login 429', blocked);
    expect(changed.filter((t) => t !== 'audit_log')).toEqual([]);
    expect((await browser.get(`${stack.issuer}/grants`)).status).toBe(403);
  });

  it('guessing across accounts from one address: 400 for 20 failures, then 429 with Retry-After even for a right password; no session, only sign_in_failed records', async () => {
    // A stack of its own: the test above left 5 failures on this address (127.0.0.1).
    const fresh = await startStack();
    try {
      await addUser(fresh.store, { name: 'grace', password: 'grace has a long password', timeZone: 'UTC' }, Date.now());
      const browser = new Browser();
      let page = await browser.get(`${fresh.issuer}/login?next=%2Fgrants`);
      const attempt = (username: string, password: string) => browser.post(`${fresh.issuer}/login`, { csrf: csrfOf(page.html), next: '/grants', username, password });
      const noSessionCookie = (res: { headers: Headers }, name: string) =>
        expect(res.headers.getSetCookie().filter((line) => !/^[^=;]+_login=/.test(line)), name).toEqual([]);
      // SECURITY.md: "429 after 20 failures from the address" (ADDRESS_LIMIT), each to another account.
      for (let i = 1; i <= 20; i++) {
        const { result, changed } = await stateChangedBy(fresh, () => attempt(`user${i}`, 'password123'));
        expect(result.status, `attempt ${i}`).toBe(400);
        expect(changed, `attempt ${i}`).toEqual(['audit_log']);
        noSessionCookie(result, `attempt ${i}`);
        page = result;
      }
      // The 21st: blocked, also for an account that has had no failure and its right password.
      for (const [username, password] of [['user21', 'password123'], ['grace', 'grace has a long password']] as const) {
        const { result: blocked, changed } = await stateChangedBy(fresh, () => attempt(username, password));
        expect(blocked.status, username).toBe(429);
        const retryAfter = Number(blocked.headers.get('retry-after'));
        expect(retryAfter, username).toBeGreaterThan(0);
        expect(retryAfter, username).toBeLessThanOrEqual(15 * 60);
        expectStrictPage('login 429 (address)', blocked);
        expect(changed, username).toEqual([]);
        noSessionCookie(blocked, username);
        page = blocked;
      }
      expect((await browser.get(`${fresh.issuer}/grants`)).status).toBe(403);
    } finally {
      await fresh.close();
    }
  });
});

describe('password spraying from several loopback addresses', () => {
  // Found in review: the per-address limit was keyed on the source address, and a user of this machine has all of
  // 127.0.0.0/8: after 20 failures from 127.0.0.3, 127.0.0.4 was checked again. Every loopback address is now one.
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack?.close());

  /** One sign-in attempt sent from `from`, with a login form fetched from there too. */
  async function attempt(from: string, username: string) {
    const form = await rawRequest({ port: stack.ports.auth, path: '/login?next=%2Fgrants', localAddress: from });
    const cookie = String(form.headers['set-cookie']).split(';')[0]!;
    return rawRequest({
      port: stack.ports.auth,
      method: 'POST',
      path: '/login',
      localAddress: from,
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf: csrfOf(form.text), next: '/grants', username, password: 'password123' }).toString(),
    });
  }

  it('20 failures from 127.0.0.3 block 127.0.0.4 and 127.0.0.1 too (429, Retry-After), and the refusals change nothing', async () => {
    for (let i = 0; i < 20; i++) expect((await attempt('127.0.0.3', `sprayed${i}`)).status, `attempt ${i}`).toBe(400);
    for (const from of ['127.0.0.3', '127.0.0.4', '127.0.0.1']) {
      const { result, changed } = await stateChangedBy(stack, () => attempt(from, `another${from}`));
      expect(result.status, from).toBe(429);
      expect(Number(result.headers['retry-after']), from).toBeGreaterThan(0);
      expect(result.text, from).toContain('Too many failed attempts');
      expect(changed, from).toEqual([]);
    }
  });

  it('counts IPv6 loopback and IPv4-mapped loopback addresses as the same one; other addresses each on their own', () => {
    for (const ip of ['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.5', '::FFFF:127.1.2.3']) expect(addressKey(ip), ip).toBe('address:loopback');
    for (const ip of ['10.0.0.1', '128.0.0.1']) expect(addressKey(ip), ip).toBe(`address:${ip}`);
    // As a proxy may write it in X-Forwarded-For: with a port, in brackets; and what is no address, one key for all
    // (found in review, regress20f: each port and each junk text had a budget of its own).
    expect(addressKey('10.0.0.1:40001')).toBe('address:10.0.0.1');
    expect(addressKey('[::ffff:10.0.0.1]:443')).toBe('address:10.0.0.1');
    expect(addressKey('[2001:db8:1:2::9]:8443')).toBe('address:2001:db8:1:2::/64');
    expect(addressKey('[2001:db8:1:2::9]')).toBe('address:2001:db8:1:2::/64');
    expect(addressKey('127.0.0.1:9')).toBe('address:loopback');
    for (const junk of ['1270.0.0.1', 'unknown', 'garbage-1', '10.0.0.1:99999999', '']) expect(addressKey(junk), junk).toBe('address:unparsed');
    // An IPv4 address plain or IPv4-mapped is one address (before: two keys, so two budgets).
    expect(addressKey('::ffff:10.0.0.1')).toBe(addressKey('10.0.0.1'));
    expect(addressKey('::FFFF:10.0.0.1')).toBe('address:10.0.0.1');
    expect(addressKey('::2')).toBe('address:0:0:0:0::/64');
  });

  it('counts an IPv6 address by its /64 (found in review: in server mode each of a host’s 2^64 addresses had its own budget)', () => {
    const spread = ['2001:db8:1:2::1', '2001:db8:1:2::dead:beef', '2001:0db8:0001:0002:ffff:ffff:ffff:ffff', '2001:DB8:1:2:0:0:0:7', '2001:db8:1:2::1.2.3.4', '2001:db8:1:2::5%eth0'];
    for (const ip of spread) expect(addressKey(ip), ip).toBe('address:2001:db8:1:2::/64');
    for (const ip of ['2001:db8:1:3::1', '2001:db8::1', 'fe80::1%eth0', '::']) expect(addressKey(ip), ip).not.toBe('address:2001:db8:1:2::/64');
    expect(addressKey('fe80::1%eth0')).toBe('address:fe80:0:0:0::/64');
    expect(addressKey('64:ff9b::1.2.3.4')).toBe('address:64:ff9b:0:0::/64');
  });
});

describe('constant-time comparison of secrets', () => {
  const srcRoot = join(process.cwd(), 'src');
  const files = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
  const sources = files(srcRoot).map((path) => ({ path: relative(process.cwd(), path), text: readFileSync(path, 'utf8') }));

  /** Operands that hold a secret, or a hash of one, that a request could be probing. */
  const SECRET = /(csrf|secret|verifier|challenge|password|passwd|hash|sessionid|session_id|\bstate\b|expectedState|\bcode\b|codeHash|token\b|user_?code|device_?code|assertion|\bjti\b|nonce)/i;
  /**
   * Comparisons that name such a word but compare no secret, each with its reason.
   * A new line here needs the same justification.
   */
  const ALLOWED: Array<[string, RegExp, string]> = [
    ['src/authz/consent.ts', /pending\.sessionHash !== signedIn\.session\.idHash/, 'two server-side values: the session was already found by its hash'],
    ['src/store/audit-chain.ts', /prevHash !== expectedPrev/, 'audit chain integrity, public hashes'],
    ['src/agent/as-metadata.ts', /u\.hash === ''/, "a URL's fragment"],
    ['src/authz/password.ts', /actual\.length === expected\.length/, 'lengths of fixed-size scrypt outputs, before timingSafeEqual'],
    ['src/client/loopback.ts', /x\.length === y\.length/, 'lengths, before timingSafeEqual'],
    ['src/client/session.ts', /error\.code === ErrorCode\.RequestTimeout/, "an MCP error's numeric code against the SDK's named constant (JSON-RPC -32001), no authorization code"],
    ['src/store/audit-chain.ts', /hash\.value !== record\.hash/, 'audit chain integrity, public hashes'],
    ['src/store/audit-chain.ts', /prev\.prevHash === predecessor\.hash/, 'audit chain integrity, public hashes: naming an inserted record'],
    ['src/store/audit-chain.ts', /r\.hash\.startsWith\(keptHead\)/, "audit chain integrity: the head the owner kept (printed by --verify, public) against the chain's hashes"],
    ['src/agent/delegation.ts', /extra\.authInfo\?\.token === token/, 'the token of this request against the one its own bearer check verified'],
    ['src/agent/identity.ts', /\)\.code === code/, 'an error code'],
    ['src/client/private-files.ts', /\)\.code === code/, 'an error code'],
    ['src/client/errors.ts', /error\.code === code/, 'an error code'],
    ['src/authz/register.ts', /includes\(GRANT_TYPE_AUTHORIZATION_CODE\) !== responseTypes\.includes/, 'registered grant and response types'],
    ['src/client/refresh.ts', /current\.access_token === input\.rejectedAccessToken/, "the CLI comparing two of its own tokens, no request involved"],
    ['src/client/revocation.ts', /\)\?\.access_token === old\.access_token/, "the CLI's own cache: the entry it has just revoked is still the one stored, no request involved"],
    ['src/client/revocation.ts', /\)\?\.access_token === tokensFor\(data, old\.issuer, old\.resource\)\?\.access_token/, "the CLI's own cache: the entry a replaced sign-in retired is still the one stored, no request involved"],
    ['src/client/sign-in.ts', /kept\.access_token === ours\.access_token/, "the CLI's own cache: whether the tokens this sign-in saved are still the ones stored, no request involved"],
    ['src/store/sqlite.ts', /code\.clientId !== issue\.access\.clientId/, "client ids, which are public: the code's client against the client that authenticated"],
    ['src/client/lock.ts', /moved\.nonce === abandonedNonce/, "the CLI's own lock file: which process holds it, no request involved"],
    ['src/client/lock.ts', /holder\.nonce === nonce/, "the CLI's own lock file: which process holds it, no request involved"],
    ['src/client/cache.ts', /p\.token !== pending\.token/, "the CLI's own cache: a token kept to revoke is kept once, no request involved"],
  ];

  /**
   * The comparisons in one source file that compare a secret outside the allowed cases: with
   * ===, !==, == or != (an operator and its operands may sit on different lines), or by a string
   * or buffer method that compares (startsWith, endsWith, localeCompare, equals, Buffer.compare).
   * Each is reported at the line where it starts; the allowed patterns are tried against the
   * whole text of the lines it spans.
   */
  function offendingLines(path: string, text: string): string[] {
    const offending: string[] = [];
    const operand = String.raw`(?:[\w$][\w.$?]*(?:\([^()]*\))?(?:\.[\w$]+)*|'[^']*'|"[^"]*")`;
    const comparisons = [
      new RegExp(String.raw`(${operand})\s*(===|!==|==|!=)\s*(${operand})`, 'g'),
      new RegExp(String.raw`(${operand})\s*\.\s*(startsWith|endsWith|localeCompare|equals)\(\s*(${operand})\s*[,)]`, 'g'),
      new RegExp(String.raw`Buffer\.(compare)\(\s*(${operand})\s*,\s*(${operand})\s*\)`, 'g'),
    ];
    // A comparison with a literal or a named constant (a type, kind, code or presence check) compares no secret value.
    const literal = (x: string) => /^(undefined|null|true|false|\d+|'[^']*'|"[^"]*"|[A-Z][A-Z0-9_]+)$/.test(x);
    // Comments are blanked (their lines kept, for the line numbers).
    const lines = text.split('\n').map((line) => (/^\s*(\/\/|\*|\/\*)/.test(line) ? '' : line));
    const code = lines.join('\n');
    const lineAt = (index: number) => code.slice(0, index).split('\n').length;
    for (const comparison of comparisons) {
      for (const m of code.matchAll(comparison)) {
        const [left, right] = comparison.source.startsWith('Buffer') ? [m[2]!, m[3]!] : [m[1]!, m[3]!];
        if (literal(left) || literal(right)) continue;
        if (!SECRET.test(left) && !SECRET.test(right)) continue;
        const first = lineAt(m.index);
        const last = lineAt(m.index + m[0].length);
        const spanned = lines.slice(first - 1, last).map((l) => l.trim()).join(' ');
        if (ALLOWED.some(([file, pattern]) => file === path && pattern.test(spanned))) continue;
        offending.push(`${path}:${first}: ${spanned}`);
      }
    }
    return offending;
  }

  it('the scan finds direct comparisons of secrets (it can fail)', () => {
    const samples = [
      'if (form.csrf !== signedIn.csrf) return refuse();',
      'const ok = hashSecret(secret) === client.secretHash;',
      'if (params.get("state") === expected.state) return;',
      'return computed === challenge;',
      'if (record.codeHash === hashSecret(code)) {',
      // Names the first version of the scan did not know, and forms it did not see.
      'if (found.userCode === normalizeUserCode(typed)) return found;',
      'return record.deviceCode == body.device_code;',
      'if (assertion != expected) throw new Error();',
      'if (seen.jti === payload.jti) return;',
      'const same = presented.nonce === stored.nonce;',
      'const ok =\n  form.csrf ===\n  signedIn.csrf;',
      'if (!signedIn.csrf.startsWith(form.csrf)) return refuse();',
      'if (Buffer.compare(Buffer.from(secret), expectedSecret) === 0) return;',
      'return computedChallenge.equals(challenge);',
      'return a.localeCompare(client.secretHash) === 0;',
    ];
    for (const sample of samples) expect(offendingLines('src/sample.ts', sample), sample).toHaveLength(1);
    expect(offendingLines('src/sample.ts', "if (verifier === undefined) return;\nif (typeof token !== 'string') x();")).toEqual([]);
    expect(offendingLines('src/sample.ts', "if (assertionType !== JWT_BEARER) x();\nif (typeof jti != 'string') x();\n// if (form.csrf === signedIn.csrf)")).toEqual([]);
    // A multi-line comparison is reported at its first line.
    expect(offendingLines('src/sample.ts', 'const a = 1;\nconst ok =\n  form.csrf ===\n  signedIn.csrf;')).toEqual(['src/sample.ts:3: form.csrf === signedIn.csrf;']);
  });

  it('no ===, !==, == or != (on one line or across lines), nor a comparing method, compares a secret in src/ outside the allowed, explained cases', () => {
    expect(sources.flatMap(({ path, text }) => offendingLines(path, text))).toEqual([]);
  });

  it('timingSafeEqual is used through the helpers only (authz/crypto.ts, the scrypt check, the CLI’s state check)', () => {
    const users = sources.filter((s) => /timingSafeEqual/.test(s.text)).map((s) => s.path).sort();
    expect(users).toEqual(['src/authz/crypto.ts', 'src/authz/password.ts', 'src/client/loopback.ts']);
  });

  it('the CSRF, PKCE and client-secret checks call constantTimeEqual', () => {
    const calls = (path: string) => (sources.find((s) => s.path === path)!.text.match(/constantTimeEqual\(/g) ?? []).length;
    expect(calls('src/authz/policy/pkce.ts')).toBeGreaterThan(0);
    expect(calls('src/authz/client-auth.ts')).toBeGreaterThan(0);
    expect(calls('src/authz/consent.ts')).toBeGreaterThan(0);
    expect(calls('src/authz/login.ts')).toBeGreaterThan(0);
    expect(calls('src/authz/grants-page.ts')).toBeGreaterThanOrEqual(2);
  });

  it('the helper answers like equality, whatever the lengths', () => {
    expect(constantTimeEqual('abc', 'abc')).toBe(true);
    expect(constantTimeEqual('abc', 'abd')).toBe(false);
    expect(constantTimeEqual('abc', 'abcd')).toBe(false);
    expect(constantTimeEqual('', '')).toBe(true);
    expect(constantTimeEqual('', 'a')).toBe(false);
  });
});

describe('constant-time comparison, over HTTP: the refused values go through constantTimeEqual', () => {
  let stack: Stack;
  const calls = vi.mocked(constantTimeEqual).mock.calls;
  /** Runs `request` and says whether constantTimeEqual was handed `value` (either side) while it ran. */
  async function compared<T>(value: string, request: () => Promise<T>): Promise<{ result: T; seen: boolean; changed: string[] }> {
    const before = calls.length;
    const { result, changed } = await stateChangedBy(stack, request);
    return { result, changed, seen: calls.slice(before).some(([a, b]) => a === value || b === value) };
  }
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack?.close());

  it('the wrapper is the function the servers call (a right CSRF token on the login form goes through it)', async () => {
    const browser = new Browser();
    const page = await browser.get(`${stack.issuer}/login?next=%2Fgrants`);
    const { result, seen } = await compared(csrfOf(page.html), () => browser.post(`${stack.issuer}/login`, { csrf: csrfOf(page.html), next: '/grants', username: 'nobody', password: 'a wrong password' }));
    expect(result.status).toBe(400);
    expect(seen).toBe(true);
  });

  it('CSRF tokens at /login, /consent, /device, /grants/revoke and /logout; a PKCE verifier and a client secret at /token', async () => {
    const forged = (what: string) => `forged-${what}-${'x'.repeat(30)}`;
    const results: Record<string, [number, unknown, boolean, string[]]> = {};
    /** The status and OAuth error on the wire (none for a page), whether constantTimeEqual saw the value, what changed. */
    const note = (name: string, r: { result: { status: number; body?: Record<string, unknown> }; seen: boolean; changed: string[] }) =>
      (results[name] = [r.result.status, r.result.body?.error ?? null, r.seen, r.changed]);

    const browser = new Browser();
    const page = await browser.get(`${stack.issuer}/login?next=%2Fgrants`);
    expect(page.status).toBe(200);
    note('login csrf', await compared(forged('login'), () => browser.post(`${stack.issuer}/login`, { csrf: forged('login'), next: '/grants', username: 'owner', password: 'whatever it is' })));

    // A confidential client's consent page, reached through the owner's sign-in link.
    const reg = await postJson(`${stack.issuer}/register`, {
      client_name: 'confidential test client', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'client_secret_post', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
    });
    expect(reg.status).toBe(201);
    const clientId = String(reg.body.client_id);
    const clientSecret = String(reg.body.client_secret);
    const { verifier, challenge } = pkcePair();
    const href = authorizeUrl(stack.issuer, { clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 's'.repeat(32), challenge });
    const owner = new Browser();
    const consent = await owner.follow(await ownerLink(stack, href.slice(stack.issuer.length)));
    expect(consent.status).toBe(200);
    const form = parseConsentForm(consent.html);
    // The consent check compares hashes: the forged token's hash is what it hands over.
    note('consent csrf', await compared(hashSecret(forged('consent')), () => owner.post(`${stack.issuer}/consent`, { ...form, csrf: forged('consent'), decision: 'approve' })));
    const approved = await owner.post(`${stack.issuer}/consent`, { ...form, decision: 'approve' });
    const code = callbackParams(approved.location!).get('code')!;
    const redeem = (extra: Record<string, string>) => postForm(`${stack.issuer}/token`, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId, client_secret: clientSecret, resource: stack.agentUrl, ...extra });
    // The client secret check compares hashes too.
    note('client secret', await compared(hashSecret(forged('secret')), () => redeem({ client_secret: forged('secret') })));
    // PKCE: the S256 of the verifier presented, against the challenge kept with the code.
    const wrongVerifier = forged('verifier');
    note('pkce', await compared(createHash('sha256').update(wrongVerifier).digest('base64url'), () => redeem({ code_verifier: wrongVerifier })));

    // The device confirmation form, by the owner signed in through a link to it.
    const deviceClient = await registerDeviceClient(stack.issuer);
    const started = await postForm(`${stack.issuer}/device_authorization`, { client_id: deviceClient, resource: stack.agentUrl });
    const { browser: deviceOwner, page: confirm } = await openAsOwner(stack, String(started.body.verification_uri_complete));
    expect(confirm.status).toBe(200);
    note('device csrf', await compared(forged('device'), () => deviceOwner.post(`${stack.issuer}/device`, { user_code: String(started.body.user_code), csrf: forged('device'), signin: hiddenField(confirm.html, 'signin'), decision: 'cancel' })));
    // The grants page's revoke and sign-out, by a named account (the owner's sessions are bound to one request each).
    await addUser(stack.store, { name: 'kim', password: 'kim has a long password', timeZone: 'UTC' }, Date.now());
    const account = new Browser();
    const login = await account.get(`${stack.issuer}/login?next=%2Fgrants`);
    const signedIn = await account.post(`${stack.issuer}/login`, { csrf: csrfOf(login.html), next: '/grants', username: 'kim', password: 'kim has a long password' });
    expect(signedIn.status).toBe(303);
    const signin = new URL(signedIn.location!, stack.issuer).searchParams.get('signin')!;
    note('grants csrf', await compared(forged('grants'), () => account.post(`${stack.issuer}/grants/revoke`, { grant: 'grant-x', csrf: forged('grants'), signin })));
    note('logout csrf', await compared(forged('logout'), () => account.post(`${stack.issuer}/logout`, { csrf: forged('logout') })));

    // Each refused on the wire, each through constantTimeEqual, none changing the database (not even its audit log).
    expect(results).toEqual({
      'login csrf': [403, null, true, []],
      'consent csrf': [403, null, true, []],
      'client secret': [400, 'invalid_client', true, []],
      pkce: [400, 'invalid_grant', true, []],
      'device csrf': [403, null, true, []],
      'grants csrf': [403, null, true, []],
      'logout csrf': [403, null, true, []],
    });
  });
});

describe('file permissions under a permissive umask (0000)', () => {
  let stack: Stack;
  let previous: number;
  beforeAll(async () => {
    previous = process.umask(0);
    stack = await startStack();
    // A token cache written as the CLI writes it, in the same data directory.
    const cache = new TokenCache({ files: stack.paths, now: Date.now });
    await cache.update((data) => data);
  });
  afterAll(async () => {
    process.umask(previous);
    await stack?.close();
  });

  it('the data directory is 0700 and every file in it 0600: database (with its WAL and shared memory), keys, token cache', () => {
    expect(statSync(stack.home).mode & 0o777).toBe(0o700);
    const names = readdirSync(stack.home);
    for (const expected of ['delegate.db', 'agent-key.json', 'owner-key.json', 'tokens.json']) expect(names).toContain(expected);
    expect(names.some((n) => n.endsWith('-wal'))).toBe(true);
    for (const name of names) {
      const st = statSync(join(stack.home, name));
      if (st.isDirectory()) expect(st.mode & 0o777, name).toBe(0o700);
      else expect(st.mode & 0o777, name).toBe(0o600);
    }
  });
});

describe('a data directory left with loose modes is tightened when the database is opened', () => {
  const octal = (path: string) => (statSync(path).mode & 0o777).toString(8);
  /** The mode of each file in a directory, by name. */
  const modesIn = (dir: string) => Object.fromEntries(readdirSync(dir).map((name) => [name, octal(join(dir, name))]));
  /** A database with a row in its WAL, held open by this connection as another process (or one that crashed) leaves it. */
  const heldInWal = (path: string) => {
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec("CREATE TABLE earlier (x TEXT); INSERT INTO earlier VALUES ('a row in the WAL')");
    return db;
  };
  /** Runs `check` while the store is open on `paths`. */
  const whileOpen = async (paths: ReturnType<typeof resolvePaths>, check: () => void) => {
    const store = await openDataStore(paths);
    try {
      check();
    } finally {
      store.close();
    }
  };

  it('a 0755 directory holding a 0644 database with its 0644 -wal and -shm: 0700 and 0600 once the store has opened it', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'delegate-loose-'));
    const home = join(parent, 'home');
    const paths = resolvePaths({ DELEGATE_HOME: home });
    // Loosened afterwards: an older version, a copy or a restore that did not keep the modes.
    mkdirSync(home);
    const earlier = heldInWal(paths.db);
    try {
      const names = readdirSync(home).sort();
      expect(names).toEqual(['delegate.db', 'delegate.db-shm', 'delegate.db-wal']);
      chmodSync(home, 0o755);
      for (const name of names) chmodSync(join(home, name), 0o644);
      for (const name of names) expect(octal(join(home, name)), name).toBe('644');
      expect(octal(home)).toBe('755');

      await whileOpen(paths, () => {
        expect(octal(home)).toBe('700');
        expect(modesIn(home)).toEqual({ 'delegate.db': '600', 'delegate.db-shm': '600', 'delegate.db-wal': '600' });
      });
    } finally {
      earlier.close();
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('the same through a symbolic link: the -wal and -shm beside the file it names are tightened', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'delegate-loose-link-'));
    const home = join(parent, 'home');
    const elsewhere = join(parent, 'elsewhere');
    const paths = resolvePaths({ DELEGATE_HOME: home });
    mkdirSync(home, { mode: 0o700 });
    mkdirSync(elsewhere, { mode: 0o700 });
    const target = join(elsewhere, 'real.db');
    const earlier = heldInWal(target);
    try {
      symlinkSync(target, paths.db);
      const names = readdirSync(elsewhere).sort();
      expect(names).toEqual(['real.db', 'real.db-shm', 'real.db-wal']);
      for (const name of names) chmodSync(join(elsewhere, name), 0o644);

      await whileOpen(paths, () => expect(modesIn(elsewhere)).toEqual({ 'real.db': '600', 'real.db-shm': '600', 'real.db-wal': '600' }));
    } finally {
      earlier.close();
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe('no secret in any log line, nor in the clear in the database', () => {
  let stack: Stack;
  const secrets = new Map<string, string>();
  beforeAll(async () => {
    stack = await startStack({ logs: true });
    const password = 'gina has a long password 7f3a9';
    secrets.set('password', password);
    await addUser(stack.store, { name: 'gina', password, timeZone: 'UTC' }, Date.now());
    // A calendar of hers, so that the calendar read and find_slot below read one (a user with none is 404 no_calendars).
    const gina = (await stack.store.listUsers()).find((u) => u.name === 'gina')!;
    await stack.store.addCalendar({ id: 'cal_gina', userId: gina.id, name: 'work', kind: 'file', source: join(process.cwd(), 'fixtures', 'owner.ics'), createdAt: Date.now() });

    // A confidential client, with a secret of its own.
    const reg = await postJson(`${stack.issuer}/register`, {
      client_name: 'confidential test client',
      redirect_uris: [REDIRECT],
      token_endpoint_auth_method: 'client_secret_post',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    });
    expect(reg.status).toBe(201);
    const clientId = String(reg.body.client_id);
    const clientSecret = String(reg.body.client_secret);
    secrets.set('client secret', clientSecret);

    // Password sign-in straight onto the consent page, then Approve.
    const { verifier, challenge } = pkcePair();
    secrets.set('code_verifier', verifier);
    const state = 'state-' + 'q'.repeat(40);
    const href = authorizeUrl(stack.issuer, { clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state, challenge });
    const browser = new Browser();
    const firstLogin = await browser.get(`${stack.issuer}/login?next=${encodeURIComponent(href.slice(stack.issuer.length))}`);
    secrets.set('first login csrf', csrfOf(firstLogin.html));
    // A wrong password first: the refusal is logged (and audited) and must not hold what was typed.
    const wrongPassword = 'gina mistypes her password 2c8e1';
    secrets.set('wrong password', wrongPassword);
    const login = await browser.post(`${stack.issuer}/login`, { csrf: csrfOf(firstLogin.html), next: href.slice(stack.issuer.length), username: 'gina', password: wrongPassword });
    expect(login.status).toBe(400);
    secrets.set('login csrf', csrfOf(login.html));
    const signedIn = await browser.post(`${stack.issuer}/login`, { csrf: csrfOf(login.html), next: href.slice(stack.issuer.length), username: 'gina', password });
    expect(signedIn.status).toBe(303);
    for (const line of signedIn.headers.getSetCookie()) secrets.set(`cookie ${line.split('=')[0]}`, line.split(';')[0]!.split('=').slice(1).join('='));
    const consent = await browser.get(new URL(signedIn.location!, stack.issuer).href);
    expect(consent.status).toBe(200);
    const form = parseConsentForm(consent.html);
    secrets.set('consent csrf', String(form.csrf));
    const approved = await browser.post(`${stack.issuer}/consent`, { ...form, decision: 'approve' });
    const code = callbackParams(approved.location!).get('code')!;
    secrets.set('authorization code', code);

    const tokens = await postForm(`${stack.issuer}/token`, {
      grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId, client_secret: clientSecret, resource: stack.agentUrl,
    });
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    secrets.set('access token', String(tokens.body.access_token));
    secrets.set('refresh token', String(tokens.body.refresh_token));

    const refreshed = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(tokens.body.refresh_token), client_id: clientId, client_secret: clientSecret });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    const access = String(refreshed.body.access_token);
    secrets.set('refreshed access token', access);
    secrets.set('rotated refresh token', String(refreshed.body.refresh_token));

    const assertion = await agentAssertion(stack);
    secrets.set('client assertion', assertion);
    const exchanged = await exchangeAsAgent(stack, access, { client_assertion: assertion });
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    secrets.set('calendar token', String(exchanged.body.access_token));
    const from = new Date(Date.now() + 3600_000).toISOString();
    const read = await rawRequest({ port: stack.ports.calendar, path: `/freebusy?from=${encodeURIComponent(from)}&to=${encodeURIComponent(new Date(Date.now() + 86400_000).toISOString())}`, headers: { authorization: `Bearer ${String(exchanged.body.access_token)}` } });
    expect(read.status).toBe(200);

    const call = await rawRequest({
      port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(access, { 'mcp-protocol-version': '2025-06-18' }),
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'find_slot', arguments: { duration: '30m' } } }),
    });
    expect(call.status).toBe(200);
    expect(call.json()).toMatchObject({ result: { structuredContent: { found: true } } });
    // A refused request carrying a token is logged too: the refusal must not echo it.
    expect((await rawRequest({ port: stack.ports.agent, method: 'POST', path: '/mcp', headers: mcpHeaders(String(exchanged.body.access_token)), body: initializeBody })).status).toBe(401);

    // A refused token exchange (a target the AS does not know), carrying a subject token and an assertion of its own.
    const refusedAssertion = await agentAssertion(stack);
    secrets.set('refused exchange assertion', refusedAssertion);
    const refusedExchange = await exchangeAsAgent(stack, access, { client_assertion: refusedAssertion, resource: 'http://127.0.0.1:1/nowhere' });
    expect([refusedExchange.status, refusedExchange.body.error]).toEqual([400, 'invalid_target']);

    const revoked = await postForm(`${stack.issuer}/revoke`, { token: String(refreshed.body.refresh_token), client_id: clientId, client_secret: clientSecret });
    expect(revoked.status).toBe(200);
    // Again: 200, and the log says the grant had ended already, not that this call ended it.
    const again = await postForm(`${stack.issuer}/revoke`, { token: String(refreshed.body.refresh_token), client_id: clientId, client_secret: clientSecret });
    expect(again.status).toBe(200);
    const revocations = stack.logLines.map((l) => String((JSON.parse(l) as { msg?: unknown }).msg)).filter((m) => m.startsWith('refresh token revoked'));
    expect(revocations).toEqual(['refresh token revoked, and its grant', 'refresh token revoked; its grant had ended already']);

    // The device flow (RFC 8628): device and user codes, the owner's sign-in link (its assertion), the code
    // confirmed, Approve, the device's poll, then a poll refused.
    const deviceClient = await registerDeviceClient(stack.issuer);
    const started = await postForm(`${stack.issuer}/device_authorization`, { client_id: deviceClient, resource: stack.agentUrl });
    expect(started.status, JSON.stringify(started.body)).toBe(200);
    const deviceCode = String(started.body.device_code);
    const userCode = String(started.body.user_code);
    secrets.set('device_code', deviceCode);
    secrets.set('user_code', userCode);
    const owner = new Browser();
    const ownerLink = await ownerAssertion(stack.ownerJwk, stack.issuer, { next: String(started.body.verification_uri_complete).slice(stack.issuer.length) });
    secrets.set('owner sign-in assertion', ownerLink);
    const next = encodeURIComponent(String(started.body.verification_uri_complete).slice(stack.issuer.length));
    const confirm = await owner.follow(`${stack.issuer}/login/owner?assertion=${ownerLink}&next=${next}`);
    expect(confirm.status).toBe(200);
    expect(confirm.html).toContain(userCode);
    secrets.set('device confirmation csrf', hiddenField(confirm.html, 'csrf'));
    // The same link again is refused (single use): the refusal must not echo it either.
    expect((await new Browser().get(`${stack.issuer}/login/owner?assertion=${ownerLink}&next=${next}`)).status).toBe(403);
    const continued = await owner.post(`${stack.issuer}/device`, { user_code: userCode, csrf: hiddenField(confirm.html, 'csrf'), signin: hiddenField(confirm.html, 'signin'), decision: 'continue' });
    expect(continued.status).toBe(200);
    const deviceForm = parseConsentForm(continued.html);
    secrets.set('device consent csrf', String(deviceForm.csrf));
    const decided = await owner.post(`${stack.issuer}/consent`, { ...deviceForm, decision: 'approve' });
    expect(decided.status).toBe(303);
    const doneUrl = new URL(decided.location!, stack.issuer);
    secrets.set('device authorization code', doneUrl.searchParams.get('code')!);
    secrets.set('device state', doneUrl.searchParams.get('state')!);
    expect((await owner.get(doneUrl.href)).status).toBe(200);
    const deviceTokens = await postForm(`${stack.issuer}/token`, { grant_type: DEVICE_CODE_GRANT, device_code: deviceCode, client_id: deviceClient });
    expect(deviceTokens.status, JSON.stringify(deviceTokens.body)).toBe(200);
    const deviceAccess = String(deviceTokens.body.access_token);
    secrets.set('device access token', deviceAccess);
    secrets.set('device refresh token', String(deviceTokens.body.refresh_token));
    const pollAgain = await postForm(`${stack.issuer}/token`, { grant_type: DEVICE_CODE_GRANT, device_code: deviceCode, client_id: deviceClient });
    expect(pollAgain.status).toBe(400);

    // Introspection (RFC 7662) by the agent: an active token, and a revoked refresh token (inactive).
    const introspectionAssertion = await agentAssertion(stack);
    secrets.set('introspection assertion', introspectionAssertion);
    const introspected = await postForm(`${stack.issuer}/introspect`, { token: deviceAccess, client_assertion_type: JWT_BEARER, client_assertion: introspectionAssertion });
    expect([introspected.status, introspected.body.active], JSON.stringify(introspected.body)).toEqual([200, true]);
    const inactive = await postForm(`${stack.issuer}/introspect`, { token: String(refreshed.body.refresh_token), client_assertion_type: JWT_BEARER, client_assertion: await agentAssertion(stack) });
    expect([inactive.status, inactive.body.active]).toEqual([200, false]);
  });
  afterAll(async () => stack?.close());

  /** The secret, and for a JWT its payload and signature segments (a logger might print either alone). */
  function needles(value: string): string[] {
    // A device user code (RFC 8628 §6.1) is short by design: itself, and as typed without its dash.
    if (/^[A-Z]{4}-[A-Z]{4}$/.test(value)) return [value, value.replace('-', '')];
    const parts = value.split('.');
    const out = [value];
    if (parts.length === 3) out.push(parts[1]!, parts[2]!);
    // The random part of a prefixed opaque secret (dlg_rt_…), without its public prefix.
    const random = value.replace(/^[a-z]+_[a-z]+_/, '');
    if (random.length >= 16) out.push(random.slice(0, 24));
    return out.filter((n) => n.length >= 12);
  }

  it('the servers logged the whole flow (the capture works), each access line with the client’s address', () => {
    const lines = stack.logLines.map((l) => JSON.parse(l) as { msg?: string; req?: { path?: string; remoteAddress?: string } });
    const paths = lines.map((l) => l.req?.path).filter(Boolean);
    for (const path of ['/login', '/login/owner', '/consent', '/token', '/revoke', '/mcp', '/freebusy', '/device_authorization', '/device', '/device/done', '/introspect']) expect(paths, path).toContain(path);
    // The address is on the lines the next test searches for secrets (s21: it goes through the same redaction).
    const access = lines.filter((l) => l.msg === 'request completed');
    expect(access.length).toBeGreaterThan(20);
    for (const line of access) expect(line.req?.remoteAddress, JSON.stringify(line)).toBe('127.0.0.1');
    expect(secrets.size).toBeGreaterThanOrEqual(26);
    // Every secret gives at least one needle to look for (none is too short to be searched).
    for (const [name, value] of secrets) expect(needles(value).length, name).toBeGreaterThan(0);
  });

  it('no log line holds a password (right or wrong), client secret, code (authorization, device or user), verifier, CSRF token, cookie, assertion or token, whole or in part', () => {
    const logs = stack.logLines.join('\n');
    const found: string[] = [];
    for (const [name, value] of secrets) for (const needle of needles(value)) if (logs.includes(needle)) found.push(name);
    expect(found).toEqual([]);
  });

  it('the database holds none of them in the clear (secrets are stored as hashes)', () => {
    const db = new Database(stack.paths.db, { readonly: true, fileMustExist: true });
    let dump = '';
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>;
      for (const { name } of tables) dump += JSON.stringify(db.prepare(`SELECT * FROM "${name}"`).raw().all());
    } finally {
      db.close();
    }
    const found: string[] = [];
    // Not here, by design: the device's user code and the state of the authorization request the server
    // makes for the device are stored as they are and looked up by value (device_authorizations.user_code,
    // .state); both live 10 minutes at most. The device's authorization code is kept in the clear from
    // Approve until the device's poll, which clears it: this runs after the poll; the PKCE verifier the server holds to
    // redeem it stays, and redeems nothing once the code is spent (SECURITY.md › Secrets at rest).
    for (const name of ['password', 'wrong password', 'client secret', 'authorization code', 'code_verifier', 'refresh token', 'rotated refresh token', 'consent csrf', 'login csrf', 'client assertion',
      'device_code', 'device authorization code', 'device refresh token', 'device consent csrf', 'device confirmation csrf', 'owner sign-in assertion', 'introspection assertion', 'refused exchange assertion']) {
      for (const needle of needles(secrets.get(name)!)) if (dump.includes(needle)) found.push(name);
    }
    expect(found).toEqual([]);
  });
});
