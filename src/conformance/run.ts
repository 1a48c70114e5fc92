// `npm run conformance`: the MCP conformance suite (@modelcontextprotocol/
// conformance, which needs Node 22, run through `npx -y -p node@22 …`)
// against delegate. Client mode drives dist/conformance/client.js through the
// auth, metadata, back-compat and scope suites, and the draft authorization
// scenarios at the 2025-11-25 wire (the SDK's client speaks that lifecycle);
// authorization-server mode checks delegate's own authorization server
// (`delegate serve` on spare ports), with this script playing the owner, who
// runs `delegate approve` and approves at the browser. Results go to test-artifacts/conformance/; the exit code is 1
// if any scenario failed.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot, processEnv } from '../config.js';
import { freePort } from '../free-port.js';
import { heldTimeout, timedOut } from '../http/held-timeout.js';

export const CONFORMANCE_PACKAGE = '@modelcontextprotocol/conformance@0.2.0-alpha.12';
/** The client ID metadata document URL the suite's CIMD scenario expects a client to hold. */
const CIMD_URL = 'https://conformance-test.local/client-metadata.json';
const CLIENT_SUITES = ['auth', 'metadata', 'backcompat', 'sep-835'] as const;
/** Authorization scenarios of the 2026-07-28 draft whose checks apply to any wire version; run at the one the SDK speaks. */
const DRAFT_AUTH_SCENARIOS = [
  'auth/resource-mismatch',
  'auth/offline-access-scope',
  'auth/offline-access-not-supported',
  'auth/authorization-server-migration',
  'auth/iss-supported',
  'auth/iss-not-advertised',
  'auth/iss-supported-missing',
  'auth/iss-wrong-issuer',
  'auth/iss-unexpected',
  'auth/iss-normalized',
  'auth/metadata-issuer-mismatch',
];

interface Outcome {
  name: string;
  passed: number;
  failed: number;
  ok: boolean;
  detail: string;
}

const root = packageRoot();
const outDir = join(root, 'test-artifacts', 'conformance');
const env = processEnv();

/**
 * One run of the suite. `stop` ends it early: the suite then runs in a process
 * group of its own, as npx does not pass a SIGTERM on to it, and the group is
 * ended on `stop` or when this script gets SIGINT, SIGTERM or SIGHUP.
 */
function run(args: string[], onStdout?: (text: string) => void, stop?: AbortSignal): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('npx', ['-y', '-p', 'node@22', '-p', CONFORMANCE_PACKAGE, 'conformance', ...args], { cwd: root, env: { ...env, NO_COLOR: '1' }, detached: stop !== undefined });
    const end = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    };
    const interrupted = (signal: NodeJS.Signals) => {
      end();
      process.exit(128 + constants.signals[signal]);
    };
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    if (stop) {
      stop.addEventListener('abort', end, { once: true });
      for (const signal of signals) process.once(signal, interrupted);
    }
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      onStdout?.(output);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('exit', (code) => {
      stop?.removeEventListener('abort', end);
      for (const signal of signals) process.off(signal, interrupted);
      resolve({ code, output });
    });
  });
}

function counts(output: string): { passed: number; failed: number } {
  const total = /Total: (\d+) passed, (\d+) failed/.exec(output) ?? /Passed: (\d+)\/\d+, (\d+) failed/.exec(output);
  return total ? { passed: Number(total[1]), failed: Number(total[2]) } : { passed: 0, failed: 1 };
}

const clientCommand = `node ${JSON.stringify(join(root, 'dist', 'conformance', 'client.js'))} --headless --client-metadata-url ${CIMD_URL}`;

async function clientSuite(suite: string): Promise<Outcome> {
  const { code, output } = await run(['client', '--command', clientCommand, '--suite', suite, '-o', join(outDir, 'client')]);
  const { passed, failed } = counts(output);
  const lines = output.split('\n').filter((l) => /^[✓✗] /.test(l));
  return { name: `client --suite ${suite}`, passed, failed, ok: code === 0 && failed === 0, detail: lines.join('\n') };
}

async function draftScenario(scenario: string): Promise<Outcome> {
  const { code, output } = await run(['client', '--command', clientCommand, '--scenario', scenario, '--spec-version', '2025-11-25', '--force', '-o', join(outDir, 'client')]);
  const { passed, failed } = counts(output);
  return { name: `client ${scenario} (2025-11-25 wire)`, passed, failed, ok: code === 0 && failed === 0, detail: '' };
}

/** Attempts at the authorization-server run when a port it was given turns out to be taken. */
const PORT_ATTEMPTS = 3;

interface Attempt {
  outcome: Outcome;
  /** A server could not listen on the port it was given (EADDRINUSE): worth a second try on new ports. */
  portTaken: boolean;
}

/** `conformance authorization` against `delegate serve`, this script signing in as the owner and approving; new ports if one was taken. */
async function authorizationServer(): Promise<Outcome> {
  let attempt = await authorizationAttempt();
  for (let n = 2; n <= PORT_ATTEMPTS && attempt.portTaken; n++) {
    process.stderr.write(`conformance: a port of the authorization-server run was taken (EADDRINUSE); attempt ${n} of ${PORT_ATTEMPTS} on new ports\n`);
    attempt = await authorizationAttempt();
  }
  return attempt.outcome;
}

/** What a child printed, as it printed it; `ready` resolves once `signal` appears, or with false when the child exits first. */
function watch(child: ChildProcess, stream: 'stdout' | 'stderr', signal: string): { text: () => string; ready: Promise<boolean> } {
  let text = '';
  const ready = new Promise<boolean>((resolve) => {
    child[stream]!.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      if (text.includes(signal)) resolve(true);
    });
    child.once('close', () => resolve(text.includes(signal)));
  });
  return { text: () => text, ready };
}

async function authorizationAttempt(): Promise<Attempt> {
  const name = 'authorization (delegate serve)';
  const home = join(await mkdtemp(join(tmpdir(), 'delegate-conformance-as-')), 'home');
  const [auth, calendar, agent, callback] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const issuer = `http://127.0.0.1:${auth}`;
  const agentUrl = `http://127.0.0.1:${agent}/mcp`;
  const serve = spawn(process.execPath, [join(root, 'bin', 'delegate'), 'serve', '--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)], {
    env: { ...env, DELEGATE_HOME: home },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise((resolve) => serve.once('exit', resolve));
  try {
    const serveLog = watch(serve, 'stderr', 'Press Ctrl-C');
    if (!(await Promise.race([serveLog.ready, new Promise<false>((resolve) => setTimeout(resolve, 30_000, false).unref())]))) {
      const portTaken = /already in use/.test(serveLog.text());
      return { portTaken, outcome: { name, passed: 0, failed: 1, ok: false, detail: `delegate serve did not start:\n${serveLog.text().trim()}` } };
    }
    const registered = await fetch(`${issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'MCP conformance suite', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none', grant_types: ['authorization_code'] }),
    });
    const { client_id } = (await registered.json()) as { client_id: string };
    const resultsDir = join(outDir, 'authorization');
    const before = new Set(await readdir(resultsDir).catch(() => []));
    // The owner's approval, bounded: a wrong turn (say another server on the callback port) fails it rather than hanging.
    const approval = new AbortController();
    const suite = new AbortController();
    let approving: Promise<Error | undefined> | undefined;
    const { code, output } = await run(
      ['authorization', '--url', issuer, '--client-id', client_id, '--resource', agentUrl, '--port', String(callback), '-o', resultsDir],
      (text) => {
        // The suite prints the URL before its callback listener is up (and says it started even when the listen failed: express 5).
        const url = new RegExp(`${issuer}/authorize\\?\\S+`).exec(text)?.[0];
        if (url && text.includes(`Callback server started: http://127.0.0.1:${callback}`) && !approving) {
          approving = approveAsOwner(home, issuer, new URL(url), approval.signal).then(
            () => undefined,
            (error: unknown) => {
              if (approval.signal.aborted) return undefined; // the suite ended first; its checks tell
              // The suite would wait 5 minutes for a callback that is not coming; give it a moment to finish on its own.
              setTimeout(() => suite.abort(), 10_000).unref();
              return error instanceof Error ? error : new Error(String(error));
            },
          );
        }
      },
      suite.signal,
    );
    approval.abort();
    const refused = await approving;
    const errors = await failedChecks(resultsDir, before);
    const { passed, failed } = counts(output);
    const lines = [...output.split('\n').filter((l) => /SUCCESS|FAILURE|WARNING|SKIPPED/.test(l)), ...errors.map((e) => `  ${e}`)];
    if (refused) lines.push(`the owner's approval failed: ${describe(refused)}`);
    return {
      portTaken: errors.some((e) => e.includes('EADDRINUSE')),
      outcome: { name, passed, failed, ok: code === 0 && failed === 0 && !refused, detail: lines.join('\n') },
    };
  } finally {
    serve.kill('SIGTERM');
    await exited;
    await rm(join(home, '..'), { recursive: true, force: true });
  }
}

/** The failed checks' messages in the scenario results this run wrote (the suite prints only counts). */
async function failedChecks(resultsDir: string, before: Set<string>): Promise<string[]> {
  const messages: string[] = [];
  for (const dir of await readdir(resultsDir).catch(() => [])) {
    if (before.has(dir)) continue;
    let checks: { id?: string; status?: string; errorMessage?: string }[];
    try {
      checks = JSON.parse(await readFile(join(resultsDir, dir, 'checks.json'), 'utf8')) as typeof checks;
    } catch {
      continue; // not written, or cut short by an ended suite: its counts still tell
    }
    for (const c of Array.isArray(checks) ? checks : []) if (c?.status === 'FAILURE') messages.push(`${c.id}: ${c.errorMessage ?? 'failed'}`);
  }
  return messages;
}

/** Runs `delegate approve --no-browser URL` (the built CLI) in `home`; the /start address it prints, once it has printed it. */
async function approveCommandStart(home: string, issuer: string, authorizationUrl: URL, signal: AbortSignal): Promise<string> {
  const cli = spawn(process.execPath, [join(root, 'bin', 'delegate'), 'approve', '--no-browser', '--auth-port', new URL(issuer).port, authorizationUrl.href], {
    env: { ...env, DELEGATE_HOME: home, NO_COLOR: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  signal.addEventListener('abort', () => cli.kill('SIGTERM'), { once: true });
  const printed = watch(cli, 'stderr', '/start\n');
  if (!(await printed.ready)) throw new Error(`delegate approve printed no address: ${printed.text().trim()}`);
  return /http:\/\/127\.0\.0\.1:\d+\/start/.exec(printed.text())![0];
}

/** An error with its causes (fetch's "fetch failed" says why only in `cause`). */
function describe(error: unknown): string {
  const parts: string[] = [];
  for (let e = error, depth = 0; e !== undefined && depth < 4; e = e instanceof Error ? e.cause : undefined, depth++) {
    parts.push(e instanceof Error ? `${e.message}${'code' in e && e.code ? ` (${String(e.code)})` : ''}` : String(e));
  }
  return parts.join(': ');
}

/**
 * The owner as a person: runs `delegate approve --no-browser '<the suite's authorization URL>'` in the servers' data
 * directory, opens the address it prints, approves on the consent page, and follows the redirect to the suite's callback.
 */
async function approveAsOwner(home: string, issuer: string, authorizationUrl: URL, stop: AbortSignal): Promise<void> {
  const signal = heldTimeout(30_000, timedOut, stop).signal; // not AbortSignal.any() with a timeout: src/http/held-timeout.ts
  let cookie = '';
  let url = await approveCommandStart(home, issuer, authorizationUrl, signal);
  let page = '';
  for (let hop = 0; hop < 5; hop++) {
    const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {}, signal });
    const set = res.headers.getSetCookie()[0];
    if (set) cookie = set.split(';')[0]!;
    page = await res.text();
    const location = res.headers.get('location');
    if (!location) break;
    url = new URL(location, url).href;
    if (!url.startsWith(issuer)) {
      await fetch(url, { signal }); // remembered grant: straight back to the suite
      return;
    }
  }
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]+)"`).exec(page)?.[1] ?? '';
  const form = new URLSearchParams({ request: field('request'), csrf: field('csrf'), decision: 'approve' });
  for (const [, name, value] of page.matchAll(/<input type="checkbox" name="([^"]+)" value="([^"]*)" checked>/g)) form.append(name!, value!);
  for (const [, name, options] of page.matchAll(/<select id="[^"]*" name="([^"]+)">(.*?)<\/select>/gs)) {
    const selected = /<option value="([^"]*)" selected>/.exec(options!);
    if (selected) form.set(name!, selected[1]!);
  }
  const answer = await fetch(`${issuer}/consent`, { method: 'POST', redirect: 'manual', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: form, signal });
  const back = answer.headers.get('location');
  if (!back) throw new Error(`consent answered ${answer.status} without a redirect`);
  await fetch(new URL(back, issuer).href, { signal });
}

async function main(): Promise<number> {
  const started = Date.now();
  // The suites wait on loopback round trips far more than they compute: run them side by side.
  const drafts = async (): Promise<Outcome[]> => {
    const out: Outcome[] = [];
    for (let i = 0; i < DRAFT_AUTH_SCENARIOS.length; i += 6) out.push(...(await Promise.all(DRAFT_AUTH_SCENARIOS.slice(i, i + 6).map(draftScenario))));
    return out;
  };
  const [suites, draftOutcomes, server] = await Promise.all([Promise.all(CLIENT_SUITES.map(clientSuite)), drafts(), authorizationServer()]);
  const outcomes: Outcome[] = [...suites, ...draftOutcomes, server];
  for (const o of outcomes) {
    process.stdout.write(`${o.ok ? 'PASS' : 'FAIL'}  ${o.name}: ${o.passed} checks passed, ${o.failed} failed\n`);
    if (o.detail) process.stdout.write(`${o.detail.replace(/^/gm, '      ')}\n`);
  }
  const failed = outcomes.filter((o) => !o.ok).length;
  process.stdout.write(`conformance: ${outcomes.length - failed} passed, ${failed} failed (${Math.round((Date.now() - started) / 1000)} s; results in ${outDir})\n`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`conformance: ${error instanceof Error ? error.stack : String(error)}${error instanceof Error && error.cause ? `\n  cause: ${describe(error.cause)}` : ''}\n`);
    process.exit(1);
  },
);
