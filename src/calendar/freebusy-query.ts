// What a `GET /freebusy` request asks for besides its window: which of the
// user's calendars (`calendar`, repeatable; all by default), whether tentative
// events count as busy (`tentative=busy|free`), and what a calendar that
// cannot be read does to the answer (`on_calendar_error=fail|skip`). Read and
// checked here so the backend's handler stays a sequence of steps. Pure.
import type { CalendarRef } from './sources.js';

export type TentativeMode = 'busy' | 'free';
export type CalendarErrorMode = 'fail' | 'skip';

export interface FreeBusySelection {
  /** Calendar names asked for; undefined means every calendar of the user. */
  calendars?: string[];
  tentative?: TentativeMode;
  onCalendarError?: CalendarErrorMode;
}

/** The query parameters a caller (CalendarAgent) sends for a selection. */
export function selectionParams(selection: FreeBusySelection): Array<[string, string]> {
  const params: Array<[string, string]> = [];
  for (const name of selection.calendars ?? []) params.push(['calendar', name]);
  if (selection.tentative) params.push(['tentative', selection.tentative]);
  if (selection.onCalendarError) params.push(['on_calendar_error', selection.onCalendarError]);
  return params;
}

/** The selection in a request's query, or what is wrong with it. */
export function readSelection(query: Record<string, string | string[] | undefined>): FreeBusySelection | { problem: string } {
  const selection: FreeBusySelection = {};
  const names = query.calendar;
  if (names !== undefined) {
    const list = (Array.isArray(names) ? names : [names]).map((n) => n.trim());
    if (list.some((n) => n === '')) return { problem: 'A "calendar" parameter is empty.' };
    selection.calendars = [...new Set(list)];
  }
  const tentative = single(query, 'tentative');
  if (typeof tentative === 'object') return tentative;
  if (tentative !== undefined) {
    if (tentative !== 'busy' && tentative !== 'free') return { problem: '"tentative" must be busy or free.' };
    selection.tentative = tentative;
  }
  const onError = single(query, 'on_calendar_error');
  if (typeof onError === 'object') return onError;
  if (onError !== undefined) {
    if (onError !== 'fail' && onError !== 'skip') return { problem: '"on_calendar_error" must be fail or skip.' };
    selection.onCalendarError = onError;
  }
  return selection;
}

/**
 * The calendars a selection names, in the user's order, out of `covered`: those of the user's calendars that the
 * delegation covers (all of them when it names none). A name none of them has is a problem, which lists only
 * `covered`: a token holder learns nothing of the calendars its delegation does not cover, not their names, not their
 * count (found in review s23deleg: a grant for "work" alone, after `calendar remove work`, was told "the calendars
 * are 'secret', 'medical'"). A name outside the delegation never gets here (permittedCalendars refuses it first,
 * whether such a calendar exists or not).
 */
export function chooseCalendars<T extends CalendarRef>(covered: readonly T[], names: readonly string[] | undefined, delegated: boolean): T[] | { problem: string } {
  if (names === undefined) return [...covered];
  const unknown = names.filter((n) => !covered.some((c) => c.name === n));
  if (unknown.length > 0) {
    const known = covered.map((c) => `"${c.name}"`).join(', ');
    const which = !delegated ? `the calendars are ${known || 'none'}` : known ? `of those the delegation allows, the calendars are ${known}` : 'none of those the delegation allows exists';
    return { problem: `No calendar named ${unknown.map((n) => `"${n}"`).join(', ')}; ${which}.` };
  }
  return covered.filter((c) => names.includes(c.name));
}

function single(query: Record<string, string | string[] | undefined>, name: string): string | undefined | { problem: string } {
  const value = query[name];
  if (Array.isArray(value)) return { problem: `The "${name}" parameter must be given once.` };
  return value === undefined || value === '' ? undefined : value;
}
