// The loopback redirect listener: binds 127.0.0.1 on an ephemeral port, takes
// one valid callback, ignores (400) one without its state and waits on,
// refuses a wrong issuer, surfaces the server's error, and times out with a
// clear error.
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startLoopbackListener, type LoopbackListener } from '../../src/client/loopback.js';
import type { ClientError } from '../../src/client/errors.js';

const ISSUER = 'http://127.0.0.1:8410';
const STATE = 's'.repeat(43);
let listener: LoopbackListener | undefined;
afterEach(async () => {
  await listener?.close();
  listener = undefined;
});

/** A GET as the browser would send it; resolves with status and body. */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: res.headers['content-type'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function listen(timeoutMs = 5_000, requireIss = true): Promise<LoopbackListener> {
  listener = await startLoopbackListener({ timeoutMs });
  listener.expect({ state: STATE, issuer: ISSUER, requireIss });
  return listener;
}

function callback(l: LoopbackListener, params: Record<string, string>): string {
  const url = new URL(l.redirectUrl);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.href;
}

describe('loopback listener', () => {
  it('listens on 127.0.0.1 on an ephemeral port at /callback', async () => {
    const l = await listen();
    expect(l.redirectUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    expect(new URL(l.redirectUrl).port).not.toBe('0');
  });

  it('returns the code of a valid callback, answers with a plain page, and closes', async () => {
    const l = await listen();
    const waiting = l.waitForCode();
    const page = await get(callback(l, { code: 'the-code', state: STATE, iss: ISSUER }));
    expect(page.status).toBe(200);
    expect(page.type).toContain('text/plain');
    expect(page.body).toContain('You can close this window');
    expect(await waiting).toBe('the-code');
    await expect(get(l.redirectUrl)).rejects.toThrow(); // closed
  });

  it('takes a callback that arrives before waitForCode', async () => {
    const l = await listen();
    await get(callback(l, { code: 'early', state: STATE, iss: ISSUER }));
    expect(await l.waitForCode()).toBe('early');
  });

  // Found in review: any local user could end every browser sign-in with one wrong-state request (the port is in /proc/net/tcp).
  it('answers a callback whose state does not match with 400, shows none of it, and keeps waiting for its own', async () => {
    const l = await listen();
    let settled = false;
    const waiting = l.waitForCode().finally(() => (settled = true));
    const page = await get(
      callback(l, { code: 'attacker-code', state: `${STATE.slice(1)}x`, iss: ISSUER, error: 'access_denied', error_description: 'Visit evil.example now' }),
    );
    expect(page.status).toBe(400);
    expect(page.type).toContain('text/plain');
    expect(page.body).toContain('does not belong to the sign-in waiting here');
    expect(page.body).not.toContain('evil.example');
    expect(page.body).not.toContain('attacker-code');
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);
    const own = await get(callback(l, { code: 'the-code', state: STATE, iss: ISSUER }));
    expect(own.status).toBe(200);
    expect(await waiting).toBe('the-code');
  });

  it('answers a callback without state with 400 and keeps waiting; with none of its own, the sign-in times out as usual', async () => {
    const l = await listen(300);
    const waiting = l.waitForCode().catch((e: ClientError) => e);
    const requests: Array<Record<string, string>> = [{ code: 'c', iss: ISSUER }, { error: 'access_denied', error_description: 'attacker-words' }, {}];
    for (const params of requests) {
      const page = await get(callback(l, params));
      expect(page.status).toBe(400);
      expect(page.body).toContain('does not belong to the sign-in waiting here');
      expect(page.body).not.toContain('attacker-words');
    }
    const error = (await waiting) as ClientError;
    expect(error.code).toBe('LOGIN_TIMEOUT');
    expect(error.message).not.toContain('attacker-words');
  });

  it('does not take a pasted address with another state, and takes the right one after it', async () => {
    const l = await listen();
    const waiting = l.waitForCode();
    expect(l.submit(callback(l, { code: 'c', state: 'wrong', iss: ISSUER }))).toMatch(/another sign-in/);
    expect(l.submit(callback(l, { code: 'pasted', state: STATE, iss: ISSUER }))).toBeUndefined();
    expect(await waiting).toBe('pasted');
  });

  it('refuses a response from another issuer (RFC 9207 mix-up)', async () => {
    const l = await listen();
    const waiting = l.waitForCode().catch((e: ClientError) => e);
    const page = await get(callback(l, { code: 'c', state: STATE, iss: 'http://127.0.0.1:9999' }));
    expect(page.status).toBe(400);
    const error = await waiting;
    expect(error).toMatchObject({ code: 'ISSUER_MISMATCH' });
    expect((error as ClientError).message).toContain('http://127.0.0.1:9999');
  });

  it('refuses a missing iss when the server promised it, and accepts it when not', async () => {
    let l = await listen(5_000, true);
    let waiting: Promise<unknown> = l.waitForCode().catch((e: ClientError) => e);
    await get(callback(l, { code: 'c', state: STATE }));
    expect(await waiting).toMatchObject({ code: 'ISSUER_MISMATCH' });
    await l.close();

    l = await listen(5_000, false);
    waiting = l.waitForCode();
    await get(callback(l, { code: 'c2', state: STATE }));
    expect(await waiting).toBe('c2');
  });

  it('surfaces error and error_description, access_denied as ACCESS_DENIED', async () => {
    let l = await listen();
    let waiting = l.waitForCode().catch((e: ClientError) => e);
    const page = await get(callback(l, { error: 'access_denied', error_description: 'The user said no', state: STATE, iss: ISSUER }));
    expect(page.body).toContain('The user said no');
    expect(await waiting).toMatchObject({ code: 'ACCESS_DENIED', message: expect.stringContaining('The user said no') });
    await l.close();

    l = await listen();
    waiting = l.waitForCode().catch((e: ClientError) => e);
    await get(callback(l, { error: 'invalid_scope', error_description: 'bad\u0007scope', state: STATE, iss: ISSUER }));
    const error = (await waiting) as ClientError;
    expect(error.code).toBe('AUTHORIZATION_FAILED');
    expect(error.message).toContain('invalid_scope');
    expect(error.message).not.toContain('\u0007');
  });

  it('times out with a clear message', async () => {
    const l = await listen(50);
    const error = (await l.waitForCode().catch((e: ClientError) => e)) as ClientError;
    expect(error.code).toBe('LOGIN_TIMEOUT');
    expect(error.message).toMatch(/Gave up waiting for the browser/);
  });

  it('ignores other paths and foreign Host headers without settling', async () => {
    const l = await listen();
    const waiting = l.waitForCode();
    expect((await get(new URL('/favicon.ico', l.redirectUrl).href)).status).toBe(404);
    const port = new URL(l.redirectUrl).port;
    expect((await get(callback(l, { code: 'evil', state: STATE, iss: ISSUER }), { host: `attacker.example:${port}` })).status).toBe(404);
    await get(callback(l, { code: 'good', state: STATE, iss: ISSUER }));
    expect(await waiting).toBe('good');
  });

  it('answers a callback before any request was started without settling', async () => {
    listener = await startLoopbackListener({ timeoutMs: 5_000 });
    const page = await get(`${listener.redirectUrl}?code=c&state=${STATE}`);
    expect(page.status).toBe(400);
    listener.expect({ state: STATE, issuer: ISSUER, requireIss: false });
    const waiting = listener.waitForCode();
    await get(`${listener.redirectUrl}?code=real&state=${STATE}`);
    expect(await waiting).toBe('real');
  });
});
