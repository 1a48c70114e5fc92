// Finds the authorization server's token endpoint from its RFC 8414 metadata,
// once, and keeps it: the agent sends the caller's token to that endpoint and
// nowhere else, so the endpoint must belong to the issuer it trusts.
import { authorizationServerMetadataUrl } from '../delegation/resource.js';
import { TokenExchangeError } from './errors.js';

export interface AuthorizationServerEndpoints {
  tokenEndpoint: string;
}

export interface DiscoveryOptions {
  issuer: string;
  fetchFn: typeof fetch;
  timeoutMs: number;
}

/**
 * A function returning the issuer's endpoints, fetched on first use (so the
 * agent can start before its authorization server) and cached after that. A
 * failed discovery is not cached: the next call tries again.
 */
export function createEndpointDiscovery(options: DiscoveryOptions): () => Promise<AuthorizationServerEndpoints> {
  let pending: Promise<AuthorizationServerEndpoints> | undefined;
  return () => {
    pending ??= discover(options).catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}

async function discover({ issuer, fetchFn, timeoutMs }: DiscoveryOptions): Promise<AuthorizationServerEndpoints> {
  let metadata: unknown;
  try {
    const res = await fetchFn(authorizationServerMetadataUrl(issuer), {
      headers: { Accept: 'application/json' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) {
      throw new TokenExchangeError('invalid_response', `The authorization server's metadata could not be read (HTTP ${res.status}).`);
    }
    metadata = await res.json();
  } catch (err) {
    if (err instanceof TokenExchangeError) throw err;
    if (err instanceof SyntaxError) throw new TokenExchangeError('invalid_response', "The authorization server's metadata is not JSON.");
    throw new TokenExchangeError('unreachable', `The authorization server at ${issuer} could not be reached.`);
  }
  const { issuer: named, token_endpoint: tokenEndpoint } = (metadata ?? {}) as { issuer?: unknown; token_endpoint?: unknown };
  // RFC 8414 §3.3: metadata naming another issuer must not be used (mix-up defence).
  if (named !== issuer) throw new TokenExchangeError('invalid_response', "The authorization server's metadata names another issuer.");
  if (typeof tokenEndpoint !== 'string' || !sameOrigin(tokenEndpoint, issuer)) {
    // The caller's token goes to this URL: only an endpoint on the issuer's own origin is trusted with it.
    throw new TokenExchangeError('invalid_response', "The authorization server's metadata has no token endpoint on the issuer's origin.");
  }
  return { tokenEndpoint };
}

function sameOrigin(url: string, issuer: string): boolean {
  try {
    const u = new URL(url);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.origin === new URL(issuer).origin && u.hash === '';
  } catch {
    return false;
  }
}
