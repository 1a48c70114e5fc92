// Refused owner sign-in links on the audit log: a replayed link, an expired one
// and one signed by another owner key each append a `sign_in_failed` record
// (method owner_link, the reason, the source address), at most one per source
// and reason per minute, however often the link is sent. Found in review
// (s23audit): only a server log line said so.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OWNER_LINK_REFUSAL_WINDOW_MS } from '../../src/authz/owner-login.js';
import type { AuditRecord } from '../../src/store/index.js';
import { es256Key, ownerLink, startTestAuthz, type TestAuthz } from '../support/authz.js';

let authz: TestAuthz;
let offset = 0;
beforeAll(async () => {
  authz = await startTestAuthz({ now: () => Date.now() + offset });
});
afterAll(async () => authz.close());

const NEXT = '/authorize?client_id=cli_x&response_type=code';

async function open(link: string): Promise<number> {
  return (await fetch(link, { redirect: 'manual' })).status;
}

async function failures(): Promise<AuditRecord[]> {
  return (await authz.store.listAudit()).filter((r) => r.event === 'sign_in_failed');
}

describe('refused owner sign-in links', () => {
  it('a replayed link appends one sign_in_failed record, however often it is replayed within the minute', async () => {
    const link = await ownerLink(authz, NEXT);
    expect(await open(link)).toBe(303);
    expect(await failures()).toEqual([]);
    expect(await open(link)).toBe(403);
    const first = await failures();
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ event: 'sign_in_failed', detail: { method: 'owner_link', reason: 'reused', source: '127.0.0.1' } });
    for (let i = 0; i < 20; i++) expect(await open(link)).toBe(403);
    expect(await failures()).toHaveLength(1);
    expect(JSON.stringify(first)).not.toContain(new URL(link).searchParams.get('assertion')!);
  });

  it('an expired link and one signed by another key each append one record, bounded per reason, and again after the minute', async () => {
    const before = (await failures()).length;
    const expired = await ownerLink(authz, NEXT, { iatOffsetSec: -600 });
    for (let i = 0; i < 10; i++) expect(await open(expired)).toBe(403);
    const otherKey = (await es256Key()).privateJwk;
    const other = await ownerLink({ issuer: authz.issuer, ownerJwk: otherKey }, NEXT, { kid: otherKey.kid! });
    for (let i = 0; i < 10; i++) expect(await open(other)).toBe(403);
    const added = (await failures()).slice(before);
    expect(added.map((r) => r.detail.reason)).toEqual(['invalid', 'other_key']);
    offset += OWNER_LINK_REFUSAL_WINDOW_MS + 1_000;
    expect(await open(expired)).toBe(403);
    expect((await failures()).slice(before).map((r) => r.detail.reason)).toEqual(['invalid', 'other_key', 'invalid']);
    expect((await authz.store.verifyAudit()).ok).toBe(true);
  });
});
