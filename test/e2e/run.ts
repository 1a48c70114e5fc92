// Running the built CLI as a user would (node bin/delegate …) with its own
// data directory, and playing the person at the browser with a plain HTTP
// client: follow the sign-in link, read the consent form, Approve, and
// follow the redirect to the CLI's loopback callback.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { PassThrough } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { freePort } from '../support/ports.js';
import { Browser, parseConsentForm } from '../support/oauth-flow.js';
import { delegateBin, repoRoot } from './built.js';

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first loopback URL printed on stderr (what newcomer.sh opens). */
  loginUrl: Promise<string>;
  done: Promise<Run>;
}

const running = new Set<ChildProcess>();

/** The first http://127.0.0.1… URL in a text, as the acceptance check greps it. */
export function firstLoopbackUrl(text: string): string | undefined {
  return /https?:\/\/(?:127\.0\.0\.1|localhost)[^\s"<>]+/.exec(text)?.[0];
}

/**
 * The Node.js that runs delegate's servers and admin commands. Normally this
 * one; when CI runs the CLI under test on Node 22 or 24, they stay on the Node that
 * better-sqlite3 was built for (DELEGATE_E2E_SERVER_NODE), since a native
 * module loads only in the runtime it was compiled against.
 */
const serverNode = process.env.DELEGATE_E2E_SERVER_NODE || process.execPath;

/** Commands that open the SQLite store in their own process: the servers and the admin commands. */
const storeCommands = ['serve', 'serve-auth', 'serve-calendar', 'serve-agent', 'audit', 'agents', 'grants', 'users', 'calendar'];

function runtimeFor(args: string[]): string {
  const opensStore = storeCommands.includes(args[0] ?? '') && !args.includes('--stdio');
  return opensStore ? serverNode : process.execPath;
}

/** Starts a server command (serve, serve-auth, …) and resolves once it says it is ready; rejects with its stderr if it exits first. `options.env` goes into its environment. */
export async function startServer(args: string[], home: string, options: { env?: Record<string, string> } = {}): Promise<Running> {
  const server = startCli(args, home, options);
  while (!server.stderr().includes('Press Ctrl-C')) {
    if (server.child.exitCode !== null) throw new Error(`delegate ${args[0]} exited:\n${server.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return server;
}

/**
 * `node bin/delegate …args` with DELEGATE_HOME=home; `options.nodeArgs` go to node before the launcher (e.g. `--import`
 * a test hook), `options.env` into its environment, `options.stdin` to its stdin (piped; none given: no stdin).
 */
export function startCli(args: string[], home: string, options: { nodeArgs?: string[]; env?: Record<string, string>; stdin?: string } = {}): Running {
  const child = spawn(runtimeFor(args), [...(options.nodeArgs ?? []), delegateBin, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...options.env, DELEGATE_HOME: home, NO_COLOR: '1' },
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (options.stdin !== undefined) child.stdin!.end(options.stdin);
  running.add(child);
  let stdout = '';
  let stderr = '';
  let resolveUrl: (url: string) => void;
  let rejectUrl: (error: Error) => void;
  const loginUrl = new Promise<string>((resolve, reject) => {
    resolveUrl = resolve;
    rejectUrl = reject;
  });
  loginUrl.catch(() => undefined); // only some runs wait for it
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    const url = firstLoopbackUrl(stderr);
    if (url && stderr.slice(stderr.indexOf(url) + url.length).includes('\n')) resolveUrl(url);
  });
  const done = new Promise<Run>((resolve) => {
    // 'close', not 'exit': 'exit' may come before the last of stdout has been read (seen once in 20
    // find-slot processes on a busy machine: exit code 0, empty stdout).
    child.on('close', (code, signal) => {
      running.delete(child);
      rejectUrl(new Error(`delegate exited (${code ?? signal}) without printing a sign-in URL; stderr:\n${stderr}`));
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, stdout: () => stdout, stderr: () => stderr, loginUrl, done };
}

export async function runCli(args: string[], home: string, options: { stdin?: string } = {}): Promise<Run> {
  return startCli(args, home, options).done;
}

/** `delegate users add NAME` on the data directory `home`, the password on stdin (a named account, for server mode). */
export function addAccount(home: string, name: string, password: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(serverNode, [delegateBin, 'users', 'add', name], { cwd: repoRoot, env: { ...process.env, DELEGATE_HOME: home, NO_COLOR: '1' }, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('close', (code) => resolve({ code, stderr }));
    child.stdin!.end(`${password}\n`);
  });
}

/** Where the CLI's printed /start sends its own user's browser: the owner's sign-in link. */
export async function ownerLinkBehind(startUrl: string): Promise<string> {
  const res = await fetch(startUrl, { redirect: 'manual' });
  await res.text();
  if (res.status !== 302) throw new Error(`${startUrl} answered ${res.status}`);
  return res.headers.get('location')!;
}

/**
 * The user code a `login --device` prints on the line after its link, once it is there (the CLI writes the two apart:
 * a fixed wait of 200 ms before reading it could find it missing on a loaded machine, found in review, s28flake).
 */
export async function deviceUserCode(cli: Running): Promise<string> {
  await cli.loginUrl;
  const code = /shows the code ([A-Z]{4}-[A-Z]{4})/;
  for (const deadline = Date.now() + 10_000; !code.test(cli.stderr()); ) {
    if (Date.now() > deadline || cli.child.exitCode !== null) throw new Error(`no user code printed:\n${cli.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return code.exec(cli.stderr())![1]!;
}

/** The form of the sign-in address the CLI prints and opens for a local owner: its own listener's /start, no secret in it. */
export const START_URL = /^http:\/\/127\.0\.0\.1:\d+\/start$/;

/** `node bin/delegate …args` run (by root) as the OS user `uid`, group `uid`, from `/`, with only PATH, NO_COLOR=1 and `env` in its environment. */
export function runCliAs(uid: number, args: string[], env: Record<string, string>): Promise<Run> {
  const child = spawn(runtimeFor(args), [delegateBin, ...args], {
    uid,
    gid: uid,
    cwd: '/',
    env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

/** Kills CLI processes a failed test left behind. */
export function killLeftovers(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/**
 * Signs in and approves (or denies) in "the browser", ending on the CLI's loopback callback page; `choices` are the
 * consent page's fields the person changes (e.g. ONE_HELPER_AGENT), the page's preselection otherwise.
 */
export async function approveInBrowser(
  link: string,
  decision: 'approve' | 'deny' = 'approve',
  choices: Record<string, string | string[]> = {},
): Promise<{ callbackStatus: number; callbackPage: string }> {
  const browser = new Browser();
  const consent = await browser.follow(link);
  if (consent.location !== null && decision === 'approve') {
    // The delegation is granted already (the same client asked for no more): the server sends the browser straight back.
    const callback = await browser.get(consent.location);
    return { callbackStatus: callback.status, callbackPage: callback.html };
  }
  if (consent.status !== 200) throw new Error(`expected the consent page, got ${consent.status}: ${consent.html.slice(0, 300)}`);
  const form = parseConsentForm(consent.html);
  const answer = await browser.post(new URL('/consent', consent.url).href, { ...form, ...choices, decision });
  if (answer.status !== 302 && answer.status !== 303) throw new Error(`consent answered ${answer.status}: ${answer.html.slice(0, 300)}`);
  const callback = await browser.get(new URL(answer.location!, consent.url).href);
  return { callbackStatus: callback.status, callbackPage: callback.html };
}

/**
 * `delegate serve-agent --stdio ARGS…` in `home` (TZ Europe/Berlin), spawned and connected by the real MCP SDK client
 * as an MCP host starts it; its stderr as it has come so far.
 */
export async function connectStdioAgent(args: string[], home: string, clientName: string): Promise<{ client: Client; stderr: () => string }> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [delegateBin, 'serve-agent', '--stdio', ...args],
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', DELEGATE_HOME: home, NO_COLOR: '1', TZ: 'Europe/Berlin' },
    stderr: 'pipe',
  });
  let stderr = '';
  (transport.stderr as PassThrough | null)?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const client = new Client({ name: clientName, version: '1.0.0' });
  await client.connect(transport);
  return { client, stderr: () => stderr };
}

/** `delegate login --no-browser ARGS…` in `home`, approved in "the browser"; throws with its stderr unless it exits 0. */
export async function loginApproved(args: string[], home: string): Promise<void> {
  const cli = startCli(['login', '--no-browser', ...args], home);
  await approveInBrowser(await cli.loginUrl);
  const run = await cli.done;
  if (run.code !== 0) throw new Error(`delegate login exited ${run.code ?? run.signal}:\n${run.stderr}`);
}

/** The HTTP status CalendarAgent at `agentUrl` answers a `tools/list` made with `token`. */
export async function toolsListStatus(agentUrl: string, token: string): Promise<number> {
  const res = await fetch(agentUrl, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
  });
  await res.text();
  return res.status;
}

/**
 * A token cache (tokens.json, 0600 in a 0700 home) as a sign-in with the
 * servers on these ports leaves it, holding the given tokens: they need not
 * be real ones, nor the client known to those servers.
 */
export async function storeSignIn(
  home: string,
  ports: { auth: number; agent: number },
  t: { accessToken: string; refreshToken: string; expiresAt: number; obtainedAt: number; clientId: string },
): Promise<void> {
  const issuer = `http://127.0.0.1:${ports.auth}`;
  const resource = `http://127.0.0.1:${ports.agent}/mcp`;
  await mkdir(home, { recursive: true, mode: 0o700 });
  const entry = {
    access_token: t.accessToken,
    token_type: 'Bearer',
    refresh_token: t.refreshToken,
    expires_at: t.expiresAt,
    refresh_expires_at: Date.now() + 86_400_000,
    issuer,
    resource,
    obtained_at: t.obtainedAt,
  };
  const cache = {
    version: 1,
    discovery: { [resource]: { authorizationServerUrl: issuer, resourceMetadata: { resource, resource_name: 'CalendarAgent' } } },
    clients: { [issuer]: { client_id: t.clientId, issuer } },
    tokens: { [issuer]: { [resource]: entry } },
  };
  await writeFile(join(home, 'tokens.json'), JSON.stringify(cache), { mode: 0o600 });
}

/** `delegate serve` on three free ports with a data directory of its own (`home`, in a new temp directory named after `prefix`). */
export async function serveInNewHome(prefix: string): Promise<{ home: string; ports: string[]; serve: Running }> {
  const home = join(await mkdtemp(join(tmpdir(), prefix)), 'home');
  const ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
  return { home, ports, serve: await startServer(['serve', ...ports], home) };
}

/** Stops what serveInNewHome started (and any CLI left running) and removes its temp directory. */
export async function stopServeAndRemove(serve: Running | undefined, home: string | undefined): Promise<void> {
  serve?.child.kill('SIGTERM');
  await serve?.done;
  killLeftovers();
  if (home === undefined) return;
  // The directory made for the data directory (serveInNewHome), never a shared one above it: a test that gave a data
  // directory straight under /tmp had this remove /tmp itself, everyone's files in it (found in stop 27).
  const made = resolve(home, '..');
  if (made === resolve(tmpdir()) || made === dirname(made)) throw new Error(`stopServeAndRemove: ${made} is not a directory a test made for its data directory; not removed`);
  await rm(made, { recursive: true, force: true });
}
