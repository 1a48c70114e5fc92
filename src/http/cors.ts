// The CORS answer of an endpoint that browser-based MCP clients call from
// another origin, without cookies (the Fetch standard's CORS protocol): any
// origin, the methods the endpoint takes, the request headers an MCP client
// sends. One answer for the authorization server's endpoints and the resource
// servers' protected resource metadata, so that they cannot drift apart.
import type { FastifyReply } from 'fastify';

/** The request headers a preflight allows: a bearer token, a JSON or form body, and the MCP SDK's MCP-Protocol-Version. */
export const CORS_ALLOW_HEADERS = 'Authorization, Content-Type, MCP-Protocol-Version';

/** How long a browser may keep a preflight's answer, in seconds. */
const CORS_MAX_AGE_SEC = 600;

/**
 * Answers a CORS preflight (OPTIONS with Access-Control-Request-Method) for an endpoint taking `methods`
 * (`GET, OPTIONS`): 204, no body. Browsers send one before a cross-origin request with a header outside the
 * CORS-safelisted ones, as the MCP SDK's fetch of metadata with MCP-Protocol-Version is.
 */
export function answerPreflight(reply: FastifyReply, methods: string): FastifyReply {
  return reply
    .code(204)
    .header('Access-Control-Allow-Origin', '*')
    .header('Access-Control-Allow-Methods', methods)
    .header('Access-Control-Allow-Headers', CORS_ALLOW_HEADERS)
    .header('Access-Control-Max-Age', String(CORS_MAX_AGE_SEC))
    .send();
}
