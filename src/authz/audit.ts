// Writing the authorization server's events to the audit log: who acted, for
// whom, through which chain, on what. An event that cannot be recorded fails
// the operation it describes, so nothing happens off the record.
import type { AuditEventInput } from '../store/index.js';
import type { AuthContext } from './context.js';

export async function audit(ctx: Pick<AuthContext, 'store' | 'now'>, event: AuditEventInput): Promise<void> {
  await ctx.store.appendAudit(event, ctx.now());
}

export { actorsOf } from '../delegation/index.js';
