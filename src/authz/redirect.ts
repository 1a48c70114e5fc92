// The authorization response: a redirect to the client's validated redirect
// URI carrying the result, the state and the issuer (RFC 9207).
import type { FastifyReply } from 'fastify';
import { errorDescription } from '../error-description.js';
import type { AuthContext } from './context.js';

/** 302 (or 303 after a POST, RFC 9700 §4.12) to the redirect URI with the response parameters and `iss`. */
export function redirectToClient(
  reply: FastifyReply,
  ctx: Pick<AuthContext, 'issuer'>,
  redirectUri: string,
  params: Record<string, string | undefined>,
  status: 302 | 303 = 302,
): FastifyReply {
  const url = new URL(redirectUri);
  for (const [key, value] of Object.entries(params)) {
    // RFC 6749 §4.1.2.1 holds error_description to the same characters as §5.2.
    if (value !== undefined) url.searchParams.set(key, key === 'error_description' ? errorDescription(value) : value);
  }
  url.searchParams.set('iss', ctx.issuer);
  return reply.code(status).header('Cache-Control', 'no-store').header('Location', url.href).send();
}
