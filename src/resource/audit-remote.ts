// An audit sink for an agent with no database of its own (CalendarAgent over
// stdio): each record is reported to the authorization server's /audit
// endpoint, authenticated with the agent's private_key_jwt. The record names
// the token the call was made with (`detail.jti`, as auditRecord writes it):
// the authorization server takes the user, grant, client and actor chain
// from its own record of that token and refuses a report that says
// otherwise. A record that cannot be delivered fails the call it describes,
// as with the local sink; the authorization server's store full or read-only
// fails it as that store's StoreError would. The call's id, when given, goes
// as X-Request-Id.
import type { JWK } from 'jose';
import { createClientAssertionSigner } from '../agent/client-assertion.js';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, STORE_CORRUPT_DESCRIPTION, STORE_FULL_DESCRIPTION, STORE_READ_ONLY_DESCRIPTION } from '../delegation/index.js';
import { requestIdHeader } from '../http/logging.js';
import { printableClipped } from '../terminal-text.js';
import type { AuditSink } from './audit.js';

export interface RemoteAuditOptions {
  issuer: string;
  clientId: string;
  privateKey: JWK;
  now?: () => number;
  fetchFn?: typeof fetch;
  timeoutMs?: number;
}

export function remoteAuditSink(options: RemoteAuditOptions): AuditSink {
  const sign = createClientAssertionSigner(options.clientId, options.privateKey, options.issuer);
  const fetchFn = options.fetchFn ?? fetch;
  const now = options.now ?? Date.now;
  return async (record, context) => {
    if (typeof record.detail.jti !== 'string') throw new Error('An audit record must name the token the call was made with (detail.jti).');
    const body = new URLSearchParams({
      client_id: options.clientId,
      client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
      client_assertion: await sign(now()),
      record: JSON.stringify(record),
    });
    const res = await fetchFn(`${options.issuer}/audit`, {
      method: 'POST',
      // The call's id, so that the AS's line of this report carries it as the exchange's and the read's do.
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...requestIdHeader(context?.requestId) },
      body,
      redirect: 'error',
      signal: AbortSignal.timeout(options.timeoutMs ?? 5_000),
    });
    if (res.status === 204) return;
    const answer = (await res.json().catch(() => undefined)) as { error?: unknown; error_description?: unknown } | undefined;
    const store = storeThatCannotWrite(answer);
    if (store) throw new RemoteStoreError(store, `The authorization server did not take the audit record: ${AS_STORE_CANNOT_WRITE[store]}`);
    // The record itself refused (400 invalid_request): sending it again is refused again.
    if (res.status === 400 && answer?.error === 'invalid_request') {
      const said = typeof answer.error_description === 'string' ? answer.error_description : 'the record was refused';
      throw new AuditRecordRefusedError(`The authorization server refused the audit record: ${printableClipped(said, 200)}`);
    }
    throw new Error(`The authorization server did not take the audit record (HTTP ${res.status}).`);
  };
}

/** The authorization server refused the record as it is (400 invalid_request): waiting does not mend it. */
export class AuditRecordRefusedError extends Error {
  override readonly name = 'AuditRecordRefusedError';
}

/** How delegate's authorization server says its store cannot take a write (src/authz/errors.ts), by the StoreError code it stands for. */
const AS_STORE_CANNOT_WRITE = { STORE_FULL: STORE_FULL_DESCRIPTION, STORE_READ_ONLY: STORE_READ_ONLY_DESCRIPTION, STORE_CORRUPT: STORE_CORRUPT_DESCRIPTION } as const;

/** The authorization server's store that cannot take the record, as its server_error says it; undefined for any other answer. */
function storeThatCannotWrite(body: { error?: unknown; error_description?: unknown } | undefined): keyof typeof AS_STORE_CANNOT_WRITE | undefined {
  if (body?.error !== 'server_error') return undefined;
  return (Object.keys(AS_STORE_CANNOT_WRITE) as Array<keyof typeof AS_STORE_CANNOT_WRITE>).find((code) => AS_STORE_CANNOT_WRITE[code] === body.error_description);
}

/**
 * The authorization server's full or read-only store, as a StoreError by name and code (what auditLogCannotRecord
 * reads, whichever store it was): a stdio agent's withheld result then names it as one over HTTP does.
 */
class RemoteStoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly code: keyof typeof AS_STORE_CANNOT_WRITE,
    message: string,
  ) {
    super(message);
  }
}
