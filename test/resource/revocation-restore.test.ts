// A resource server's revocation list across a restore of the AS's database
// from a backup: the restored database numbers its next revocations again from
// the backup's head, so a revocation made there can take a number the resource
// server's cursor has already passed. The cursor's tag tells the two apart and
// the AS answers with the whole list (found in review: the revoked grant's
// tokens were accepted until they expired). Real AS, real SQLite, real HTTP.
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeJwt } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAuthServer } from '../../src/authz/index.js';
import { createRevocationList, DEFAULT_RESYNC_INTERVAL_MS } from '../../src/resource/revocations.js';
import { DEFAULT_LIFETIMES } from '../../src/authz/context.js';
import { openStore } from '../../src/store/index.js';
import { startTestAuthz } from '../support/authz.js';
import { obtainTokens } from '../authz/helpers.js';
import { eventually } from '../support/eventually.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** Waits for a condition that the code under test brings about; fails the test if it never does. */
describe('the revocation list after the database is restored from a backup', () => {
  it('delivers a revocation made on the restored database at a number the resource server had passed', { timeout: 30_000 }, async () => {
    const authz = await startTestAuthz();
    cleanups.push(() => rmSync(authz.home, { recursive: true, force: true }));
    const path = join(authz.home, 'delegate.db');
    const kept = await obtainTokens(authz);
    const other = await obtainTokens(authz);
    const keptGrant = String(decodeJwt(kept.accessToken).grant_id);
    const otherGrant = String(decodeJwt(other.accessToken).grant_id);
    const claims = (token: string) => ({ grant_id: String(decodeJwt(token).grant_id), jti: String(decodeJwt(token).jti) });

    const failures: string[] = [];
    const list = createRevocationList({ issuer: authz.issuer, minRetryMs: 20, maxRetryMs: 100, logger: { warn: (_o, msg) => failures.push(msg) } });
    cleanups.push(list.acquire());
    await list.synced();

    // The backup, then one revocation after it, which the resource server receives.
    const copy = new Database(path);
    await copy.backup(join(authz.home, 'backup.db'));
    copy.close();
    await authz.store.revokeGrant(otherGrant, Date.now(), 'test');
    await eventually(async () => (await list.check(claims(other.accessToken))) !== undefined, 'the other grant is refused');
    const passed = list.status().cursor;

    // The AS stops; the resource server's next poll fails, so whatever it syncs after this comes from the restored AS.
    await authz.app.close();
    authz.store.close();
    await eventually(() => failures.length > 0, 'a poll fails while the AS is down');
    for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
    copyFileSync(join(authz.home, 'backup.db'), path);

    // On the restored database (where the other grant is active again) the kept grant is revoked: same number.
    const store = openStore(path);
    cleanups.push(() => store.close());
    expect(await store.revokeGrant(keptGrant, Date.now(), 'test')).toBe(true);
    expect((await store.revocationsSince(0, Date.now())).cursor).toBe(passed);

    const next = list.synced();
    const app = await buildAuthServer({ issuer: authz.issuer, store, ownerKeyPath: join(authz.home, 'owner-key.json') });
    cleanups.push(() => app.close());
    await app.listen({ port: Number(new URL(authz.issuer).port), host: '127.0.0.1' });
    await next;
    expect(await list.check(claims(kept.accessToken))).toEqual({ revoked: 'The delegation behind this token has been revoked.' });

    // On the wire: a client that sends no tag (an older one) is answered as before; a stale tag brings the whole list.
    const page = async (query: string) => (await (await fetch(`${authz.issuer}/revocations?${query}`)).json()) as { cursor: number; tag?: string; grants: string[] };
    const current = await page('since=0');
    expect(current.grants).toEqual([keptGrant]);
    expect((await page(`since=${passed}`)).grants).toEqual([]);
    expect((await page(`since=${passed}&tag=${current.tag}`)).grants).toEqual([]);
    expect((await page(`since=${passed}&tag=not-the-tag`)).grants).toEqual([keptGrant]);
  });

  it('fetches the whole list again well within an access token lifetime, as a backstop', () => {
    expect(DEFAULT_RESYNC_INTERVAL_MS * 4).toBeLessThanOrEqual(DEFAULT_LIFETIMES.accessTokenSec * 1000);
  });
});
