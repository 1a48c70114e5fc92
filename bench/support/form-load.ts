// A load generator for the /token benchmark, in a process of its own so that
// the HTTP client's CPU is not the server's: autocannon (the load generator
// fastify's own benchmarks use) keeps `families.length` keep-alive
// connections busy, each POSTing token requests for its own token family one
// after another, for `seconds` or until `amount` answers. With `rotate`, each
// 200 answer's refresh_token is that family's next request's (rotation, as a
// client must), and the run must be given an `amount`: a run cut off by time
// drops the answers still in flight, whose refresh tokens the server has
// already rotated, and the next round would replay the spent ones. Without
// `rotate` every request repeats the family's current refresh token (for a
// route that answers a recorded response). Run as a child process:
// `form-load.ts` with the job as JSON on stdin; prints the result as JSON on
// stdout, the families' refresh tokens as they are now included, so that the
// next round carries on from them.
import { createRequire } from 'node:module';

export interface FormLoadJob {
  url: string;
  /** Stop after this many answers (each connection stops sending when its share is sent), or */
  amount?: number;
  /** run this long. */
  seconds?: number;
  rotate: boolean;
  families: Array<{ clientId: string; refreshToken: string }>;
}

export interface FormLoadResult {
  /** 200 answers whose body held an access_token. */
  ok: number;
  /** Other answers, socket errors and timeouts. */
  errors: number;
  firstError?: string;
  /** From the first request sent to the last answer, in seconds. */
  seconds: number;
  latency: { p50: number; p99: number };
  families: FormLoadJob['families'];
}

interface AutocannonResult {
  start: Date;
  finish: Date;
  errors: number;
  timeouts: number;
  latency: { p50: number; p99: number };
}
type Autocannon = (options: Record<string, unknown>, done: (err: unknown, result: AutocannonResult) => void) => unknown;

async function main(): Promise<void> {
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
  let input = '';
  for await (const chunk of process.stdin) input += String(chunk);
  const job = JSON.parse(input) as FormLoadJob;
  if (job.rotate && job.amount === undefined) throw new Error('a rotating run needs an amount, not a duration (see the top of form-load.ts)');
  const families = job.families.map((f) => ({ ...f }));
  let next = 0;
  let ok = 0;
  let refused = 0;
  let firstError: string | undefined;
  type Context = { family?: (typeof families)[number] };
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    autocannon(
      {
        url: job.url,
        connections: families.length,
        ...(job.amount !== undefined ? { amount: job.amount } : { duration: job.seconds }),
        requests: [
          {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            setupRequest: (request: Record<string, unknown>, context: Context) => {
              const family = (context.family ??= families[next++ % families.length]!);
              const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: family.refreshToken, client_id: family.clientId });
              return { ...request, body: body.toString() };
            },
            onResponse: (status: number, body: string, context: Context) => {
              const answer = (() => {
                try {
                  return JSON.parse(body) as Record<string, unknown>;
                } catch {
                  return {};
                }
              })();
              if (status !== 200 || typeof answer.access_token !== 'string') {
                refused++;
                firstError ??= `HTTP ${status} ${String(answer.error)}`;
                return;
              }
              ok++;
              if (job.rotate && context.family) context.family.refreshToken = String(answer.refresh_token);
            },
          },
        ],
      },
      (err, res) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(res)),
    );
  });
  const out: FormLoadResult = {
    ok,
    errors: refused + result.errors + result.timeouts,
    ...(firstError ? { firstError } : {}),
    seconds: (result.finish.getTime() - result.start.getTime()) / 1000,
    latency: { p50: result.latency.p50, p99: result.latency.p99 },
    families,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

await main();
