// `npm run conformance`: the MCP conformance suite (@modelcontextprotocol/
// conformance, which needs Node 22, run through `npx -y -p node@22 …`)
// against delegate. Client mode drives dist/conformance/client.js through the
// auth, metadata, back-compat and scope suites, and the draft authorization
// scenarios at the 2025-11-25 wire (the SDK's client speaks that lifecycle);
// authorization-server mode checks delegate's own authorization server
// (`delegate serve` on spare ports), with this script playing the owner at
// the browser. Results go to test-artifacts/conformance/; the exit code is 1
// if any scenario failed.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot, processEnv } from '../config.js';
import { loadOrCreateOwnerKey, ownerLoginUrl, signOwnerAssertion } from '../client/owner-login.js';

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

function run(args: string[], onStdout?: (text: string) => void): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('npx', ['-y', '-p', 'node@22', '-p', CONFORMANCE_PACKAGE, 'conformance', ...args], { cwd: root, env: { ...env, NO_COLOR: '1' } });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      onStdout?.(output);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('exit', (code) => resolve({ code, output }));
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

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** `conformance authorization` against `delegate serve`, this script signing in as the owner and approving. */
async function authorizationServer(): Promise<Outcome> {
  const home = join(await mkdtemp(join(tmpdir(), 'delegate-conformance-as-')), 'home');
  const [auth, calendar, agent, callback] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const issuer = `http://127.0.0.1:${auth}`;
  const agentUrl = `http://127.0.0.1:${agent}/mcp`;
  const serve = spawn(process.execPath, [join(root, 'bin', 'delegate'), 'serve', '--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)], {
    env: { ...env, DELEGATE_HOME: home },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    let serveLog = '';
    serve.stderr.setEncoding('utf8').on('data', (chunk: string) => (serveLog += chunk));
    for (let i = 0; i < 300 && !serveLog.includes('Press Ctrl-C'); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    const registered = await fetch(`${issuer}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'MCP conformance suite', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none', grant_types: ['authorization_code'] }),
    });
    const { client_id } = (await registered.json()) as { client_id: string };
    let approving: Promise<void> | undefined;
    const { code, output } = await run(
      ['authorization', '--url', issuer, '--client-id', client_id, '--resource', agentUrl, '--port', String(callback), '-o', join(outDir, 'authorization')],
      (text) => {
        const url = new RegExp(`${issuer}/authorize\\?\\S+`).exec(text)?.[0];
        if (url && !approving) approving = approveAsOwner(home, issuer, new URL(url));
      },
    );
    await approving;
    const { passed, failed } = counts(output);
    return { name: 'authorization (delegate serve)', passed, failed, ok: code === 0 && failed === 0, detail: output.split('\n').filter((l) => /SUCCESS|FAILURE|WARNING|SKIPPED/.test(l)).join('\n') };
  } finally {
    serve.kill('SIGTERM');
    await new Promise((resolve) => serve.once('exit', resolve));
    await rm(join(home, '..'), { recursive: true, force: true });
  }
}

/** The owner at the browser: sign in with the owner key, approve on the consent page, follow the redirect to the suite's callback. */
async function approveAsOwner(home: string, issuer: string, authorizationUrl: URL): Promise<void> {
  const key = await loadOrCreateOwnerKey(join(home, 'owner-key.json'));
  const link = ownerLoginUrl(issuer, await signOwnerAssertion({ key, issuer, now: Date.now }), authorizationUrl);
  let cookie = '';
  let url = link;
  let page = '';
  for (let hop = 0; hop < 5; hop++) {
    const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    const set = res.headers.getSetCookie()[0];
    if (set) cookie = set.split(';')[0]!;
    page = await res.text();
    const location = res.headers.get('location');
    if (!location) break;
    url = new URL(location, url).href;
    if (!url.startsWith(issuer)) {
      await fetch(url); // remembered grant: straight back to the suite
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
  const answer = await fetch(`${issuer}/consent`, { method: 'POST', redirect: 'manual', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: form });
  const back = answer.headers.get('location');
  if (!back) throw new Error(`consent answered ${answer.status} without a redirect`);
  await fetch(new URL(back, issuer).href);
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
    process.stderr.write(`conformance: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);
