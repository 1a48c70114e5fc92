// Binding an agent to a URL that is something else's, and the calendar
// backend's own refusal of any token that did not come from an agent's
// exchange. Found in review: `delegate agents register evil --url <the
// calendar backend>` succeeded and replaced the backend's resource record
// (bound to no agent) with evil's, so /authorize, which sends only agents'
// tokens there, issued a public client a plain user token for the calendar
// (no `act`, no authorization_details), which the backend read with no
// lookahead, calendar or window limit; evil could also introspect and exchange
// CalendarAgent's calendar tokens. The three servers as the CLI builds them,
// on ephemeral loopback ports; the command runs in-process on their data
// directory, as an administrator would run it. Also: what an agent may read
// downstream, and what a move to another URL ends (the old URL and its grants).
import { createServer } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair, importJWK, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { agentMoveNotice, bootstrap, closeAll, openDataStore } from '../../src/cli/servers.js';
import { resolvePaths } from '../../src/config.js';
import { openStore, type Store } from '../../src/store/index.js';
import { setUpSigns } from '../../src/cli/commands/admin-store.js';
import { Browser, authorizeUrl, callbackParams, pkcePair, postForm, registerPublicClient, signInAndOpenConsent } from '../support/oauth-flow.js';
import { failAuditRecords } from '../support/fail-audit.js';
import { ownerApproves, redeemCode } from '../support/owner-flow.js';
import { freePort } from '../support/ports.js';
import { fakeIo } from '../cli/fake-io.js';
import {
  atCalendar,
  auditSince,
  expectInvalidToken,
  fingerprint,
  issuerSigningKey,
  lastAuditSeq,
  stateChangedBy,
  startStack,
  userAndCalendarToken,
  type Stack,
} from './stack.js';

let stack: Stack;
let keyFile: string;

beforeAll(async () => {
  stack = await startStack();
  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  keyFile = join(stack.home, 'evil.pub.json');
  await writeFile(keyFile, JSON.stringify(await exportJWK(publicKey)), { mode: 0o600 });
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

async function cliIn(home: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = fakeIo({ DELEGATE_HOME: home, NO_COLOR: '1' }, Date.now);
  const code = await runCli(args, io);
  return { code, out: io.out, err: io.err };
}

const registerIn = (home: string, id: string, url: string, ...more: string[]) =>
  cliIn(home, 'agents', 'register', id, '--url', url, '--key', keyFile, '--name', 'Helper', '--operator', 'Ops', '--contact', 'ops@example.com', '--description', 'Drafts agendas', '--scope', 'freebusy:read', ...more);
const register = (id: string, url: string, ...more: string[]) => registerIn(stack.home, id, url, ...more);

describe('agents register at a URL that is not free for an agent', () => {
  it('the calendar backend’s URL (any spelling of it): exit 1 naming it, nothing stored, and the backend still takes no user token', async () => {
    for (const url of [stack.calendarUrl, `${stack.calendarUrl}/`, stack.calendarUrl.replace('http://', 'HTTP://')]) {
      const { result, changed } = await stateChangedBy(stack, () => register('evil', url, '--auth-port', String(stack.ports.auth)));
      expect(result.code, url).toBe(1);
      expect(result.err, url).toMatch(new RegExp(`^delegate: The URL ${stack.calendarUrl} is already a resource of this server \\(Calendar\\), not an agent's`));
      expect(result.out).toBe('');
      expect(changed, url).toEqual([]);
    }
    expect(await stack.store.clientById('evil')).toBeUndefined();
    expect((await stack.store.resourceByUrl(stack.calendarUrl))?.agentClientId).toBeNull();
    // What the registration opened before: the owner's approval of a public client for the calendar itself.
    await expect(ownerApproves({ ...stack, agentUrl: stack.calendarUrl })).rejects.toThrow(/consent page: HTTP|consent gave no code/);
  });

  it('the authorization server’s own URL, signed for it or (--auth-port) for another: exit 1, nothing stored', async () => {
    for (const more of [[], ['--auth-port', String(stack.ports.auth)], ['--auth-port', String(await freePort())]]) {
      const { result, changed } = await stateChangedBy(stack, () => register('evil', stack.issuer, ...more));
      expect(result.code, more.join(' ')).toBe(1);
      expect(result.err, more.join(' ')).toMatch(new RegExp(`^delegate: The URL ${stack.issuer} is (this|the) authorization server's own`));
      expect(changed, more.join(' ')).toEqual([]);
    }
    expect(await stack.store.clientById('evil')).toBeUndefined();
    expect(await stack.store.resourceByUrl(stack.issuer)).toBeUndefined();
  });

  it('a URL an agent reads downstream on users’ behalf, not on record as a resource: exit 1, nothing stored; the control registers', async () => {
    const downstream = `http://127.0.0.1:${await freePort()}/calendar`;
    const reader = await register('reader', `http://127.0.0.1:${await freePort()}/mcp`, '--calendar-url', downstream);
    expect(reader.code, reader.err).toBe(0);
    const { result, changed } = await stateChangedBy(stack, () => register('evil', downstream));
    expect(result.code).toBe(1);
    expect(result.err).toMatch(new RegExp(`^delegate: The URL ${downstream} is what the agent reader reaches downstream`));
    expect(changed).toEqual([]);
    // The same for CalendarAgent's own calendar backend read as a downstream, and an agent naming itself downstream.
    const self = `http://127.0.0.1:${await freePort()}/self`;
    const before = fingerprint(stack);
    expect((await register('evil', self, '--calendar-url', self)).code).toBe(1);
    expect(fingerprint(stack)).toEqual(before);
    expect(await stack.store.clientById('evil')).toBeUndefined();
    // The control: an agent re-registered at its own URL, and a new one at a free URL.
    expect((await register('reader', String((await stack.store.clientById('reader'))!.resource), '--calendar-url', downstream)).code).toBe(0);
    expect((await register('evil', `http://127.0.0.1:${await freePort()}/mcp`)).code).toBe(0);
  });

  it('a URL on the authorization server’s origin (its endpoints, tokens for aud = the issuer), any spelling, signed for it or (--auth-port) for another: exit 1, nothing stored', async () => {
    const origin = new URL(stack.issuer);
    const spellings = [`${stack.issuer}/mcp`, `${stack.issuer}/x`, `${stack.issuer}/token`, `${stack.issuer}/mcp/`.replace('http://', 'HTTP://')];
    for (const url of spellings) {
      for (const more of [['--auth-port', String(stack.ports.auth)], ['--auth-port', String(await freePort())]]) {
        const { result, changed } = await stateChangedBy(stack, () => register('evil-origin', url, ...more));
        expect(result.code, `${url} ${more.join(' ')}`).toBe(1);
        expect(result.err, url).toMatch(new RegExp(`^delegate: The URL \\S+ is on the origin of (this|the) authorization server \\(${stack.issuer}\\)[^\\n]*\\n$`));
        expect(result.out).toBe('');
        expect(changed, url).toEqual([]);
      }
    }
    // With a query it is refused sooner, as bad usage (exit 2; since regress19a no resource URL takes a query, RFC 8707 §2).
    const { result, changed } = await stateChangedBy(stack, () => register('evil-origin', `http://127.0.0.1:${origin.port}/?x=1`, '--auth-port', String(stack.ports.auth)));
    expect(result.code).toBe(2);
    expect(result.err).toMatch(/may not carry a query/);
    expect(changed).toEqual([]);
    expect(await stack.store.clientById('evil-origin')).toBeUndefined();
  });

  it('a downstream (--calendar-url) that is the authorization server, on its origin, or another agent’s URL (any spelling): exit 1 naming it, nothing stored; the control registers', async () => {
    const own = `http://127.0.0.1:${await freePort()}/mcp`;
    const downstreams: Array<[string, RegExp]> = [
      [stack.issuer, /is on the origin of (this|the) authorization server/],
      [`${stack.issuer}/`, /is on the origin of (this|the) authorization server/],
      [`${stack.issuer}/calendar`, /is on the origin of (this|the) authorization server/],
      [stack.agentUrl, new RegExp(`is the URL of the agent ${stack.agent.clientId}`)],
      [stack.agentUrl.replace('http://', 'HTTP://'), new RegExp(`is the URL of the agent ${stack.agent.clientId}`)],
    ];
    for (const [downstream, why] of downstreams) {
      for (const more of [['--auth-port', String(stack.ports.auth)], ['--auth-port', String(await freePort())]]) {
        const { result, changed } = await stateChangedBy(stack, () => register('evil-down', own, '--calendar-url', downstream, ...more));
        expect(result.code, downstream).toBe(1);
        expect(result.err, downstream).toMatch(/^delegate: [^\n]+\n$/);
        expect(result.err, downstream).toMatch(why);
        expect(changed, downstream).toEqual([]);
      }
    }
    // Another agent's URL, for a registered agent that is not CalendarAgent, and an agent already registered changing its downstream.
    const helper = `http://127.0.0.1:${await freePort()}/helper`;
    expect((await register('down-helper', helper)).code).toBe(0);
    const before = fingerprint(stack);
    const refused = await register('evil-down', own, '--calendar-url', `${helper}/`);
    expect([refused.code, refused.err]).toEqual([1, `delegate: The downstream URL ${helper} is the URL of the agent down-helper; an agent reads a calendar backend downstream, not an agent or the authorization server.\n`]);
    expect((await register('down-helper', helper, '--calendar-url', stack.agentUrl)).code).toBe(1);
    expect(fingerprint(stack)).toEqual(before);
    expect(await stack.store.clientById('evil-down')).toBeUndefined();
    // The control: the calendar backend itself, downstream (what CalendarAgent reads).
    expect((await register('evil-down', own, '--calendar-url', stack.calendarUrl)).code).toBe(0);
  });
});

describe('agents register on the calendar backend’s origin, at another path', () => {
  // Found in review: only the backend's URL itself was refused; `--url <backend>/mcp` registered an agent whose users'
  // tokens would go to the backend's listener, which answers every path of its origin (as the issuer's origin is refused).
  it('any path or loopback spelling of the backend’s origin, signed for it or (--auth-port) for another: exit 1 naming the backend, nothing stored', async () => {
    const origin = new URL(stack.calendarUrl);
    const spellings = [`${stack.calendarUrl}/mcp`, `${stack.calendarUrl}/freebusy/x`, `http://localhost:${origin.port}/mcp`, `HTTP://[::1]:${origin.port}/evil/`];
    for (const url of spellings) {
      for (const more of [['--auth-port', String(stack.ports.auth)], ['--auth-port', String(await freePort())]]) {
        const { result, changed } = await stateChangedBy(stack, () => register('evil-backend', url, ...more));
        expect(result.code, `${url} ${more.join(' ')}`).toBe(1);
        expect(result.err, url).toMatch(
          new RegExp(`^delegate: The URL \\S+ is on the origin of the calendar backend ${stack.calendarUrl} \\(a resource of this server, Calendar\\); an agent needs a URL on an origin of its own\\.\\n$`),
        );
        expect(result.out).toBe('');
        expect(changed, url).toEqual([]);
      }
    }
    expect(await stack.store.clientById('evil-backend')).toBeUndefined();
  });

  it('the origin of a backend an agent reads downstream (another’s or its own), and a downstream on another agent’s origin: exit 1, nothing stored; the controls register', async () => {
    const cal = `http://127.0.0.1:${await freePort()}/cal`;
    expect((await register('origin-reader', `http://127.0.0.1:${await freePort()}/mcp`, '--calendar-url', cal)).code).toBe(0);
    const before = fingerprint(stack);
    const near = await register('evil-near', `${new URL(cal).origin}/mcp`);
    expect([near.code, near.err]).toEqual([
      1,
      `delegate: The URL ${new URL(cal).origin}/mcp is on the origin of ${cal}, which the agent origin-reader reaches downstream on users' behalf; an agent needs a URL on an origin of its own.\n`,
    ]);
    const ownOrigin = `http://127.0.0.1:${await freePort()}`;
    const own = await register('evil-near', `${ownOrigin}/mcp`, '--calendar-url', `${ownOrigin}/cal`);
    expect([own.code, own.err]).toEqual([1, `delegate: The URL ${ownOrigin}/mcp is on the origin of ${ownOrigin}/cal, which the agent reads downstream; an agent needs a URL on an origin of its own.\n`]);
    // The other way round: a downstream on an agent's origin (CalendarAgent's), at another path than its URL.
    const agentOrigin = new URL(stack.agentUrl).origin;
    const down = await register('evil-near', `http://127.0.0.1:${await freePort()}/mcp`, '--calendar-url', `${agentOrigin}/calendar`);
    expect([down.code, down.err]).toEqual([
      1,
      `delegate: The downstream URL ${agentOrigin}/calendar is on the origin of the agent ${stack.agent.clientId} (${stack.agentUrl}); an agent reads a calendar backend downstream, not an agent or the authorization server.\n`,
    ]);
    expect(fingerprint(stack)).toEqual(before);
    expect(await stack.store.clientById('evil-near')).toBeUndefined();
    // The controls: another port of the same host, and an agent beside another agent on its origin (one gateway, several MCP servers).
    expect((await register('near-ok', `http://127.0.0.1:${await freePort()}/mcp`, '--calendar-url', cal)).code).toBe(0);
    expect((await register('beside-agent', `${agentOrigin}/helper`)).code).toBe(0);
  });
});

describe('agents register at another loopback name for a URL that is not free (one listener, one origin)', () => {
  // Found in review: the refusals compared host names as written, so `http://localhost:<issuer port>/mcp` was no URL
  // on the issuer http://127.0.0.1:<port>'s origin, nor `http://localhost:<backend port>` the calendar backend's URL,
  // though a loopback name reaches the same listener (localhost resolving to either, a wildcard or dual-stack socket).
  const aliases = (port: number, path = '') => [
    `http://localhost:${port}${path}`,
    `http://127.0.0.2:${port}${path}`,
    `http://[::1]:${port}${path}`,
    `http://[::ffff:127.0.0.1]:${port}${path}`,
    `HTTP://LOCALHOST:${port}${path}/`,
  ];

  it('the authorization server’s origin, the calendar backend’s URL or an agent’s URL by another loopback name, signed for it or (--auth-port) for another: exit 1 naming it, nothing stored', async () => {
    const refusals: Array<[string, RegExp]> = [
      ...aliases(stack.ports.auth).map((url): [string, RegExp] => [url, /is (this|the) authorization server's own|is on the origin of (this|the) authorization server/]),
      ...aliases(stack.ports.auth, '/mcp').map((url): [string, RegExp] => [url, new RegExp(`is on the origin of (this|the) authorization server \\(${stack.issuer}\\)`)]),
      ...aliases(stack.ports.calendar).map((url): [string, RegExp] => [url, new RegExp(`\\(${stack.calendarUrl}, by another loopback name\\) is already a resource of this server \\(Calendar\\)`)]),
      ...aliases(stack.ports.agent, '/mcp').map((url): [string, RegExp] => [url, new RegExp(`\\(${stack.agentUrl}, by another loopback name\\) is already bound to the agent ${stack.agent.clientId}`)]),
    ];
    for (const [url, why] of refusals) {
      for (const more of [['--auth-port', String(stack.ports.auth)], ['--auth-port', String(await freePort())]]) {
        const { result, changed } = await stateChangedBy(stack, () => register('evil-alias', url, ...more));
        expect(result.code, `${url} ${more.join(' ')}`).toBe(1);
        expect(result.err, url).toMatch(/^delegate: [^\n]+\n$/);
        expect(result.err, url).toMatch(why);
        expect(changed, url).toEqual([]);
      }
    }
    expect(await stack.store.clientById('evil-alias')).toBeUndefined();
  });

  it('a downstream on the authorization server’s origin, an agent’s URL, or a URL an agent reaches downstream, by another loopback name: exit 1, nothing stored; the control registers', async () => {
    const own = `http://127.0.0.1:${await freePort()}/mcp`;
    for (const downstream of [...aliases(stack.ports.auth, '/calendar'), ...aliases(stack.ports.agent, '/mcp')]) {
      const { result, changed } = await stateChangedBy(stack, () => register('evil-alias', own, '--calendar-url', downstream));
      expect(result.code, downstream).toBe(1);
      expect(result.err, downstream).toMatch(/is on the origin of (this|the) authorization server|is the URL of the agent/);
      expect(changed, downstream).toEqual([]);
    }
    const port = await freePort();
    expect((await register('alias-reader', `http://127.0.0.1:${await freePort()}/mcp`, '--calendar-url', `http://127.0.0.1:${port}/cal`)).code).toBe(0);
    for (const url of aliases(port, '/cal')) {
      const { result, changed } = await stateChangedBy(stack, () => register('evil-alias', url));
      expect(result.code, url).toBe(1);
      expect(result.err, url).toMatch(/is what the agent alias-reader reaches downstream/);
      expect(changed, url).toEqual([]);
    }
    expect(await stack.store.clientById('evil-alias')).toBeUndefined();
    // The control: loopback names on another port, and the calendar backend by another name downstream (the one it is).
    expect((await register('evil-alias', `http://localhost:${await freePort()}/mcp`, '--calendar-url', `http://localhost:${stack.ports.calendar}`)).code).toBe(0);
  });
});

interface FreshDirectory {
  home: string;
  ports: { auth: number; calendar: number; agent: number };
  urls: { issuer: string; calendarUrl: string; agentUrl: string };
  /** The data directory's store, opened on first use (an agent registered before it is one registered before the first start). */
  store: () => Store;
  /** Setup (bootstrap) with `urls` unless told others: 'set up' or its error's message, and what it changed. */
  setUp: (urls?: FreshDirectory['urls']) => Promise<{ result: string; changed: string[] }>;
}

/** A data directory never started, with free ports and the issuer on `issuerHost`; removed (its store closed) after `run`. */
async function inFreshDirectory(issuerHost: string, run: (dir: FreshDirectory) => Promise<void>): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), 'delegate-bind-'));
  const paths = resolvePaths({ DELEGATE_HOME: home });
  const ports = { auth: await freePort(), calendar: await freePort(), agent: await freePort() };
  const urls = { issuer: `http://${issuerHost}:${ports.auth}`, calendarUrl: `http://127.0.0.1:${ports.calendar}`, agentUrl: `http://127.0.0.1:${ports.agent}/mcp` };
  let store: Store | undefined;
  // The store as the servers open it, synchronously: a fresh directory, no migration to look at first.
  const opened = () => (store ??= openStore(paths.db, { setUpBefore: setUpSigns(paths) }));
  const setUp = (u = urls) => {
    const opening = opened(); // before the fingerprint: the database is there to compare
    return stateChangedBy({ paths }, () => bootstrap(opening, paths, u, Date.now()).then(() => 'set up', (err: Error) => err.message));
  };
  try {
    await run({ home, ports, urls, store: opened, setUp });
  } finally {
    if (store) await closeAll([], store);
    await rm(home, { recursive: true, force: true });
  }
}

describe('an agent bound to the calendar backend’s URL before the first start (nothing on record to refuse it then)', () => {
  it('setup stops naming the agent and how to free the URL, changing nothing; once it is registered elsewhere, setup runs and the backend is bound to no agent', async () => {
    await inFreshDirectory('127.0.0.1', async ({ home, ports, urls, store, setUp }) => {
      const early = await registerIn(home, 'evil', urls.calendarUrl, '--auth-port', String(ports.auth));
      expect(early.code, early.err).toBe(0);
      const { result, changed } = await setUp();
      expect(result).toBe(`The agent evil is bound to ${urls.calendarUrl}, the calendar backend's URL, and would receive its tokens. Register it at a URL of its own (delegate agents register evil --url …), or use another --calendar-port.`);
      expect(changed).toEqual([]);
      // The way out it names.
      const elsewhere = `http://127.0.0.1:${await freePort()}/mcp`;
      expect((await registerIn(home, 'evil', elsewhere, '--auth-port', String(ports.auth))).code).toBe(0);
      expect((await setUp()).result).toBe('set up');
      expect((await store().clientById('evil'))?.resource).toBe(elsewhere);
      expect((await store().resourceByUrl(urls.calendarUrl))?.agentClientId).toBeNull();
    });
  });
});

describe('an agent on the calendar backend’s origin before the first start, and CalendarAgent there', () => {
  it('setup stops naming the agent (or CalendarAgent’s URL) and changes nothing; registered elsewhere, setup runs', async () => {
    await inFreshDirectory('127.0.0.1', async ({ home, ports, urls, setUp }) => {
      const early = await registerIn(home, 'evil', `http://localhost:${ports.calendar}/mcp`, '--auth-port', String(ports.auth));
      expect(early.code, early.err).toBe(0);
      const taken = await setUp();
      expect(taken.result).toBe(
        `The agent evil is bound to http://localhost:${ports.calendar}/mcp, on the origin of the calendar backend (${urls.calendarUrl}), where its tokens are presented. Register it at a URL of its own (delegate agents register evil --url …), or use another --calendar-port.`,
      );
      expect(taken.changed).toEqual([]);
      expect((await registerIn(home, 'evil', `http://127.0.0.1:${await freePort()}/mcp`, '--auth-port', String(ports.auth))).code).toBe(0);
      const agentThere = await setUp({ ...urls, agentUrl: `${urls.calendarUrl}/mcp` });
      expect(agentThere.result).toBe(`${urls.calendarUrl}/mcp, CalendarAgent's URL, is on the origin of the calendar backend (${urls.calendarUrl}); give it an origin of its own.`);
      expect(agentThere.changed).toEqual([]);
      expect((await setUp()).result).toBe('set up');
    });
  });
});

describe('another agent reading a URL on CalendarAgent’s origin downstream, registered before the first start', () => {
  // Found in review (regress20a): registerAgent refused it, but only after setup had written the owner, the calendar
  // and the backend's record.
  it('setup stops naming the agent and both ways out, changing nothing; with the agent reading elsewhere, setup runs', async () => {
    await inFreshDirectory('127.0.0.1', async ({ home, ports, urls, setUp }) => {
      const reads = `http://127.0.0.1:${ports.agent}/calendar`;
      const early = await registerIn(home, 'helper', `http://127.0.0.1:${await freePort()}/mcp`, '--auth-port', String(ports.auth), '--calendar-url', reads);
      expect(early.code, early.err).toBe(0);
      const taken = await setUp();
      expect(taken.result).toBe(
        `${urls.agentUrl}, CalendarAgent's URL, is on the origin of ${reads}, which the agent helper reaches downstream on users' behalf. Give CalendarAgent another --agent-port, or register helper with another --calendar-url (delegate agents register helper …).`,
      );
      expect(taken.changed).toEqual([]);
      const elsewhere = `http://127.0.0.1:${await freePort()}/mcp`;
      expect((await registerIn(home, 'helper', elsewhere, '--auth-port', String(ports.auth), '--calendar-url', urls.calendarUrl)).code).toBe(0);
      expect((await setUp()).result).toBe('set up');
    });
  });
});

describe('a host name with its trailing dot (the same DNS name, RFC 1034 §3.1) at setup', () => {
  // Found in review (regress20a): `https://cal.example.com./mcp` was taken for an origin other than the backend's.
  it('CalendarAgent at the backend’s host with a trailing dot, or at the issuer’s, is refused and changes nothing', async () => {
    await inFreshDirectory('127.0.0.1', async ({ setUp }) => {
      const https = { issuer: 'https://auth.example.com', calendarUrl: 'https://cal.example.com', agentUrl: 'https://agent.example.com/mcp' };
      const onBackend = await setUp({ ...https, agentUrl: 'https://cal.example.com./mcp' });
      expect(onBackend.result).toBe("https://cal.example.com./mcp, CalendarAgent's URL, is on the origin of the calendar backend (https://cal.example.com); give it an origin of its own.");
      expect(onBackend.changed).toEqual([]);
      const onIssuer = await setUp({ ...https, agentUrl: 'https://auth.example.com./mcp' });
      expect(onIssuer.result).toBe("https://auth.example.com./mcp, CalendarAgent's URL, is on the origin of the authorization server (https://auth.example.com); give it an origin of its own.");
      expect(onIssuer.changed).toEqual([]);
      expect((await setUp(https)).result).toBe('set up');
    });
  });
});

describe('an agent on the authorization server’s origin before the first start, and the servers’ own URLs there', () => {
  // Found in review (regress18b): registered before the first start, an agent signs for the default issuer, so its
  // URL on this start's issuer's origin was not refused; it then introspected handed tokens (aud = the issuer) as
  // active. And setup wrote the calendar backend's record before registerAgent refused a backend on that origin.
  it('setup stops naming the agent (or the URL) and changes nothing', async () => {
    await inFreshDirectory('127.0.0.1', async ({ home, urls, setUp }) => {
      const early = await registerIn(home, 'evil', `${urls.issuer}/evil`);
      expect(early.code, early.err).toBe(0);
      const taken = await setUp();
      expect(taken.result).toBe(
        `The agent evil is bound to ${urls.issuer}/evil, on the origin of the authorization server (${urls.issuer}), and would receive its tokens. Register it at a URL of its own (delegate agents register evil --url …), or use another --auth-port.`,
      );
      expect(taken.changed).toEqual([]);
      expect((await registerIn(home, 'evil', `http://127.0.0.1:${await freePort()}/mcp`)).code).toBe(0);
      const calendarThere = await setUp({ ...urls, calendarUrl: `${urls.issuer}/calendar` });
      expect(calendarThere.result).toBe(`${urls.issuer}/calendar, the calendar backend's URL, is on the origin of the authorization server (${urls.issuer}); give it an origin of its own.`);
      expect(calendarThere.changed).toEqual([]);
      const agentThere = await setUp({ ...urls, agentUrl: `${urls.issuer}/mcp` });
      expect(agentThere.result).toBe(`${urls.issuer}/mcp, CalendarAgent's URL, is on the origin of the authorization server (${urls.issuer}); give it an origin of its own.`);
      expect(agentThere.changed).toEqual([]);
      expect((await setUp()).result).toBe('set up');
    });
  });
});

describe('setup with URLs on one loopback listener by different names', () => {
  // Found in review: setup compared host names as written, so an agent at http://127.0.0.1:<port>/evil was not on the
  // origin of the issuer http://localhost:<port>, nor an agent at http://localhost:<backend port> at the backend's URL.
  it('stops naming the agent on the issuer’s origin or at the backend’s URL, or the server’s own URL there, and changes nothing', async () => {
    await inFreshDirectory('localhost', async ({ home, ports, urls, setUp }) => {
      const calendarThere = await setUp({ ...urls, calendarUrl: `http://127.0.0.1:${ports.auth}/calendar` });
      expect(calendarThere.result).toBe(`http://127.0.0.1:${ports.auth}/calendar, the calendar backend's URL, is on the origin of the authorization server (${urls.issuer}); give it an origin of its own.`);
      expect(calendarThere.changed).toEqual([]);
      const agentThere = await setUp({ ...urls, agentUrl: `http://[::1]:${ports.auth}/mcp` });
      expect(agentThere.result).toBe(`http://[::1]:${ports.auth}/mcp, CalendarAgent's URL, is on the origin of the authorization server (${urls.issuer}); give it an origin of its own.`);
      expect(agentThere.changed).toEqual([]);
      const onOrigin = await registerIn(home, 'evil', `http://127.0.0.1:${ports.auth}/evil`);
      expect(onOrigin.code, onOrigin.err).toBe(0);
      const taken = await setUp();
      expect(taken.result).toMatch(new RegExp(`^The agent evil is bound to http://127.0.0.1:${ports.auth}/evil, on the origin of the authorization server \\(${urls.issuer}\\)`));
      expect(taken.changed).toEqual([]);
      const atBackend = await registerIn(home, 'evil', `http://localhost:${ports.calendar}`, '--auth-port', String(await freePort()));
      expect(atBackend.code, atBackend.err).toBe(0);
      const backend = await setUp();
      expect(backend.result).toBe(
        `The agent evil is bound to http://localhost:${ports.calendar}, the calendar backend's URL (${urls.calendarUrl}) by another loopback name, and would receive its tokens. Register it at a URL of its own (delegate agents register evil --url …), or use another --calendar-port.`,
      );
      expect(backend.changed).toEqual([]);
      // The way out: registered at a port of its own, setup runs.
      expect((await registerIn(home, 'evil', `http://localhost:${await freePort()}/mcp`, '--auth-port', String(await freePort()))).code).toBe(0);
      expect((await setUp()).result).toBe('set up');
    });
  });
});

describe('the calendar backend takes only tokens an agent got by exchange', () => {
  /** CalendarAgent's real calendar token with `claims` changed (undefined removes one), signed with the AS's own key. */
  async function calendarTokenWith(calendarToken: string, claims: Record<string, unknown>): Promise<string> {
    const { kid, privateJwk } = await issuerSigningKey(stack);
    const payload: Record<string, unknown> = { ...decodeJwt(calendarToken), jti: `at_${crypto.randomUUID()}`, ...claims };
    for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
    return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid }).sign((await importJWK(privateJwk, 'ES256')) as CryptoKey);
  }

  it('a calendar-audience token without act, or without a calendar detail for this URL: 401 invalid_token with the challenge, nothing read or recorded', async () => {
    const { calendarToken } = await userAndCalendarToken(stack);
    // The control: the token as the exchange issued it.
    expect((await atCalendar(stack, calendarToken)).status).toBe(200);
    const elsewhere = [{ type: 'calendar', locations: ['http://127.0.0.1:9/calendar'], actions: ['freebusy:read'], datatypes: ['freebusy'] }];
    const cases: Array<[string, Record<string, unknown>]> = [
      ['no act', { act: undefined }],
      ['no authorization_details', { authorization_details: undefined }],
      ['authorization_details for another calendar only', { authorization_details: elsewhere }],
      ['no act and no authorization_details (a user token issued for the calendar)', { act: undefined, authorization_details: undefined, client_id: 'cli_public' }],
    ];
    for (const [name, claims] of cases) {
      const token = await calendarTokenWith(calendarToken, claims);
      const { result: res, changed } = await stateChangedBy(stack, () => atCalendar(stack, token));
      expectInvalidToken(res, name);
      expect(String(res.headers['www-authenticate']), name).toContain(`resource_metadata="${stack.calendarUrl}/.well-known/oauth-protected-resource"`);
      expect((res.json() as { error: string }).error, name).toBe('invalid_token');
      expect(changed, name).toEqual([]);
    }
  });
});

describe('an agent re-registered at another URL (a move)', () => {
  const FLOW = 'http://127.0.0.1:43123/callback';
  /** What /authorize answers the signed-in owner for `resource`: the redirect's query (error or code), null for a consent page. */
  async function authorizeFor(clientId: string, resource: string): Promise<URLSearchParams | null> {
    const href = authorizeUrl(stack.issuer, { clientId, redirectUri: FLOW, resource, scope: 'freebusy:read', state: 'st', challenge: pkcePair().challenge });
    const page = await signInAndOpenConsent(new Browser(), stack.issuer, stack.ownerJwk, href);
    return page.location ? callbackParams(page.location) : null;
  }

  it('the old URL’s resource record goes with its live grants (revoked, on the record, in the move’s transaction): /authorize answers invalid_target, its refresh token mints nothing, and the URL is free', async () => {
    const [first, second] = [`http://127.0.0.1:${await freePort()}/mcp`, `http://127.0.0.1:${await freePort()}/mcp`];
    expect((await register('mover', first)).code).toBe(0);
    const at = { ...stack, agentUrl: first };
    const approved = await ownerApproves(at, { scope: 'freebusy:read' });
    const tokens = await redeemCode(at, approved);
    expect(tokens.status, JSON.stringify(tokens.body)).toBe(200);
    const grantId = String(decodeJwt(String(tokens.body.access_token)).grant_id);
    const seq = await lastAuditSeq(stack);

    // One transaction: with either of its records failing (a full disk), nothing of the move is written.
    for (const event of ['grant_revoked', 'agent_registered']) {
      const restore = failAuditRecords(stack.home, event);
      try {
        const { result, changed } = await stateChangedBy(stack, () => register('mover', second));
        expect(result.code, event).toBe(1);
        expect(changed, event).toEqual([]);
      } finally {
        restore();
      }
    }
    const moved = await register('mover', second);
    expect(moved.code, moved.err).toBe(0);
    expect(await stack.store.resourceByUrl(first)).toBeUndefined();
    expect((await stack.store.resourceByUrl(second))?.agentClientId).toBe('mover');
    const grant = await stack.store.grantById(grantId);
    expect(grant?.revokedAt).not.toBeNull();
    // On the audit log: the grant's revocation, then the registration, naming the URL it left and what that ended.
    const records = await auditSince(stack, seq);
    expect(records.map((r) => [r.event, r.client, r.grant ?? null, r.resource])).toEqual([
      ['grant_revoked', approved.clientId, grantId, first],
      ['agent_registered', 'mover', null, second],
    ]);
    expect(records[0]!.detail).toMatchObject({ by: 'cli', via: 'agent moved', agent: 'mover', moved_to: second });
    expect(records[1]!.detail).toMatchObject({ by: 'cli', replaced: true, moved_from: first, grants_revoked: [grantId] });

    // The old URL is no resource of this server: no consent page, no code (RFC 8707 §2: invalid_target).
    const answer = await authorizeFor(approved.clientId, first);
    expect(answer?.get('error')).toBe('invalid_target');
    expect(answer?.get('code')).toBeNull();
    // The grant's refresh token mints no token for the URL nobody serves.
    const refreshed = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(tokens.body.refresh_token), client_id: approved.clientId });
    expect([refreshed.status, refreshed.body.error]).toEqual([400, 'invalid_grant']);
    expect(refreshed.body.access_token).toBeUndefined();
    // Free for another agent, which inherits no consent given to mover there.
    expect((await register('mover-next', first)).code).toBe(0);
    expect((await stack.store.grantById(grantId))?.revokedAt).toBe(grant?.revokedAt);
    const again = await postForm(`${stack.issuer}/token`, { grant_type: 'refresh_token', refresh_token: String(tokens.body.refresh_token), client_id: approved.clientId });
    expect([again.status, again.body.error]).toEqual([400, 'invalid_grant']);
  });

  it('with no grant for the old URL: the record goes all the same, nothing is revoked, and the agent may move back', async () => {
    const [first, second] = [`http://127.0.0.1:${await freePort()}/mcp`, `http://127.0.0.1:${await freePort()}/mcp`];
    expect((await register('wanderer', first)).code).toBe(0);
    const seq = await lastAuditSeq(stack);
    expect((await register('wanderer', second)).code).toBe(0);
    expect(await stack.store.resourceByUrl(first)).toBeUndefined();
    const records = await auditSince(stack, seq);
    expect(records.map((r) => r.event)).toEqual(['agent_registered']);
    expect(records[0]!.detail).toMatchObject({ moved_from: first, grants_revoked: [] });
    expect(await authorizeFor(await registerPublicClient(stack.issuer, [FLOW]), first).then((a) => a?.get('error'))).toBe('invalid_target');
    // Back where it was: one resource, the first URL, bound to it.
    expect((await register('wanderer', first)).code).toBe(0);
    expect((await stack.store.listResources()).filter((r) => r.agentClientId === 'wanderer').map((r) => r.url)).toEqual([first]);
  });

  it('CalendarAgent moved by a start on another agent port: the same, recorded as setup’s doing; a start that moves nothing records nothing', async () => {
    const home = await mkdtemp(join(tmpdir(), 'delegate-move-'));
    const paths = resolvePaths({ DELEGATE_HOME: home });
    const ports = { auth: await freePort(), calendar: await freePort() };
    const urls = (agentPort: number) => ({ issuer: `http://127.0.0.1:${ports.auth}`, calendarUrl: `http://127.0.0.1:${ports.calendar}`, agentUrl: `http://127.0.0.1:${agentPort}/mcp` });
    const [before, after] = [urls(await freePort()), urls(await freePort())];
    try {
      const store = await openDataStore(paths);
      try {
        expect(await bootstrap(store, paths, before, Date.now())).toBeUndefined();
        expect(await bootstrap(store, paths, before, Date.now())).toBeUndefined();
        // Only the owner, its demo calendar and the first signing key, which the first start added (found in review,
        // s24: they had no record; the key since stop 31).
        expect((await store.listAudit()).map((r) => [r.event, r.detail.by])).toEqual([
          ['user_added', 'setup'],
          ['calendar_added', 'setup'],
          ['signing_key_created', 'setup'],
        ]);
        const owner = (await store.ownerUser())!;
        const agentId = (await store.listClients('agent'))[0]!.clientId;
        const now = Date.now();
        const grant = { id: `grt_${crypto.randomUUID()}`, userId: owner.id, clientId: agentId, resource: before.agentUrl, scope: 'slots:find', authorizationDetails: [], maxDepth: 1, createdAt: now, expiresAt: now + 86_400_000, revokedAt: null };
        await store.createGrant(grant);
        // With the new port taken, the start is refused before it moves anything (found in review, s29: a serve refused
        // for a port in use had moved the agent and ended this grant; serve, serve-auth and the embedded start pass
        // their ports to bootstrap).
        const agentPort = Number(new URL(after.agentUrl).port);
        const holder = createServer((socket) => socket.destroy());
        await new Promise<void>((resolve) => holder.listen(agentPort, '127.0.0.1', resolve));
        try {
          const listenOn = { host: '127.0.0.1', parts: [{ name: 'CalendarAgent', port: agentPort }] };
          const refused = await stateChangedBy({ paths }, () => bootstrap(store, paths, after, Date.now(), false, listenOn).then(() => 'set up', (err: Error) => err.message));
          expect(refused).toEqual({ result: `Port ${agentPort} is already in use, so CalendarAgent cannot start. Is delegate serve already running?`, changed: [] });
        } finally {
          await new Promise<void>((resolve) => holder.close(() => resolve()));
        }
        // The start says so (found in review, regress18c: the grants ended without a word; the person learnt of it
        // as a new consent page).
        const move = await bootstrap(store, paths, after, Date.now());
        expect(move).toEqual({ from: before.agentUrl, to: after.agentUrl, grantsRevoked: 1 });
        expect(agentMoveNotice(move!)).toBe(
          `CalendarAgent moved from ${before.agentUrl} to ${after.agentUrl}: the 1 delegation given for the old address ended, and each app asks for approval again (\`delegate audit\` lists them as grant_revoked).`,
        );
        expect(await store.resourceByUrl(before.agentUrl)).toBeUndefined();
        expect((await store.resourceByUrl(after.agentUrl))?.agentClientId).toBe(agentId);
        expect((await store.grantById(grant.id))?.revokedAt).not.toBeNull();
        const records = (await store.listAudit()).slice(3);
        expect(records.map((r) => [r.event, r.grant ?? null, r.resource, r.detail.by])).toEqual([
          ['grant_revoked', grant.id, before.agentUrl, 'setup'],
          ['agent_registered', null, after.agentUrl, 'setup'],
        ]);
        expect(records[1]!.detail).toMatchObject({ moved_from: before.agentUrl, grants_revoked: [grant.id] });
      } finally {
        await closeAll([], store);
      }
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});
