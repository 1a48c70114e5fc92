// A scratch audit log of any length: records like the ones a running stack
// writes (token issuances, exchanges, tool calls, free/busy reads, a consent
// now and then), written straight into a delegate.db with correct hashes in
// one transaction, far faster than appending them through the store. For the
// tests and the benchmark of `delegate audit` over a long log
// (bench/audit-log.bench.ts).
import Database from 'better-sqlite3';
import { GENESIS_HASH, prepareContent, preparedHash, type AuditContent } from '../../src/store/audit-chain.js';
import { openStore } from '../../src/store/index.js';

export interface ScratchLog {
  /** The account the records are for. */
  user: { id: string; name: string };
  /** The hash of the last record. */
  head: string;
}

const USER = { id: 'usr_scratch0001', name: 'scratch-owner' };
const CLIENTS = ['cli_scratchA', 'cli_scratchB', 'cli_scratchC'];
const AGENT = 'calendar-agent';
const AGENT_URL = 'http://127.0.0.1:8412/mcp';
const CALENDAR_URL = 'http://127.0.0.1:8411';

/** Record `seq`'s content (but for seq): a stack's traffic, cycling through a few grants and clients. */
function content(seq: number, at: number): Omit<AuditContent, 'seq'> {
  const client = CLIENTS[seq % CLIENTS.length]!;
  const grant = `grt_scratch${String(seq % 97).padStart(4, '0')}`;
  const jti = `jti_${seq.toString(36).padStart(10, '0')}`;
  const base = { at, user: USER.id, grant };
  switch (seq % 5) {
    case 0:
      return { ...base, event: 'token_issued', client, resource: AGENT_URL, actors: [client, USER.id], detail: { jti, scope: 'calendar:find_slot', grant_type: 'authorization_code' } };
    case 1:
      return { ...base, event: 'token_exchanged', client: AGENT, resource: CALENDAR_URL, actors: [AGENT, client, USER.id], detail: { jti, parent_jti: `${jti}p`, scope: 'freebusy:read' } };
    case 2:
      return {
        ...base,
        event: 'tool_call',
        client,
        resource: AGENT_URL,
        actors: [client, USER.id],
        detail: { jti, tool: 'find_slot', outcome: seq % 50 === 2 ? 'error' : 'ok', arguments: { duration: '30m', within: { from: '2026-12-01T09:00', to: '2026-12-05T17:00' } }, ...(seq % 50 === 2 ? { message: 'The calendar backend did not answer.' } : {}) },
      };
    case 3:
      return { ...base, event: 'freebusy_read', client: AGENT, resource: CALENDAR_URL, actors: [AGENT, client, USER.id], detail: { jti, outcome: 'ok', window: { start: '2026-12-01T08:00:00.000Z', end: '2026-12-05T16:00:00.000Z' } } };
    default:
      return seq % 10 === 4
        ? { ...base, event: 'consent', client, resource: AGENT_URL, actors: [USER.id], detail: { decision: 'approved', scope: 'calendar:find_slot', authorization_details: [{ type: 'calendar', lookahead_days: 14 }] } }
        : { ...base, event: 'token_refreshed', client, resource: AGENT_URL, actors: [client, USER.id], detail: { jti, family: `fam_${seq % 97}` } };
  }
}

/**
 * Writes `count` records into the database at `dbPath` (created with the current schema, and an account for them,
 * when it is not there yet), after any records already in it, one second apart from `firstAt`.
 */
export async function writeScratchAuditLog(dbPath: string, count: number, firstAt = Date.UTC(2026, 0, 1)): Promise<ScratchLog> {
  const store = openStore(dbPath);
  try {
    if (!(await store.userById(USER.id))) await store.createUser({ ...USER, passwordHash: null, isOwner: false, timeZone: 'UTC', createdAt: firstAt });
  } finally {
    store.close();
  }
  const db = new Database(dbPath);
  try {
    const last = db.prepare('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string } | undefined;
    const insert = db.prepare('INSERT INTO audit_log (seq, at, event, user_id, client_id, grant_id, resource, actors, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    let prev = last?.hash ?? GENESIS_HASH;
    const from = (last?.seq ?? 0) + 1;
    // In transactions of 50,000: one for a million records would hold them all in the WAL.
    for (let start = from; start < from + count; start += 50_000) {
      db.transaction(() => {
        for (let seq = start; seq < Math.min(start + 50_000, from + count); seq++) {
          const c = content(seq, firstAt + seq * 1000);
          const hash = preparedHash(prev, seq, prepareContent(c));
          insert.run(seq, c.at, c.event, c.user, c.client, c.grant, c.resource, JSON.stringify(c.actors), JSON.stringify(c.detail), prev, hash);
          prev = hash;
        }
      })();
    }
    return { user: USER, head: prev };
  } finally {
    db.close();
  }
}

/**
 * A small log with every kind of line `delegate audit` prints here: 15 records for the scratch account, one of its
 * clients registered with a name, and record 7's detail no longer JSON (listed as unreadable, exit 1). What the
 * command printed for it before it streamed is kept in test/cli/fixtures/audit-small-log/.
 */
export async function writeSmallScratchLog(dbPath: string): Promise<void> {
  const store = openStore(dbPath);
  try {
    await store.createClient({
      clientId: CLIENTS[0]!,
      clientName: 'Scratch App',
      kind: 'public',
      secretHash: null,
      redirectUris: ['http://127.0.0.1/callback'],
      grantTypes: ['authorization_code'],
      tokenEndpointAuthMethod: 'none',
      jwks: null,
      resource: null,
      metadata: { client_name: 'Scratch App' },
      createdAt: Date.UTC(2026, 0, 1),
    });
  } finally {
    store.close();
  }
  await writeScratchAuditLog(dbPath, 15);
  const db = new Database(dbPath);
  try {
    db.prepare(`UPDATE audit_log SET detail = '{"outcome":' WHERE seq = 7`).run();
  } finally {
    db.close();
  }
}
