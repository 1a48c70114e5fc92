// What a resource server writes to the audit log about a request it served
// or refused (docs/internals.md, "Audit log"): who acted, for whom, through
// which chain, under which grant, on what, and how it ended. The servers take
// an `audit` callback; the CLI wires it to Store.appendAudit, which chains the
// records. Pure: building a record does no I/O and never holds a token.
import { actorsOf, STORE_CORRUPT_DESCRIPTION, STORE_FULL_DESCRIPTION, STORE_READ_ONLY_DESCRIPTION, type AccessTokenClaims } from '../delegation/index.js';
import { censorCredentials } from '../delegation/secrets.js';
import { hasControlCharacters, printable } from '../terminal-text.js';

export type ResourceAuditEvent = 'tool_call' | 'freebusy_read';

/** The shape Store.appendAudit takes (AuditEventInput); the store adds seq, time and hashes. */
export interface ResourceAuditRecord {
  event: ResourceAuditEvent;
  /** The token's subject: the user the actors act for. */
  user: string;
  /** The client that presented the token (the current actor). */
  client: string;
  grant: string;
  /** The resource that was called (this server's URL). */
  resource: string;
  /** The actor chain, current actor first, ending with the user. */
  actors: string[];
  detail: Record<string, unknown>;
}

/** How a record is handed on, beyond what it says. */
export interface AuditContext {
  /** The id of the call it records, for a sink that reports it over HTTP (as X-Request-Id: one id across the logs). */
  requestId?: string;
}

export type AuditSink = (record: ResourceAuditRecord, context?: AuditContext) => Promise<void>;

/**
 * Why the audit log cannot take a record when waiting will not mend it, in words that follow "the audit log": its
 * storage full, read-only, or damaged. A person must act, so what a resource server says then never adds "try again shortly"
 * (found in review: the calendar backend's 503 and CalendarAgent's withheld result still said it on a full disk,
 * where the authorization server already named the full store).
 */
export const AUDIT_LOG_CANNOT_RECORD = {
  STORE_FULL: 'its storage is full, and nothing can be recorded until space is freed',
  STORE_READ_ONLY: 'its storage is read-only, and nothing can be recorded until it is made writable',
  // Found at stop 22: a damaged store (STORE_CORRUPT, which the authorization server now names) still read as one that may pass.
  STORE_CORRUPT: 'its storage is damaged, and nothing can be recorded until an administrator restores it',
} as const;

/**
 * AUDIT_LOG_CANNOT_RECORD's words for a sink's failure when the store behind it cannot take a write: a StoreError
 * by its name and code, whichever store threw it (the local one, or the authorization server's as a remote sink
 * reads its answer); undefined for any other failure, which may pass.
 */
export function auditLogCannotRecord(err: unknown): string | undefined {
  if (!(err instanceof Error) || err.name !== 'StoreError') return undefined;
  const code = (err as { code?: unknown }).code;
  return code === 'STORE_FULL' || code === 'STORE_READ_ONLY' || code === 'STORE_CORRUPT' ? AUDIT_LOG_CANNOT_RECORD[code] : undefined;
}

/** How the authorization server says what each of AUDIT_LOG_CANNOT_RECORD says, of its own store (src/authz/errors.ts). */
const AUTHORIZATION_SERVER_SAYS: Readonly<Record<string, string>> = {
  [AUDIT_LOG_CANNOT_RECORD.STORE_FULL]: STORE_FULL_DESCRIPTION,
  [AUDIT_LOG_CANNOT_RECORD.STORE_READ_ONLY]: STORE_READ_ONLY_DESCRIPTION,
  [AUDIT_LOG_CANNOT_RECORD.STORE_CORRUPT]: STORE_CORRUPT_DESCRIPTION,
};

/**
 * Whether `message` already says what `cannotRecord` (AUDIT_LOG_CANNOT_RECORD's words) says: in those words (the
 * calendar backend's unrecorded read, passed on) or in the authorization server's (its server_error on a full or
 * read-only store, passed on). Found at stop 20: a failed call's note named the full storage again, and find-slot's
 * line on a full disk said "…its storage is full…" twice.
 */
export function saysCannotRecord(message: string, cannotRecord: string): boolean {
  const asSays = AUTHORIZATION_SERVER_SAYS[cannotRecord];
  return message.includes(cannotRecord) || (asSays !== undefined && message.includes(asSays));
}

/** The calendar backend's error_description for a read it answered nothing to because the audit log cannot take its record. */
export function unrecordedReadDescription(cannotRecord: string): string {
  return `The read could not be recorded in the audit log: ${cannotRecord}.`;
}

/** Those descriptions, by which CalendarAgent knows that waiting will not mend the read. */
export const UNRECORDED_READ_DESCRIPTIONS: ReadonlySet<string> = new Set(Object.values(AUDIT_LOG_CANNOT_RECORD).map(unrecordedReadDescription));

export { actorsOf };

/**
 * A record about a request made with `claims` at `resource`. What the caller supplied (a tool's arguments, an error
 * text that quotes them) may hold a credential, by its name (`password`) or its shape (a JWT): each is replaced by
 * REDACTION_CENSOR, the authorization server's own classifier (src/delegation/secrets.ts), so that no record holds
 * one and POST /audit, which refuses a detail that does, takes every record an agent reports. Found in the s24 brief:
 * a find_slot call naming a calendar whose name has a JWT's shape was refused there, and the stdio agent withheld its
 * result.
 */
export function auditRecord(
  event: ResourceAuditEvent,
  claims: Pick<AccessTokenClaims, 'act' | 'client_id' | 'sub' | 'grant_id' | 'jti'>,
  resource: string,
  detail: Record<string, unknown>,
): ResourceAuditRecord {
  return {
    event,
    user: claims.sub,
    client: claims.client_id,
    grant: claims.grant_id,
    resource,
    actors: actorsOf(claims),
    // The token's id ties the record to the issuance and exchange records; the token itself is never written.
    detail: printableTexts(censorCredentials({ jti: claims.jti, ...detail }) as Record<string, unknown>),
  };
}

/** The free texts of a record `delegate audit` prints as its why: refused by POST /audit with a control or format character in them (s24). */
const FREE_TEXTS = ['message', 'reason'] as const;

/**
 * `detail` with its free texts (a failed call's message, a refusal's reason) written as `printable` writes them:
 * such a text may quote what a caller or a calendar supplied, and POST /audit refuses a line break or an escape
 * there, so an agent's report of the call would be refused and a stdio agent's result withheld.
 */
function printableTexts(detail: Record<string, unknown>): Record<string, unknown> {
  const out = { ...detail };
  for (const key of FREE_TEXTS) {
    const text = out[key];
    if (typeof text === 'string' && hasControlCharacters(text)) out[key] = printable(text);
  }
  return out;
}

/** How deep a caller-supplied value may nest to be kept in a record (the record's detail adds two levels). */
export const MAX_KEPT_DEPTH = 8;

/**
 * A caller-supplied value small enough to keep in a record; a large or deeply
 * nested one is noted, not stored (an agent's report of it would be refused by
 * POST /audit, which takes no detail deeper than 16 levels).
 */
export function boundedValue(value: unknown, maxChars = 2_000, maxDepth = MAX_KEPT_DEPTH): unknown {
  // Measured before JSON.stringify, which overflows the stack on a value nested some thousands deep.
  if (nestingDepth(value, maxDepth) > maxDepth) return { omitted: `nested more than ${maxDepth} levels deep` };
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    return { omitted: 'not JSON' };
  }
  if (text === undefined) return null;
  return text.length <= maxChars ? value : { omitted: `${text.length} characters` };
}

/**
 * How many levels of arrays and objects `value` nests (a scalar: 0, `{}`: 1),
 * counted without recursion and given up on past `limit` (the answer is then
 * limit + 1), so any value can be measured, one that refers to itself too.
 */
export function nestingDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const work: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (work.length > 0) {
    const { value: v, depth } = work.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > limit) return limit + 1;
    deepest = Math.max(deepest, depth + 1);
    for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) work.push({ value: child, depth: depth + 1 });
  }
  return deepest;
}
