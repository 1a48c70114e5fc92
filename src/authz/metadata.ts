// Discovery: the authorization server metadata (RFC 8414) and the JWK Set its
// tokens are verified with. Both are public and may be fetched cross-origin
// by browser-based MCP clients.
import type { FastifyInstance } from 'fastify';
import type { OAuthMetadata } from '@modelcontextprotocol/sdk/shared/auth.js';
import { GRANT_TYPE_AUTHORIZATION_CODE, GRANT_TYPE_REFRESH_TOKEN, GRANT_TYPE_TOKEN_EXCHANGE, SIGNING_ALG } from '../delegation/index.js';
import { DATA_DIRECTORY_HEADER } from '../data-directory-id.js';
import type { AuthContext } from './context.js';
import { DEVICE_AUTHORIZATION_PATH, GRANT_TYPE_DEVICE_CODE } from './device.js';

const AUTH_METHODS = ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'];

export async function authorizationServerMetadata(ctx: AuthContext): Promise<OAuthMetadata & Record<string, unknown>> {
  const resources = await ctx.store.listResources();
  const scopes = [...new Set(resources.flatMap((r) => r.scopes))].sort();
  const detailTypes = [...new Set(resources.flatMap((r) => r.downstream.map((d) => d.type)))].sort();
  return {
    issuer: ctx.issuer,
    authorization_endpoint: ctx.endpoints.authorization,
    token_endpoint: ctx.endpoints.token,
    registration_endpoint: ctx.endpoints.registration,
    device_authorization_endpoint: `${ctx.issuer}${DEVICE_AUTHORIZATION_PATH}`, // RFC 8628 §4
    revocation_endpoint: ctx.endpoints.revocation,
    introspection_endpoint: ctx.endpoints.introspection,
    introspection_endpoint_auth_methods_supported: AUTH_METHODS.filter((m) => m !== 'none'),
    // RFC 8414 §2: present whenever the methods above include private_key_jwt or client_secret_jwt.
    introspection_endpoint_auth_signing_alg_values_supported: [SIGNING_ALG],
    // Not registered with IANA: where resource servers long-poll for revoked grants and tokens.
    revocation_list_endpoint: ctx.endpoints.revocationList,
    jwks_uri: ctx.endpoints.jwks,
    scopes_supported: scopes,
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: [GRANT_TYPE_AUTHORIZATION_CODE, GRANT_TYPE_REFRESH_TOKEN, GRANT_TYPE_TOKEN_EXCHANGE, GRANT_TYPE_DEVICE_CODE],
    token_endpoint_auth_methods_supported: AUTH_METHODS,
    token_endpoint_auth_signing_alg_values_supported: [SIGNING_ALG],
    revocation_endpoint_auth_methods_supported: AUTH_METHODS,
    revocation_endpoint_auth_signing_alg_values_supported: [SIGNING_ALG],
    code_challenge_methods_supported: ['S256'],
    // RFC 9207: the authorization response carries `iss`.
    authorization_response_iss_parameter_supported: true,
    // RFC 9396 §10.
    authorization_details_types_supported: detailTypes,
    // draft-ietf-oauth-client-id-metadata-document, Authorization Server Metadata: a client_id may be the https URL of the client's metadata
    // document (client-documents.ts); MCP clients then use it instead of registering (MCP authorization 2025-11-25).
    client_id_metadata_document_supported: true,
  };
}

export function registerMetadata(app: FastifyInstance, ctx: AuthContext): void {
  const cors = { 'Access-Control-Allow-Origin': '*' };
  app.get('/.well-known/oauth-authorization-server', async (_req, reply) => {
    // Which data directory these servers run from, for a command of this machine to compare with its own before it
    // signs in here (src/cli/stack.ts); in a header, which a web page cannot read cross-origin.
    if (ctx.dataDirectoryId !== undefined) reply.header(DATA_DIRECTORY_HEADER, ctx.dataDirectoryId);
    return reply.headers({ ...cors, 'Cache-Control': 'public, max-age=300' }).send(await authorizationServerMetadata(ctx));
  });
  app.get('/.well-known/jwks.json', async (_req, reply) => {
    return reply.headers({ ...cors, 'Cache-Control': 'public, max-age=300' }).type('application/jwk-set+json').send(await ctx.keys.jwks());
  });
}
