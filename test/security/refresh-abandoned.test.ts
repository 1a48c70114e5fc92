// A refresh whose client hangs up before the AS has rotated the token (the
// CLI killed mid-refresh, or giving up after its own request timeout) is not
// carried out: the client never reads the new pair and still holds the token
// it sent, so rotating it anyway made that client's next refresh, past the
// 5-second grace window, a replay that revoked the family and signed the
// person out (review "concurrency", finding 1). Here the AS is held inside the
// grant (its store's refresh-token lookup waits on the test) while the client
// closes its connection; then the same refresh token must still work, with no
// replay recorded. Only a rotation is spared that way: a spent refresh token
// presented by a client that then hangs up is still a replay (RFC 9700
// §4.14.2), recorded, and its family revoked (review s15rest, a note: the
// hang-up was checked before the replay was told apart, and spared it).
import { connect } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/http/logging.js';
import { obtainTokens } from '../authz/helpers.js';
import { postForm } from '../support/oauth-flow.js';
import { startTestAuthz, type TestAuthz } from '../support/authz.js';
import { queryRows, stateChangedBy } from './stack.js';

let clock = Date.now();
let authz: TestAuthz;
const logLines: string[] = [];

beforeAll(async () => {
  const stream = new PassThrough();
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => logLines.push(...chunk.split('\n').filter(Boolean)));
  authz = await startTestAuthz({ now: () => clock, logger: createLogger('info', stream) });
});
afterAll(async () => authz?.close());

/** Holds the AS's next refresh-token lookup until released; `entered` resolves once a refresh is waiting there. */
function holdNextRefresh(): { entered: Promise<void>; release: () => void } {
  const store = authz.store as unknown as { refreshTokenByHash: (hash: string) => Promise<unknown> };
  const original = store.refreshTokenByHash;
  let release!: () => void;
  let entered!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const arrived = new Promise<void>((resolve) => (entered = resolve));
  store.refreshTokenByHash = async (hash) => {
    store.refreshTokenByHash = original;
    entered();
    await gate;
    return original.call(authz.store, hash);
  };
  return { entered: arrived, release };
}

const form = (refreshToken: string, clientId: string) => new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId }).toString();

/** Ways a client hangs up on a refresh in flight. */
const hangUps: Array<[string, (url: URL, body: string, entered: Promise<void>) => Promise<void>]> = [
  [
    'its own request timeout aborts the fetch',
    async (url, body, entered) => {
      const abort = new AbortController();
      const sent = fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body, signal: abort.signal }).catch((e: Error) => e);
      await entered;
      abort.abort();
      expect(await sent).toBeInstanceOf(Error);
    },
  ],
  [
    'the process is killed (its socket closed by the kernel)',
    async (url, body, entered) => {
      const socket = connect(Number(url.port), url.hostname);
      socket.on('error', () => undefined);
      socket.write(`POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      await entered;
      socket.destroy();
    },
  ],
];

describe('a refresh whose client hung up before the rotation', () => {
  it.each(hangUps)('is not carried out when %s: the same refresh token still works past the grace window, and no replay is recorded', async (_name, hangUp) => {
    const tokens = await obtainTokens(authz);
    const tokenUrl = new URL(`${authz.issuer}/token`);
    const db = { paths: { db: join(authz.home, 'delegate.db') } };
    const auditBefore = (await authz.store.listAudit()).length;
    const logsBefore = logLines.length;

    const held = holdNextRefresh();
    const { changed } = await stateChangedBy(db, async () => {
      await hangUp(tokenUrl, form(tokens.refreshToken, tokens.clientId), held.entered);
      // Released at once: the close is on the AS's side of the connection, not yet read (as when a stopped AS resumes).
      held.release();
      // The grant goes on until its rotation, and stops there.
      for (let i = 0; i < 100 && !logLines.slice(logsBefore).some((l) => l.includes('refresh not carried out')); i++) await new Promise((r) => setTimeout(r, 20));
    });
    expect(changed).toEqual([]); // nothing rotated, nothing recorded
    const logged = logLines.slice(logsBefore).join('\n');
    expect(logged).toContain('refresh not carried out: the client closed the connection first');
    expect(logged).not.toContain(tokens.refreshToken);

    // The client runs again later than the grace window: its refresh token is still the live one.
    clock += 6_000;
    const again = await postForm(tokenUrl.href, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.refresh_token).toEqual(expect.any(String));
    const events = (await authz.store.listAudit()).slice(auditBefore);
    expect(events.map((e) => e.event)).toEqual(['token_refreshed']);
    expect(events[0]!.detail).not.toHaveProperty('within_grace');
    // And the new one rotates as usual.
    const next = await postForm(tokenUrl.href, { grant_type: 'refresh_token', refresh_token: String(again.body.refresh_token), client_id: tokens.clientId });
    expect(next.status).toBe(200);
  });

  it('a client that waits for its answer gets it as before (the check is of a closed connection only)', async () => {
    const tokens = await obtainTokens(authz);
    const held = holdNextRefresh();
    const answer = postForm(`${authz.issuer}/token`, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId });
    await held.entered;
    await new Promise((r) => setTimeout(r, 200));
    held.release();
    expect((await answer).status).toBe(200);
  });
});

describe('a spent refresh token presented by a client that hangs up before the answer', () => {
  it.each(hangUps)('is still a replay when %s: refresh_replay recorded, the family revoked, the newer refresh token refused with invalid_grant', async (_name, hangUp) => {
    const tokens = await obtainTokens(authz);
    const tokenUrl = new URL(`${authz.issuer}/token`);
    const db = { paths: { db: join(authz.home, 'delegate.db') } };
    const refresh = (token: string) => postForm(tokenUrl.href, { grant_type: 'refresh_token', refresh_token: token, client_id: tokens.clientId });
    const rotated = await refresh(tokens.refreshToken);
    expect(rotated.status).toBe(200);
    clock += 6_000; // past the 5-second grace window: the first token is spent for good
    const family = String(queryRows(db, 'SELECT family_id FROM issued_tokens WHERE jti = ?', String(decodeJwt(String(rotated.body.access_token)).jti))[0]!.family_id);
    const auditBefore = (await authz.store.listAudit()).length;
    const logsBefore = logLines.length;

    // A thief (or anyone) presents the spent token and closes the connection before the AS answers.
    const held = holdNextRefresh();
    await hangUp(tokenUrl, form(tokens.refreshToken, tokens.clientId), held.entered);
    held.release();
    const replays = async () => (await authz.store.listAudit()).slice(auditBefore).filter((e) => e.event === 'refresh_replay');
    for (let i = 0; i < 100 && (await replays()).length === 0; i++) await new Promise((r) => setTimeout(r, 20));

    const found = await replays();
    expect(found.map((e) => e.event)).toEqual(['refresh_replay']);
    expect(found[0]!.detail).toMatchObject({ family_revoked: family });
    expect(queryRows(db, 'SELECT revoked_at IS NOT NULL AS revoked FROM token_families WHERE id = ?', family)).toEqual([{ revoked: 1 }]);
    expect(logLines.slice(logsBefore).join('\n')).not.toContain('refresh not carried out');
    // The family's newer refresh token is dead on the wire, and nothing more is issued.
    const { result: newer, changed } = await stateChangedBy(db, () => refresh(String(rotated.body.refresh_token)));
    expect([newer.status, newer.body.error]).toEqual([400, 'invalid_grant']);
    expect(newer.body.access_token).toBeUndefined();
    expect(changed).toEqual([]);
  });

  it('a rotation within the grace window whose client hung up is still not carried out (the control)', async () => {
    const tokens = await obtainTokens(authz);
    const tokenUrl = new URL(`${authz.issuer}/token`);
    const db = { paths: { db: join(authz.home, 'delegate.db') } };
    const rotated = await postForm(tokenUrl.href, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken, client_id: tokens.clientId });
    expect(rotated.status).toBe(200);
    const logsBefore = logLines.length;
    const held = holdNextRefresh();
    const { changed } = await stateChangedBy(db, async () => {
      await hangUps[1]![1](tokenUrl, form(tokens.refreshToken, tokens.clientId), held.entered);
      held.release();
      for (let i = 0; i < 100 && !logLines.slice(logsBefore).some((l) => l.includes('refresh not carried out')); i++) await new Promise((r) => setTimeout(r, 20));
    });
    expect(logLines.slice(logsBefore).join('\n')).toContain('refresh not carried out: the client closed the connection first');
    expect(changed).toEqual([]);
  });
});
