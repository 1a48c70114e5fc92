// The events the servers and the administrator's commands write to the audit
// log (docs/internals.md, "Audit log"): what `delegate audit --event` takes and
// shell completion offers. Kept apart from the command so that the program can
// name them without loading the store. test/cli/audit-command.test.ts checks
// that every event the source writes is here.
export const AUDIT_EVENTS = [
  'sign_in',
  'sign_in_failed',
  'consent',
  'token_issued',
  'token_refreshed',
  'token_exchanged',
  'token_exchange_refused',
  'token_revoked',
  'grant_revoked',
  'code_replay',
  'refresh_replay',
  'tool_call',
  'freebusy_read',
  'user_added',
  'user_removed',
  'password_set',
  'password_cleared',
  'time_zone_set',
  'agent_registered',
  'client_registered',
  'client_updated',
  'calendar_added',
  'calendar_removed',
  'signing_key_created',
  'signing_key_rotated',
] as const;

export type AuditEventName = (typeof AUDIT_EVENTS)[number];
