// The audit log's hash chain: each record's hash covers its own content and
// its predecessor's hash, so an edited, deleted, inserted or reordered record
// breaks the chain at a place `verifyChain` names. The chain alone cannot show
// a cut tail, an appended record or a chain rewritten with new hashes: only a
// head kept elsewhere (`keptHead`) can. Pure: hashing only, no I/O.
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

/**
 * Deeper than any record the AS or an agent writes (reports are held to 16
 * levels, audit-report.ts); past it canonicalJson refuses the value rather
 * than work on (a value that refers to itself never ends).
 */
export const MAX_CANONICAL_DEPTH = 10_000;

/** A value canonicalJson will not write: nested too deep. */
export class CanonicalJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CanonicalJsonError';
  }
}

/**
 * JSON with object keys sorted at every level, so equal content always hashes
 * equally. Iterative, not recursive: a value nested thousands of levels deep
 * (the review stored one 3,143 deep through POST /audit) must not overflow the
 * call stack, which would take down every record written or verified with it.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const out: string[] = [];
  // Last in, first out: text to write as it is, or a value to write at a depth.
  const work: Array<string | { value: unknown; depth: number }> = [{ value, depth: 1 }];
  while (work.length > 0) {
    const item = work.pop()!;
    if (typeof item === 'string') {
      out.push(item);
      continue;
    }
    const { value: v, depth } = item;
    if (v === null || typeof v !== 'object') {
      // As Array.join does with it, a value JSON has no text for (undefined in an array) writes nothing.
      const text = JSON.stringify(v) as string | undefined;
      if (text !== undefined) out.push(text);
      continue;
    }
    if (depth > MAX_CANONICAL_DEPTH) throw new CanonicalJsonError(`The value is nested more than ${MAX_CANONICAL_DEPTH} levels deep.`);
    const parts: Array<string | { value: unknown; depth: number }> = [];
    if (Array.isArray(v)) {
      parts.push('[');
      v.forEach((element, i) => parts.push(...(i > 0 ? [','] : []), { value: element, depth: depth + 1 }));
      parts.push(']');
    } else {
      const entries = Object.entries(v as Record<string, unknown>)
        .filter(([, e]) => e !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      parts.push('{');
      entries.forEach(([k, e], i) => parts.push(`${i > 0 ? ',' : ''}${JSON.stringify(k)}:`, { value: e, depth: depth + 1 }));
      parts.push('}');
    }
    for (let i = parts.length - 1; i >= 0; i--) work.push(parts[i]!);
  }
  return out.join('');
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
  | { ok: false; seq: number; problem: 'edited' | 'deleted' | 'inserted' | 'reordered' | 'unverifiable' | 'cut'; message: string };

/**
 * A head as kept from an earlier check: a prefix of a record's hash, at least 32 hex digits (128 bits). Any record
 * whose hash starts with it counts, so whoever rewrites the chain may vary a record until its hash does: found in
 * review (s30attack, medium), 8 digits (32 bits) were matched by a rewritten log after about 6×10^9 SHA-256 tries, 18
 * minutes on one core. 128 bits are out of reach of that search.
 */
export const KEPT_HEAD = /^[0-9a-f]{32,64}$/;

/** A record as read for verification; `unreadable` says why its stored content could not be read back. */
export type StoredRecord = AuditRecord & { unreadable?: string };

/** What naming a break needs of a record: its place and its hashes. */
export interface ChainLink {
  seq: number;
  prevHash: string;
  hash: string;
}

/** The record (the last by seq, should several share it) whose hash is `hash`, or undefined: asked only at a break. */
export type FindByHash = (hash: string) => ChainLink | undefined;

/**
 * Checks records in their stored order (by seq); reports the first break. A
 * record whose content cannot be hashed (unreadable, or too deep to write) is
 * named as one that cannot be verified, and the check goes on past it through
 * its stored hash, so one such record neither stops the check nor hides a
 * break after it. With `keptHead` (a head printed by an earlier check, kept
 * where whoever can write the log cannot), the intact chain must also hold a
 * record with that hash: one cut back before it, or rewritten with new hashes,
 * does not.
 */
export function verifyChain(records: readonly StoredRecord[], keptHead?: string): ChainVerdict {
  const byHash = new Map(records.map((r) => [r.hash, r]));
  return verifyChainOf(records, keptHead, (hash) => byHash.get(hash));
}

/**
 * verifyChain over records read one at a time (a log of millions is never held whole, found in review, s24: 1.67 GB
 * at 1,000,000 records): only the previous record's place and hashes are kept, and whether the kept head was seen.
 * `findByHash` names the predecessor a misplaced record follows, asked only at the first break.
 */
export function verifyChainOf(records: Iterable<StoredRecord>, keptHead: string | undefined, findByHash: FindByHash): ChainVerdict {
  const unverifiable: Array<{ seq: number; text: string }> = [];
  const notes = () => unverifiable.map((u) => u.text).join(' ');
  const also = () => (unverifiable.length > 0 ? ` Also: ${notes()}` : '');
  let prev: ChainLink | undefined;
  let count = 0;
  // The empty chain's head, GENESIS_HASH, starts every chain.
  let holdsHead = keptHead === undefined || GENESIS_HASH.startsWith(keptHead);
  for (const record of records) {
    count++;
    const expectedSeq = prev ? prev.seq + 1 : 1;
    const expectedPrev = prev ? prev.hash : GENESIS_HASH;
    if (record.prevHash !== expectedPrev) {
      const predecessor = findByHash(record.prevHash);
      // A record put in after `predecessor`: the one before this, following the same predecessor as this does.
      if (predecessor && prev && prev.prevHash === predecessor.hash) {
        return { ok: false, seq: prev.seq, problem: 'inserted', message: `Record ${prev.seq} was inserted: record ${record.seq} follows record ${predecessor.seq} in the chain, and record ${prev.seq} was put between them.${also()}` };
      }
      // (Never `prev` itself: its hash is not the one this record follows.)
      if (predecessor) {
        return { ok: false, seq: record.seq, problem: 'reordered', message: `Record ${record.seq} was moved: it follows record ${predecessor.seq} in the chain, not record ${prev?.seq ?? 'none'}.${also()}` };
      }
      if (record.seq !== expectedSeq) {
        return { ok: false, seq: expectedSeq, problem: 'deleted', message: `Record ${expectedSeq} is missing: the chain goes from ${prev ? `record ${prev.seq}` : 'its start'} to record ${record.seq}.${also()}` };
      }
      return { ok: false, seq: prev?.seq ?? record.seq, problem: 'edited', message: `Record ${prev?.seq ?? record.seq} was changed: the next record does not follow from it.${also()}` };
    }
    const hash = hashOf(record);
    if ('problem' in hash) {
      unverifiable.push({ seq: record.seq, text: `Record ${record.seq} cannot be verified: ${hash.problem}` });
    } else if (hash.value !== record.hash) {
      return { ok: false, seq: record.seq, problem: 'edited', message: `Record ${record.seq} was changed after it was written.${also()}` };
    }
    if (record.seq !== expectedSeq) {
      return { ok: false, seq: expectedSeq, problem: 'deleted', message: `Record ${expectedSeq} is missing.${also()}` };
    }
    if (!holdsHead && record.hash.startsWith(keptHead!)) holdsHead = true;
    prev = { seq: record.seq, prevHash: record.prevHash, hash: record.hash };
  }
  if (unverifiable.length > 0) {
    return { ok: false, seq: unverifiable[0]!.seq, problem: 'unverifiable', message: `${notes()} Every other record of the ${count} follows from its predecessor.` };
  }
  const head = prev?.hash ?? GENESIS_HASH;
  if (!holdsHead) {
    return { ok: false, seq: count, problem: 'cut', message: `No record has the head you kept (${keptHead}): the log was cut back before it or rewritten. Its ${count} records end at head ${head}.` };
  }
  return { ok: true, count, head };
}

function hashOf(record: StoredRecord): { value: string } | { problem: string } {
  if (record.unreadable !== undefined) return { problem: record.unreadable };
  try {
    return { value: recordHash(record.prevHash, record) };
  } catch (err) {
    return { problem: err instanceof Error ? err.message : String(err) };
  }
}
