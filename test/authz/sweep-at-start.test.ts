// The authorization server sweeps expired rows soon after it starts listening, not only every 10 minutes. Found in
// review (s34year): find-slot and login run the servers in their own process for about a second, which never saw the
// 10-minute timer fire, so nothing was ever deleted (12 find-slot runs with an expired cached token: refresh tokens
// 1 → 13, access tokens 6 → 30, one-time ids 8 → 20). Here: a store holding an expired one-time id and a family whose
// refresh token expired over a day ago; the server, built, sweeps nothing before it listens (a test that uses
// inject() compares the database as it left it), and once listening removes both, leaving what is live. Polled, bounded.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildAuthServer } from '../../src/authz/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { EXPIRED_TOKEN_KEPT_MS } from '../../src/store/sqlite.js';

const DAY = 86_400_000;
let dir: string;
let path: string;
let store: Store;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'delegate-sweep-at-start-'));
  path = join(dir, 'delegate.db');
  store = openStore(path);
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Rows as an earlier run left them (foreign keys off: the grant and client they name are not what this reads). */
function leftBehind(now: number): void {
  const db = new Database(path);
  try {
    db.pragma('foreign_keys = OFF');
    const once = db.prepare('INSERT INTO used_once (id, expires_at) VALUES (?, ?)');
    once.run('jti_expired', now - 60_000);
    once.run('jti_live', now + 60_000);
    db.prepare("INSERT INTO token_families (id, grant_id, client_id, created_at) VALUES ('fam_1', 'grt_1', 'cli_1', ?)").run(now - 40 * DAY);
    const token = db.prepare(
      "INSERT INTO refresh_tokens (token_hash, family_id, grant_id, client_id, user_id, resource, scope, created_at, expires_at) VALUES (?, 'fam_1', 'grt_1', 'cli_1', 'usr_1', 'r', 's', ?, ?)",
    );
    token.run('rt_expired', now - 40 * DAY, now - EXPIRED_TOKEN_KEPT_MS - 60_000);
  } finally {
    db.close();
  }
}

function rows(): { usedOnce: string[]; refreshTokens: string[]; families: string[] } {
  const db = new Database(path, { readonly: true });
  try {
    return {
      usedOnce: db.prepare('SELECT id FROM used_once ORDER BY id').pluck().all() as string[],
      refreshTokens: db.prepare('SELECT token_hash FROM refresh_tokens').pluck().all() as string[],
      families: db.prepare('SELECT id FROM token_families').pluck().all() as string[],
    };
  } finally {
    db.close();
  }
}

const turns = (n: number) => new Promise<void>((resolve) => setTimeout(resolve, n));

describe('the sweep at the authorization server’s start', () => {
  it('removes an expired one-time id and refresh token soon after the server listens, and nothing before', async () => {
    leftBehind(Date.now());
    const before = rows();
    expect(before).toEqual({ usedOnce: ['jti_expired', 'jti_live'], refreshTokens: ['rt_expired'], families: ['fam_1'] });
    const app = await buildAuthServer({ issuer: 'http://127.0.0.1', store });
    try {
      await app.ready();
      expect((await app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' })).statusCode).toBe(200);
      await turns(50);
      expect(rows()).toEqual(before);

      await app.listen({ host: '127.0.0.1', port: 0 });
      const swept = { usedOnce: ['jti_live'], refreshTokens: [], families: [] };
      let now = rows();
      for (let i = 0; i < 400 && JSON.stringify(now) !== JSON.stringify(swept); i++) {
        await turns(25);
        now = rows();
      }
      expect(now).toEqual(swept);
    } finally {
      await app.close();
    }
  });

  it('sweeps nothing at its start when sweeping is off (sweepIntervalMs: 0)', async () => {
    leftBehind(Date.now());
    const before = rows();
    const app = await buildAuthServer({ issuer: 'http://127.0.0.1', store, sweepIntervalMs: 0 });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      await turns(50);
      expect(rows()).toEqual(before);
    } finally {
      await app.close();
    }
  });
});
