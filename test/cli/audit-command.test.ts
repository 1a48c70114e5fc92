// `delegate audit --verify` in-process over a real database: a record it
// cannot verify is named, and the check goes on past it, rather than the
// command crashing (found in review: a record nested 3,143 deep made every
// run die with "Maximum call stack size exceeded").
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../src/config.js';
import { auditCommand } from '../../src/cli/commands/audit.js';
import { openStore } from '../../src/store/index.js';
import { fakeIo } from './fake-io.js';

let home: string;
let paths: Paths;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-cli-audit-'));
  paths = resolvePaths({ DELEGATE_HOME: home });
  const store = openStore(paths.db);
  for (let i = 1; i <= 4; i++) await store.appendAudit({ event: 'tool_call', user: 'usr_1', actors: ['calendar-agent', 'usr_1'], detail: { tool: 'find_slot', n: i } }, 1_000 + i);
  store.close();
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('delegate audit --verify', () => {
  it('verifies a record nested 8,000 deep', async () => {
    // Written straight to the database (JSON.stringify itself overflows at some thousands of levels), hashed by hand.
    const nested = `${'['.repeat(8_000)}${']'.repeat(8_000)}`;
    const db = new Database(paths.db);
    const last = db.prepare('SELECT hash FROM audit_log WHERE seq = 4').get() as { hash: string };
    const canonical = `{"actors":[],"at":2000,"client":null,"detail":{"arguments":${nested}},"event":"tool_call","grant":null,"resource":null,"seq":5,"user":null}`;
    const hash = createHash('sha256').update(`${last.hash}\n${canonical}`).digest('hex');
    db.prepare(`INSERT INTO audit_log (seq, at, event, actors, detail, prev_hash, hash) VALUES (5, 2000, 'tool_call', '[]', ?, ?, ?)`).run(`{"arguments":${nested}}`, last.hash, hash);
    db.close();
    const io = fakeIo();
    expect(await auditCommand({ paths, json: false, verify: true }, io)).toBe(0);
    expect(io.out).toBe(`The audit log is intact: 5 records, head ${hash}.\n`);
  });

  it('names a record it cannot verify, goes on, and exits 1', async () => {
    const db = new Database(paths.db);
    db.prepare(`UPDATE audit_log SET detail = '{"arguments":[' WHERE seq = 2`).run();
    db.close();
    const io = fakeIo();
    expect(await auditCommand({ paths, json: false, verify: true }, io)).toBe(1);
    expect(io.err).toMatch(/^delegate: Record 2 cannot be verified: its content cannot be read .*Every other record of the 4 follows from its predecessor\.\n$/);
  });
});
