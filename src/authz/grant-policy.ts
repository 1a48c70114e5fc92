// What a grant allows, and whether a new request asks for more: the scopes at
// the agent and, for each place the agent reaches, the constraints (RFC 9396
// details). Consent is asked again only when a request widens a grant, or when
// the grant does not reach where the agent reads today (a calendar that moved).
// Pure.
import {
  calendarLocations,
  isDetailSubset,
  isSubset,
  parseCalendarDetail,
  parseScope,
  type AuthorizationDetail,
  type CalendarDetail,
} from '../delegation/index.js';
import type { GrantRecord, ResourceRecord } from '../store/index.js';
import type { CurrentLimits } from './consent-choices.js';

/**
 * Whether a user's client may get tokens for the resource: only when an agent is behind it. One with
 * none (the calendar backend) is reached only through an agent, by token exchange, with the actor chain
 * and the user's limits.
 */
export function takesUserTokens(resource: ResourceRecord): boolean {
  return Boolean(resource.agentClientId);
}

/** The refusal at the front door (/authorize, /device_authorization) of a resource that does not. */
export const AGENTS_ONLY = 'This resource takes tokens only from agents, by token exchange; authorize the agent instead.';

/** The details a resource's agent may be given: one per downstream place, with no constraints yet. */
export function defaultDetails(resource: ResourceRecord): CalendarDetail[] {
  return resource.downstream.map((d) => ({ type: 'calendar', locations: [d.resource], actions: [...d.scopes], datatypes: ['freebusy'] }));
}

export type DetailsCheck = { ok: true; details: CalendarDetail[] } | { ok: false; reason: string };

/**
 * Validates the `authorization_details` of an authorization request against
 * what the resource's agent can be given: each must be a calendar detail for
 * one of its downstream places, asking no more than that place offers, and
 * at most one for each place. The consent page offers one set of limits for
 * every place (pageOffer): two entries for one place would be two sets, and
 * the page showed the first and dropped the other unseen (found in the s24
 * brief), so the request is refused (RFC 9396 §5, invalid_authorization_details),
 * as is one whose entries for two places name no calendar in common, which
 * leaves the page no calendar it could offer for both.
 */
export function requestedDetails(raw: string | undefined, resource: ResourceRecord): DetailsCheck {
  if (raw === undefined) return { ok: true, details: [] };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { ok: false, reason: 'authorization_details is not JSON' };
  }
  if (!Array.isArray(value)) return { ok: false, reason: 'authorization_details must be a JSON array' };
  const offers = defaultDetails(resource);
  const details: CalendarDetail[] = [];
  for (const item of value) {
    const parsed = parseCalendarDetail(item);
    if (!parsed.ok) return { ok: false, reason: parsed.reason };
    const offer = offers.find((o) => parsed.detail.locations.every((l) => o.locations.includes(l)));
    if (!offer) {
      // Found in review (s24new): an entry naming two places the agent does reach was told it reached neither.
      // Each place named once (review s24new3: `[A, A, B]` read "A and A and B"; parseCalendarDetail drops repeats).
      const named = parsed.detail.locations;
      const unreached = named.filter((l) => !offers.some((o) => o.locations.includes(l)));
      if (unreached.length > 0) return { ok: false, reason: `the agent does not reach ${unreached.join(', ')}` };
      return { ok: false, reason: `${named.join(' and ')} are places the agent reaches apart; ask for each in an entry of its own` };
    }
    const subset = isDetailSubset(parsed.detail, offer);
    if (!subset.ok) return { ok: false, reason: subset.reason };
    if (details.some((d) => d.locations.every((l) => offer.locations.includes(l)))) {
      return { ok: false, reason: `${offer.locations.join(', ')} is asked for in more than one entry; ask for its calendars and lookahead_days in one` };
    }
    details.push(parsed.detail);
  }
  if (details.length > 1 && pageOffer(details)?.calendars?.length === 0) {
    return { ok: false, reason: 'the entries name no calendar in common, and one choice of calendars is offered for every place the agent reaches' };
  }
  return { ok: true, details };
}

/** What the request asks of each place the resource's agent reaches: its own entry for that place, else all the place offers. */
export function offeredDetails(resource: ResourceRecord, asked: readonly CalendarDetail[]): CalendarDetail[] {
  return defaultDetails(resource).map((offer) => asked.find((a) => a.locations.every((l) => offer.locations.includes(l))) ?? offer);
}

/**
 * The limits the consent page offers, one set applied to every place (consent.ts applyChoices): the narrowest of the
 * places' offers, the calendars every one that names some names, and the shortest lookahead. Choices within it are
 * within each place's own, so no place is granted more than its entry asked. Found in the s24 brief: the page offered
 * the first place's limits alone, and an entry limited to one calendar for the second place was granted all of them.
 * Undefined when the agent reaches no place.
 */
export function pageOffer(offers: readonly CalendarDetail[]): CalendarDetail | undefined {
  const [first] = offers;
  if (!first) return undefined;
  const named = offers.flatMap((o) => (o.calendars ? [o.calendars] : []));
  const lookaheads = offers.flatMap((o) => (o.lookahead_days !== undefined ? [o.lookahead_days] : []));
  const { calendars: _c, lookahead_days: _l, ...rest } = first;
  return {
    ...rest,
    ...(named.length > 0 ? { calendars: named[0]!.filter((c) => named.every((n) => n.includes(c))) } : {}),
    ...(lookaheads.length > 0 ? { lookahead_days: Math.min(...lookaheads) } : {}),
  };
}

/**
 * Whether an existing grant already allows everything a request asks for, at the places the resource's agent
 * reaches today. A grant approved for a calendar at another address (the servers moved to other ports, or
 * `serve-auth --calendar-url` changed) does not: a token from it could not be exchanged for the new address,
 * and only the owner's consent may add that address to it (RFC 9396 §4: the locations are part of what was
 * approved). Found in review: a sign-in answered from such a grant without a consent page, and the agent
 * went on being refused.
 */
export function grantCovers(grant: GrantRecord, resource: ResourceRecord, scopes: readonly string[], details: readonly CalendarDetail[]): boolean {
  if (!isSubset(scopes, parseScope(grant.scope))) return false;
  if (unreachedLocations(grant, resource).length > 0) return false;
  const held = grantDetails(grant);
  return details.every((d) => held.some((h) => isDetailSubset(d, h).ok));
}

/** The places the resource's agent reaches today that the grant was not approved for, in the resource's order. */
export function unreachedLocations(grant: Pick<GrantRecord, 'authorizationDetails'>, resource: ResourceRecord): string[] {
  const held = calendarLocations(grant.authorizationDetails);
  return defaultDetails(resource)
    .flatMap((d) => d.locations)
    .filter((location) => !held.includes(location));
}

export function grantDetails(grant: Pick<GrantRecord, 'authorizationDetails'>): CalendarDetail[] {
  const out: CalendarDetail[] = [];
  for (const raw of grant.authorizationDetails as AuthorizationDetail[]) {
    const parsed = parseCalendarDetail(raw);
    if (parsed.ok) out.push(parsed.detail);
  }
  return out;
}

/**
 * What a grant allows today, as a step-up consent page starts from it and as Approve reads a form that leaves a choice
 * out: the narrowest of its calendar entries (pageOffer: its one set of limits applies to every place), and its depth.
 */
export function grantLimits(grant: Pick<GrantRecord, 'authorizationDetails' | 'maxDepth'>): CurrentLimits {
  const start = pageOffer(grantDetails(grant));
  return { calendars: start?.calendars, lookaheadDays: start?.lookahead_days, maxDepth: grant.maxDepth };
}
