// POST /audit: a registered agent that keeps no database of its own (such as
// CalendarAgent over stdio) reports the calls it served, to be appended to the
// hash-chained log. It authenticates as itself (private_key_jwt), may report
// only about its own resource, and only calls made with a token issued for
// that resource: the record's user, grant, client and actors are the token's
// (audit-report.ts), and each record says who reported it.
import type { FastifyInstance } from 'fastify';
import type { FormBody } from '../http/app.js';
import { audit } from './audit.js';
import { recordFromReport } from './audit-report.js';
import { authenticateClient } from './client-auth.js';
import type { AuthContext } from './context.js';
import { CHALLENGE_EVERY_CLIENT, InvalidRequestError, UnauthorizedClientError, replyWithError } from './errors.js';
import { required } from './params.js';

export function registerAuditEndpoint(app: FastifyInstance, ctx: AuthContext): void {
  app.post('/audit', async (req, reply) => {
    try {
      if (!req.headers['content-type']?.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
        throw new InvalidRequestError('The audit report must be application/x-www-form-urlencoded.');
      }
      const body = (req.body ?? {}) as FormBody;
      // Credentials first: a public client (none) and an unknown client_id get the same answer.
      const { client } = await authenticateClient(req, body, ctx, { requireCredentials: true });
      const resource = client.resource;
      if (client.kind !== 'agent' || !resource) throw new UnauthorizedClientError('Only a registered agent may report to the audit log.');
      let report: unknown;
      try {
        report = JSON.parse(required(body, 'record'));
      } catch (err) {
        if (err instanceof InvalidRequestError) throw err;
        throw new InvalidRequestError('record is not JSON.');
      }
      if (typeof report !== 'object' || report === null || Array.isArray(report)) throw new InvalidRequestError('record is not a JSON object.');
      await audit(ctx, await recordFromReport(ctx.store, { ...client, resource }, report as Record<string, unknown>, ctx.now()));
      return reply.code(204).header('Cache-Control', 'no-store').send();
    } catch (err) {
      // As at /introspect (RFC 7662 §2.3): credentials that are invalid or absent get 401 invalid_client with the
      // Basic challenge, however they were sent. Found in review (s26): a wrong assertion in the body was 400 here and
      // 401 there. The 400 elsewhere spares a browser-based client a password prompt; only agents report here.
      return replyWithError(req, reply, err, CHALLENGE_EVERY_CLIENT);
    }
  });
}
