// Benchmark 3 of issue 6: access tokens issued per second by the
// authorization server's /token endpoint with the refresh grant, against raw
// jose ES256 signing of an equivalent payload, both in this one process and
// in the same run.
// - delegate: the real AS (buildAuthServer on a fresh SQLite store) listening
//   on loopback; BENCH_TOKEN_CLIENTS (default 8) clients signed in through the
//   real flow, each refreshing its own token family one request after another
//   over HTTP (rotation: each response's refresh token is the next request's).
//   Every response is a new access token and refresh token, the rotation
//   committed in one transaction and the refresh on the audit log.
// - baseline: jose's SignJWT of the same claims (a fresh jti each time) with
//   an ES256 key, at the same concurrency.
// They alternate in BENCH_TOKEN_ROUNDS (default 3) rounds of
// BENCH_TOKEN_SECONDS (default 3) each, after a warm-up. Target: ≥ 0.5.
// For context, the same loops also POST to a bare fastify route in this
// process that answers every form with a recorded token response (no
// signing, no store), in the same alternating rounds: the most any /token
// could reach with this client.
import { performance } from 'node:perf_hooks';
import Fastify from 'fastify';
import { SignJWT, decodeJwt, decodeProtectedHeader, generateKeyPair } from 'jose';
import { startTestAuthz } from '../test/support/authz.js';
import { postForm } from '../test/support/oauth-flow.js';
import { report } from './support/measure.js';
import { signInClients } from './support/mcp-load.js';

const CLIENTS = Number(process.env.BENCH_TOKEN_CLIENTS ?? 8);
const ROUNDS = Number(process.env.BENCH_TOKEN_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_TOKEN_SECONDS ?? 3);
const WARM_UP_SECONDS = 1;
const TARGET = 0.5;

interface Rate {
  count: number;
  seconds: number;
  errors: number;
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

const authz = await startTestAuthz();
const bare = Fastify({ logger: false });
let ok = false;
try {
  const families = await signInClients({ issuer: authz.issuer, agentUrl: authz.agentUrl, ownerJwk: authz.ownerJwk }, CLIENTS);
  let firstError: string | undefined;
  const refresh = async (worker: number): Promise<boolean> => {
    const family = families[worker]!;
    const res = await postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: family.refreshToken, client_id: family.clientId });
    if (res.status !== 200 || typeof res.body.access_token !== 'string') {
      firstError ??= `HTTP ${res.status} ${String(res.body.error)}`;
      return false;
    }
    family.refreshToken = String(res.body.refresh_token);
    family.accessToken = res.body.access_token;
    return true;
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
  const bareUrl = `${await bare.listen({ host: '127.0.0.1', port: 0 })}/token`;
  const bareCall = async (worker: number): Promise<boolean> => {
    const family = families[worker]!;
    const res = await postForm(bareUrl, { grant_type: 'refresh_token', refresh_token: family.refreshToken, client_id: family.clientId });
    return res.status === 200 && typeof res.body.access_token === 'string';
  };
  await during(CLIENTS, WARM_UP_SECONDS, bareCall);
  await during(CLIENTS, WARM_UP_SECONDS, sign);
  await during(CLIENTS, WARM_UP_SECONDS, refresh);
  const ours: Rate[] = [];
  const base: Rate[] = [];
  const ceilings: Rate[] = [];
  let oursCpu = 0;
  for (let r = 0; r < ROUNDS; r++) {
    base.push(await during(CLIENTS, SECONDS, sign));
    const before = process.cpuUsage();
    ours.push(await during(CLIENTS, SECONDS, refresh));
    const used = process.cpuUsage(before);
    oursCpu += (used.user + used.system) / 1e6;
    ceilings.push(await during(CLIENTS, SECONDS, bareCall));
  }
  // For context only: one signature at a time (webcrypto signs on libuv's thread pool, so concurrent signing spreads over cores).
  const single = await during(1, SECONDS, sign);
  const rate = (runs: Rate[]) => runs.reduce((n, r) => n + r.count, 0) / runs.reduce((n, r) => n + r.seconds, 0);
  const errors = [...ours, ...base, ...ceilings].reduce((n, r) => n + r.errors, 0);
  const ratio = rate(ours) / rate(base);
  console.log(
    `tokens issued: ${CLIENTS} concurrent loops, ${ROUNDS} alternating rounds of ${SECONDS} s each after a ${WARM_UP_SECONDS} s warm-up, ` +
      'the AS and the baseline in this process; delegate = POST /token (refresh_token grant) over loopback HTTP',
  );
  report([
    ['baseline: jose ES256 SignJWT of the same claims', `${rate(base).toFixed(0)} tokens/s`],
    ['baseline, one signature at a time (context)', `${(single.count / single.seconds).toFixed(0)} tokens/s`],
    ['delegate: /token refresh grant (rotation, audit)', `${rate(ours).toFixed(0)} tokens/s`, `${errors} errors${firstError ? ` (first: ${firstError})` : ''}`],
    ['ceiling: bare fastify route, same client, recorded answer (context)', `${rate(ceilings).toFixed(0)} responses/s`, `${(rate(ceilings) / rate(base)).toFixed(2)} of the baseline`],
    ['delegate: CPU of this process per token (AS + HTTP client)', `${((oursCpu * 1000) / Math.max(ours.reduce((n, r) => n + r.count, 0), 1)).toFixed(2)} ms`],
    ['ratio delegate / baseline', ratio.toFixed(2), `target ≥ ${TARGET} ${ratio >= TARGET ? 'PASS' : 'MISS'}`],
  ]);
  ok = errors === 0;
} finally {
  await bare.close();
  await authz.close();
}
process.exit(ok ? 0 : 1);
