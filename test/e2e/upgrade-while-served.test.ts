// A database of an older delegate (schema 10: every migration up to validators_from's applied) opened by this build's
// commands, real processes. Found in review (s24upgrade): `serve` on other ports, `grants list`, `audit`, `calendar
// list` migrated it while the older `delegate serve` still ran on the directory, which then went on with its own
// rules on the new schema (refresh replays not caught, new accounts' sign-ins failing); and a reading command that
// migrated said nothing, though the older build refuses the database from then on. Now, when a migration is due and
// the authorization server on record answers with this data directory's identity (a stub here, answering as an older
// `serve` of the directory does), each command refuses in one line and leaves the schema as it is; with nothing
// serving, the first command migrates and says so once.
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli, startCli } from './run.js';
import { databaseBefore } from '../store/migration-support.js';
import { MIGRATIONS } from '../../src/store/schema.js';
import { openStore } from '../../src/store/index.js';
import { DATA_DIRECTORY_HEADER, dataDirectoryId } from '../../src/data-directory-id.js';
import { DEFAULT_AGENT_CLIENT_ID } from '../../src/agent/identity.js';
import { freePort } from '../support/ports.js';

const OLD = MIGRATIONS.findIndex((sql) => sql.includes('validators_from'));

let home: string;
let stub: Server | undefined;
let issuer: string;

const db = () => join(home, 'delegate.db');
const schema = () => {
  const d = new Database(db(), { readonly: true });
  try {
    return d.pragma('user_version', { simple: true }) as number;
  } finally {
    d.close();
  }
};
const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** The signing key the older build's first start left in the database. */
const KID = 'kid-of-this-directory';

/**
 * An older authorization server on loopback: its metadata with the data directory identity `id` (or none, as one
 * behind an https issuer sends), its JWKS the key ids `kids`.
 */
async function serveMetadata(id: string | undefined, kids: string[] = []): Promise<void> {
  stub = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', ...(id !== undefined ? { [DATA_DIRECTORY_HEADER]: id } : {}) });
    res.end(JSON.stringify(req.url === '/.well-known/jwks.json' ? { keys: kids.map((kid) => ({ kid })) } : { issuer }));
  });
  await new Promise<void>((resolve) => stub!.listen(Number(new URL(issuer).port), '127.0.0.1', resolve));
}

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'delegate-upgrade-'));
  issuer = `http://127.0.0.1:${await freePort()}`;
  // CalendarAgent bound to `issuer` (its identity statement's iss), as the older build's first start left it.
  const statement = `${base64url({ alg: 'ES256', typ: 'JWT' })}.${base64url({ iss: issuer, sub: DEFAULT_AGENT_CLIENT_ID })}.c2ln`;
  databaseBefore(db(), 'validators_from', (d) => {
    d.prepare(
      `INSERT INTO clients (client_id, client_name, kind, redirect_uris, grant_types, token_endpoint_auth_method, resource, metadata, created_at)
       VALUES (?, 'CalendarAgent', 'agent', '[]', '[]', 'private_key_jwt', ?, ?, 0)`,
    ).run(DEFAULT_AGENT_CLIENT_ID, 'http://127.0.0.1:1/mcp', JSON.stringify({ agent_statement: statement }));
    d.prepare(`INSERT INTO signing_keys (kid, alg, private_jwk, public_jwk, created_at) VALUES (?, 'ES256', '{}', '{}', 0)`).run(KID);
  });
  expect(schema()).toBe(OLD);
});

afterEach(async () => {
  if (stub) await new Promise((resolve) => stub!.close(resolve));
  stub = undefined;
  await rm(home, { recursive: true, force: true });
});

const refusal = () =>
  `delegate: An older delegate (schema ${OLD}) is serving the data directory ${home}, with its authorization server at ${issuer}; ` +
  `stop it, then run this again to upgrade the database to schema ${MIGRATIONS.length}. Nothing was changed.\n`;
const upgraded = () => `delegate: upgraded the database in ${home} from schema ${OLD} to ${MIGRATIONS.length}; older versions of delegate can no longer open it.\n`;

describe('an older database while an older delegate serves this data directory', () => {
  it.each([[['grants', 'list']], [['audit']], [['calendar', 'list']], [['agents', 'list']]])(
    'delegate %j: exit 1, one line saying to stop the older servers; the schema left as it was',
    { timeout: 30_000 },
    async (args) => {
      await serveMetadata(await dataDirectoryId(home));
      const run = await runCli(args, home);
      expect([run.code, run.stderr, run.stdout]).toEqual([1, refusal(), '']);
      expect(schema()).toBe(OLD);
    },
  );

  it('one that sends no data directory identity but publishes this directory\'s signing key: refused too', { timeout: 30_000 }, async () => {
    await serveMetadata(undefined, [KID]);
    const run = await runCli(['grants', 'list'], home);
    expect([run.code, run.stderr]).toEqual([1, refusal()]);
    expect(schema()).toBe(OLD);
  });

  // Found in review (s24new4): an older serve stopped with Ctrl-Z accepts connections and answers nothing; it was taken
  // for no server, and the database migrated under it.
  it('one that accepts connections and never answers (stopped with Ctrl-Z, or hung): refused, saying so; nothing migrated', { timeout: 30_000 }, async () => {
    const held: import('node:net').Socket[] = [];
    stub = createServer(() => undefined);
    stub.on('connection', (socket) => held.push(socket));
    await new Promise<void>((resolve) => stub!.listen(Number(new URL(issuer).port), '127.0.0.1', resolve));
    const run = await runCli(['grants', 'list'], home);
    for (const socket of held) socket.destroy();
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `delegate: Something at ${issuer}, where this data directory's authorization server is on record, accepts connections but does not answer ` +
        `(an older delegate serve stopped with Ctrl-Z, or hung?); resume and stop it, then run this again to upgrade the database ` +
        `${db()} from schema ${OLD} to ${MIGRATIONS.length}. Nothing was changed.\n`,
    );
    expect(schema()).toBe(OLD);
  });

  it('delegate serve on other ports: exit 1, the same line, nothing migrated', { timeout: 30_000 }, async () => {
    await serveMetadata(await dataDirectoryId(home));
    const ports = ['--auth-port', String(await freePort()), '--calendar-port', String(await freePort()), '--agent-port', String(await freePort())];
    const serve = startCli(['serve', ...ports], home);
    const stop = setTimeout(() => serve.child.kill('SIGTERM'), 15_000);
    const run = await serve.done.finally(() => clearTimeout(stop));
    expect([run.code, run.stderr]).toEqual([1, refusal()]);
    expect(schema()).toBe(OLD);
  });
});

// Found in review (s28race): a command started a moment after this build's `serve` read the old schema, and by the time
// it looked, the new serve had migrated the database and answered with this directory's identity: the command said an
// older delegate was serving and told the person to stop it.
it('a command that read the old schema while this build\'s serve was upgrading it: goes on, refusing nothing and saying nothing', { timeout: 30_000 }, async () => {
  const id = await dataDirectoryId(home);
  stub = createServer((req, res) => {
    // The new serve has migrated the database before it listens, as openStore at its start does.
    openStore(db()).close();
    res.writeHead(200, { 'content-type': 'application/json', [DATA_DIRECTORY_HEADER]: id });
    res.end(JSON.stringify({ issuer }));
  });
  await new Promise<void>((resolve) => stub!.listen(Number(new URL(issuer).port), '127.0.0.1', resolve));
  const run = await runCli(['grants', 'list'], home);
  expect([run.code, run.stderr]).toEqual([0, expect.not.stringContaining('delegate:')]);
  expect(schema()).toBe(MIGRATIONS.length);
});

describe('an older database with none of its servers running', () => {
  it('the first command migrates it and says so once; the next says nothing', { timeout: 30_000 }, async () => {
    const first = await runCli(['grants', 'list'], home);
    expect([first.code, first.stderr, first.stdout]).toEqual([0, `${upgraded()}No active grants. (--all shows revoked and expired ones.)\n`, '']);
    expect(schema()).toBe(MIGRATIONS.length);
    const next = await runCli(['grants', 'list'], home);
    expect([next.code, next.stderr]).toEqual([0, 'No active grants. (--all shows revoked and expired ones.)\n']);
  });

  it("another data directory's server on the recorded address does not hold the upgrade back", { timeout: 30_000 }, async () => {
    await serveMetadata('another-directory', ['a-key-of-another-directory']);
    const run = await runCli(['audit'], home);
    expect([run.code, run.stderr, run.stdout]).toEqual([0, `${upgraded()}No audit records match.\n`, '']);
    expect(schema()).toBe(MIGRATIONS.length);
  });
});
