// The revocation list's cursor never passes a revocation it did not hand out,
// while another process (`delegate grants revoke`, a second AS) commits
// revocations to the same database. A resource server polls from the cursor it
// was given; a row at or below it that it was not sent is never sent to it.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/index.js';
import { repoRoot } from '../e2e/built.js';

/** Revocations the other process commits, one per transaction (as revokeGrant does). */
const ROWS = 20_000;

let dir: string;
let store: Store | undefined;

afterEach(() => {
  store?.close();
  store = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** Starts a process that inserts `ROWS` revocations into the database at `path`, each committed on its own. */
function revokeInAnotherProcess(path: string, keepUntil: number): Promise<{ code: number | null; stderr: string }> {
  const script = `
    import Database from 'better-sqlite3';
    const db = new Database(${JSON.stringify(path)}, { timeout: 5000 });
    db.pragma('synchronous = NORMAL');
    const insert = db.prepare("INSERT INTO revocations (kind, id, revoked_at, keep_until) VALUES ('grant', ?, ?, ?)");
    for (let i = 0; i < ${ROWS}; i++) db.transaction(() => insert.run('grt_' + i, Date.now(), ${keepUntil})).immediate();
    db.close();
  `;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

describe('the revocation list while another process revokes', () => {
  // Whole answers, and pages of at most 1,000 (the AS's REVOCATION_PAGE_SIZE), whose cursor is their last row's.
  it.each([undefined, 1_000])('hands out no cursor past a revocation it did not include (page size %s)', { timeout: 60_000 }, async (limit) => {
    dir = mkdtempSync(join(tmpdir(), 'delegate-revocation-cursor-'));
    const path = join(dir, 'delegate.db');
    store = openStore(path);
    const keepUntil = Date.now() + 3_600_000;

    const writer = revokeInAnotherProcess(path, keepUntil);
    let finished = false;
    void writer.then(() => (finished = true));

    // Poll as a resource server does, from the last cursor, until the writer is done and once more after.
    const seen = new Set<string>();
    let cursor = 0;
    let polls = 0;
    for (let last = false; !last; ) {
      last = finished;
      const page = await store.revocationsSince(cursor, Date.now(), limit);
      // A page with more after it is not the last poll, whatever the writer did.
      if (page.more) last = false;
      if (limit !== undefined) expect(page.grants.length).toBeLessThanOrEqual(limit);
      for (const id of page.grants) seen.add(id);
      expect(page.cursor).toBeGreaterThanOrEqual(cursor);
      cursor = page.cursor;
      polls++;
    }
    const { code, stderr } = await writer;
    expect(code, stderr).toBe(0);

    const db = new Database(path, { readonly: true });
    const all = (db.prepare('SELECT id FROM revocations WHERE seq <= ?').all(cursor) as Array<{ id: string }>).map((r) => r.id);
    db.close();
    expect(all).toHaveLength(ROWS);
    expect(polls).toBeGreaterThan(10);
    const missed = all.filter((id) => !seen.has(id));
    expect(missed.length, `${missed.length} of ${ROWS} revocations at or below a cursor handed out were never returned (${polls} polls), e.g. ${missed.slice(0, 3).join(', ')}`).toBe(0);
  });
});
