// CalendarAgent's OAuth 2.0 Protected Resource Metadata (RFC 9728): the
// document an MCP client fetches after a 401 to learn which authorization
// server issues tokens for the agent and which scope to ask for.
import type { FastifyInstance } from 'fastify';
import { DATA_DIRECTORY_HEADER } from '../data-directory-id.js';
import { PRM_WELL_KNOWN, protectedResourceMetadataUrl } from '../delegation/resource.js';
import { answerPreflight } from '../http/cors.js';
import { AGENT_SCOPE_POLICY } from './tool-scopes.js';

export const AGENT_RESOURCE_NAME = 'CalendarAgent';

export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported: string[];
  bearer_methods_supported: string[];
  resource_name: string;
}

export function protectedResourceMetadata(resourceUrl: string, issuer: string): ProtectedResourceMetadata {
  return {
    resource: resourceUrl,
    authorization_servers: [issuer],
    // The scope basic use needs, as its 401 challenge names; step-up (403 insufficient_scope) brings the rest.
    // MCP's scope selection: a client with no challenge in hand asks for all of scopes_supported, and publishing
    // every scope here is the "common mistake" of its security best practices (scope minimization). Found in
    // review: the SDK's own auth() asked for `slots:find busy:read` up front.
    scopes_supported: [...AGENT_SCOPE_POLICY.initial],
    bearer_methods_supported: ['header'],
    resource_name: AGENT_RESOURCE_NAME,
  };
}

/**
 * Serves the metadata at its RFC 9728 §3.1 location and, for clients that
 * only try the root (the MCP specification allows either), at the bare
 * well-known path too: this server has a single protected resource.
 * With `dataDirectoryId` (src/data-directory-id.ts: only for a loopback resource URL), the identity of the data
 * directory it runs from goes with it in a header, as with the authorization server's metadata, for a serve command of
 * this machine that finds this port taken (src/cli/servers.ts listen); not listed in Access-Control-Expose-Headers, so
 * a web page cannot read it.
 * Both paths answer a CORS preflight as the authorization server's metadata does (src/http/cors.ts): a browser-based
 * MCP client fetches this document with an MCP-Protocol-Version header, which a browser sends cross-origin only after
 * a preflight. Found in review (s31mcp): without one, the fetch failed ("Failed to fetch") and the SDK got through
 * only by retrying without the header. /mcp itself takes no preflight: a foreign Origin is refused there (gate.ts).
 */
export function registerProtectedResourceMetadata(app: FastifyInstance, resourceUrl: string, issuer: string, dataDirectoryId?: string): void {
  const document = protectedResourceMetadata(resourceUrl, issuer);
  const suffixed = new URL(protectedResourceMetadataUrl(resourceUrl)).pathname;
  for (const path of new Set([suffixed, PRM_WELL_KNOWN])) {
    app.get(path, async (_req, reply) => {
      if (dataDirectoryId !== undefined) reply.header(DATA_DIRECTORY_HEADER, dataDirectoryId);
      return (
        reply
          // Public metadata: browser-based MCP clients may read it from another origin.
          .header('Access-Control-Allow-Origin', '*')
          .header('Cache-Control', 'public, max-age=300')
          .type('application/json')
          .send(document)
      );
    });
    app.options(path, async (_req, reply) => answerPreflight(reply, 'GET, OPTIONS'));
  }
}
