// `delegate calendar add NAME --user bob` while another administrator removes
// bob: the account is looked up, then its feed is read (which takes a while),
// then the calendar is written. Removed in between, the database refuses the
// write (the removed_at migration's trigger) and nothing is added; the command
// says so in one line, exit 1, not the database's words (noticed in review,
// s33team). The feed is served on loopback and removes bob (through the real
// `users remove`, in-process) as it is read.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { resolvePaths } from '../../src/config.js';
import { openStore } from '../../src/store/index.js';
import { fakeIo } from './fake-io.js';

vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

const NOW = Date.UTC(2026, 11, 1, 8);
const EVENT = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//t//EN', 'BEGIN:VEVENT', 'UID:1', 'DTSTART:20261202T100000Z', 'DURATION:PT1H', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');

let dir: string;
let env: Record<string, string>;
let server: Server;
let feedUrl: string;
let removals: number;

const run = async (args: string[], stdin = '') => {
  const io = fakeIo(env, () => NOW);
  io.readAll = async () => stdin;
  const code = await runCli(args, io);
  return Object.assign(io, { code });
};

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-calendar-removed-'));
  env = { DELEGATE_HOME: join(dir, 'home'), TZ: 'Europe/Berlin' };
  removals = 0;
  server = createServer((_req, res) => {
    // Another administrator removes bob while his feed is being read.
    void run(['users', 'remove', 'bob', '--yes']).then((removed) => {
      if (removed.code === 0) removals++;
      res.writeHead(200, { 'Content-Type': 'text/calendar' }).end(EVENT);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  feedUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/private-s3cret/basic.ics`;
});

afterEach(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

it('adds nothing, and says in one line that the account was removed meanwhile (exit 1)', async () => {
  const ownerFile = join(dir, 'owner.ics');
  await writeFile(ownerFile, EVENT);
  expect((await run(['calendar', 'add', 'work', ownerFile])).code).toBe(0);
  expect((await run(['users', 'add', 'bob'], 'a long and secret password\n')).code).toBe(0);
  const store = openStore(resolvePaths(env).db);
  const bobId = (await store.userByName('bob'))!.id;
  store.close();

  const added = await run(['calendar', 'add', 'diary', '--user', 'bob'], `${feedUrl}\n`);
  expect(removals).toBe(1);
  expect([added.code, added.out]).toEqual([1, '']);
  expect(added.err).toBe('delegate: bob was removed (by another command) while the calendar was being added; the calendar was not added.\n');
  const after = openStore(resolvePaths(env).db);
  try {
    expect(await after.listCalendars(bobId)).toEqual([]);
    expect((await after.listAudit()).filter((r) => r.event === 'calendar_added').map((r) => r.user)).toEqual([(await after.ownerUser())!.id]);
  } finally {
    after.close();
  }
});
