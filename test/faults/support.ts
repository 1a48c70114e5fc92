// What the fault tests share: waiting for a server process to be ready,
// whether a tmpfs can be mounted (as root), and
// authenticating as CalendarAgent (private_key_jwt with the key in the data
// directory) to exchange or introspect tokens the way the agent does.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { importJWK, SignJWT, type JWK } from 'jose';
import { postForm } from '../support/oauth-flow.js';
import type { Running } from '../e2e/run.js';

/** Resolves once a `delegate serve…` process says it is listening; rejects if it exits first. */
export async function ready(run: Running): Promise<Running> {
  while (!run.stderr().includes('Press Ctrl-C')) {
    if (run.child.exitCode !== null || run.child.signalCode !== null) throw new Error(`the server exited:\n${run.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return run;
}

/** Client authentication as CalendarAgent (RFC 7523), with a fresh single-use assertion. */
export async function agentClientAuth(home: string, issuer: string): Promise<Record<string, string>> {
  const jwk = JSON.parse(await readFile(join(home, 'agent-key.json'), 'utf8')) as JWK;
  const key = await importJWK(jwk, 'ES256');
  const iat = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', ...(jwk.kid ? { kid: jwk.kid } : {}) })
    .setIssuer('calendar-agent')
    .setSubject('calendar-agent')
    .setAudience(issuer)
    .setJti(randomBytes(16).toString('base64url'))
    .setIssuedAt(iat)
    .setExpirationTime(iat + 120)
    .sign(key);
  return {
    client_id: 'calendar-agent',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion,
  };
}

/** The agent's token exchange (RFC 8693): the user's token for one whose audience is the calendar backend. */
export async function exchangeForCalendar(home: string, issuer: string, calendarUrl: string, userToken: string) {
  return postForm(`${issuer}/token`, {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: userToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    resource: calendarUrl,
    scope: 'freebusy:read',
    ...(await agentClientAuth(home, issuer)),
  });
}

/** Why a tmpfs cannot be mounted here for a test (not Linux, not root, mount refused), or undefined when it can. */
export function tmpfsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux (tmpfs)';
  if (process.getuid?.() !== 0) return 'needs root to mount a tmpfs';
  const dir = mkdtempSync(join(tmpdir(), 'delegate-faults-probe-'));
  try {
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { encoding: 'utf8', timeout: 10_000 });
    if (mounted.status !== 0) return `mount failed: ${(mounted.stderr || mounted.error?.message || '').trim()}`;
    spawnSync('umount', [dir], { timeout: 10_000 });
    return undefined;
  } finally {
    rmdirSync(dir);
  }
}
