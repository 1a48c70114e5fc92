// One read of the user's busy time on the caller's behalf, as the agent's
// tools need it: the caller's token is exchanged for a calendar token (RFC
// 8693, never forwarded), the backend is asked, and every way this can fail
// becomes one message for the person behind the MCP client. Never a token in
// a message or a log line.
import type { FreeBusySelection } from '../calendar/freebusy-query.js';
import type { Interval } from '../calendar/intervals.js';
import { SCOPE_FREEBUSY_READ, STORE_CORRUPT_DESCRIPTION, STORE_FULL_DESCRIPTION, STORE_READ_ONLY_DESCRIPTION } from '../delegation/index.js';
import { CalendarError, fetchFreeBusy, type FreeBusy } from './calendar-client.js';
import { TokenExchangeError, type ExchangedToken } from './exchange.js';
import type { FindSlotDeps } from './tool.js';

export type CalendarRead = { ok: true; value: FreeBusy } | { ok: false; message: string };

export type CalendarReadDeps = Pick<FindSlotDeps, 'calendarUrl' | 'exchanger' | 'fetchFn' | 'calendarTimeoutMs' | 'logger' | 'serversGone' | 'reauthorize' | 'requestId'>;

export async function readBusyTime(deps: CalendarReadDeps, subjectToken: string, window: Interval, selection: FreeBusySelection): Promise<CalendarRead> {
  const exchangeRequest = { resource: deps.calendarUrl, scope: SCOPE_FREEBUSY_READ };
  const onward = deps.requestId !== undefined ? { requestId: deps.requestId } : {};
  /** The calendar token the last read used. */
  let handed: ExchangedToken | undefined;
  const read = async () => {
    const calendarToken = (handed = await deps.exchanger.exchange(subjectToken, exchangeRequest, onward));
    return fetchFreeBusy({
      ...onward,
      calendarUrl: deps.calendarUrl,
      accessToken: calendarToken.accessToken,
      window,
      fetchFn: deps.fetchFn,
      timeoutMs: deps.calendarTimeoutMs,
      ...(deps.serversGone ? { serversGone: deps.serversGone } : {}),
      selection,
    });
  };
  // At most two reads: a calendar token the backend refuses (revoked, keys rotated) must not be handed out again, and
  // one fresh exchange says whether the delegation still serves. Found in review s27mcp: over stdio, the first call
  // after `delegate grants revoke` said only "The calendar refused access", with the cached calendar token, and no
  // word of signing in; the fresh exchange is refused with the same advice the next call gave. Only for a cached token
  // refused as invalid (401, RFC 6750 §3.1 invalid_token): a token just exchanged, or a 403 (insufficient_scope, which
  // a token of the same scope cannot mend), is not exchanged again (found in review, s27rev4: a backend refusing every
  // token got two requests and the AS two exchanges on every call).
  for (let attempt = 1; ; attempt++) {
    try {
      return { ok: true, value: await read() };
    } catch (err) {
      const refused = err instanceof CalendarError && err.code === 'refused';
      if (refused) deps.exchanger.forget(subjectToken, exchangeRequest);
      if (refused && attempt === 1 && err.status === 401 && handed?.cached === true) {
        deps.logger?.warn({ code: err.code, status: err.status }, 'calendar refused the exchanged token; exchanging again once');
        continue;
      }
      return { ok: false, message: explainReadFailure(err, deps.logger, deps.reauthorize) };
    }
  }
}

/** How delegate's authorization server describes a subject token it will not exchange (grant-exchange.ts). */
const SUBJECT_TOKEN_REFUSED = /^The (subject token|delegation behind the subject token) /;

/** How delegate's authorization server describes a store that cannot take a write (src/authz/errors.ts): nothing mends it but a person. */
const STORE_CANNOT_WRITE = new Set([STORE_FULL_DESCRIPTION, STORE_READ_ONLY_DESCRIPTION, STORE_CORRUPT_DESCRIPTION]);

/** How delegate's authorization server describes a delegation approved for the calendar at an address it left (grant-exchange.ts). */
const CALENDAR_MOVED = /, where the agent now reads the calendar: the calendar moved since it was approved\.$/;

/** What failed and what to do, for a person. */
export function explainReadFailure(err: unknown, logger: CalendarReadDeps['logger'], reauthorize?: CalendarReadDeps['reauthorize']): string {
  if (err instanceof TokenExchangeError) {
    logger?.warn({ code: err.code }, 'token exchange failed');
    const said = err.serverDescription ? `: ${err.serverDescription}` : '.';
    switch (err.code) {
      // RFC 8693 §2.2.2: a subject token the server finds invalid or unacceptable (expired, revoked, its
      // delegation ended, not issued for this agent) is invalid_request; an authorization server that
      // follows RFC 6749 alone may say invalid_grant. Either way the user's delegation no longer serves.
      // invalid_request also covers what signing in again does not mend (a chain one hop too deep).
      case 'invalid_request':
      case 'invalid_grant':
        if (err.code === 'invalid_request' && !SUBJECT_TOKEN_REFUSED.test(err.serverDescription ?? '')) {
          return `The authorization server refused CalendarAgent's request for a calendar token${said}`;
        }
        return `The authorization server would not let CalendarAgent act on this delegation${said} ${reauthorize?.() ?? 'Sign in again.'}`;
      case 'invalid_target':
        // The delegation was approved for the calendar at its old address: only the person can approve the new one,
        // by signing in again (the consent page asks for it). Found in review: nothing said so.
        if (CALENDAR_MOVED.test(err.serverDescription ?? '')) {
          return `Your delegation does not let CalendarAgent read your calendar's free/busy time${said} ${reauthorize?.() ?? 'Sign in again, from the app that asked, to approve its new address: the consent page asks for it.'}`;
        }
        return `Your delegation does not let CalendarAgent read your calendar's free/busy time${said}`;
      case 'invalid_scope':
        return `Your delegation does not let CalendarAgent read your calendar's free/busy time${said}`;
      case 'invalid_client':
      case 'unauthorized_client':
        return `The authorization server does not accept CalendarAgent as a client (${err.code}); its registration or key needs attention.`;
      case 'unreachable':
        return `${err.message} Try again shortly.`;
      default:
        // Its own words when it gives them (a full or read-only store says so: found in review "logs-faults",
        // find-slot said only "server_error" while the AS's log and the admin commands named the full disk).
        // "Try again shortly" only where waiting may mend it: not a full or read-only store (found by the s18 helpers).
        if (STORE_CANNOT_WRITE.has(err.serverDescription ?? '')) return `The authorization server could not issue a calendar token (${err.code})${said}`;
        return `The authorization server could not issue a calendar token (${err.code})${said} Try again shortly.`;
    }
  }
  if (err instanceof CalendarError) {
    logger?.warn({ code: err.code, status: err.status }, 'calendar request failed');
    // Only what may pass by itself (no answer, a failure) is worth trying again.
    const mendedByWaiting = !['refused', 'rejected', 'no_calendars', 'misconfigured', 'unrecorded'].includes(err.code);
    return mendedByWaiting ? `${err.message} Try again shortly.` : err.message;
  }
  logger?.warn({ err: { name: (err as Error)?.name } }, 'calendar read failed');
  return 'Reading the calendar failed unexpectedly.';
}
