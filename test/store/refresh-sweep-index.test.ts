// The sweep's delete of refresh tokens asks of each expired token whether its family still has a live one. Through
// refresh_tokens_by_family (family_id) alone that walked every row of the family: found in review (s34year), 2,000
// candidates × 2,880 rows when a 30-day family refreshed every 15 minutes ended, batches of 1.4 s and sweeps of 2 s
// and more with the event loop held (49 s for a year's backlog). The index (family_id, expires_at) makes it one seek;
// the migration that adds it replaces the old one, and a database from before it, upgraded, sweeps as before.
// An abort ends a sweep between two of its transactions (the server closing). Real SQLite files.
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/index.js';
import { MIGRATIONS } from '../../src/store/schema.js';
import { EXPIRED_TOKEN_KEPT_MS, SWEEP_REFRESH_TOKENS, TOKEN_SWEEP_BATCH } from '../../src/store/sqlite.js';
import { databaseBefore, databaseFileEachTest } from './migration-support.js';

const databaseFile = databaseFileEachTest('delegate-refresh-sweep-index-');
const DAY = 86_400_000;

/** EXPLAIN QUERY PLAN's lines for the sweep's delete of refresh tokens on the database at `path`. */
function sweepPlanOf(path: string): string[] {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare(`EXPLAIN QUERY PLAN ${SWEEP_REFRESH_TOKENS}`).all(0, 0, 1) as Array<{ detail: string }>).map((r) => r.detail);
  } finally {
    db.close();
  }
}

const indexesOf = (db: Database.Database): string[] =>
  db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'refresh_tokens' AND sql IS NOT NULL ORDER BY name").pluck().all() as string[];

/**
 * Two families of a grant, as the database holds them (foreign keys off: the grant is not there): `fam_ended`, whose
 * every refresh token expired over a day ago, and `fam_live`, a spent token of which expired as long ago while its
 * latest is live (so the spent one stays: a replay of it still ends the family).
 */
function twoFamilies(db: Database.Database, now: number): void {
  const family = db.prepare("INSERT INTO token_families (id, grant_id, client_id, created_at) VALUES (?, 'grt_1', 'cli_1', ?)");
  family.run('fam_ended', now - 40 * DAY);
  family.run('fam_live', now - 40 * DAY);
  const token = db.prepare(
    "INSERT INTO refresh_tokens (token_hash, family_id, grant_id, client_id, user_id, resource, scope, created_at, expires_at, used_at) VALUES (?, ?, 'grt_1', 'cli_1', 'usr_1', 'http://127.0.0.1:8412/mcp', 'slots:find', ?, ?, ?)",
  );
  token.run('rt_ended_1', 'fam_ended', now - 40 * DAY, now - 10 * DAY, now - 35 * DAY);
  token.run('rt_ended_2', 'fam_ended', now - 35 * DAY, now - 5 * DAY, null);
  token.run('rt_live_spent', 'fam_live', now - 40 * DAY, now - 10 * DAY, now - 35 * DAY);
  token.run('rt_live', 'fam_live', now - 1 * DAY, now + 29 * DAY, null);
}

const refreshTokensIn = (path: string): string[] => {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT token_hash FROM refresh_tokens ORDER BY token_hash').pluck().all() as string[];
  } finally {
    db.close();
  }
};

describe('the sweep of refresh tokens', () => {
  it('asks whether a family has a live token with one seek in refresh_tokens_by_family_expiry (family_id, expires_at)', () => {
    const path = databaseFile();
    openStore(path).close();
    const plan = sweepPlanOf(path);
    expect(plan).toContain('SEARCH live USING COVERING INDEX refresh_tokens_by_family_expiry (family_id=? AND expires_at>?)');
    // The old index (family_id) is gone: the new one serves every lookup by family_id.
    const db = new Database(path, { readonly: true });
    try {
      expect(indexesOf(db)).toEqual(['refresh_tokens_by_family_expiry']);
    } finally {
      db.close();
    }
  });

  it('on a database from before the index: the migration adds it in place of the old one, and the sweep deletes what it did', async () => {
    const path = databaseFile();
    const now = Date.now();
    databaseBefore(path, 'refresh_tokens_by_family_expiry', (db) => {
      expect(indexesOf(db)).toEqual(['refresh_tokens_by_family']);
      twoFamilies(db, now);
    });
    expect(sweepPlanOf(path)).toContain('SEARCH live USING INDEX refresh_tokens_by_family (family_id=?)');
    const store = openStore(path);
    try {
      await store.sweep(now);
    } finally {
      store.close();
    }
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      expect(indexesOf(db)).toEqual(['refresh_tokens_by_family_expiry']);
    } finally {
      db.close();
    }
    expect(sweepPlanOf(path)).toContain('SEARCH live USING COVERING INDEX refresh_tokens_by_family_expiry (family_id=? AND expires_at>?)');
    // The ended family's tokens went together; the live family kept its spent one.
    expect(refreshTokensIn(path)).toEqual(['rt_live', 'rt_live_spent']);
  });

  it('stops between two transactions once its signal is aborted, and the next sweep works off the rest', async () => {
    const path = databaseFile();
    const now = Date.now();
    openStore(path).close();
    const backlog = TOKEN_SWEEP_BATCH * 2 + 17;
    const db = new Database(path);
    db.pragma('foreign_keys = OFF'); // the grant and client are not there: the rows are what the sweep reads
    db.transaction(() => {
      db.prepare("INSERT INTO token_families (id, grant_id, client_id, created_at) VALUES ('fam_old', 'grt_1', 'cli_1', ?)").run(now - 90 * DAY);
      const token = db.prepare(
        "INSERT INTO refresh_tokens (token_hash, family_id, grant_id, client_id, user_id, resource, scope, created_at, expires_at) VALUES (?, 'fam_old', 'grt_1', 'cli_1', 'usr_1', 'r', 's', ?, ?)",
      );
      for (let i = 0; i < backlog; i++) token.run(`rt_${i}`, now - 90 * DAY, now - EXPIRED_TOKEN_KEPT_MS - DAY);
    })();
    db.close();
    const store = openStore(path);
    try {
      const closing = new AbortController();
      closing.abort();
      await store.sweep(now, closing.signal);
      expect(refreshTokensIn(path)).toHaveLength(backlog - TOKEN_SWEEP_BATCH);
      await store.sweep(now);
      expect(refreshTokensIn(path)).toHaveLength(0);
    } finally {
      store.close();
    }
  });
});
