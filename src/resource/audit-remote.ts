// An audit sink for an agent with no database of its own (CalendarAgent over
// stdio): each record is reported to the authorization server's /audit
// endpoint, authenticated with the agent's private_key_jwt. The record names
// the token the call was made with (`detail.jti`, as auditRecord writes it):
// the authorization server takes the user, grant, client and actor chain
// from its own record of that token and refuses a report that says
// otherwise. A record that cannot be delivered fails the call it describes,
// as with the local sink. The call's id, when given, goes as X-Request-Id.
import type { JWK } from 'jose';
import { createClientAssertionSigner } from '../agent/client-assertion.js';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER } from '../delegation/index.js';
import { requestIdHeader } from '../http/logging.js';
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
    if (res.status !== 204) throw new Error(`The authorization server did not take the audit record (HTTP ${res.status}).`);
  };
}
