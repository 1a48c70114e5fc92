// `delegate audit --since/--until` and a listing left paused (found in review, s34year, on a year's log of 388,748
// records): the time window was read by scanning the whole log (`SCAN audit_log`), not through its index on time; and a
// listing read through one statement held one snapshot for as long as its reader paused (`delegate audit | less`), so
// that no checkpoint could start the WAL again, and the -wal, with nothing to cut it back, stayed as large as it grew.
// Real SQLite files; the listing's records are the same as before, on a log whose clock stepped back too.
import { statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openStore, type AuditFilter, type StoredRecord, type Store } from '../../src/store/index.js';
import { auditQuery } from '../../src/store/sqlite.js';
import { databaseFileEachTest } from './migration-support.js';

const databaseFile = databaseFileEachTest('delegate-audit-window-');

/** EXPLAIN QUERY PLAN's lines for the statement the store runs for `filter` (and `seqs`: one of auditPages' pages). */
function planOf(path: string, filter: AuditFilter, seqs?: { after: number; upTo: number; limit: number }): string[] {
  const { sql, params } = auditQuery(filter, seqs);
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail);
  } finally {
    db.close();
  }
}

/** Every page auditPages hands out for `filter`, joined. */
async function paged(store: Store, filter: AuditFilter, pageSize: number): Promise<StoredRecord[]> {
  const records: StoredRecord[] = [];
  for await (const page of store.auditPages(filter, pageSize)) {
    expect(page.length).toBeGreaterThan(0);
    expect(page.length).toBeLessThanOrEqual(pageSize);
    records.push(...page);
  }
  return records;
}

describe('audit --since / --until', () => {
  it('reads the time window through audit_log_by_time, never by scanning the log', () => {
    const path = databaseFile();
    openStore(path).close();
    for (const filter of [{ since: 1_000 }, { until: 1_000 }, { since: 1_000, until: 2_000 }, { since: 1_000, grant: 'grt_1' }, { since: 1_000, events: ['consent'] }] as AuditFilter[]) {
      const plan = planOf(path, filter);
      expect(plan, JSON.stringify(filter)).not.toContain('SCAN audit_log');
      expect(plan.join(' | '), JSON.stringify(filter)).toMatch(/USING COVERING INDEX audit_log_by_time/);
      // Read in chain order as it is found, never gathered and sorted first.
      expect(plan.join(' | '), JSON.stringify(filter)).not.toMatch(/TEMP B-TREE/);
    }
    // auditPages' pages: a range of seqs, the times checked on each record.
    expect(planOf(path, { since: 1_000, until: 2_000 }, { after: 10, upTo: 20, limit: 5 })).toEqual(['SEARCH audit_log USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)']);
  });

  it('lists the records it listed before on a log whose clock stepped back, whole and a page at a time', async () => {
    const path = databaseFile();
    const store = openStore(path);
    try {
      // Times as a clock set back (after 300, then after 500) and one ahead for a while (900) write them.
      const times = [100, 200, 300, 150, 250, 900, 400, 500, 50, 600, 700, 350, 800];
      for (const [i, at] of times.entries()) {
        await store.appendAudit({ event: i % 3 === 0 ? 'consent' : 'tool_call', user: 'usr_1', grant: i % 2 === 0 ? 'grt_even' : 'grt_odd', detail: { n: i } }, at);
      }
      const all = await store.listAudit();
      expect(all.map((r) => r.at)).toEqual(times);
      const windows: AuditFilter[] = [
        { since: 250 },
        { since: 901 },
        { since: 50 },
        { until: 300 },
        { until: 49 },
        { until: 900 },
        { since: 200, until: 400 },
        { since: 350, until: 350 },
        { since: 600, until: 650 },
        { since: 200, until: 800, grant: 'grt_even' },
        { since: 150, events: ['consent'] },
        { since: 150, until: 700, limit: 3 },
      ];
      for (const filter of windows) {
        let expected = all.filter((r) => (filter.since === undefined || r.at >= filter.since) && (filter.until === undefined || r.at <= filter.until));
        if (filter.grant) expected = expected.filter((r) => r.grant === filter.grant);
        if (filter.events) expected = expected.filter((r) => filter.events!.includes(r.event));
        if (filter.limit) expected = expected.slice(0, filter.limit);
        const seqs = expected.map((r) => r.seq);
        expect((await store.listAudit(filter)).map((r) => r.seq), JSON.stringify(filter)).toEqual(seqs);
        for (const pageSize of [1, 2, 5, 1000]) {
          expect((await paged(store, filter, pageSize)).map((r) => r.seq), `${JSON.stringify(filter)} by ${pageSize}`).toEqual(seqs);
        }
      }
      // No window at all: the whole log, in chain order.
      expect((await paged(store, {}, 4)).map((r) => r.seq)).toEqual(all.map((r) => r.seq));
    } finally {
      store.close();
    }
  });
});

describe('a listing left paused', () => {
  it('holds no snapshot between pages: another process checkpoints the whole WAL (busy 0), and records written meanwhile are not listed', async () => {
    const path = databaseFile();
    const store = openStore(path);
    // Its busy timeout short: a checkpoint held up by a reader waits that long before it answers busy.
    const other = new Database(path, { timeout: 500 });
    const pages = store.auditPages({}, 5)[Symbol.asyncIterator]();
    try {
      for (let i = 0; i < 30; i++) await store.appendAudit({ event: 'tool_call', detail: { n: i } }, 1_000 + i);
      const first = await pages.next();
      const second = await pages.next();
      expect([...first.value!, ...second.value!].map((r: StoredRecord) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      // Paused as `delegate audit | less` pauses it; another process writes (serve: a token issued) and checkpoints.
      other.prepare("INSERT INTO used_once (id, expires_at) VALUES ('x1', 0)").run();
      expect(other.pragma('wal_checkpoint(RESTART)')).toEqual([{ busy: 0, log: expect.any(Number), checkpointed: expect.any(Number) }]);
      await store.appendAudit({ event: 'tool_call', detail: { n: 'after' } }, 5_000);
      // The rest of the listing, as a snapshot taken when it started gives it: the record written since is not there.
      const rest: number[] = [];
      for (let step = await pages.next(); !step.done; step = await pages.next()) rest.push(...step.value.map((r) => r.seq));
      expect(rest).toEqual(Array.from({ length: 20 }, (_, i) => 11 + i));
    } finally {
      await pages.return?.(undefined);
      other.close();
      store.close();
    }
  });

  it('once checkpointed, the -wal is cut back to 4 MiB (journal_size_limit) by the next write, not kept at its largest', async () => {
    const path = databaseFile();
    const store = openStore(path);
    const other = new Database(path);
    try {
      // One group commit of about 8 MB of records (written together, one transaction): the -wal grows past them.
      const big = 'x'.repeat(200_000);
      await Promise.all(Array.from({ length: 40 }, (_, i) => store.appendAudit({ event: 'tool_call', detail: { n: i, big } }, 1_000 + i)));
      expect(statSync(`${path}-wal`).size).toBeGreaterThan(8_000_000);
      expect(other.pragma('wal_checkpoint(RESTART)')).toEqual([expect.objectContaining({ busy: 0 })]);
      // The next commit starts the WAL again from its beginning, and cuts the file back.
      await store.appendAudit({ event: 'tool_call', detail: { n: 'next' } }, 2_000);
      expect(statSync(`${path}-wal`).size).toBeLessThanOrEqual(4 * 1024 * 1024);
      expect(await store.verifyAudit()).toMatchObject({ ok: true, count: 41 });
    } finally {
      other.close();
      store.close();
    }
  });
});
