// The limits a user can set on the consent page, and how they narrow what the
// client asked for: which calendars, how far ahead, for how long, through how
// many hops. The page offers only choices that narrow; the decision is checked
// again when it comes back. "All calendars, including ones added later" is a
// choice of its own (LATER_CALENDARS), never inferred from every listed box
// being ticked. Pure.
import type { CalendarDetail } from '../delegation/index.js';
import type { FormBody } from '../http/app.js';

export const LOOKAHEAD_CHOICES = [7, 14, 30, 90, 365] as const;
export const DEFAULT_LOOKAHEAD_DAYS = 30;
export const EXPIRY_CHOICES = [1, 7, 30, 90] as const;
export const DEFAULT_EXPIRY_DAYS = 30;
export const DEPTH_CHOICES = [1, 2] as const;

/**
 * The consent form's checkbox "Calendars added later": ticked, with every listed calendar, the grant names no
 * calendars (all of them, now and later); unticked, or with a listed calendar unticked, or with the user's calendars
 * no longer the ones listed, it names exactly the ones ticked. Found in review (s23deleg):
 * every box ticked stored "all", so a calendar added afterwards was read under tokens issued before, on a page
 * that never said so.
 */
export const LATER_CALENDARS = { name: 'calendars_later', value: 'yes' } as const;

export interface ConsentChoices {
  /** Calendar names chosen; undefined means all, including calendars added later. */
  calendars: string[] | undefined;
  lookaheadDays: number;
  /** Days from now, or KEEP_EXPIRY: the end of the user's current grant (offered on a step-up page only). */
  expiresDays: number | typeof KEEP_EXPIRY;
  maxDepth: number;
}

/** The value of the expiry choice that keeps the current grant's end. */
export const KEEP_EXPIRY = 'keep' as const;

/** Lookahead choices no longer than what the client asked for. */
export function lookaheadOptions(asked: number | undefined): number[] {
  const options = LOOKAHEAD_CHOICES.filter((d) => asked === undefined || d <= asked);
  return options.length > 0 ? options : [asked!];
}

export type ChoicesResult = { ok: true; choices: ConsentChoices } | { ok: false; reason: string };

/** Reads and checks the choices posted with an approval. */
export function readChoices(
  form: FormBody,
  offer: {
    /** The user's calendars at Approve. */
    userCalendars: readonly string[];
    /** The user's calendars when the page was shown (stored with the pending request): the page listed these. */
    calendarsShown: readonly string[];
    askedCalendars: readonly string[] | undefined;
    askedLookahead: number | undefined;
    maxDepth: number;
    hasCalendar: boolean;
    /** On a step-up, what the user's current grant allows, as the page starts from it (grantLimits). */
    current?: CurrentLimits;
  },
): ChoicesResult {
  const one = (name: string): string | undefined => (typeof form[name] === 'string' ? (form[name] as string) : undefined);
  const { current } = offer;
  // A form without a choice gets what the page preselects: on a step-up, what the grant allows today (its end, its
  // depth, its lookahead, its calendars), so that nothing left out widens it (found in review, s25new); else the defaults.
  const expiry = one('expires_days') ?? (current ? KEEP_EXPIRY : String(DEFAULT_EXPIRY_DAYS));
  const expiresDays = expiry === KEEP_EXPIRY && current ? KEEP_EXPIRY : Number(expiry);
  if (expiresDays !== KEEP_EXPIRY && !(EXPIRY_CHOICES as readonly number[]).includes(expiresDays)) return { ok: false, reason: 'Choose how long the permission lasts from the list.' };
  const maxDepth = Number(one('max_depth') ?? presetDepth(offer.maxDepth, current));
  if (!(DEPTH_CHOICES as readonly number[]).includes(maxDepth) || maxDepth > offer.maxDepth) return { ok: false, reason: 'Choose how far the agent may pass work on from the list.' };
  if (!offer.hasCalendar) return { ok: true, choices: { calendars: undefined, lookaheadDays: 0, expiresDays, maxDepth } };

  const lookaheadDays = Number(one('lookahead_days') ?? presetLookahead(offer.askedLookahead, current));
  if (!lookaheadOptions(offer.askedLookahead).includes(lookaheadDays)) return { ok: false, reason: 'Choose how far ahead the agent may look from the list.' };

  const raw = form.calendars;
  const picked = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  const later = form[LATER_CALENDARS.name];
  // A client that named its calendars is never given the ones added later: the page offers no such box for it.
  if (later !== undefined && (later !== LATER_CALENDARS.value || offer.askedCalendars !== undefined)) return { ok: false, reason: 'Calendars added later were not offered.' };
  const offered = (names: readonly string[]) => (offer.askedCalendars ? names.filter((c) => offer.askedCalendars!.includes(c)) : [...names]);
  // The ticks are read against the list the page showed, kept with the request, never against the calendars there
  // are at Approve (found in review, s23new: "work" unticked, then removed before Approve, left "demo" the only
  // calendar, every one of them ticked, and the grant became all, later ones too; "work" added back was read).
  const listed = offered(offer.calendarsShown);
  const available = offered(offer.userCalendars);
  // No calendar to choose from on the page: the limit is what the client asked (all, now and later, when it asked for
  // none), within what the grant allows today on a step-up, as the page says in words. Found in review (s25new): a
  // step-up asking one more scope, under a grant limited to `demo`, became "all calendars, including ones added later"
  // on an Approve as preset, on a page that said it started from what was allowed before.
  if (listed.length === 0 && picked.length === 0) {
    const calendars = untickedCalendars(offer.askedCalendars, current);
    if (calendars?.length === 0) return { ok: false, reason: NONE_IN_COMMON };
    return { ok: true, choices: { calendars, lookaheadDays, expiresDays, maxDepth } };
  }
  if (picked.length === 0) return { ok: false, reason: 'Choose at least one calendar the agent may look at.' };
  if (picked.some((c) => !listed.includes(c) || !available.includes(c))) return { ok: false, reason: 'One of the calendars chosen was not offered.' };
  // "Later" with a listed calendar left out would allow a calendar added tomorrow but not one the user has today: it
  // is read as the narrower half, the names ticked alone, as the page says beside the box (an unticked calendar is
  // the person narrowing; the box left as preset is not a choice to widen). So is "later" when the user's calendars
  // changed after the page was shown: the page's "every calendar above" is no longer all of them.
  const all = later !== undefined && listed.every((c) => picked.includes(c)) && sameNames(listed, available);
  return { ok: true, choices: { calendars: all ? undefined : [...new Set(picked)], lookaheadDays, expiresDays, maxDepth } };
}

/** What a step-up page starts from: the user's current grant's limits, the narrowest of its entries (pageOffer). */
export interface CurrentLimits {
  /** Undefined: all calendars, including ones added later. */
  calendars: readonly string[] | undefined;
  lookaheadDays: number | undefined;
  maxDepth: number;
}

/** Why Approve is refused when the page had no calendar to tick and none is both asked and allowed today. */
export const NONE_IN_COMMON =
  'It asks only for calendars you did not allow it before, and this page had none of yours to choose from: nothing was changed. To allow them, revoke this permission and sign in again.';

/**
 * The calendars an Approve allows where the page lists none to tick: what was asked (undefined: all, now and later),
 * within what the grant allows today on a step-up. An empty list when none is both (the page says so; Approve is refused).
 */
export function untickedCalendars(asked: readonly string[] | undefined, current: CurrentLimits | undefined): string[] | undefined {
  const allowed = current?.calendars;
  if (!allowed) return asked ? [...asked] : undefined;
  return asked ? asked.filter((c) => allowed.includes(c)) : [...allowed];
}

/** The lookahead the page preselects: on a step-up the longest choice within today's, else the default (or the longest asked). */
export function presetLookahead(asked: number | undefined, current: CurrentLimits | undefined): number {
  const options = lookaheadOptions(asked);
  if (current?.lookaheadDays !== undefined) return atMost(options, current.lookaheadDays);
  return options.includes(DEFAULT_LOOKAHEAD_DAYS) ? DEFAULT_LOOKAHEAD_DAYS : options[options.length - 1]!;
}

/**
 * The depth the page preselects: on a step-up the grant's, else no helper agent. Least privilege: a first consent starts
 * from no helper agent (found in review: it started from the deepest hand-off offered, so an Approve alone let
 * CalendarAgent hand the user's delegation on).
 */
export function presetDepth(maxDepth: number, current: CurrentLimits | undefined): number {
  const depths = DEPTH_CHOICES.filter((d) => d <= maxDepth);
  return current ? atMost(depths, current.maxDepth) : depths[0]!;
}

/** The largest choice no wider than `limit`, else the narrowest one. */
function atMost(choices: readonly number[], limit: number): number {
  return [...choices].reverse().find((c) => c <= limit) ?? choices[0]!;
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name) => b.includes(name));
}

/** A calendar detail narrowed by the user's choices. */
export function applyChoices(detail: CalendarDetail, choices: ConsentChoices): CalendarDetail {
  const { calendars: _c, lookahead_days: _l, ...rest } = detail;
  return {
    ...rest,
    ...(choices.calendars ? { calendars: choices.calendars } : {}),
    lookahead_days: choices.lookaheadDays,
  };
}
