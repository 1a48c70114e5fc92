// What the commands print: a slot as one JSON object or one human line, and
// what a login authorized, in words. Pure text building, no I/O.
import { formatSlotHuman } from '../calendar/format.js';
import type { AuthorizationSummary, Slot } from '../client/session.js';
import { SCOPE_DESCRIPTIONS } from '../delegation/scopes.js';
import { shownClipped, shownItems } from './shown.js';

/** Exactly {"start","end","timeZone"}: the --json contract scripts rely on. */
export function slotJson(slot: Slot): string {
  return JSON.stringify({ start: slot.start, end: slot.end, timeZone: slot.timeZone });
}

/** "Tue 1 Dec 2026, 11:45–12:15 (Europe/Berlin)". */
export function slotLine(slot: Slot): string {
  return formatSlotHuman({ start: Date.parse(slot.start), end: Date.parse(slot.end) }, slot.timeZone);
}

/** "Tue 1 Dec 2026, 11:45 (Europe/Berlin)" for an instant. */
export function instantLine(ms: number, timeZone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', {
      timeZone,
      weekday: 'short',
      day: 'numeric',
      month: 'short',
      year: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(new Date(ms))
      .map((p) => [p.type, p.value]),
  );
  return `${parts.weekday} ${parts.day} ${parts.month} ${parts.year}, ${parts.hour}:${parts.minute} (${timeZone})`;
}

/** A calendar detail without a `calendars` member, as the consent page says it (src/authz/consent-page.ts). */
const ALL_CALENDARS = 'all your calendars, including ones added later';

/**
 * What a login authorized: the agent, each scope in words, what it may do downstream, until when. Every value but the
 * times is the authorization server's or the agent's (its metadata, the token response), shown through shownClipped
 * (found in review, regress21e: a resource_name, scope or authorization detail acted on the terminal). `loginAgain`
 * is the `delegate login` that signs in again where this one did (its profile, ports or agent URL, data directory).
 */
export function authorizationLines(summary: AuthorizationSummary, timeZone: string, loginAgain = 'delegate login'): string[] {
  const resource = shownClipped(summary.resource);
  const agent = summary.resourceName ? `${shownClipped(summary.resourceName, 100)} (${resource})` : resource;
  const lines = [`Authorized ${agent} to act for you, as signed in at ${shownClipped(summary.issuer)}:`];
  const inWords = (scope: unknown): string => `${(typeof scope === 'string' ? SCOPE_DESCRIPTIONS[scope] : undefined) ?? shownClipped(scope, 100)} [${shownClipped(scope, 100)}]`;
  for (const scope of summary.scopes) lines.push(`  - ${inWords(scope)}`);
  for (const detail of summary.authorizationDetails) {
    const { type, actions: asked, locations, calendars: named } = (detail ?? {}) as { type?: unknown; actions?: unknown; locations?: unknown; calendars?: unknown };
    const actions = (Array.isArray(asked) ? asked : []).map(inWords).join('; ');
    const where = shownItems(locations).join(', ');
    if (actions) lines.push(`  - through it${where ? `, at ${where}` : ''}: ${actions}`);
    // The limits approved on the consent page, so that the person sees what was granted in their name; a calendar
    // detail that names none reaches every calendar, and is said to in the consent page's words (found in the s24
    // brief: an unlimited grant's line said nothing, as if nothing had been granted beyond the action).
    const calendars = Array.isArray(named) ? shownItems(named.filter((c): c is string => typeof c === 'string')) : undefined;
    const limits = [
      calendars ? `only the calendars ${calendars.join(', ')}` : type === 'calendar' ? ALL_CALENDARS : undefined,
      typeof detail?.lookahead_days === 'number' ? `at most ${detail.lookahead_days} days ahead` : undefined,
    ].filter((l): l is string => l !== undefined);
    if (actions && limits.length > 0) lines.push(`    ${limits.join('; ')}`);
  }
  if (summary.delegationEndsAt !== undefined) {
    lines.push(`Until ${instantLine(summary.delegationEndsAt, timeZone)}, unless you revoke it.`);
    if (summary.signInEndsAt !== undefined) lines.push(`This sign-in lasts until ${instantLine(summary.signInEndsAt, timeZone)}; run \`${loginAgain}\` again after that.`);
  } else if (summary.expiresAt !== undefined) {
    lines.push(`The access token is valid until ${instantLine(summary.expiresAt, timeZone)}${summary.renewable ? ' and renews itself after that' : ''}.`);
  }
  return lines;
}
