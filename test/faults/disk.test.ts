// The data directory on a read-only or a full disk, made real with a tmpfs
// mounted for the test (as root; skipped, saying why, elsewhere). Every
// command that must write says so in one line (exit 1, no stack trace); those
// that only read go on; a running server answers RFC errors and stays up.
// Once the disk is writable again, the database passes its integrity check,
// nothing is lost and everything works as before.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';
import { runCli, startCli, type Run, type Running } from '../e2e/run.js';
import { ready, releaseTmpfs, signedInOnTmpfs, tmpfsUnavailable } from './support.js';

const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });

const unavailable = tmpfsUnavailable();
if (unavailable) console.log(`test/faults/disk.test.ts skipped: ${unavailable}`);

let mountPoint: string | undefined;
let home: string;
let ports: string[];
let issuer: string;
let serve: Running | undefined;

// One data directory for both tests: the full disk first, with the servers running; then read-only, with them stopped.
beforeAll(async () => {
  if (unavailable) return;
  ({ mountPoint, home, ports, issuer, serve } = await signedInOnTmpfs('delegate-faults-disk-'));
}, 60_000);

afterAll(async () => {
  await releaseTmpfs(mountPoint, serve);
  serve = undefined;
  mountPoint = undefined;
});

async function stopServe(): Promise<void> {
  serve?.child.kill('SIGTERM');
  const run = await serve?.done;
  expect(run?.code, run?.stderr).toBe(0);
  serve = undefined;
}

function expectOneLineError(run: Run, message: RegExp): void {
  expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(1);
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
  expect(run.stderr).toMatch(/^delegate: /);
  expect(run.stderr).toMatch(message);
  expect(run.stderr).not.toMatch(/\n\s+at /);
}

interface Snapshot {
  grants: unknown[];
  calendars: unknown[];
  clients: unknown[];
  auditRecords: number;
}

/** What must survive, read from the database itself (read-only): the grants, the calendars, the clients, the audit log. */
function snapshot(check?: (db: Database.Database) => void): Snapshot {
  const db = new Database(join(home, 'delegate.db'), { readonly: true, fileMustExist: true });
  try {
    check?.(db);
    return {
      grants: db.prepare('SELECT id, client_id, scope, revoked_at FROM grants ORDER BY id').all(),
      calendars: db.prepare('SELECT id, name, source FROM calendars ORDER BY id').all(),
      clients: db.prepare('SELECT client_id FROM clients ORDER BY client_id').all(),
      auditRecords: (db.prepare('SELECT count(*) AS n FROM audit_log').get() as { n: number }).n,
    };
  } finally {
    db.close();
  }
}

async function expectIntactAndWorking(before: Snapshot): Promise<void> {
  const after = snapshot((db) => {
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(db.pragma('foreign_key_check')).toEqual([]);
  });
  expect({ ...after, auditRecords: undefined }).toEqual({ ...before, auditRecords: undefined });
  expect(after.auditRecords).toBeGreaterThanOrEqual(before.auditRecords); // refusals may have been recorded, nothing removed
}

const grantId = (before: Snapshot) => (before.grants[0] as { id: string }).id;

describe.skipIf(unavailable !== undefined)('the data directory on a bad disk', () => {
  it('full: writes fail in one line or as RFC errors, the running server stays up, and once space is freed nothing is lost', { timeout: 90_000 }, async () => {
    const before = snapshot();
    // Empty the write-ahead log, so that every new write needs new space, then fill the disk.
    const db = new Database(join(home, 'delegate.db'));
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    sh('dd', ['if=/dev/zero', `of=${join(mountPoint!, 'filler')}`, 'bs=64k']);
    expect(sh('df', ['--output=avail', mountPoint!]).stdout).toMatch(/\n\s*0\s*$/);

    // The running authorization server: an RFC error body, and it stays up.
    const registration = await postJson(`${issuer}/register`, { client_name: 'full disk', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none' });
    expect(registration.status).toBe(500);
    expect(registration.body).toMatchObject({ error: 'server_error' });
    expect(registration.headers.get('cache-control')).toBe('no-store');

    const full = /is full/;
    const otherPorts = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
    const writers = await Promise.all(
      [
        ['serve', ...otherPorts],
        ['grants', 'revoke', grantId(before)],
        ['calendar', 'add', 'work', join(process.cwd(), 'fixtures', 'owner.ics')],
        // find-slot through the running servers: the agent's calendar token, or the call itself, cannot be recorded.
        ['find-slot', '--duration', '30m', '--json', ...ports],
      ].map((args) => runCli(args, home)),
    );
    const slot = writers.pop()!;
    // A second serve of this data directory on other ports is refused before it writes, while the first runs.
    expectOneLineError(writers.shift()!, /already serving the data directory/);
    for (const run of writers) expectOneLineError(run, full);
    expectOneLineError(slot, /could not issue a calendar token \(server_error\)|could not be recorded in the audit log/);
    console.log(`find-slot on a full disk: ${slot.stderr.trim()}`);
    expect(serve!.child.exitCode).toBeNull();

    await rm(join(mountPoint!, 'filler'));
    await expectIntactAndWorking(before);
    const again = await runCli(['find-slot', '--duration', '30m', '--json', ...ports], home);
    expect(again.code, again.stderr).toBe(0); // through the same server process
    expect(serve!.child.exitCode).toBeNull();
  });

  it('read-only: commands that write fail in one line naming the database, the CLI’s own reads go on, and nothing is lost', { timeout: 90_000 }, async () => {
    await stopServe();
    const before = snapshot();
    // Closed cleanly, as a stopped server leaves it: the last connection to close removes the -wal and -shm
    // (snapshot's read-only connection could not).
    const last = new Database(join(home, 'delegate.db'));
    last.pragma('wal_checkpoint(TRUNCATE)');
    last.close();
    expect(sh('mount', ['-o', 'remount,ro', mountPoint!]).status).toBe(0);

    const [status, ...writers] = await Promise.all(
      [
        // The CLI's own files are only read: the stored sign-in is there.
        ['status'],
        // Everything that opens the database (which it opens for writing).
        ['serve', ...ports],
        ['find-slot', '--duration', '30m', '--json', ...ports],
        ['login', '--no-browser', ...ports],
        ['grants', 'revoke', grantId(before)],
      ].map((args) => runCli(args, home)),
    );
    expect(status!.code, status!.stderr).toBe(0);
    for (const run of writers) expectOneLineError(run, /The database .*delegate\.db cannot be written \(EROFS: read-only file system/);
    // The commands that only look at the database read it as it stands (closed cleanly: no -wal or -shm to help SQLite).
    expect(existsSync(join(home, 'delegate.db-wal')) || existsSync(join(home, 'delegate.db-shm'))).toBe(false);
    await expectReadersSee(before);

    expect(sh('mount', ['-o', 'remount,rw', mountPoint!]).status).toBe(0);
    await expectIntactAndWorking(before);
    const [slot, audit] = await Promise.all([runCli(['find-slot', '--duration', '30m', '--json', ...ports], home), runCli(['audit', '--verify'], home)]);
    expect(slot.code, slot.stderr).toBe(0); // the servers started in its own process, on the same data
    expect(audit.code, audit.stderr).toBe(0);
  });

  it('read-only after a crash: the readers see what the killed server left in the -wal', { timeout: 90_000 }, async () => {
    serve = await ready(startCli(['serve', ...ports], home));
    const slot = await runCli(['find-slot', '--duration', '30m', '--json', ...ports], home);
    expect(slot.code, slot.stderr).toBe(0);
    serve.child.kill('SIGKILL');
    await serve.done;
    serve = undefined;
    const before = snapshot();
    expect(existsSync(join(home, 'delegate.db-wal'))).toBe(true);
    // The database file alone, without its -wal: a copy elsewhere.
    const alone = join(await mkdtemp(join(tmpdir(), 'delegate-faults-copy-')), 'delegate.db');
    copyFileSync(join(home, 'delegate.db'), alone);
    const copy = new Database(alone);
    const inFile = (copy.prepare('SELECT count(*) AS n FROM audit_log').get() as { n: number }).n;
    copy.close();
    await rm(dirname(alone), { recursive: true, force: true });
    expect(before.auditRecords).toBeGreaterThan(inFile); // the find-slot's records are only in the -wal
    expect(sh('mount', ['-o', 'remount,ro', mountPoint!]).status).toBe(0);
    try {
      await expectReadersSee(before);
    } finally {
      expect(sh('mount', ['-o', 'remount,rw', mountPoint!]).status).toBe(0);
    }
    await expectIntactAndWorking(before);
  });
});

/** On a read-only disk: grants, agents, calendars and the audit log as `before` read them, and the audit chain verified. */
async function expectReadersSee(before: Snapshot): Promise<void> {
  const [list, show, agents, audit, verify, calendars] = await Promise.all(
    [
      ['grants', 'list', '--all', '--json'],
      ['grants', 'show', grantId(before), '--json'],
      ['agents', 'list', '--json'],
      ['audit', '--json'],
      ['audit', '--verify'],
      ['calendar', 'list', '--json'],
    ].map((args) => runCli(args, home)),
  );
  for (const run of [list, show, agents, audit, verify, calendars]) {
    expect(run!.code, run!.stderr).toBe(0);
    // Said once, on stderr, so that a permission problem is not read as a read-only disk unawares.
    expect(run!.stderr).toMatch(/^delegate: The database .*delegate\.db cannot be written \(EROFS: read-only file system.*\)\. Reading it as it stands\.\n/);
  }
  expect((JSON.parse(calendars!.stdout) as Array<{ name: string }>).map((c) => c.name).sort()).toEqual((before.calendars as Array<{ name: string }>).map((c) => c.name).sort());
  expect((JSON.parse(list!.stdout) as Array<{ id: string }>).map((g) => g.id).sort()).toEqual((before.grants as Array<{ id: string }>).map((g) => g.id).sort());
  expect(JSON.parse(show!.stdout)).toMatchObject({ id: grantId(before) });
  expect((JSON.parse(agents!.stdout) as Array<{ client_id: string }>).length).toBeGreaterThan(0);
  expect(JSON.parse(audit!.stdout)).toHaveLength(before.auditRecords);
  expect(verify!.stdout).toContain(`The audit log is intact: ${before.auditRecords} records`);
}
