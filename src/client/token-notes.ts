// What a token response says beyond the fields the SDK keeps: the SDK parses
// token responses with a schema that drops unknown members, but delegate's
// authorization server also says when the delegation ends
// (`refresh_token_expires_in`) and what it covers downstream
// (`authorization_details`, RFC 9396). A fetch wrapper notes them, keyed by
// the access token they came with, for the cache entry to keep.
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { AuthorizationDetail } from '../delegation/tokens.js';

export interface TokenResponseExtras {
  /** When the refresh token ends (epoch ms): a new sign-in is needed after it. */
  refreshExpiresAt?: number;
  /** When the delegation itself ends (epoch ms), unless revoked: delegate's `delegation_expires_in`. */
  delegationExpiresAt?: number;
  authorizationDetails?: AuthorizationDetail[];
  /** The account signed in, by name: delegate's `user_name`, in the answer to a sign-in only. */
  userName?: string;
}

export class TokenResponseNotes {
  private readonly byAccessToken = new Map<string, TokenResponseExtras>();

  constructor(private readonly now: () => number) {}

  /** The extras that came with this access token, if a response carried any. */
  take(accessToken: string): TokenResponseExtras {
    const extras = this.byAccessToken.get(accessToken) ?? {};
    this.byAccessToken.delete(accessToken);
    return extras;
  }

  /** The HTTP status of the last token-endpoint answer that was not a success, if any since it was last taken. */
  private refusal: number | undefined;

  /** The status of the last refused token request (then forgotten): RFC 6749 §5.2 refusals are 400 (or 401). */
  takeRefusalStatus(): number | undefined {
    const status = this.refusal;
    this.refusal = undefined;
    return status;
  }

  /** Wraps `fetchFn` so that successful token-endpoint responses are read (a clone) on their way to the SDK, and refusals' statuses noted. */
  observe(fetchFn: FetchLike): FetchLike {
    return async (url, init) => {
      const response = await fetchFn(url, init);
      if (isTokenRequest(init)) {
        if (response.ok) await this.note(response.clone());
        else this.refusal = response.status;
      }
      return response;
    };
  }

  private async note(response: Response): Promise<void> {
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      return;
    }
    if (typeof body !== 'object' || body === null) return;
    const { access_token, refresh_token_expires_in, delegation_expires_in, authorization_details, user_name } = body as Record<string, unknown>;
    if (typeof access_token !== 'string') return;
    const extras: TokenResponseExtras = {};
    if (typeof refresh_token_expires_in === 'number' && Number.isFinite(refresh_token_expires_in)) {
      extras.refreshExpiresAt = this.now() + refresh_token_expires_in * 1000;
    }
    if (typeof delegation_expires_in === 'number' && Number.isFinite(delegation_expires_in)) {
      extras.delegationExpiresAt = this.now() + delegation_expires_in * 1000;
    }
    if (Array.isArray(authorization_details)) extras.authorizationDetails = authorization_details as AuthorizationDetail[];
    if (isUserName(user_name)) extras.userName = user_name;
    this.byAccessToken.set(access_token, extras);
  }
}

function isTokenRequest(init: RequestInit | undefined): boolean {
  if (init?.method !== 'POST' || !(init.body instanceof URLSearchParams)) return false;
  const grant = init.body.get('grant_type');
  return grant === 'authorization_code' || grant === 'refresh_token';
}

/** An account name as a server may send it: a short string (it is shown only through printable()). */
export function isUserName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 200;
}
