// POST /audit: a registered agent that keeps no database of its own (such as
// CalendarAgent over stdio) reports the calls it served, to be appended to the
// hash-chained log. It authenticates as itself (private_key_jwt) and may
// report only about its own resource; each record says who reported it.
import type { FastifyInstance } from 'fastify';
import type { FormBody } from '../http/app.js';
import { audit } from './audit.js';
import { authenticateClient } from './client-auth.js';
import type { AuthContext } from './context.js';
import { InvalidRequestError, UnauthorizedClientError, replyWithError } from './errors.js';
import { required } from './params.js';

/** What resource servers report; the AS writes every other event itself. */
const REPORTABLE = new Set(['tool_call', 'freebusy_read']);

export function registerAuditEndpoint(app: FastifyInstance, ctx: AuthContext): void {
  app.post('/audit', async (req, reply) => {
    try {
      if (!req.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
        throw new InvalidRequestError('The audit report must be application/x-www-form-urlencoded.');
      }
      const body = (req.body ?? {}) as FormBody;
      const { client } = await authenticateClient(req, body, { store: ctx.store, issuer: ctx.issuer, now: ctx.now });
      if (client.kind !== 'agent' || !client.resource) throw new UnauthorizedClientError('Only a registered agent may report to the audit log.');
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(required(body, 'record')) as Record<string, unknown>;
      } catch (err) {
        if (err instanceof InvalidRequestError) throw err;
        throw new InvalidRequestError('record is not JSON.');
      }
      const text = (v: unknown) => (typeof v === 'string' && v.length <= 512 ? v : undefined);
      const event = text(record.event);
      if (!event || !REPORTABLE.has(event)) throw new InvalidRequestError('Only tool_call and freebusy_read records can be reported.');
      if (record.resource !== client.resource) throw new UnauthorizedClientError('An agent reports only about its own resource.');
      const actors = Array.isArray(record.actors) && record.actors.length <= 16 && record.actors.every((a) => text(a) !== undefined) ? (record.actors as string[]) : undefined;
      const detail = typeof record.detail === 'object' && record.detail !== null && !Array.isArray(record.detail) ? (record.detail as Record<string, unknown>) : {};
      if (!actors || !text(record.user) || !text(record.grant)) throw new InvalidRequestError('A record names its user, grant and actors.');
      await audit(ctx, {
        event,
        user: text(record.user)!,
        client: text(record.client) ?? client.clientId,
        grant: text(record.grant)!,
        resource: client.resource,
        actors,
        detail: { ...detail, reported_by: client.clientId },
      });
      return reply.code(204).header('Cache-Control', 'no-store').send();
    } catch (err) {
      return replyWithError(req, reply, err);
    }
  });
}
