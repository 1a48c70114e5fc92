// A load generator for the benchmarks, in a process of its own so that the
// HTTP client's CPU is not the server's: autocannon (the load generator
// fastify's own benchmarks use) keeps keep-alive connections busy, each
// sending one request after another, for `seconds` or until `amount` answers.
// Two kinds of job:
// - `refresh`: as many connections as token families, each request POSTing
//   the refresh grant for a family that has no request in flight (taken from
//   a queue as the request is built, put back when its answer is read:
//   autocannon's context lives for one request, not for a connection, so
//   handing families out by context gave two requests in flight one family,
//   each with the token it read, a replay the server's grace window used to
//   hide). With `rotate`, each 200 answer's refresh_token
//   is that family's next request's (rotation, as a client must), and the run
//   must be given an `amount`: a run cut off by time drops the answers still
//   in flight, whose refresh tokens the server has already rotated, and the
//   next round would replay the spent ones. For the same reason a connection
//   whose request times out or fails is closed (autocannon would reconnect
//   and go on), and a family whose request got no answer is left out of the
//   result: the server may have spent its token. Without `rotate` every
//   request repeats the family's current refresh token (for a route that
//   answers a recorded response). The result carries the families' refresh
//   tokens as they are now, so that the next round carries on from them.
// - `json-rpc`: `connections` connections POSTing the same JSON-RPC request
//   (MCP's Streamable HTTP without a session), each connection with its own
//   bearer token from `tokens` for all its requests (none when it is empty);
//   an answer counts when it is a 200 with a `result` that is not a tool
//   error.
// Run as a child process: `http-load.ts` with the job as JSON on stdin;
// prints the result as JSON on stdout.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

interface LoadBounds {
  url: string;
  /** Stop after this many answers (each connection stops sending when its share is sent), or */
  amount?: number;
  /** run this long. */
  seconds?: number;
  /** How long a request may go unanswered before autocannon counts a timeout (seconds, at least 1; 10 by default). */
  timeoutSeconds?: number;
}

export interface RefreshLoadJob extends LoadBounds {
  kind: 'refresh';
  rotate: boolean;
  families: Array<{ clientId: string; refreshToken: string }>;
}

export interface JsonRpcLoadJob extends LoadBounds {
  kind: 'json-rpc';
  connections: number;
  body: unknown;
  tokens: string[];
}

export type HttpLoadJob = RefreshLoadJob | JsonRpcLoadJob;

export interface HttpLoadResult {
  /** 200 answers whose body held an access_token. */
  ok: number;
  /** Other answers, socket errors and timeouts (each once). */
  errors: number;
  firstError?: string;
  /**
   * From the first request built to the last answer, in seconds, by this
   * process's clock: autocannon's own start and finish are only as fine as
   * its one-second ticker in `amount` mode (a 2.1 s run reads 3.0 s).
   */
  seconds: number;
  latency: { p50: number; p99: number };
  /** CPU time (user + system) this load generator used, in seconds. */
  cpuSeconds: number;
  /**
   * A refresh job's families, their refresh tokens as they are now; with `rotate`, only those whose last request was
   * answered (the others may hold a token the server has spent).
   */
  families?: RefreshLoadJob['families'];
}

interface AutocannonResult {
  /** Socket errors and timeouts (autocannon counts a timeout here and again in `timeouts`). */
  errors: number;
  latency: { p50: number; p99: number };
}
/** One connection of autocannon's (its `setupClient` hook gets each). */
interface AutocannonClient {
  on(event: 'timeout' | 'connError', listener: () => void): void;
  setHeaders(headers: Record<string, string>): void;
  destroy(): void;
}
type Autocannon = (options: Record<string, unknown>, done: (err: unknown, result: AutocannonResult) => void) => unknown;

/** A JSON body, or {} when the answer is not JSON. */
function parsed(body: string): Record<string, unknown> {
  try {
    return JSON.parse(body) as Record<string, unknown>;
  } catch {
    return {};
  }
}

async function main(): Promise<void> {
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
  let input = '';
  for await (const chunk of process.stdin) input += String(chunk);
  const job = JSON.parse(input) as HttpLoadJob;
  let ok = 0;
  let refused = 0;
  let firstError: string | undefined;
  let firstAt: number | undefined;
  let lastAt = 0;
  const sent = () => (firstAt ??= performance.now());
  const answered = () => (lastAt = performance.now());
  const refuse = (status: number, answer: Record<string, unknown>) => {
    refused++;
    firstError ??= `HTTP ${status} ${JSON.stringify(answer.error ?? answer.result ?? null).slice(0, 200)}`;
  };
  let connections: number;
  let request: Record<string, unknown>;
  let families: RefreshLoadJob['families'] | undefined;
  let answeredFamilies = () => families;
  let setupClient: ((client: AutocannonClient) => void) | undefined;
  if (job.kind === 'refresh') {
    if (job.rotate && job.amount === undefined) throw new Error('a rotating run needs an amount, not a duration (see the top of http-load.ts)');
    const own = (families = job.families.map((f) => ({ ...f })));
    // The families with no request in flight, in the order they came back (each connection has one request in flight).
    const idle = [...own];
    // Taken for a request whose answer has not been read.
    const inFlight = new Set<(typeof own)[number]>();
    type Context = { family?: (typeof own)[number] };
    connections = own.length;
    request = {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      setupRequest: (req: Record<string, unknown>, context: Context) => {
        sent();
        const family = (context.family ??= idle.shift());
        // None idle: a connection's request timed out and autocannon, reconnecting, builds the next one before it
        // reports the timeout; that request is never sent (setupClient closes the connection first). Should one go
        // out, it spends no token: the server refuses it, and it counts as an error.
        if (!family) return { ...req, body: 'grant_type=refresh_token' };
        inFlight.add(family);
        const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: family.refreshToken, client_id: family.clientId });
        return { ...req, body: body.toString() };
      },
      onResponse: (status: number, body: string, context: Context) => {
        answered();
        const family = context.family;
        const answer = parsed(body);
        const good = status === 200 && typeof answer.access_token === 'string';
        if (good && job.rotate && family) family.refreshToken = String(answer.refresh_token);
        if (family) {
          inFlight.delete(family);
          idle.push(family);
        }
        if (!good) return refuse(status, answer);
        ok++;
      },
    };
    // A request with no answer (a timeout, a socket error): autocannon reconnects and carries on, but the server may
    // have spent that family's token, and its answer is lost. The connection stops there (closed before the request
    // autocannon has just built for it is sent), and the family is not handed back.
    setupClient = (client) => {
      client.on('timeout', () => {
        firstError ??= `no answer within ${job.timeoutSeconds ?? 10} s`;
        client.destroy();
      });
      client.on('connError', () => {
        firstError ??= 'a socket error';
        client.destroy();
      });
    };
    answeredFamilies = () => (job.rotate ? own.filter((f) => !inFlight.has(f)) : own);
  } else {
    let next = 0;
    connections = job.connections;
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    request = {
      method: 'POST',
      headers,
      body: JSON.stringify(job.body),
      setupRequest: (req: Record<string, unknown>) => {
        sent();
        return req;
      },
      onResponse: (status: number, text: string) => {
        answered();
        const answer = parsed(text);
        const result = answer.result as { isError?: unknown } | undefined;
        if (status !== 200 || typeof result !== 'object' || result === null || result.isError === true) return refuse(status, answer);
        ok++;
      },
    };
    // One token per connection, for all its requests: autocannon's context lives for one request, not a connection.
    if (job.tokens.length > 0) {
      setupClient = (client) => client.setHeaders({ ...headers, authorization: `Bearer ${job.tokens[next++ % job.tokens.length]!}` });
    }
  }
  const cpuBefore = process.cpuUsage();
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    autocannon(
      {
        url: job.url,
        connections,
        ...(job.amount !== undefined ? { amount: job.amount } : { duration: job.seconds }),
        ...(job.timeoutSeconds !== undefined ? { timeout: job.timeoutSeconds } : {}),
        ...(setupClient ? { setupClient } : {}),
        requests: [request],
      },
      (err, res) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(res)),
    );
  });
  const out: HttpLoadResult = {
    ok,
    errors: refused + result.errors,
    ...(firstError ? { firstError } : {}),
    seconds: firstAt === undefined ? 0 : (lastAt - firstAt) / 1000,
    latency: { p50: result.latency.p50, p99: result.latency.p99 },
    cpuSeconds: ((used) => (used.user + used.system) / 1e6)(process.cpuUsage(cpuBefore)),
    ...(families ? { families: answeredFamilies()! } : {}),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/** Runs one job in a child process (this file), as the benchmarks do. */
export async function httpLoad(job: HttpLoadJob): Promise<HttpLoadResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  child.stdin.end(JSON.stringify(job));
  const code = await exited;
  if (code !== 0) throw new Error(`the load generator exited with ${code}`);
  return JSON.parse(out) as HttpLoadResult;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
