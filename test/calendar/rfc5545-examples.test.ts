// Every RRULE example of RFC 5545 §3.8.5.3, run through the project's own
// expansion (parseCalendar + expandInstances, as expandBusy uses them) in the
// RFC's own zone, America/New_York without a VTIMEZONE, and compared with the
// dates the RFC lists. The text was taken from the RFC (§3.8.5.3, "Example:
// All examples assume the Eastern United States time zone"), with verified
// erratum 3883 applied (the "every 3 hours" example's UNTIL 170000Z is 1 PM
// EDT; the corrected rule says 210000Z). A rule that ends (COUNT, UNTIL) is
// expanded over twelve years and must give exactly the listed instances; one
// that goes on forever ("...") is compared up to its last listed instance.
// A rule the project refuses (with the line, as ERR_ICS_RULE) is not a wrong
// answer, and is listed as refused.
import { describe, expect, it } from 'vitest';
import { CalendarSourceError } from '../../src/calendar/errors.js';
import { expandInstances, parseCalendar } from '../../src/calendar/ics.js';
import { DAY_MS, fromWall, toWall } from '../../src/calendar/zone.js';

const ZONE = 'America/New_York';

interface Example {
  title: string;
  dtstart: string;
  /** Each form the RFC gives ("or"), each checked on its own. */
  rules: string[];
  exdate?: string;
  /** Local New York times, "YYYY-MM-DD HH:MM". */
  expected: string[];
  /** The rule goes on past what the RFC lists. */
  forever?: boolean;
  /** The forms the project refuses (ERR_ICS_RULE), by index into `rules`. */
  refused?: number[];
}

const pad = (n: number) => String(n).padStart(2, '0');
const range = (from: number, to: number, step = 1) => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);
/** The listed days of one month, at 09:00 unless told. */
const on = (year: number, month: number, days: number[], time = '09:00') => days.map((d) => `${year}-${pad(month)}-${pad(d)} ${time}`);
const at = (date: string, times: string[]) => times.map((t) => `${date} ${t}`);

const EXAMPLES: Example[] = [
  { title: 'Daily for 10 occurrences', dtstart: '19970902T090000', rules: ['FREQ=DAILY;COUNT=10'], expected: on(1997, 9, range(2, 11)) },
  {
    title: 'Daily until December 24, 1997',
    dtstart: '19970902T090000',
    rules: ['FREQ=DAILY;UNTIL=19971224T000000Z'],
    expected: [...on(1997, 9, range(2, 30)), ...on(1997, 10, range(1, 31)), ...on(1997, 11, range(1, 30)), ...on(1997, 12, range(1, 23))],
  },
  {
    title: 'Every other day - forever',
    dtstart: '19970902T090000',
    rules: ['FREQ=DAILY;INTERVAL=2'],
    forever: true,
    expected: [...on(1997, 9, range(2, 30, 2)), ...on(1997, 10, range(2, 30, 2)), ...on(1997, 11, range(1, 29, 2)), ...on(1997, 12, [1, 3])],
  },
  {
    title: 'Every 10 days, 5 occurrences',
    dtstart: '19970902T090000',
    rules: ['FREQ=DAILY;INTERVAL=10;COUNT=5'],
    expected: [...on(1997, 9, [2, 12, 22]), ...on(1997, 10, [2, 12])],
  },
  {
    title: 'Every day in January, for 3 years',
    dtstart: '19980101T090000',
    rules: ['FREQ=YEARLY;UNTIL=20000131T140000Z;BYMONTH=1;BYDAY=SU,MO,TU,WE,TH,FR,SA', 'FREQ=DAILY;UNTIL=20000131T140000Z;BYMONTH=1'],
    expected: [...on(1998, 1, range(1, 31)), ...on(1999, 1, range(1, 31)), ...on(2000, 1, range(1, 31))],
  },
  {
    title: 'Weekly for 10 occurrences',
    dtstart: '19970902T090000',
    rules: ['FREQ=WEEKLY;COUNT=10'],
    expected: [...on(1997, 9, [2, 9, 16, 23, 30]), ...on(1997, 10, [7, 14, 21, 28]), ...on(1997, 11, [4])],
  },
  {
    title: 'Weekly until December 24, 1997',
    dtstart: '19970902T090000',
    rules: ['FREQ=WEEKLY;UNTIL=19971224T000000Z'],
    expected: [...on(1997, 9, [2, 9, 16, 23, 30]), ...on(1997, 10, [7, 14, 21, 28]), ...on(1997, 11, [4, 11, 18, 25]), ...on(1997, 12, [2, 9, 16, 23])],
  },
  {
    title: 'Every other week - forever',
    dtstart: '19970902T090000',
    rules: ['FREQ=WEEKLY;INTERVAL=2;WKST=SU'],
    forever: true,
    expected: [
      ...on(1997, 9, [2, 16, 30]),
      ...on(1997, 10, [14, 28]),
      ...on(1997, 11, [11, 25]),
      ...on(1997, 12, [9, 23]),
      ...on(1998, 1, [6, 20]),
      ...on(1998, 2, [3, 17]),
    ],
  },
  {
    title: 'Weekly on Tuesday and Thursday for five weeks',
    dtstart: '19970902T090000',
    rules: ['FREQ=WEEKLY;UNTIL=19971007T000000Z;WKST=SU;BYDAY=TU,TH', 'FREQ=WEEKLY;COUNT=10;WKST=SU;BYDAY=TU,TH'],
    expected: [...on(1997, 9, [2, 4, 9, 11, 16, 18, 23, 25, 30]), ...on(1997, 10, [2])],
  },
  {
    title: 'Every other week on Monday, Wednesday, and Friday until December 24, 1997, starting on Monday, September 1, 1997',
    dtstart: '19970901T090000',
    rules: ['FREQ=WEEKLY;INTERVAL=2;UNTIL=19971224T000000Z;WKST=SU;BYDAY=MO,WE,FR'],
    expected: [
      ...on(1997, 9, [1, 3, 5, 15, 17, 19, 29]),
      ...on(1997, 10, [1, 3, 13, 15, 17, 27, 29, 31]),
      ...on(1997, 11, [10, 12, 14, 24, 26, 28]),
      ...on(1997, 12, [8, 10, 12, 22]),
    ],
  },
  {
    title: 'Every other week on Tuesday and Thursday, for 8 occurrences',
    dtstart: '19970902T090000',
    rules: ['FREQ=WEEKLY;INTERVAL=2;COUNT=8;WKST=SU;BYDAY=TU,TH'],
    expected: [...on(1997, 9, [2, 4, 16, 18, 30]), ...on(1997, 10, [2, 14, 16])],
  },
  {
    title: 'Monthly on the first Friday for 10 occurrences',
    dtstart: '19970905T090000',
    rules: ['FREQ=MONTHLY;COUNT=10;BYDAY=1FR'],
    expected: [
      ...on(1997, 9, [5]),
      ...on(1997, 10, [3]),
      ...on(1997, 11, [7]),
      ...on(1997, 12, [5]),
      ...on(1998, 1, [2]),
      ...on(1998, 2, [6]),
      ...on(1998, 3, [6]),
      ...on(1998, 4, [3]),
      ...on(1998, 5, [1]),
      ...on(1998, 6, [5]),
    ],
  },
  {
    title: 'Monthly on the first Friday until December 24, 1997',
    dtstart: '19970905T090000',
    rules: ['FREQ=MONTHLY;UNTIL=19971224T000000Z;BYDAY=1FR'],
    expected: [...on(1997, 9, [5]), ...on(1997, 10, [3]), ...on(1997, 11, [7]), ...on(1997, 12, [5])],
  },
  {
    title: 'Every other month on the first and last Sunday of the month for 10 occurrences',
    dtstart: '19970907T090000',
    rules: ['FREQ=MONTHLY;INTERVAL=2;COUNT=10;BYDAY=1SU,-1SU'],
    expected: [...on(1997, 9, [7, 28]), ...on(1997, 11, [2, 30]), ...on(1998, 1, [4, 25]), ...on(1998, 3, [1, 29]), ...on(1998, 5, [3, 31])],
  },
  {
    title: 'Monthly on the second-to-last Monday of the month for 6 months',
    dtstart: '19970922T090000',
    rules: ['FREQ=MONTHLY;COUNT=6;BYDAY=-2MO'],
    expected: [...on(1997, 9, [22]), ...on(1997, 10, [20]), ...on(1997, 11, [17]), ...on(1997, 12, [22]), ...on(1998, 1, [19]), ...on(1998, 2, [16])],
  },
  {
    title: 'Monthly on the third-to-the-last day of the month, forever',
    dtstart: '19970928T090000',
    rules: ['FREQ=MONTHLY;BYMONTHDAY=-3'],
    forever: true,
    expected: [...on(1997, 9, [28]), ...on(1997, 10, [29]), ...on(1997, 11, [28]), ...on(1997, 12, [29]), ...on(1998, 1, [29]), ...on(1998, 2, [26])],
  },
  {
    title: 'Monthly on the 2nd and 15th of the month for 10 occurrences',
    dtstart: '19970902T090000',
    rules: ['FREQ=MONTHLY;COUNT=10;BYMONTHDAY=2,15'],
    expected: [...on(1997, 9, [2, 15]), ...on(1997, 10, [2, 15]), ...on(1997, 11, [2, 15]), ...on(1997, 12, [2, 15]), ...on(1998, 1, [2, 15])],
  },
  {
    title: 'Monthly on the first and last day of the month for 10 occurrences',
    dtstart: '19970930T090000',
    rules: ['FREQ=MONTHLY;COUNT=10;BYMONTHDAY=1,-1'],
    expected: [...on(1997, 9, [30]), ...on(1997, 10, [1, 31]), ...on(1997, 11, [1, 30]), ...on(1997, 12, [1, 31]), ...on(1998, 1, [1, 31]), ...on(1998, 2, [1])],
  },
  {
    title: 'Every 18 months on the 10th thru 15th of the month for 10 occurrences',
    dtstart: '19970910T090000',
    rules: ['FREQ=MONTHLY;INTERVAL=18;COUNT=10;BYMONTHDAY=10,11,12,13,14,15'],
    expected: [...on(1997, 9, range(10, 15)), ...on(1999, 3, range(10, 13))],
  },
  {
    title: 'Every Tuesday, every other month',
    dtstart: '19970902T090000',
    rules: ['FREQ=MONTHLY;INTERVAL=2;BYDAY=TU'],
    forever: true,
    expected: [...on(1997, 9, [2, 9, 16, 23, 30]), ...on(1997, 11, [4, 11, 18, 25]), ...on(1998, 1, [6, 13, 20, 27]), ...on(1998, 3, [3, 10, 17, 24, 31])],
  },
  {
    title: 'Yearly in June and July for 10 occurrences',
    dtstart: '19970610T090000',
    rules: ['FREQ=YEARLY;COUNT=10;BYMONTH=6,7'],
    expected: range(1997, 2001).flatMap((y) => [...on(y, 6, [10]), ...on(y, 7, [10])]),
  },
  {
    title: 'Every other year on January, February, and March for 10 occurrences',
    dtstart: '19970310T090000',
    rules: ['FREQ=YEARLY;INTERVAL=2;COUNT=10;BYMONTH=1,2,3'],
    expected: [...on(1997, 3, [10]), ...[1999, 2001, 2003].flatMap((y) => [...on(y, 1, [10]), ...on(y, 2, [10]), ...on(y, 3, [10])])],
  },
  {
    title: 'Every third year on the 1st, 100th, and 200th day for 10 occurrences',
    dtstart: '19970101T090000',
    rules: ['FREQ=YEARLY;INTERVAL=3;COUNT=10;BYYEARDAY=1,100,200'],
    expected: [
      ...on(1997, 1, [1]),
      ...on(1997, 4, [10]),
      ...on(1997, 7, [19]),
      ...on(2000, 1, [1]),
      ...on(2000, 4, [9]),
      ...on(2000, 7, [18]),
      ...on(2003, 1, [1]),
      ...on(2003, 4, [10]),
      ...on(2003, 7, [19]),
      ...on(2006, 1, [1]),
    ],
  },
  {
    title: 'Every 20th Monday of the year, forever',
    dtstart: '19970519T090000',
    rules: ['FREQ=YEARLY;BYDAY=20MO'],
    forever: true,
    expected: [...on(1997, 5, [19]), ...on(1998, 5, [18]), ...on(1999, 5, [17])],
  },
  {
    title: 'Monday of week number 20 (where the default start of the week is Monday), forever',
    dtstart: '19970512T090000',
    rules: ['FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO'],
    forever: true,
    expected: [...on(1997, 5, [12]), ...on(1998, 5, [11]), ...on(1999, 5, [17])],
  },
  {
    title: 'Every Thursday in March, forever',
    dtstart: '19970313T090000',
    rules: ['FREQ=YEARLY;BYMONTH=3;BYDAY=TH'],
    forever: true,
    expected: [...on(1997, 3, [13, 20, 27]), ...on(1998, 3, [5, 12, 19, 26]), ...on(1999, 3, [4, 11, 18, 25])],
  },
  {
    title: 'Every Thursday, but only during June, July, and August, forever',
    dtstart: '19970605T090000',
    rules: ['FREQ=YEARLY;BYDAY=TH;BYMONTH=6,7,8'],
    forever: true,
    expected: [
      ...on(1997, 6, [5, 12, 19, 26]),
      ...on(1997, 7, [3, 10, 17, 24, 31]),
      ...on(1997, 8, [7, 14, 21, 28]),
      ...on(1998, 6, [4, 11, 18, 25]),
      ...on(1998, 7, [2, 9, 16, 23, 30]),
      ...on(1998, 8, [6, 13, 20, 27]),
      ...on(1999, 6, [3, 10, 17, 24]),
      ...on(1999, 7, [1, 8, 15, 22, 29]),
      ...on(1999, 8, [5, 12, 19, 26]),
    ],
  },
  {
    title: 'Every Friday the 13th, forever',
    dtstart: '19970902T090000',
    exdate: '19970902T090000',
    rules: ['FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13'],
    forever: true,
    expected: [...on(1998, 2, [13]), ...on(1998, 3, [13]), ...on(1998, 11, [13]), ...on(1999, 8, [13]), ...on(2000, 10, [13])],
  },
  {
    title: 'The first Saturday that follows the first Sunday of the month, forever',
    dtstart: '19970913T090000',
    rules: ['FREQ=MONTHLY;BYDAY=SA;BYMONTHDAY=7,8,9,10,11,12,13'],
    forever: true,
    expected: [
      ...on(1997, 9, [13]),
      ...on(1997, 10, [11]),
      ...on(1997, 11, [8]),
      ...on(1997, 12, [13]),
      ...on(1998, 1, [10]),
      ...on(1998, 2, [7]),
      ...on(1998, 3, [7]),
      ...on(1998, 4, [11]),
      ...on(1998, 5, [9]),
      ...on(1998, 6, [13]),
    ],
  },
  {
    title: 'Every 4 years, the first Tuesday after a Monday in November, forever (U.S. Presidential Election day)',
    dtstart: '19961105T090000',
    rules: ['FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8'],
    forever: true,
    expected: [...on(1996, 11, [5]), ...on(2000, 11, [7]), ...on(2004, 11, [2])],
  },
  {
    title: 'The third instance into the month of one of Tuesday, Wednesday, or Thursday, for the next 3 months',
    dtstart: '19970904T090000',
    rules: ['FREQ=MONTHLY;COUNT=3;BYDAY=TU,WE,TH;BYSETPOS=3'],
    expected: [...on(1997, 9, [4]), ...on(1997, 10, [7]), ...on(1997, 11, [6])],
  },
  {
    title: 'The second-to-last weekday of the month',
    dtstart: '19970929T090000',
    rules: ['FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2'],
    forever: true,
    expected: [...on(1997, 9, [29]), ...on(1997, 10, [30]), ...on(1997, 11, [27]), ...on(1997, 12, [30]), ...on(1998, 1, [29]), ...on(1998, 2, [26]), ...on(1998, 3, [30])],
  },
  {
    title: 'Every 3 hours from 9:00 AM to 5:00 PM on a specific day (erratum 3883: UNTIL 210000Z)',
    dtstart: '19970902T090000',
    rules: ['FREQ=HOURLY;INTERVAL=3;UNTIL=19970902T210000Z'],
    expected: at('1997-09-02', ['09:00', '12:00', '15:00']),
  },
  {
    title: 'Every 15 minutes for 6 occurrences',
    dtstart: '19970902T090000',
    rules: ['FREQ=MINUTELY;INTERVAL=15;COUNT=6'],
    expected: at('1997-09-02', ['09:00', '09:15', '09:30', '09:45', '10:00', '10:15']),
  },
  {
    title: 'Every hour and a half for 4 occurrences',
    dtstart: '19970902T090000',
    rules: ['FREQ=MINUTELY;INTERVAL=90;COUNT=4'],
    expected: at('1997-09-02', ['09:00', '10:30', '12:00', '13:30']),
  },
  {
    title: 'Every 20 minutes from 9:00 AM to 4:40 PM every day',
    dtstart: '19970902T090000',
    rules: ['FREQ=DAILY;BYHOUR=9,10,11,12,13,14,15,16;BYMINUTE=0,20,40', 'FREQ=MINUTELY;INTERVAL=20;BYHOUR=9,10,11,12,13,14,15,16'],
    forever: true,
    // A MINUTELY rule with BYHOUR is refused on purpose (SECURITY.md: a day of minutes between matches).
    refused: [1],
    expected: ['1997-09-02', '1997-09-03'].flatMap((d) => at(d, range(9, 16).flatMap((h) => [`${pad(h)}:00`, `${pad(h)}:20`, `${pad(h)}:40`]))),
  },
  {
    title: 'An example where the days generated makes a difference because of WKST (MO)',
    dtstart: '19970805T090000',
    rules: ['FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO'],
    expected: on(1997, 8, [5, 10, 19, 24]),
  },
  {
    title: 'changing only WKST from MO to SU, yields different results',
    dtstart: '19970805T090000',
    rules: ['FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU'],
    expected: on(1997, 8, [5, 17, 19, 31]),
  },
  {
    title: 'An example where an invalid date (i.e., February 30) is ignored',
    dtstart: '20070115T090000',
    rules: ['FREQ=MONTHLY;BYMONTHDAY=15,30;COUNT=5'],
    expected: [...on(2007, 1, [15, 30]), ...on(2007, 2, [15]), ...on(2007, 3, [15, 30])],
  },
];

function calendarText(example: Example, rule: string): string {
  return [
    'BEGIN:VCALENDAR',
    'VERSION:2.0',
    'PRODID:-//delegate tests//RFC 5545 examples//EN',
    'BEGIN:VEVENT',
    'UID:rfc5545-example@test',
    'DTSTAMP:20250101T000000Z',
    `DTSTART;TZID=${ZONE}:${example.dtstart}`,
    'DURATION:PT1M',
    ...(example.exdate ? [`EXDATE;TZID=${ZONE}:${example.exdate}`] : []),
    `RRULE:${rule}`,
    'END:VEVENT',
    'END:VCALENDAR',
    '',
  ].join('\r\n');
}

/** "YYYY-MM-DD HH:MM" on New York's clock. */
function local(instant: number): string {
  return new Date(toWall(instant, ZONE)).toISOString().slice(0, 16).replace('T', ' ');
}

function wallOfLocal(text: string): number {
  return Date.parse(`${text.replace(' ', 'T')}:00Z`);
}

/** The instances' starts, in New York, of the rule over the window the example's listing covers. */
function expand(example: Example, rule: string): string[] {
  const calendar = parseCalendar(calendarText(example, rule), 'rfc5545');
  const start = fromWall(wallOfLocal(`${example.dtstart.slice(0, 4)}-${example.dtstart.slice(4, 6)}-${example.dtstart.slice(6, 8)} 00:00`), ZONE);
  const last = fromWall(wallOfLocal(example.expected[example.expected.length - 1]!), ZONE);
  // A rule that ends is expanded well past its end; one that does not, up to its last listed instance.
  const end = example.forever ? last + 1 : start + 12 * 366 * DAY_MS;
  return expandInstances(calendar, { start, end }, { timeZone: 'Europe/Berlin' })
    .map((i) => i.start)
    .sort((a, b) => a - b)
    .map(local);
}

describe('RFC 5545 §3.8.5.3: every RRULE example, expanded in America/New_York', () => {
  const cases = EXAMPLES.flatMap((example) => example.rules.map((rule, index) => ({ example, rule, refused: example.refused?.includes(index) ?? false })));

  it.each(cases.filter((c) => !c.refused).map((c) => [c.example.title, c.rule, c.example] as const))('%s: %s', (_title, rule, example) => {
    expect(expand(example, rule)).toEqual(example.expected);
  });

  it.each(cases.filter((c) => c.refused).map((c) => [c.example.title, c.rule, c.example] as const))(
    '%s: %s is refused with its line, never answered wrongly',
    (_title, rule, example) => {
      let error: unknown;
      try {
        expand(example, rule);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(CalendarSourceError);
      const ruleLine = calendarText(example, rule).split('\r\n').indexOf(`RRULE:${rule}`) + 1;
      expect([(error as CalendarSourceError).code, (error as CalendarSourceError).line]).toEqual(['ERR_ICS_RULE', ruleLine]);
    },
  );
});
