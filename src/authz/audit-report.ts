// What an agent's report to POST /audit may put on the log: a record bound to
// an access token the reporter was actually presented. The report names that
// token by its `jti` (in `detail.jti`, where every resource server's record
// carries it); who acted, for whom and under which grant are read from the
// AS's own records of that token, never taken from the report, so the record
// is the one the agent would have written with the store in its own process.
import { canonicalResource } from '../delegation/index.js';
import { nestingDepth } from '../resource/audit.js';
import { holdsCredential } from '../delegation/secrets.js';
import { hasControlCharacters } from '../terminal-text.js';
import type { AuditEventInput, ClientRecord, IssuedTokenRecord, ResourceRecord, Store } from '../store/index.js';
import { InvalidRequestError, UnauthorizedClientError } from './errors.js';
import { REVOCATION_LIST_STALE_AFTER_SEC } from './revocation-list.js';

/**
 * What resource servers report (the AS writes every other event itself), and the detail keys each may carry: those
 * CalendarAgent (src/agent/guard.ts, mcp-http.ts) and the calendar backend (src/calendar/server.ts) write through
 * auditRecord. Any other key is refused, not dropped: a reporter that sends one is not the code that writes these
 * records, and the request is better answered than quietly cut. Found in review: `by`, `name`, `decision`, `scope`,
 * `timeZone` and `reported_after_revocation_at` were stored as sent and printed by `delegate audit` as if the AS had
 * recorded them, and a `password` was kept verbatim.
 */
const REPORTABLE_DETAIL: Readonly<Record<string, ReadonlySet<string>>> = {
  tool_call: new Set(['jti', 'tool', 'outcome', 'arguments', 'message', 'missing_scope', 'unreached']),
  freebusy_read: new Set(['jti', 'outcome', 'window', 'reason', 'calendars']),
};

/** The outcomes each event's records take (the resource servers' own: docs/internals.md, Audit). */
const REPORTABLE_OUTCOMES: Readonly<Record<string, ReadonlySet<string>>> = {
  tool_call: new Set(['ok', 'error', 'refused']),
  freebusy_read: new Set(['ok', 'refused']),
};

/** A tool's name as MCP names tools (specification 2025-11-25, Tools, "Tool names": 1 to 128 of A-Z a-z 0-9 _ - .). */
const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

/** The detail keys `delegate audit` prints on a record's line (a list's items each): no control or format characters in them. */
const PRINTED_DETAIL = ['tool', 'outcome', 'decision', 'scope', 'reason', 'message', 'missing_scope'] as const;

/** How long after its token's expiry a call may still be reported. */
export const LATE_REPORT_MS = 5 * 60_000;

/**
 * How deep a report's detail may nest, and how long its JSON may be. An
 * agent's own records are shallow (arguments are kept to 8 levels and 2,000
 * characters, boundedValue); found in review: a detail nested 10,000 deep (60
 * KB) overflowed the stack in canonicalJson and took the records written with
 * it (a grant_revoked among them) down, and one 3,143 deep was stored and made
 * `delegate audit --verify` crash on every run.
 */
export const MAX_REPORT_DEPTH = 16;
export const MAX_REPORT_DETAIL_CHARS = 16_384;

/**
 * How long after its token or grant was revoked a call may still be reported:
 * the revocation list's stale_after. A resource server refuses every token
 * once its list is older than that, so a call it served with a token revoked
 * meanwhile ran within this time of the revocation; later, the report is a
 * record made up from a token the agent knows is dead. (Found in review:
 * reports were taken for up to 15 minutes after the revocation.)
 */
export const REVOKED_REPORT_MS = REVOCATION_LIST_STALE_AFTER_SEC * 1000;

/** More hops than any grant allows: a longer parent chain in the store is a fault, not a record. */
const MAX_CHAIN = 16;

/**
 * The audit record for `report`, made by `reporter` (a registered agent).
 * Throws `unauthorized_client` for a report about another resource, and
 * `invalid_request` for one whose detail is nested too deep or too long, one that names no token issued for the reporter's
 * resource, one whose token expired more than LATE_REPORT_MS ago or whose
 * token or grant was revoked more than REVOKED_REPORT_MS ago, or one
 * whose user, grant, client or actors differ from that token's.
 */
export async function recordFromReport(store: Store, reporter: ClientRecord & { resource: string }, report: Record<string, unknown>, now: number): Promise<AuditEventInput> {
  const event = typeof report.event === 'string' ? report.event : undefined;
  const keys = event !== undefined && Object.hasOwn(REPORTABLE_DETAIL, event) ? REPORTABLE_DETAIL[event] : undefined;
  if (!event || !keys) throw new InvalidRequestError('Only tool_call and freebusy_read records can be reported.');
  if (report.resource !== reporter.resource) throw new UnauthorizedClientError('An agent reports only about its own resource.');
  const detail = report.detail;
  if (typeof detail !== 'object' || detail === null || Array.isArray(detail)) throw new InvalidRequestError('A record has a detail object.');
  if (nestingDepth(detail, MAX_REPORT_DEPTH) > MAX_REPORT_DEPTH) throw new InvalidRequestError(`A record’s detail may nest at most ${MAX_REPORT_DEPTH} levels deep.`);
  if (JSON.stringify(detail).length > MAX_REPORT_DETAIL_CHARS) throw new InvalidRequestError(`A record’s detail may be at most ${MAX_REPORT_DETAIL_CHARS} characters of JSON.`);
  // Printed by `delegate audit`: found in review, a tool name holding "\n" printed a whole forged line, and "\r\e[2K" erased the real one;
  // and (s24) a refusal's reason and a failed call's message, and the missing scope, printed as its why, were taken with ESC, CR, LF, NUL,
  // C1 controls and bidirectional overrides. The CLI escapes what is stored all the same (src/cli/shown.ts); the AS takes none of it.
  for (const field of PRINTED_DETAIL) {
    const value = (detail as Record<string, unknown>)[field];
    const texts = Array.isArray(value) ? value : [value];
    if (texts.some((t) => typeof t === 'string' && hasControlCharacters(t))) throw new InvalidRequestError(`A record’s detail.${field} must not contain control characters.`);
  }
  // Printed as the line's own fields (`find_slot  ok`): found in review (s30attack, info), a tool named
  // "find_slot  ok  reported by nobody" was taken and printed as though those were the record's fields.
  const { tool, outcome } = detail as Record<string, unknown>;
  if (tool !== undefined && (typeof tool !== 'string' || !TOOL_NAME.test(tool))) {
    throw new InvalidRequestError('A record names its tool (detail.tool) as MCP names tools: 1 to 128 letters, digits, _, - and . only.');
  }
  if (outcome !== undefined && (typeof outcome !== 'string' || !REPORTABLE_OUTCOMES[event]!.has(outcome))) {
    throw new InvalidRequestError(`A ${event} record’s detail.outcome is one of ${[...REPORTABLE_OUTCOMES[event]!].join(', ')}.`);
  }
  const foreign = Object.keys(detail).find((key) => !keys.has(key));
  if (foreign !== undefined) {
    // Named back only when it is a plain name: the error_description never echoes a reporter's control or format characters.
    const named = /^[A-Za-z0-9_]{1,64}$/.test(foreign) ? foreign : 'another key';
    throw new InvalidRequestError(`A ${event} record’s detail takes ${[...keys].join(', ')}; ${named} is not among them.`);
  }
  // The token itself is never written (docs/internals.md): a detail holding a credential, by its shape or its name, is refused.
  if (holdsCredential(detail)) throw new InvalidRequestError('A record’s detail must not hold a token, a password or another secret.');
  if (event === 'freebusy_read' && !isCalendarBackend(await store.listResources(), reporter.resource)) {
    throw new UnauthorizedClientError('Only a calendar backend reports free/busy reads.');
  }
  const jti = (detail as Record<string, unknown>).jti;
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) throw new InvalidRequestError('A record names the access token it is about (detail.jti).');

  // Unknown, or issued for another resource: one answer for both, so a reporter learns nothing about other servers' tokens.
  const issued = await store.issuedToken(jti);
  if (!issued || canonicalResource(issued.audience) !== canonicalResource(reporter.resource)) {
    throw new InvalidRequestError('The record names no access token issued for this agent’s resource.');
  }
  // A call is reported as soon as it is served; one made just before the token expired may end a little after.
  // Long after, a report would be a record made up from a token the agent once saw.
  if (now > issued.expiresAt + LATE_REPORT_MS) throw new InvalidRequestError('The token the record names expired too long ago for a call made with it to be reported now.');
  const grant = await store.grantById(issued.grantId);
  if (!grant) throw new InvalidRequestError('The token’s delegation is not on record.');
  // A call served just before the revocation reached the agent happened, and is taken, marked with the revocation's time.
  const revokedAt = Math.min(issued.revokedAt ?? Infinity, grant.revokedAt ?? Infinity);
  if (now > revokedAt + REVOKED_REPORT_MS) throw new InvalidRequestError('The token the record names was revoked too long ago for a call made with it to be reported now.');
  const bound = { user: grant.userId, grant: issued.grantId, client: issued.clientId, actors: [...(await clientChain(store, issued)), grant.userId] };

  // The report may repeat what the token says (CalendarAgent sends the whole record), never say otherwise.
  for (const field of ['user', 'grant', 'client'] as const) {
    if (report[field] !== undefined && report[field] !== bound[field]) throw new InvalidRequestError(`The record’s ${field} is not the token’s.`);
  }
  if (report.actors !== undefined && !sameList(report.actors, bound.actors)) throw new InvalidRequestError('The record’s actors are not the token’s chain.');

  const late = Number.isFinite(revokedAt) ? { reported_after_revocation_at: revokedAt } : {};
  return { event, ...bound, resource: reporter.resource, detail: { ...(detail as Record<string, unknown>), jti, reported_by: reporter.clientId, ...late } };
}

/**
 * Whether `url` is a calendar backend's: a resource of this server bound to no agent, or one an agent reaches
 * downstream (the audience of the tokens it gets by exchange). An agent's own MCP URL is neither
 * (agents.ts refuses one on a backend's origin).
 */
function isCalendarBackend(resources: readonly ResourceRecord[], url: string): boolean {
  const wanted = canonicalResource(url);
  return resources.some((r) => (r.agentClientId === null && canonicalResource(r.url) === wanted) || r.downstream.some((d) => canonicalResource(d.resource) === wanted));
}

/**
 * The clients a token went through, current first: its own client, then the
 * client of each token it was exchanged from (parent_jti). This is the chain
 * the token's `act` claim carries (RFC 8693 §4.1, `actorsOf`): an exchange
 * nests the subject token's chain under the exchanging agent.
 */
async function clientChain(store: Store, issued: IssuedTokenRecord): Promise<string[]> {
  const chain = [issued.clientId];
  for (let parent = issued.parentJti; parent !== null; ) {
    const record = chain.length < MAX_CHAIN ? await store.issuedToken(parent) : undefined;
    if (!record) throw new InvalidRequestError('The token’s chain is not on record.');
    chain.push(record.clientId);
    parent = record.parentJti;
  }
  return chain;
}

function sameList(value: unknown, expected: string[]): boolean {
  return Array.isArray(value) && value.length === expected.length && value.every((v, i) => v === expected[i]);
}
