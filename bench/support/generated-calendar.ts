// A large calendar written as Google Calendar writes one, years of it as an
// export holds them, generated from a seed so that every run measures the
// same thing: VTIMEZONEs for
// Europe/Berlin and America/New_York, timed events in both, in UTC and all
// day; recurring series of every common shape (weekly on one or two days,
// weekday stand-ups, every other week, monthly on the first Tuesday or a
// day of the month, yearly, daily with COUNT), some with UNTIL, EXDATEs and
// a moved instance; transparent, tentative and cancelled events among them.

export interface GeneratedCalendar {
  text: string;
  events: number;
  series: number;
}

export interface GenerateOptions {
  seed: number;
  /** VEVENTs in all (series masters, overrides and single events). */
  events: number;
  /** The share of them that are recurring series. */
  seriesShare: number;
  /** The window searched; events start from `historyYears` before it to its end. */
  windowStart: number;
  windowEnd: number;
  historyYears: number;
  /** The share of series that never end (the rest end by COUNT or UNTIL). */
  openEndedShare: number;
}

/** mulberry32: small, fast, and the same everywhere. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BERLIN = [
  'BEGIN:VTIMEZONE',
  'TZID:Europe/Berlin',
  'X-LIC-LOCATION:Europe/Berlin',
  'BEGIN:DAYLIGHT',
  'TZOFFSETFROM:+0100',
  'TZOFFSETTO:+0200',
  'TZNAME:CEST',
  'DTSTART:19700329T020000',
  'RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU',
  'END:DAYLIGHT',
  'BEGIN:STANDARD',
  'TZOFFSETFROM:+0200',
  'TZOFFSETTO:+0100',
  'TZNAME:CET',
  'DTSTART:19701025T030000',
  'RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU',
  'END:STANDARD',
  'END:VTIMEZONE',
];

const NEW_YORK = [
  'BEGIN:VTIMEZONE',
  'TZID:America/New_York',
  'X-LIC-LOCATION:America/New_York',
  'BEGIN:DAYLIGHT',
  'TZOFFSETFROM:-0500',
  'TZOFFSETTO:-0400',
  'TZNAME:EDT',
  'DTSTART:20070311T020000',
  'RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU',
  'END:DAYLIGHT',
  'BEGIN:STANDARD',
  'TZOFFSETFROM:-0400',
  'TZOFFSETTO:-0500',
  'TZNAME:EST',
  'DTSTART:20071104T020000',
  'RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU',
  'END:STANDARD',
  'END:VTIMEZONE',
];

const DAY = 86_400_000;
const WEEKDAYS = ['SU', 'MO', 'TU', 'WE', 'TH', 'FR', 'SA'];
const pad = (n: number) => String(n).padStart(2, '0');
const dateText = (ms: number) => {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}`;
};
const wallText = (ms: number) => {
  const d = new Date(ms);
  return `${dateText(ms)}T${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}00`;
};

export function generateCalendar(options: GenerateOptions): GeneratedCalendar {
  const rnd = random(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)]!;
  const int = (min: number, max: number) => min + Math.floor(rnd() * (max - min + 1));
  const span = options.windowEnd - options.windowStart;
  const earliest = options.windowStart - options.historyYears * 365 * DAY;

  const lines = ['BEGIN:VCALENDAR', 'PRODID:-//Google Inc//Google Calendar 70.9054//EN', 'VERSION:2.0', 'CALSCALE:GREGORIAN', 'METHOD:PUBLISH', ...BERLIN, ...NEW_YORK];
  let events = 0;
  let series = 0;
  const seriesTarget = Math.round(options.events * options.seriesShare);

  const timing = (startDay: number, allDay: boolean) => {
    const zone = pick(['Europe/Berlin', 'Europe/Berlin', 'Europe/Berlin', 'America/New_York', 'UTC']);
    // Wall time as "UTC" fields: 08:00–18:45 in 15-minute steps.
    const wall = startDay + int(32, 75) * 15 * 60_000;
    const minutes = pick([15, 30, 30, 30, 45, 60, 60, 90, 120]);
    if (allDay) return { start: `DTSTART;VALUE=DATE:${dateText(startDay)}`, end: `DTEND;VALUE=DATE:${dateText(startDay + int(1, 3) * DAY)}`, wall, zone: 'date' };
    if (zone === 'UTC') return { start: `DTSTART:${wallText(wall)}Z`, end: `DTEND:${wallText(wall + minutes * 60_000)}Z`, wall, zone };
    const end = rnd() < 0.15 ? `DURATION:PT${minutes}M` : `DTEND;TZID=${zone}:${wallText(wall + minutes * 60_000)}`;
    return { start: `DTSTART;TZID=${zone}:${wallText(wall)}`, end, wall, zone };
  };
  const status = (allDay: boolean) => {
    const r = rnd();
    // All-day events are mostly free time (birthdays, holidays, reminders), as calendar programs default them.
    if (allDay) return r < 0.8 ? ['TRANSP:TRANSPARENT'] : [];
    return r < 0.06 ? ['TRANSP:TRANSPARENT'] : r < 0.1 ? ['STATUS:TENTATIVE'] : r < 0.12 ? ['STATUS:CANCELLED'] : [];
  };
  const stamp = (t: { wall: number; zone: string }, ms: number) =>
    t.zone === 'date' ? `;VALUE=DATE:${dateText(ms)}` : t.zone === 'UTC' ? `:${wallText(ms)}Z` : `;TZID=${t.zone}:${wallText(ms)}`;

  while (events < options.events) {
    const uid = `${events}-${Math.floor(rnd() * 1e9).toString(36)}@generated.delegate`;
    const startDay = Math.floor((earliest + rnd() * (options.windowEnd - earliest)) / DAY) * DAY;
    if (series < seriesTarget && events + 2 <= options.events) {
      series++;
      // Series start in the years before the window or in its first half.
      const seriesDay = Math.floor((earliest + rnd() * (options.windowStart - earliest + span / 2)) / DAY) * DAY;
      const t = timing(seriesDay, rnd() < 0.03);
      const allDay = t.zone === 'date';
      const weekday = WEEKDAYS[new Date(seriesDay).getUTCDay()]!;
      const kind = rnd();
      const shapes: Array<[number, string, number]> = [
        // [up to this share, RRULE, days between instances]
        [0.35, `FREQ=WEEKLY;BYDAY=${rnd() < 0.7 ? weekday : `${weekday},${pick(WEEKDAYS.slice(1, 6))}`}`, 7],
        [0.5, 'FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR', 1],
        [0.65, `FREQ=WEEKLY;INTERVAL=2;BYDAY=${weekday}`, 14],
        [0.8, rnd() < 0.5 ? 'FREQ=MONTHLY;BYDAY=1TU' : `FREQ=MONTHLY;BYMONTHDAY=${new Date(seriesDay).getUTCDate()}`, 30],
        [0.85, 'FREQ=YEARLY', 365],
        [1, `FREQ=DAILY;COUNT=${int(3, 30)}`, 1],
      ];
      const [, shapeRule, stepDays] = shapes.find(([share]) => kind < share)!;
      let rule = shapeRule;
      const end = rnd();
      if (!rule.includes('COUNT') && end >= options.openEndedShare) {
        if (end < (1 + options.openEndedShare) / 2) rule += `;COUNT=${int(5, 30)}`;
        else rule += `;UNTIL=${dateText(seriesDay + int(30, 180) * DAY)}T235959Z`;
      }
      const body = ['BEGIN:VEVENT', t.start, t.end, `RRULE:${rule}`, `DTSTAMP:20260101T000000Z`, `UID:${uid}`, ...status(allDay), 'SUMMARY:Generated series', 'END:VEVENT'];
      if (rnd() < 0.15 && stepDays <= 14) {
        const ex = [1, 2, 3].slice(0, int(1, 3)).map((k) => stamp(t, t.wall + k * stepDays * DAY));
        body.splice(4, 0, ...ex.map((e) => `EXDATE${e}`));
      }
      lines.push(...body);
      events++;
      if (rnd() < 0.12 && stepDays <= 14 && t.zone !== 'date') {
        // One instance moved by an hour (an override after its master, as Google writes them).
        const original = t.wall + int(1, 4) * stepDays * DAY;
        const moved = original + 3_600_000;
        lines.push(
          'BEGIN:VEVENT',
          `DTSTART${stamp(t, moved)}`,
          `DTEND${stamp(t, moved + 30 * 60_000)}`,
          'DTSTAMP:20260101T000000Z',
          `UID:${uid}`,
          `RECURRENCE-ID${stamp(t, original)}`,
          'SUMMARY:Generated series (moved)',
          'END:VEVENT',
        );
        events++;
      }
      continue;
    }
    const t = timing(startDay, rnd() < 0.05);
    lines.push('BEGIN:VEVENT', t.start, t.end, 'DTSTAMP:20260101T000000Z', `UID:${uid}`, ...status(t.zone === 'date'), 'SUMMARY:Generated event', 'END:VEVENT');
    events++;
  }
  lines.push('END:VCALENDAR', '');
  return { text: lines.join('\r\n'), events, series };
}
