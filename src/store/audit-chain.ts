// The audit log's hash chain: each record's hash covers its own content and
// its predecessor's hash, so an edited, deleted or reordered record breaks the
// chain at a place `verifyChain` names. Pure: hashing only, no I/O.
import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

/** What is hashed of a record: everything but the hashes themselves. */
export interface AuditContent {
  seq: number;
  at: number;
  event: string;
  user: string | null;
  client: string | null;
  grant: string | null;
  resource: string | null;
  /** The actor chain, current actor first. */
  actors: string[];
  detail: Record<string, unknown>;
}

export interface AuditRecord extends AuditContent {
  prevHash: string;
  hash: string;
}

/** JSON with object keys sorted at every level, so equal content always hashes equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * A record's canonical JSON but for its seq, which is known only once the
 * chain's head is read inside the write transaction. Everything that can fail
 * (serializing the detail) happens here, before it.
 */
export interface PreparedContent {
  /** The canonical JSON up to the seq's value. */
  beforeSeq: string;
  /** The canonical JSON after the seq's value. */
  afterSeq: string;
}

/** Keys in canonical (sorted) order: actors, at, client, detail, event, grant, resource, seq, user. */
export function prepareContent(content: Omit<AuditContent, 'seq'>): PreparedContent {
  const { at, event, user, client, grant, resource, actors, detail } = content;
  const c = canonicalJson;
  return {
    beforeSeq: `{"actors":${c(actors)},"at":${c(at)},"client":${c(client)},"detail":${c(detail)},"event":${c(event)},"grant":${c(grant)},"resource":${c(resource)},"seq":`,
    afterSeq: `,"user":${c(user)}}`,
  };
}

/** The hash of a prepared record once its place (seq, predecessor) is known; cannot fail. */
export function preparedHash(prevHash: string, seq: number, prepared: PreparedContent): string {
  return createHash('sha256').update(prevHash).update('\n').update(prepared.beforeSeq).update(String(seq)).update(prepared.afterSeq).digest('hex');
}

export function recordHash(prevHash: string, content: AuditContent): string {
  return preparedHash(prevHash, content.seq, prepareContent(content));
}

export type ChainVerdict =
  | { ok: true; count: number; head: string }
  | { ok: false; seq: number; problem: 'edited' | 'deleted' | 'reordered'; message: string };

/** Checks records in their stored order (by seq); reports the first break. */
export function verifyChain(records: readonly AuditRecord[]): ChainVerdict {
  const byHash = new Map(records.map((r) => [r.hash, r]));
  let prev: AuditRecord | undefined;
  for (const record of records) {
    const expectedSeq = prev ? prev.seq + 1 : 1;
    const expectedPrev = prev ? prev.hash : GENESIS_HASH;
    if (record.prevHash !== expectedPrev) {
      const predecessor = byHash.get(record.prevHash);
      if (predecessor && predecessor !== prev) {
        return { ok: false, seq: record.seq, problem: 'reordered', message: `Record ${record.seq} was moved: it follows record ${predecessor.seq} in the chain, not record ${prev?.seq ?? 'none'}.` };
      }
      if (record.seq !== expectedSeq) {
        return { ok: false, seq: expectedSeq, problem: 'deleted', message: `Record ${expectedSeq} is missing: the chain goes from ${prev ? `record ${prev.seq}` : 'its start'} to record ${record.seq}.` };
      }
      return { ok: false, seq: prev?.seq ?? record.seq, problem: 'edited', message: `Record ${prev?.seq ?? record.seq} was changed: the next record does not follow from it.` };
    }
    if (recordHash(record.prevHash, record) !== record.hash) {
      return { ok: false, seq: record.seq, problem: 'edited', message: `Record ${record.seq} was changed after it was written.` };
    }
    if (record.seq !== expectedSeq) {
      return { ok: false, seq: expectedSeq, problem: 'deleted', message: `Record ${expectedSeq} is missing.` };
    }
    prev = record;
  }
  return { ok: true, count: records.length, head: prev?.hash ?? GENESIS_HASH };
}
