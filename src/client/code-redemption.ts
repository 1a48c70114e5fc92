// An authorization code goes to the token endpoint once, whatever the answer
// (RFC 6749 §4.1.2: the client MUST NOT use it more than once). The MCP SDK's
// auth() presents a refused code again: after invalid_grant it clears the
// cached tokens and sends the same code with the same verifier, after
// invalid_client or unauthorized_client it clears the client, discovery and
// tokens and starts over with it (auth() in @modelcontextprotocol/sdk
// client/auth.js). To an authorization server that spent the code the first
// time, the second is a replay: it answers "already used", revokes what the
// code issued and records a code_replay, and the person reads that instead of
// the first answer. So the provider asks this at the two steps the SDK takes
// towards a retry (invalidateCredentials, codeVerifier) and ends auth() there
// with the first answer, which observe() notes on its way to the SDK.
import { parseErrorResponse } from '@modelcontextprotocol/sdk/client/auth.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { GRANT_TYPE_AUTHORIZATION_CODE } from '../delegation/tokens.js';
import { ClientError } from './errors.js';

/** Where the code of the current authorization request is: not yet sent, sent without tokens back, or redeemed. */
type Stage = 'pending' | 'presented' | 'redeemed';

export class CodeRedemption {
  private stage: Stage = 'pending';
  private answer: Error | undefined;

  /** A new authorization request (a new PKCE verifier): its code is yet to be presented. */
  begin(): void {
    this.stage = 'pending';
    this.answer = undefined;
  }

  /** The SDK takes the verifier to present the code; a second time, the code was presented already: the first answer stands. */
  present(): void {
    if (this.stage !== 'pending') throw this.refusal();
    this.stage = 'presented';
  }

  /** The code's tokens were saved. */
  redeemed(): void {
    if (this.stage === 'presented') this.stage = 'redeemed';
  }

  /** The SDK clears credentials after a refused code only to present it again: the first answer stands. */
  refuseRetry(): void {
    if (this.stage === 'presented') throw this.refusal();
  }

  /**
   * Wraps `fetchFn` so that the first answer to the code's redemption is
   * noted as the SDK reads it (an OAuth error, or the failure to get an
   * answer). Only once the code is presented: the registration check
   * (registration-check.ts) redeems a made-up code before that.
   */
  observe(fetchFn: FetchLike): FetchLike {
    return async (url, init) => {
      const noting = this.stage === 'presented' && this.answer === undefined && isCodeRedemption(init);
      if (!noting) return fetchFn(url, init);
      try {
        const response = await fetchFn(url, init);
        if (!response.ok) this.answer = await parseErrorResponse(response.clone());
        return response;
      } catch (error) {
        this.answer = error instanceof Error ? error : new Error(String(error));
        throw error;
      }
    };
  }

  private refusal(): Error {
    return (
      this.answer ??
      new ClientError('AUTHORIZATION_FAILED', 'The authorization server did not accept the sign-in, and its code is presented only once. Run delegate login again.')
    );
  }
}

function isCodeRedemption(init: RequestInit | undefined): boolean {
  return init?.body instanceof URLSearchParams && init.body.get('grant_type') === GRANT_TYPE_AUTHORIZATION_CODE;
}
