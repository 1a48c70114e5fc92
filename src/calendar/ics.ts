// ICS calendars as busy time: parse a file's text once (parseCalendar, which
// does not depend on the window or the owner's zone, so the result can be
// cached; parseCalendarCooperatively in a server), then expand it into the busy intervals of any window (expandBusy;
// expandBusyCooperatively in a server, letting other requests run meanwhile).
// Errors are CalendarSourceError, naming the calendar and the line.
//
// What counts as busy: events and VFREEBUSY periods, except TRANSP:TRANSPARENT
// and STATUS:CANCELLED (free); STATUS:TENTATIVE and FBTYPE=BUSY-TENTATIVE are
// busy unless `tentative: 'free'` is asked for. All-day events make the
// owner's whole local day busy. Floating times are read in the owner's zone.
import { expandInstances, expandInstancesCooperatively, type EventInstance, type ExpandOptions } from './ics-expand.js';
import type { ParsedCalendar } from './ics-parse.js';
import { clipIntervals, type Interval } from './intervals.js';

export { parseCalendar, parseCalendarCooperatively } from './ics-parse.js';
export { MAX_CALENDAR_COMPONENTS, MAX_COMPONENT_SIZE } from './ics-text.js';
export type { Availability, ParsedCalendar } from './ics-parse.js';
export { expandInstances, expandInstancesCooperatively, DEFAULT_MAX_ITERATIONS, DEFAULT_MAX_ITERATIONS_PER_SERIES } from './ics-expand.js';
export type { EventInstance, ExpandOptions } from './ics-expand.js';

export interface BusyOptions extends ExpandOptions {
  /** Whether tentative events count as busy (the default) or free. */
  tentative?: 'busy' | 'free';
}

/** The busy time of `calendar` inside `window` [start, end): merged, sorted, clipped to the window. */
export function expandBusy(calendar: ParsedCalendar, window: Interval, options: BusyOptions): Interval[] {
  return busyOf(expandInstances(calendar, window, options), window, options);
}

/** expandBusy, letting the event loop run every few milliseconds of work (expandInstancesCooperatively). */
export async function expandBusyCooperatively(calendar: ParsedCalendar, window: Interval, options: BusyOptions): Promise<Interval[]> {
  return busyOf(await expandInstancesCooperatively(calendar, window, options), window, options);
}

function busyOf(instances: EventInstance[], window: Interval, options: BusyOptions): Interval[] {
  const countTentative = (options.tentative ?? 'busy') === 'busy';
  const busy = instances.filter((i) => i.availability === 'busy' || (i.availability === 'tentative' && countTentative));
  return clipIntervals(busy, window);
}
