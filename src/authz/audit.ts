// Writing the authorization server's events to the audit log: who acted, for
// whom, through which chain, on what. An event that cannot be recorded fails
// the operation it describes, so nothing happens off the record.
import { actorChain, type AccessTokenClaims } from '../delegation/index.js';
import type { AuditEventInput } from '../store/index.js';
import type { AuthContext } from './context.js';

export async function audit(ctx: Pick<AuthContext, 'store' | 'now'>, event: AuditEventInput): Promise<void> {
  await ctx.store.appendAudit(event, ctx.now());
}

/** The actor chain of a token for the log: current actor first, ending with the client that held the user's token. */
export function actorsOf(claims: Pick<AccessTokenClaims, 'act' | 'client_id'>): string[] {
  return claims.act ? actorChain(claims.act) : [claims.client_id];
}
