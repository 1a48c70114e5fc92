// A stdio agent's audit sink (POST /audit at the authorization server): a
// report the server could not take because its store is full or read-only
// fails as that store's StoreError would, so that the withheld result names
// it as one over HTTP does; any other refusal is a failure that may pass.
import { describe, expect, it } from 'vitest';
import { STORE_CORRUPT_DESCRIPTION, STORE_FULL_DESCRIPTION, STORE_READ_ONLY_DESCRIPTION } from '../../src/delegation/index.js';
import { remoteAuditSink } from '../../src/resource/audit-remote.js';
import { AUDIT_LOG_CANNOT_RECORD, auditLogCannotRecord, type ResourceAuditRecord } from '../../src/resource/audit.js';
import { es256Key } from '../support/authz.js';

const record: ResourceAuditRecord = {
  event: 'tool_call',
  user: 'usr_owner',
  client: 'delegate-cli',
  grant: 'grt_1',
  resource: 'http://127.0.0.1:8412/mcp',
  actors: ['delegate-cli', 'usr_owner'],
  detail: { jti: 'at_1', tool: 'find_slot', outcome: 'ok' },
};

async function reportAnswered(status: number, body: unknown): Promise<unknown> {
  const key = await es256Key();
  const sink = remoteAuditSink({
    issuer: 'http://127.0.0.1:8410',
    clientId: 'calendar-agent',
    privateKey: key.privateJwk,
    fetchFn: async () => Response.json(body, { status }),
  });
  return sink(record).then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe('a report the authorization server does not take', () => {
  it.each([
    [STORE_FULL_DESCRIPTION, AUDIT_LOG_CANNOT_RECORD.STORE_FULL],
    [STORE_READ_ONLY_DESCRIPTION, AUDIT_LOG_CANNOT_RECORD.STORE_READ_ONLY],
    [STORE_CORRUPT_DESCRIPTION, AUDIT_LOG_CANNOT_RECORD.STORE_CORRUPT],
  ])('500 server_error "%s": the store named, as a local one would be', async (description, words) => {
    const error = await reportAnswered(500, { error: 'server_error', error_description: description });
    expect(auditLogCannotRecord(error)).toBe(words);
    expect((error as Error).message).toBe(`The authorization server did not take the audit record: ${description}`);
  });

  it.each([
    [500, { error: 'server_error', error_description: 'The server could not complete the request.' }],
    [503, { error: 'temporarily_unavailable', error_description: STORE_FULL_DESCRIPTION }],
    [500, 'not json'],
  ])('%i %j: a failure that may pass', async (status, body) => {
    const error = await reportAnswered(status, body);
    expect(auditLogCannotRecord(error)).toBeUndefined();
    expect((error as Error).message).toBe(`The authorization server did not take the audit record (HTTP ${status}).`);
  });
});

describe('a report the authorization server refuses as it is (400 invalid_request)', () => {
  it('fails as AuditRecordRefusedError with the server’s reason, printable and bounded: sending it again is refused again', async () => {
    const error = await reportAnswered(400, { error: 'invalid_request', error_description: 'A record’s detail must not hold a token.\u001b[2K' });
    expect((error as Error).name).toBe('AuditRecordRefusedError');
    expect((error as Error).message).toBe('The authorization server refused the audit record: A record’s detail must not hold a token.\\e[2K');
    expect(auditLogCannotRecord(error)).toBeUndefined();
    const long = (await reportAnswered(400, { error: 'invalid_request', error_description: 'x'.repeat(5_000) })) as Error;
    expect(long.message.length).toBeLessThan(300);
  });

  it('another 400 or a 401 is a failure that may pass', async () => {
    for (const [status, body] of [[400, { error: 'invalid_client' }], [401, { error: 'invalid_client' }]] as const) {
      const error = await reportAnswered(status, body);
      expect((error as Error).name).toBe('Error');
      expect((error as Error).message).toBe(`The authorization server did not take the audit record (HTTP ${status}).`);
    }
  });
});
