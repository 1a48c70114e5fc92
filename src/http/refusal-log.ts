// A refusal's `error` and `reason` on the request's access line (src/http/app.ts writes that line when the request
// is answered). Apart from app.ts, which loads fastify, so that modules the CLI's admin commands load too (the
// authorization server's pages, src/authz/pages.ts) can note a refusal without loading the server.
import type { FastifyRequest } from 'fastify';
import type {} from './app.js'; // FastifyRequest's accessLog (a type only)
import { errorDescription } from '../error-description.js';
import { censorShapedSecrets } from '../delegation/secrets.js';

/**
 * Puts a refusal's `error` (its RFC code) and `reason` (its error_description as sent) on the request's access line
 * (found in review, s35logs: the resource servers' refusals and the AS's pages were logged as a status alone). The
 * reason may repeat what the client sent, up to the body limit: it is bounded as the description is (found in
 * review, regress21c), shaped credentials censored before the cut, which could leave a token too short to be known.
 */
export function noteRefusal(req: FastifyRequest, error: string, description: string): void {
  req.accessLog = { ...req.accessLog, error, reason: errorDescription(censorShapedSecrets(description)) };
}
