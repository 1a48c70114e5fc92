// Whether an authorization server still knows a client registration the
// cache holds. A server whose database was replaced has forgotten it, and
// then refuses the authorization request in the browser ("Unknown app",
// with no redirect back, RFC 6749 §4.1.2.1), where the CLI cannot see it and
// would wait until its login timeout. Its token endpoint says it plainly:
// a public client it does not know gets `invalid_client` (RFC 6749 §5.2),
// whatever grant it presents. So, before a sign-in reuses a registration,
// it redeems a made-up code there: `invalid_grant` means the client is known.
import { randomBytes } from 'node:crypto';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { StoredClient } from './cache.js';

/**
 * True only when the token endpoint answered `invalid_client` for this
 * public client; anything else (another error, no answer, a confidential
 * client, which this check cannot authenticate) counts as known, and the
 * sign-in goes on as it would have.
 */
export async function clientIsUnknown(tokenEndpoint: string | undefined, client: StoredClient & { client_secret?: string }, redirectUri: string, fetchFn: FetchLike): Promise<boolean> {
  if (tokenEndpoint === undefined || client.client_secret !== undefined) return false;
  try {
    const res = await fetchFn(tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: randomBytes(32).toString('base64url'), // issued to nobody: it redeems nothing
        redirect_uri: redirectUri,
        code_verifier: randomBytes(32).toString('base64url'),
        client_id: client.client_id,
      }),
    });
    const body = (await res.json().catch(() => ({}))) as { error?: unknown };
    return body.error === 'invalid_client';
  } catch {
    return false;
  }
}
