// The time zones a calendar defines (VTIMEZONE), handed to ical.js by TZID.
// ical.js looks a TZID up by scanning every VTIMEZONE of the calendar and
// remembers only the zones it finds, so a calendar of many zones and many
// times in a TZID it lacks cost zones × times (review s23feeds: 20,000 of each,
// 3 MB, held a /freebusy read 179 s); here the zones are in a Map built once,
// and a TZID that is not there costs one look-up. Each zone converts only
// years up to ZONE_LAST_YEAR, so that ical.js never expands it further than
// ics-zone-rules.ts counted.
import ICAL from 'ical.js';
import { ZONE_LAST_YEAR } from './ics-zone-rules.js';

/** Years in which the Gregorian calendar repeats its dates and weekdays. */
const CYCLE_YEARS = 400;

/** A VTIMEZONE's zone that reads a time past ZONE_LAST_YEAR as the same time a whole number of 400-year cycles earlier. */
class BoundedTimezone extends ICAL.Timezone {
  override utcOffset(tt: ICAL.Time): number {
    if (tt.year <= ZONE_LAST_YEAR) return super.utcOffset(tt);
    const earlier = tt.clone();
    earlier.year -= CYCLE_YEARS * Math.ceil((tt.year - ZONE_LAST_YEAR) / CYCLE_YEARS);
    return super.utcOffset(earlier);
  }
}

/** A VCALENDAR whose components find their TZIDs' zones in `zones` (its VTIMEZONEs by TZID, the first of a TZID kept). */
export class ZoneCalendar extends ICAL.Component {
  constructor(
    jCal: unknown[],
    private readonly zones: ReadonlyMap<string, ICAL.Timezone>,
  ) {
    super(jCal);
  }

  override getTimeZoneByID(tzid: string): ICAL.Timezone {
    // ical.js's own answer for a TZID it does not find is null too.
    return this.zones.get(tzid) ?? (null as unknown as ICAL.Timezone);
  }
}

/** Adds a parsed VTIMEZONE to `zones` under its TZID, unless an earlier one has that TZID (ical.js used the first). */
export function addZone(zones: Map<string, ICAL.Timezone>, component: ICAL.Component, tzid: string): void {
  if (!zones.has(tzid)) zones.set(tzid, new BoundedTimezone({ component, tzid }));
}
