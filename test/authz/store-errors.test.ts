// The one mapping of the AS's endpoints' failures to OAuth errors
// (replyWithError): a store that cannot take a write, its disk full or its
// file system read-only, is 500 server_error (RFC 6749 §5.2 has no
// temporarily_unavailable at the token endpoint) whose description names the
// cause, without the database's path; anything else stays the generic one.
// The full disk itself is made real in test/faults/disk-token.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { replyWithError } from '../../src/authz/errors.js';
import { createApp } from '../../src/http/app.js';
import { StoreError } from '../../src/store/index.js';

let app: FastifyInstance;

beforeAll(async () => {
  app = createApp();
  app.post('/fail/:kind', async (req, reply) => {
    const kind = (req.params as { kind: string }).kind;
    const err =
      kind === 'full'
        ? new StoreError('STORE_FULL', 'The disk holding /secret/place/delegate.db is full.')
        : kind === 'read-only'
          ? new StoreError('STORE_READ_ONLY', 'The database /secret/place/delegate.db cannot be written (EROFS: read-only file system).')
          : kind === 'corrupt'
            ? new StoreError('STORE_CORRUPT', 'The database /secret/place/delegate.db is damaged or is not a delegate database.')
            : new Error('something else at /secret/place');
    return replyWithError(req, reply, err);
  });
  await app.ready();
});

afterAll(async () => {
  await app.close();
});

describe('a store that cannot be written, at an OAuth endpoint', () => {
  it.each([
    ['full', "The authorization server's storage is full: it can record nothing until space is freed."],
    ['read-only', "The authorization server's storage is read-only: it can record nothing until it is made writable."],
    ['corrupt', "The authorization server's storage is damaged: it can do nothing until an administrator restores it."],
    ['other', 'The server could not complete the request.'],
  ])('%s: 500 server_error saying %j', async (kind, description) => {
    const res = await app.inject({ method: 'POST', url: `/fail/${kind}` });
    expect([res.statusCode, res.json()]).toEqual([500, { error: 'server_error', error_description: description }]);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).not.toContain('/secret/place');
  });
});
