// Refused token exchanges on the audit log: a registered agent that asks for
// more than it was delegated (a wider scope, lookahead or target, a deeper
// chain, a revoked token) is what an auditor looks for. Only refusals after
// the agent authenticated and its subject token verified are recorded (so the
// record can name the user, grant and chain), and at most one per agent, per
// subject token, per error code, per minute: an agent repeating a refusal cannot grow
// the log faster than that (found in review, audit-trail: nothing was recorded).
import { actorsOf, type AccessTokenClaims } from '../delegation/index.js';
import type { FormBody } from '../http/app.js';
import type { ClientRecord } from '../store/index.js';
import { audit } from './audit.js';
import type { AuthContext } from './context.js';
import { OAuthError, ServerError, TooManyRequestsError } from './errors.js';
import { OncePerWindow } from './rate-limit.js';

/** One record per (subject token, error code) in this window. */
export const EXCHANGE_REFUSAL_WINDOW_MS = 60_000;
/** What of the request is kept: enough to see what was asked, never a token. */
const ASKED_MAX_CHARS = 1_000;

export class ExchangeRefusals {
  private readonly recorded: OncePerWindow;

  constructor(now: () => number) {
    // The first refusal of a key is recorded, the repeats within the minute are not.
    this.recorded = new OncePerWindow(EXCHANGE_REFUSAL_WINDOW_MS, now);
  }

  /**
   * Appends a `token_exchange_refused` record for `err`, unless one was appended for this agent, subject token and
   * error code within the window, or `err` is no refusal (a server error). A record that cannot be written
   * fails the request (500), as every record does. The agent is part of the key: found in review (s30attack), one
   * agent's refusal on a token hid, for a minute, another's on the same token (a token handed to a helper, then tried
   * by another agent holding it), whose attempt then left no record naming it.
   */
  async record(ctx: Pick<AuthContext, 'store' | 'now'>, client: ClientRecord, subject: AccessTokenClaims, target: string, body: FormBody, err: unknown): Promise<void> {
    if (!(err instanceof OAuthError) || err instanceof ServerError || err instanceof TooManyRequestsError) return;
    if (!this.recorded.first(`${client.clientId} ${subject.jti} ${err.errorCode}`)) return;
    await audit(ctx, {
      event: 'token_exchange_refused',
      user: subject.sub,
      client: client.clientId,
      grant: subject.grant_id,
      resource: target,
      // The agent that asked, then the chain the subject token already carries.
      actors: [client.clientId, ...actorsOf(subject)],
      detail: { error: err.errorCode, reason: bounded(err.message), subject_jti: subject.jti, asked: asked(body) },
    });
  }
}

/** The parameters that say what was asked (each as sent, cut short), never the tokens. */
function asked(body: FormBody): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['scope', 'authorization_details', 'may_act', 'resource', 'audience']) {
    const value = body[name];
    if (typeof value === 'string') out[name] = bounded(value);
  }
  return out;
}

function bounded(text: string): string {
  return text.length > ASKED_MAX_CHARS ? `${text.slice(0, ASKED_MAX_CHARS)}…` : text;
}
