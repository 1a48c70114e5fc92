// What a resource server writes to the audit log about a request it served
// or refused (docs/internals.md, "Audit log"): who acted, for whom, through
// which chain, under which grant, on what, and how it ended. The servers take
// an `audit` callback; the CLI wires it to Store.appendAudit, which chains the
// records. Pure: building a record does no I/O and never holds a token.
import { actorsOf, type AccessTokenClaims } from '../delegation/index.js';

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

export type AuditSink = (record: ResourceAuditRecord) => Promise<void>;

export { actorsOf };

/** A record about a request made with `claims` at `resource`. */
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
    detail: { jti: claims.jti, ...detail },
  };
}

/** A caller-supplied value small enough to keep in a record; a large one is noted, not stored. */
export function boundedValue(value: unknown, maxChars = 2_000): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    return { omitted: 'not JSON' };
  }
  if (text === undefined) return null;
  return text.length <= maxChars ? value : { omitted: `${text.length} characters` };
}
