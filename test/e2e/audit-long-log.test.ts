// The built `delegate audit` over 40,000 records in a process whose heap is
// held to 24 MB: `--json` (about 21 MB of output), a filtered `--json` and
// `--verify` each finish, and what they print is right. Before they streamed,
// each held the whole log (about 40 MB of heap here; found in review, s24:
// "Invalid string length" and 2.9 GB for --json at 1,000,000 records, 1.67 GB
// for --verify) and died of heap exhaustion (exit 134). The figures at 200,000
// and 1,000,000 records: bench/audit-log.bench.ts.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeScratchAuditLog } from '../support/audit-log.js';
import { delegateBin, repoRoot } from './built.js';

const RECORDS = 40_000;
const HEAP_MB = 24;
/** The Node the store's commands run on (see run.ts: better-sqlite3 loads only in the runtime it was built for). */
const node = process.env.DELEGATE_E2E_SERVER_NODE || process.execPath;

let home: string;
let head: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-audit-heap-'));
  ({ head } = await writeScratchAuditLog(join(home, 'delegate.db'), RECORDS));
}, 60_000);
afterAll(async () => rm(home, { recursive: true, force: true }));

function audit(...args: string[]) {
  const run = spawnSync(node, [`--max-old-space-size=${HEAP_MB}`, delegateBin, 'audit', ...args], {
    cwd: repoRoot,
    env: { ...process.env, DELEGATE_HOME: home },
    encoding: 'utf8',
    maxBuffer: 128 * 1024 * 1024,
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr.slice(0, 500) };
}

describe(`delegate audit over ${RECORDS.toLocaleString('en')} records with a ${HEAP_MB} MB heap`, () => {
  it('--json: every record, one array that parses', () => {
    const run = audit('--json');
    expect(run.code, run.stderr).toBe(0);
    const records = JSON.parse(run.stdout) as Array<{ seq: number; hash: string }>;
    expect(records).toHaveLength(RECORDS);
    expect(records.at(-1)).toMatchObject({ seq: RECORDS, hash: head });
  }, 60_000);

  it('--json --event tool_call: the fifth of them', () => {
    const run = audit('--json', '--event', 'tool_call');
    expect(run.code, run.stderr).toBe(0);
    expect((JSON.parse(run.stdout) as unknown[]).length).toBe(RECORDS / 5);
  }, 60_000);

  it('--verify: intact, with the head the records were written with', () => {
    const run = audit('--verify', '--json');
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ ok: true, count: RECORDS, head });
  }, 60_000);
});
