// The audit log's hash chain: each record's hash covers its own content and
// its predecessor's hash, so an edited, deleted, inserted or reordered record
// breaks the chain at a place `verifyChain` names. The chain alone cannot show
// a cut tail, an appended record or a chain rewritten with new hashes: only a
// head kept elsewhere (`keptHead`) can. Pure: hashing only, no I/O.
import { createHash } from 'node:crypto';
import { printableClipped } from '../terminal-text.js';

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
  | { ok: false; seq: number; problem: 'edited' | 'deleted' | 'inserted' | 'reordered' | 'unverifiable' | 'cut'; message: string }
  /** Triggers in the database act on the log (their names); `chain` is what the chain itself shows. */
  | { ok: false; problem: 'trigger'; triggers: string[]; chain: ChainVerdict; message: string };

/** A trigger in the database that acts on the audit log, as SQLite's schema holds it. */
export interface AuditTrigger {
  name: string;
  /** Its CREATE TRIGGER statement. */
  sql: string;
}

/**
 * The chain's verdict with the triggers that act on the log, which delegate makes none of. A trigger can keep a
 * record off the log or take it out as it is written, and the next record then takes its seq and links to its
 * predecessor: the chain stays intact, so only the trigger itself shows it (found in review, s33audit). The store
 * refuses a change whose record does not stay as written (SqliteStore.insertAudit); a delegate from before that
 * did not, so records may be missing from the time the trigger was added.
 */
export function withAuditTriggers(chain: ChainVerdict, triggers: readonly AuditTrigger[]): ChainVerdict {
  if (triggers.length === 0) return chain;
  // Names and statements are text from whoever added them: escaped and clipped before they reach a terminal.
  const named = triggers.map((t) => `${printableClipped(t.name, 64)} (${printableClipped(t.sql.replace(/\s+/g, ' '), 200)})`).join('; ');
  const drop = triggers.map((t) => `DROP TRIGGER "${printableClipped(t.name, 64).replace(/"/g, '""')}";`).join(' ');
  const itself = chain.ok ? `The chain itself is intact (${chain.count} record${chain.count === 1 ? '' : 's'}, head ${chain.head}), which does not show records kept off it.` : `The chain itself: ${chain.message}`;
  const these = triggers.length === 1 ? 'a trigger' : `${triggers.length} triggers`;
  return {
    ok: false,
    problem: 'trigger',
    triggers: triggers.map((t) => t.name),
    chain,
    message:
      `The database holds ${these} acting on the audit log, which delegate never makes: ${named}. ` +
      `Such a trigger can keep records off the log or take them out as they are written, which the chain cannot show: records may be missing from the time ${triggers.length === 1 ? 'it was' : 'they were'} added. ` +
      `Find who added ${triggers.length === 1 ? 'it' : 'them'}, then drop ${triggers.length === 1 ? 'it' : 'them'} (${drop}). ${itself}`,
  };
}

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
    // Records are read by seq, which is unique: a seq below the next one expected is one below 1, before the chain's
    // start. Found in review (s33audit): a record put in at seq 0, following the start with its own hash right, was
    // reported as "Record 1 is missing" while record 1 was there, intact.
    if (record.seq < expectedSeq) return beforeStart(record, prev, also());
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
      if (prev) return brokenLink(record, prev, also());
      return { ok: false, seq: record.seq, problem: 'edited', message: `Record ${record.seq} was changed: it does not follow from the chain's start.${also()}` };
    }
    const hash = hashOf(record);
    if ('problem' in hash) {
      unverifiable.push({ seq: record.seq, text: `Record ${record.seq} cannot be verified: ${hash.problem}` });
    } else if (hash.value !== record.hash) {
      // Its link is its predecessor's stored hash, which verified: so either this record was changed, or its
      // predecessor was replaced with a hash made anew and this record's link changed to match. Found in review
      // (s33audit): record 37 forged that way, with record 38 relinked, was reported as record 38 alone.
      const or = prev ? `, or record ${prev.seq} was replaced (its hash made anew) together with record ${record.seq}'s link to it: the chain cannot tell which` : '';
      return { ok: false, seq: record.seq, problem: 'edited', message: `Record ${record.seq} was changed after it was written${or}.${also()}` };
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

/**
 * The verdict on a record that does not follow from its predecessor `prev`, which verified against its own content,
 * though its number is the next and nothing else in the log has the hash it follows. Its own hash tells which changed:
 * right, it is as written (link included), so the record it followed was replaced by `prev` with a hash made anew;
 * wrong, it was changed, its link or `prev` too. Found in review (s33audit): a link changed alone was reported as its
 * predecessor changed.
 */
function brokenLink(record: StoredRecord, prev: ChainLink, also: string): ChainVerdict {
  const hash = ownHash(record);
  if ('own' in hash && hash.own) {
    return { ok: false, seq: prev.seq, problem: 'edited', message: `Record ${prev.seq} was replaced (its hash made anew): record ${record.seq}, as written, follows another record ${prev.seq}.${also}` };
  }
  const message =
    'own' in hash
      ? `Record ${record.seq} was changed after it was written, and does not follow from record ${prev.seq}: its link was changed, or record ${prev.seq} was replaced as well.`
      : `Record ${record.seq} does not follow from record ${prev.seq}: record ${prev.seq} was replaced (its hash made anew), or record ${record.seq}'s link to it was changed. Record ${record.seq} cannot be verified itself: ${hash.problem}`;
  return { ok: false, seq: record.seq, problem: 'edited', message: `${message}${also}` };
}

/**
 * The verdict on a record whose seq is below the chain's start (1): delegate writes none there. Its hash its own (made
 * for that seq, whatever it links to), someone else made it; not, it was put in, or changed (renumbered) since.
 */
function beforeStart(record: StoredRecord, prev: ChainLink | undefined, also: string): ChainVerdict {
  const where = prev ? `it comes after record ${prev.seq}` : 'the chain starts at record 1, and delegate writes no record below it';
  const hash = ownHash(record);
  const madeFor = 'own' in hash && hash.own;
  return {
    ok: false,
    seq: record.seq,
    problem: 'inserted',
    message: `Record ${record.seq} was ${madeFor ? 'inserted' : 'inserted, or changed'}: ${where}.${also}`,
  };
}

/** Whether a record's stored hash is the hash of its content and link, or why it cannot be hashed. */
function ownHash(record: StoredRecord): { own: boolean } | { problem: string } {
  const hash = hashOf(record);
  if ('problem' in hash) return hash;
  if (hash.value !== record.hash) return { own: false };
  return { own: true };
}

function hashOf(record: StoredRecord): { value: string } | { problem: string } {
  if (record.unreadable !== undefined) return { problem: record.unreadable };
  try {
    return { value: recordHash(record.prevHash, record) };
  } catch (err) {
    return { problem: err instanceof Error ? err.message : String(err) };
  }
}
