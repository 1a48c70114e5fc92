// Benchmark 3 of issue 6: access tokens issued per second by the
// authorization server's /token endpoint with the refresh grant, against raw
// jose ES256 signing of an equivalent payload in this same process, in the
// same run.
// - delegate: the real AS (buildAuthServer on a fresh SQLite store) listening
//   on loopback in this process, logging as `delegate serve` does by default
//   (a JSON line per request at info, redacted, written synchronously to a
//   file in its data directory); BENCH_TOKEN_CLIENTS (default 64) clients
//   signed in through the real flow, each refreshing its own token family
//   one request after another over a keep-alive connection (rotation: each
//   answer's refresh token is the next request's). Every answer is a new
//   access token and refresh token, the rotation committed in one
//   transaction, durable on disk before the answer, and the refresh on the
//   audit log. The requests come from autocannon in a child process
//   (support/http-load.ts), so that the client's CPU is not the server's.
// - baseline: jose's SignJWT of the same claims (a fresh jti each time) with
//   an ES256 key, BENCH_TOKEN_CLIENTS signatures in flight (webcrypto signs on
//   libuv's thread pool, so this uses both cores).
// They alternate in BENCH_TOKEN_ROUNDS (default 3) rounds of about
// BENCH_TOKEN_SECONDS (default 3) each, after a warm-up. Target: ≥ 0.5.
// For context, the same client also loads a bare fastify route in this
// process that answers every form with a recorded token response (no
// signing, no store), in the same alternating rounds: what HTTP, the form and
// the JSON cost here; and a route that also signs each answer's access token
// with the AS's own signer: what HTTP and the signature alone allow; and one
// signing as the baseline signs (jose, on the thread pool), so that the
// signature is off the request's thread as the baseline's is.
// BENCH_CPU_PROF=<dir>: a V8 CPU profile of this process during each measured
// refresh round only (not the baseline's or the bare route's), written there as
// token-refresh-<round>-<tokens issued>-tokens.cpuprofile, to find where the AS's time goes.
// (Until stop 9 the requests came from fetch in this process; that client
// capped even the bare route at 0.15 of the baseline, which was then taken
// for the ceiling of any HTTP endpoint. It was the client's.)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Fastify from 'fastify';
import { SignJWT, decodeJwt, decodeProtectedHeader, generateKeyPair } from 'jose';
import { destination } from 'pino';
import { signAccessToken } from '../src/authz/access-token.js';
import { loadKeyRing } from '../src/authz/keys.js';
import { createLogger } from '../src/http/logging.js';
import { startTestAuthz } from '../test/support/authz.js';
import { postForm } from '../test/support/oauth-flow.js';
import { httpLoad } from './support/http-load.js';
import { report } from './support/measure.js';
import { signInClients } from './support/mcp-load.js';

const CLIENTS = Number(process.env.BENCH_TOKEN_CLIENTS ?? 64);
const ROUNDS = Number(process.env.BENCH_TOKEN_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_TOKEN_SECONDS ?? 3);
const WARM_UP_SECONDS = 1;
const PROFILE_DIR = process.env.BENCH_CPU_PROF;
const TARGET = 0.5;

interface Rate {
  count: number;
  seconds: number;
  errors: number;
}

/** Starts V8's sampling profiler in this process; the function returned stops it and writes the profile as `name` in PROFILE_DIR. */
async function startProfile(): Promise<(name: string) => Promise<void>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  return async (name) => {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    mkdirSync(PROFILE_DIR!, { recursive: true });
    writeFileSync(join(PROFILE_DIR!, name), JSON.stringify(profile));
  };
}

/** `workers` loops calling `once` until `seconds` have passed. */
async function during(workers: number, seconds: number, once: (worker: number) => Promise<boolean>): Promise<Rate> {
  let count = 0;
  let errors = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      while (performance.now() < deadline) {
        if (await once(worker)) count++;
        else errors++;
      }
    }),
  );
  return { count, errors, seconds: (performance.now() - started) / 1000 };
}

const logDir = mkdtempSync(join(tmpdir(), 'delegate-bench-log-'));
const authz = await startTestAuthz({ logger: createLogger('info', destination({ dest: join(logDir, 'serve-auth.log'), sync: true })) });
const bare = Fastify({ logger: false });
let ok = false;
try {
  const families = await signInClients({ issuer: authz.issuer, agentUrl: authz.agentUrl, ownerJwk: authz.ownerJwk }, CLIENTS);
  let firstError: string | undefined;
  /** The families as the load generator takes them: each one's client and current refresh token. */
  const chains = () => families.map((f) => ({ clientId: f.clientId, refreshToken: f.refreshToken }));
  let latency = { p50: 0, p99: 0 };
  /** Rotating rounds stop after a number of answers (see http-load.ts): about `seconds` at the last rate seen. */
  let lastRate = 0;
  const refreshRound = async (seconds: number): Promise<Rate> => {
    const amount = lastRate > 0 ? Math.round(lastRate * seconds) : CLIENTS * 20;
    const result = await httpLoad({ kind: 'refresh', url: `${authz.issuer}/token`, amount, rotate: true, families: chains() });
    // A family whose request got no answer is not in the result (the AS may have spent its token): it sits out the rest.
    const now = new Map(result.families!.map((f) => [f.clientId, f.refreshToken]));
    families.splice(0, families.length, ...families.filter((f) => now.has(f.clientId)));
    for (const family of families) family.refreshToken = now.get(family.clientId)!;
    firstError ??= result.firstError;
    latency = result.latency;
    lastRate = result.ok / result.seconds;
    return { count: result.ok, errors: result.errors, seconds: result.seconds };
  };

  // The baseline signs what /token signs: the claims and header of an issued access token.
  const sample = families[0]!.accessToken;
  const claims = decodeJwt(sample);
  const { kid } = decodeProtectedHeader(sample);
  const { privateKey } = await generateKeyPair('ES256');
  const sign = async (): Promise<boolean> => {
    const token = await new SignJWT({ ...claims, jti: `at_${crypto.randomUUID()}` }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: kid! }).sign(privateKey);
    return token.length > 0;
  };

  // The ceiling: HTTP, the form and the JSON alone, answered with a response /token gave.
  const recorded = (await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: families[0]!.refreshToken, client_id: families[0]!.clientId })).body;
  families[0]!.refreshToken = String(recorded.refresh_token);
  bare.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, new URLSearchParams(body as string)));
  bare.post('/token', async (_req, reply) => reply.header('Cache-Control', 'no-store').send(recorded));
  // What HTTP and the signature alone allow: the same route, signing a fresh access token with the AS's own signer
  // and key ring, as /token does (node:crypto on this thread), with no client check, no store and no log line.
  const keys = await loadKeyRing(authz.store, Date.now, 3600_000);
  bare.post('/sign-only', async (_req, reply) => {
    const iat = Math.floor(Date.now() / 1000);
    const { token } = await signAccessToken(authz.issuer, keys, {
      sub: String(claims.sub),
      aud: String(claims.aud),
      clientId: String(claims.client_id),
      scope: String(claims.scope),
      grantId: String(claims.grant_id),
      iat,
      exp: iat + 900,
    });
    return reply.header('Cache-Control', 'no-store').send({ ...recorded, access_token: token });
  });
  // The same, signing as the baseline signs (jose, WebCrypto on libuv's thread pool): what HTTP and the baseline's own
  // signature allow, the signature off the request's thread.
  bare.post('/sign-jose', async (_req, reply) => {
    const iat = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ ...claims, iat, exp: iat + 900, jti: `at_${crypto.randomUUID()}` })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: kid! })
      .sign(privateKey);
    return reply.header('Cache-Control', 'no-store').send({ ...recorded, access_token: token });
  });
  const bareBase = await bare.listen({ host: '127.0.0.1', port: 0 });
  const bareRoundAt = (path: string) => async (seconds: number): Promise<Rate> => {
    const result = await httpLoad({ kind: 'refresh', url: `${bareBase}${path}`, seconds, rotate: false, families: chains() });
    return { count: result.ok, errors: result.errors, seconds: result.seconds };
  };
  const bareRound = bareRoundAt('/token');
  const signOnlyRound = bareRoundAt('/sign-only');
  const signJoseRound = bareRoundAt('/sign-jose');
  await bareRound(WARM_UP_SECONDS);
  await signOnlyRound(WARM_UP_SECONDS);
  await signJoseRound(WARM_UP_SECONDS);
  await during(CLIENTS, WARM_UP_SECONDS, sign);
  await refreshRound(WARM_UP_SECONDS);
  await refreshRound(WARM_UP_SECONDS);
  const ours: Rate[] = [];
  const base: Rate[] = [];
  const ceilings: Rate[] = [];
  const signOnly: Rate[] = [];
  const signJose: Rate[] = [];
  let oursCpu = 0;
  for (let r = 0; r < ROUNDS; r++) {
    base.push(await during(CLIENTS, SECONDS, sign));
    const profiling = PROFILE_DIR ? await startProfile() : undefined;
    const before = process.cpuUsage();
    ours.push(await refreshRound(SECONDS));
    const used = process.cpuUsage(before);
    await profiling?.(`token-refresh-${r + 1}-${ours.at(-1)!.count}-tokens.cpuprofile`);
    oursCpu += (used.user + used.system) / 1e6;
    ceilings.push(await bareRound(SECONDS));
    signOnly.push(await signOnlyRound(SECONDS));
    signJose.push(await signJoseRound(SECONDS));
  }
  // For context only: one signature at a time (webcrypto signs on libuv's thread pool, so concurrent signing spreads over cores).
  const single = await during(1, SECONDS, sign);
  const rate = (runs: Rate[]) => runs.reduce((n, r) => n + r.count, 0) / runs.reduce((n, r) => n + r.seconds, 0);
  const errors = [...ours, ...base, ...ceilings, ...signOnly, ...signJose].reduce((n, r) => n + r.errors, 0);
  const ratio = rate(ours) / rate(base);
  console.log(
    `tokens issued: ${CLIENTS} in flight, ${ROUNDS} alternating rounds of about ${SECONDS} s each after warm-ups, ` +
      'the AS and the baseline in this process; delegate = POST /token (refresh_token grant) over loopback HTTP, from autocannon in another process',
  );
  report([
    ['baseline: jose ES256 SignJWT of the same claims', `${rate(base).toFixed(0)} tokens/s`],
    ['baseline, one signature at a time (context)', `${(single.count / single.seconds).toFixed(0)} tokens/s`],
    [
      'delegate: /token refresh grant (rotation, audit)',
      `${rate(ours).toFixed(0)} tokens/s`,
      `last round p50 ${latency.p50} ms, p99 ${latency.p99} ms; ${errors} errors${firstError ? ` (first: ${firstError})` : ''}`,
    ],
    ['bare fastify route, same client, recorded answer (context)', `${rate(ceilings).toFixed(0)} responses/s`, `${(rate(ceilings) / rate(base)).toFixed(2)} of the baseline`],
    [
      'the same route signing with the AS\'s signer, no client check, store or log (context)',
      `${rate(signOnly).toFixed(0)} tokens/s`,
      `${(rate(signOnly) / rate(base)).toFixed(2)} of the baseline`,
    ],
    [
      'the same route signing as the baseline does, jose on the thread pool (context)',
      `${rate(signJose).toFixed(0)} tokens/s`,
      `${(rate(signJose) / rate(base)).toFixed(2)} of the baseline`,
    ],
    ['delegate: CPU of the AS (this process) per token', `${((oursCpu * 1000) / Math.max(ours.reduce((n, r) => n + r.count, 0), 1)).toFixed(3)} ms`],
    ['ratio delegate / baseline', ratio.toFixed(2), `target ≥ ${TARGET} ${ratio >= TARGET ? 'PASS' : 'MISS'}`],
  ]);
  ok = errors === 0;
} finally {
  await bare.close();
  await authz.close();
  rmSync(logDir, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
