// `delegate audit` over a long log, in-process: it reads and writes the
// records a page at a time (found in review, s24: `--json` built one string of
// the whole log, "Invalid string length" at 1,000,000 records, and `--verify`
// held every record, 1.67 GB). Its output is unchanged: over a small log the
// same bytes and exit code as the command printed before it streamed
// (fixtures/audit-small-log, written by the code of 4ac9521 over
// writeSmallScratchLog's database); over 20,000 records (test/support/audit-log.ts)
// --json parses, the filters pick what they did, and --verify passes.
// Bounded memory, in a process of its own: test/e2e/audit-long-log.test.ts.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePaths, type Paths } from '../../src/config.js';
import { runCli } from '../../src/cli/program.js';
import { writeScratchAuditLog, writeSmallScratchLog } from '../support/audit-log.js';
import { fakeIo, type FakeIo } from './fake-io.js';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/audit-small-log/${name}`, import.meta.url), 'utf8');

/** `delegate audit …args` in-process over `home`; its io, with each write to stdout also kept apart. */
async function audit(home: string, ...args: string[]): Promise<{ code: number; io: FakeIo; writes: string[] }> {
  const io = fakeIo({ DELEGATE_HOME: home });
  const writes: string[] = [];
  const write = io.stdout.write;
  (io as { stdout: FakeIo['stdout'] }).stdout = { ...io.stdout, write: (text: string) => (writes.push(text), write(text)) };
  return { code: await runCli(['audit', ...args], io), io, writes };
}

describe('delegate audit over a small log prints what it printed before', () => {
  let home: string;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'delegate-audit-small-'));
    await writeSmallScratchLog(resolvePaths({ DELEGATE_HOME: home }).db);
  });
  afterAll(async () => rm(home, { recursive: true, force: true }));

  it.each([
    ['json', ['--json']],
    ['lines', []],
    ['json-consent-user', ['--json', '--event', 'consent,token_issued', '--user', 'scratch-owner']],
    ['lines-client', ['--client', 'cli_scratchA']],
  ])('%s: the same bytes on stdout, the same exit code and unreadable record named on stderr', async (name, args) => {
    const { code, io } = await audit(home, ...args);
    expect(io.out).toBe(fixture(`${name}.out`));
    expect(String(code)).toBe(fixture(`${name}.code`).trim());
    // (The parser's own words for the unreadable record differ between Node versions.)
    expect(io.err.replace(/\(.*\)\.$/gm, '(…).')).toBe(fixture(`${name}.err`).replace(/\(.*\)\.$/gm, '(…).'));
  });

  it('an empty selection: [] for --json, "No audit records match." otherwise', async () => {
    expect((await audit(home, '--json', '--grant', 'grt_none')).io.out).toBe('[]\n');
    const { io, code } = await audit(home, '--grant', 'grt_none');
    expect([code, io.out, io.err]).toEqual([0, '', 'No audit records match.\n']);
  });
});

describe('delegate audit over 20,000 records', () => {
  let home: string;
  let paths: Paths;
  let head: string;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'delegate-audit-long-'));
    paths = resolvePaths({ DELEGATE_HOME: home });
    ({ head } = await writeScratchAuditLog(paths.db, 20_000));
  }, 60_000);
  afterAll(async () => rm(home, { recursive: true, force: true }));

  it('--json is one array of every record, written a page at a time, never the whole log in one string', async () => {
    const { code, io, writes } = await audit(home, '--json');
    expect(code).toBe(0);
    const records = JSON.parse(io.out) as Array<{ seq: number; user_name: string | null; hash: string }>;
    expect(records).toHaveLength(20_000);
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 20_000 }, (_, i) => i + 1));
    expect(records[19_999]!.hash).toBe(head);
    expect(records.every((r) => r.user_name === 'scratch-owner')).toBe(true);
    expect(io.out.endsWith(']\n')).toBe(true);
    // 20 pages of 1,000 records (about 0.55 MB each), "[" and "]\n": none near the 10.6 MB of the whole.
    expect(writes.length).toBeGreaterThanOrEqual(20);
    expect(Math.max(...writes.map((w) => w.length))).toBeLessThan(io.out.length / 10);
  });

  it('the filters pick what they picked: an event, a client, a grant, a time range', async () => {
    const pick = async (...args: string[]) => JSON.parse((await audit(home, '--json', ...args)).io.out) as Array<{ seq: number; event: string; client: string; grant: string }>;
    const calls = await pick('--event', 'tool_call');
    expect(calls).toHaveLength(4_000);
    expect(calls.every((r) => r.event === 'tool_call')).toBe(true);
    expect((await pick('--client', 'cli_scratchA', '--event', 'token_issued')).map((r) => r.seq)).toEqual(Array.from({ length: 1_333 }, (_, i) => (i + 1) * 15));
    expect((await pick('--grant', 'grt_scratch0005')).every((r) => r.grant === 'grt_scratch0005' && r.seq % 97 === 5)).toBe(true);
    const since = new Date(Date.UTC(2026, 0, 1) + 19_991_000).toISOString();
    expect((await pick('--since', since)).map((r) => r.seq)).toEqual([19_991, 19_992, 19_993, 19_994, 19_995, 19_996, 19_997, 19_998, 19_999, 20_000]);
  });

  it('the lines: one per record', async () => {
    const { code, io } = await audit(home);
    expect(code).toBe(0);
    const lines = io.out.split('\n');
    expect(lines).toHaveLength(20_001);
    expect(lines[19_999]).toMatch(/^2026-01-01T05:33:20\.000Z  #20000  token_issued  for scratch-owner  by cli_scratchC  grt_scratch0018 /);
  });

  it('--verify passes, holds the head, and names a record changed in the middle', async () => {
    const intact = await audit(home, '--verify', '--head', head.slice(0, 32));
    expect(intact.code).toBe(0);
    expect(intact.io.out).toBe(`The audit log is intact: 20000 records, head ${head}; it holds the head you kept (${head.slice(0, 32)}).\n`);
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(paths.db);
    db.prepare(`UPDATE audit_log SET detail = '{"jti":"forged"}' WHERE seq = 12345`).run();
    db.close();
    const broken = await audit(home, '--verify', '--json');
    expect(broken.code).toBe(1);
    expect(JSON.parse(broken.io.out)).toMatchObject({ ok: false, seq: 12_345, problem: 'edited' });
  });
});
