// Revoking the CLI's stored tokens (RFC 7009) at the authorization server
// that issued them, and no other: its revocation endpoint is read from its
// own metadata (RFC 8414), never from discovery state kept for another
// server. The discovery cached for a resource names whatever server the
// agent's last 401 named, which need not be the issuer of the tokens stored
// beside it (a sign-in that a fake agent started, then abandoned).
import { discoverAuthorizationServerMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { deleteTokens, tokensFor, type StoredClient, type TokenCache, type TokenCacheData } from './cache.js';
import { boundedFetch } from './bounded-fetch.js';
import { certificateErrorCode, networkErrorCode } from './errors.js';
import { sameIssuer } from './provider.js';
import { ForeignListenerError, refuseForeignListener } from '../http/listener-owner.js';

/** How long one revocation or metadata request may take. */
const REVOCATION_TIMEOUT_MS = 15_000;

/**
 * Revokes the refresh token (which ends its delegation) and the access token
 * stored for `resource` from `issuer`, at that issuer's revocation endpoint,
 * as the client they were issued to. Throws with the reason when they could
 * not be revoked there.
 */
export async function revokeStoredTokens(data: TokenCacheData, issuer: string, resource: string, fetchFn: FetchLike): Promise<void> {
  const tokens = tokensFor(data, issuer, resource);
  if (!tokens) return;
  const client = data.clients[issuer] as (StoredClient & { client_secret?: string }) | undefined;
  if (!client) throw new Error(`no client registration for ${issuer} is stored`);
  try {
    refuseForeignListener(issuer);
  } catch (error) {
    if (!(error instanceof ForeignListenerError)) throw error;
    throw new Error(`port ${error.port} is held by a program of another user of this machine (uid ${error.uid}); nothing was sent to it`);
  }
  const bounded = boundedFetch(fetchFn, REVOCATION_TIMEOUT_MS);
  const endpoint = await revocationEndpoint(data, issuer, resource, bounded);
  for (const { token, hint } of [
    ...(tokens.refresh_token ? [{ token: tokens.refresh_token, hint: 'refresh_token' }] : []),
    { token: tokens.access_token, hint: 'access_token' },
  ]) {
    const body = new URLSearchParams({ token, token_type_hint: hint });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (client.client_secret) {
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`).toString('base64')}`;
    } else {
      body.set('client_id', client.client_id);
    }
    let response: Response;
    try {
      response = await bounded(endpoint, { method: 'POST', headers, body });
    } catch (error) {
      throw new Error(`cannot reach ${endpoint}${networkCode(error)}`);
    }
    // RFC 7009 §2.2: 200 for a revoked or an unknown token alike.
    if (!response.ok) throw new Error(`${endpoint} answered HTTP ${response.status}`);
  }
}

/**
 * After a sign-in stored tokens for `resource` from the authorization server
 * discovery now names, revokes those an earlier sign-in stored for the same
 * resource from another server, each at its own issuer, and forgets them.
 * Nothing would use them again (every path reads the tokens of the issuer
 * discovery names, and a sign-in ignores cached tokens), so kept they would
 * only be a live credential on disk and a delegation the person no longer
 * sees; forgotten unrevoked, that delegation would stand at its server with
 * nothing left here to end it. One that cannot be revoked now stays in the
 * cache, where `delegate logout` tries again at its issuer and says if it fails.
 */
export async function retireTokensFromOtherIssuers(cache: TokenCache, resource: string, fetchFn: FetchLike): Promise<void> {
  const data = await cache.read();
  const current = data.discovery[resource]?.authorizationServerUrl;
  if (current === undefined || !tokensFor(data, current, resource)) return;
  for (const issuer of Object.keys(data.tokens)) {
    const old = tokensFor(data, issuer, resource);
    if (issuer === current || !old) continue;
    try {
      await revokeStoredTokens(data, issuer, resource, fetchFn);
    } catch {
      continue;
    }
    await cache.update((fresh) => {
      if (tokensFor(fresh, issuer, resource)?.access_token === old.access_token) deleteTokens(fresh, issuer, resource);
    });
  }
}

/**
 * The issuer's revocation endpoint: from the discovery state cached for the
 * resource when that state is the issuer's own, else from the issuer's
 * metadata, fetched now and accepted only if it names the same issuer
 * (RFC 8414 §3.3).
 */
async function revocationEndpoint(data: TokenCacheData, issuer: string, resource: string, fetchFn: FetchLike): Promise<string> {
  const cached = data.discovery[resource];
  let metadata: Record<string, unknown> | undefined;
  if (cached?.authorizationServerUrl === issuer && cached.authorizationServerMetadata) {
    metadata = cached.authorizationServerMetadata as Record<string, unknown>;
  } else {
    try {
      metadata = (await discoverAuthorizationServerMetadata(issuer, { fetchFn })) as Record<string, unknown> | undefined;
    } catch (error) {
      throw new Error(`cannot read the metadata of ${issuer}${networkCode(error)}`);
    }
    if (!metadata) throw new Error(`${issuer} publishes no authorization server metadata`);
    if (!sameIssuer(metadata.issuer, issuer)) throw new Error(`the metadata at ${issuer} names another issuer`);
  }
  if (typeof metadata.revocation_endpoint !== 'string') throw new Error(`${issuer} names no revocation endpoint`);
  return metadata.revocation_endpoint;
}

function networkCode(error: unknown): string {
  const code = networkErrorCode(error);
  if (code) return ` (${code})`;
  // A deployment behind an https proxy with a private CA (found in review, regress20c: it said only "cannot reach").
  const untrusted = certificateErrorCode(error);
  if (untrusted) return `: its https certificate is not trusted here (${untrusted}); with a private CA, give its certificate in NODE_EXTRA_CA_CERTS`;
  const name = (error as { name?: unknown }).name;
  return name === 'TimeoutError' ? ' (no answer in time)' : '';
}
