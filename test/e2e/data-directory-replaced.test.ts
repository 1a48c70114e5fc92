// The data directory replaced under running servers, real processes. Found in review (s22store): after
// `cp -a $H $H.copy && mv $H $H.old && mv $H.copy $H` (or `mv backup.db $H/delegate.db`) while `delegate serve` ran,
// `delegate grants revoke` (and `keys rotate`, `users add`) wrote to the new file and said it was done, while the
// server went on with the old one ($H.old/delegate.db) and kept honouring the revoked grant. Now the server stops
// (one fatal log line naming the database, exit 1) within moments, and the administrator's commands say in one line
// when this directory's authorization server answers from another data directory.
import { cpSync, renameSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { addAccount, runCli, serveInNewHome, stopServeAndRemove, type Running } from './run.js';

let serve: Running | undefined;
let home: string | undefined;
const removals: string[] = [];

afterEach(async () => {
  await stopServeAndRemove(serve, home);
  for (const path of removals.splice(0)) await rm(path, { recursive: true, force: true });
  serve = home = undefined;
});

const stopped = (db: string) => `delegate: The database ${db} was replaced or removed while the server ran; restart it.\n`;

/** The server's exit, or 'running' when it has not stopped `ms` after the replacement. */
async function exitWithin(server: Running, ms: number): Promise<{ code: number | null; stderr: string } | 'running'> {
  const timer = new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), ms));
  return Promise.race([server.done.then((run) => ({ code: run.code, stderr: run.stderr })), timer]);
}

describe('a running server whose database is replaced', () => {
  it('the data directory swapped for a copy (cp -a, mv, mv): the server logs it and exits 1', { timeout: 60_000 }, async () => {
    ({ home, serve } = await serveInNewHome('delegate-replaced-dir-'));
    cpSync(home, `${home}.copy`, { recursive: true, preserveTimestamps: true });
    renameSync(home, `${home}.old`);
    renameSync(`${home}.copy`, home);
    removals.push(`${home}.old`);
    const exit = await exitWithin(serve, 5_000);
    expect(exit).not.toBe('running');
    const { code, stderr } = exit as { code: number | null; stderr: string };
    expect(code).toBe(1);
    expect(stderr.endsWith(stopped(join(home, 'delegate.db'))), stderr).toBe(true);
    const fatal = stderr.split('\n').filter((line) => line.startsWith('{') && JSON.parse(line).level === 60);
    expect(fatal.map((line) => [JSON.parse(line).msg, JSON.parse(line).database])).toEqual([['database replaced or removed while the server ran', join(home, 'delegate.db')]]);
  });

  it('a backup moved over the database file: the server exits 1', { timeout: 60_000 }, async () => {
    ({ home, serve } = await serveInNewHome('delegate-replaced-file-'));
    cpSync(join(home, 'delegate.db'), join(home, 'backup.db'));
    renameSync(join(home, 'backup.db'), join(home, 'delegate.db'));
    const exit = await exitWithin(serve, 5_000);
    expect(exit).not.toBe('running');
    expect([(exit as { code: number | null }).code, (exit as { stderr: string }).stderr.endsWith(stopped(join(home, 'delegate.db')))]).toEqual([1, true]);
  });

  it('nothing replaced: the server runs on through an administrator’s change (the control)', { timeout: 60_000 }, async () => {
    ({ home, serve } = await serveInNewHome('delegate-not-replaced-'));
    expect((await addAccount(home, 'bob', 'a long and secret password')).code).toBe(0);
    expect(await exitWithin(serve, 3_000)).toBe('running');
  });
});

describe('an administrator’s change while this directory’s servers run from another data directory', () => {
  it('keys rotate and users add say so in one line (and succeed); in the servers’ own directory, or with none running, nothing is said', { timeout: 60_000 }, async () => {
    ({ home, serve } = await serveInNewHome('delegate-served-elsewhere-'));
    // A copy of the directory, as the replaced one is to the servers that still run from the original.
    const copy = `${home}.copy`;
    cpSync(home, copy, { recursive: true });
    removals.push(copy);
    const issuer = /authorization server {2}(\S+)/.exec(serve.stderr())![1]!;
    const warning = `delegate: The delegate servers at ${issuer} run from another data directory than ${copy}: they do not see this change. If this directory was replaced, moved or copied while they ran, start them again from it; if they are another installation's, leave them be.\n`;

    const rotated = await runCli(['keys', 'rotate'], copy);
    expect([rotated.code, rotated.stderr]).toEqual([0, warning]);
    const added = await addAccount(copy, 'bob', 'a long and secret password');
    expect([added.code, added.stderr]).toEqual([0, `${warning}Added bob.\n`]);

    const own = await runCli(['keys', 'rotate'], home);
    expect([own.code, own.stderr]).toEqual([0, '']);
    serve.child.kill('SIGTERM');
    await serve.done;
    const started = Date.now();
    const none = await addAccount(copy, 'carl', 'a long and secret password');
    expect([none.code, none.stderr]).toEqual([0, 'Added carl.\n']);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
