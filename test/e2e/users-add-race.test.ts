// Two real `delegate users add` processes adding `alice` and `Alice` at the same instant (found in review,
// s24accounts: both succeeded, the case-insensitive check being a look and then an insert). Made to overlap for
// certain: a trigger on `users` keeps the first insert's transaction open about a second, long enough for the
// other process, hashing its password beside it, to look (and find nothing, the insert not yet committed) and to
// wait for its own insert. The database now refuses that insert; the process says the same one line as any
// NAME_TAKEN, exit 1.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addAccount, killLeftovers } from './run.js';

let home: string;

beforeAll(async () => {
  home = join(await mkdtemp(join(tmpdir(), 'delegate-e2e-users-race-')), 'home');
  // A data directory with its database (and an account of another name), then the trigger.
  expect((await addAccount(home, 'zed', 'zed has a long password')).code).toBe(0);
  const db = new Database(join(home, 'delegate.db'));
  db.exec(`CREATE TRIGGER slow_insert BEFORE INSERT ON users WHEN NEW.name LIKE 'alice' BEGIN
    SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000000) SELECT x FROM c);
  END`);
  db.close();
});

afterAll(async () => {
  killLeftovers();
  await rm(join(home, '..'), { recursive: true, force: true });
});

describe('users add alice and users add Alice at the same instant', () => {
  it('adds one: the other exits 1 with the one NAME_TAKEN line naming the account that has the name', { timeout: 60_000 }, async () => {
    const [lower, upper] = await Promise.all([addAccount(home, 'alice', 'alice has a long password'), addAccount(home, 'Alice', 'Alice has a long password')]);
    const db = new Database(join(home, 'delegate.db'), { readonly: true });
    const names = (db.prepare("SELECT name FROM users WHERE name LIKE 'alice'").all() as Array<{ name: string }>).map((r) => r.name);
    const added = (db.prepare("SELECT count(*) AS n FROM audit_log WHERE event = 'user_added'").get() as { n: number }).n;
    db.close();
    expect(names).toHaveLength(1);
    expect(added).toBe(2); // zed's and the one account's
    const [won, lost] = names[0] === 'alice' ? [lower, upper] : [upper, lower];
    expect([won.code, won.stderr]).toEqual([0, `Added ${names[0]}.\n`]);
    expect(lost.code).toBe(1);
    expect(lost.stderr).toMatch(new RegExp(`^delegate: There is already an account named ${names[0]}\\.( To set its password, add --replace: .*)?\\n$`));
    expect(lost.stderr.split('\n')).toHaveLength(2);
  });
});
