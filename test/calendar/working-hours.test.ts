// Working hours as people write them: day ranges and lists, several ranges a
// day, later groups overriding earlier ones, "off", the config file's object
// form, the short form written back, and clear refusals.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SlotQueryError } from '../../src/calendar/errors.js';
import { DEFAULT_WORKING_HOURS } from '../../src/calendar/slots.js';
import { formatWorkingHours, parseWorkingHours, readWorkingHours } from '../../src/calendar/working-hours.js';

const h = (start: string, end: string) => ({ start, end });

describe('parseWorkingHours', () => {
  it('reads a range of days with one range of hours', () => {
    expect(parseWorkingHours('mon-fri 09:00-17:00')).toEqual(DEFAULT_WORKING_HOURS);
  });

  it('reads lists, wrapping ranges, several ranges a day, full names, en dashes and one-digit hours', () => {
    expect(parseWorkingHours('Monday,wed 9:00–12:00, 13:00-17:30; fri-sun 10:00-11:00')).toEqual({
      mon: [h('09:00', '12:00'), h('13:00', '17:30')],
      wed: [h('09:00', '12:00'), h('13:00', '17:30')],
      fri: [h('10:00', '11:00')],
      sat: [h('10:00', '11:00')],
      sun: [h('10:00', '11:00')],
    });
  });

  it('lets a later group override an earlier one, and "off" clear a day', () => {
    expect(parseWorkingHours('weekdays 08:00-16:00; fri 08:00-12:00; wed off')).toEqual({
      mon: [h('08:00', '16:00')],
      tue: [h('08:00', '16:00')],
      wed: [],
      thu: [h('08:00', '16:00')],
      fri: [h('08:00', '12:00')],
    });
    expect(parseWorkingHours('daily 00:00-24:00').sun).toEqual([h('00:00', '24:00')]);
  });

  it.each([
    ['', /no days/],
    ['09:00-17:00', /needs days and hours/],
    ['mon-fru 09:00-17:00', /"mon-fru" is not a weekday/],
    ['mon 9-17', /"9-17" is not a range of clock times/],
    ['mon 17:00-09:00', /Working hours on mon/],
    ['mon 09:00-25:00', /Working hours on mon/],
    // Names an object lookup finds on Object.prototype: once taken for days, and the day loop never ended.
    ['constructor 09:00-17:00', /"constructor" is not a weekday/],
    ['mon-__proto__ 09:00-17:00', /"mon-__proto__" is not a weekday/],
    ['toString-fri 09:00-17:00', /"tostring-fri" is not a weekday/],
  ])('refuses %j', (spec, message) => {
    let error: unknown;
    try {
      parseWorkingHours(spec);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SlotQueryError);
    expect((error as SlotQueryError).code).toBe('ERR_SLOT_WORKING_HOURS');
    expect((error as Error).message).toMatch(message);
  });
});

describe('readWorkingHours (config file)', () => {
  it('takes the string form or an object of weekdays', () => {
    expect(readWorkingHours('mon-fri 09:00-17:00')).toEqual(DEFAULT_WORKING_HOURS);
    expect(readWorkingHours({ 'mon-thu': '09:00-17:00', fri: ['09:00-12:00', '13:00-15:00'], sat: 'off' })).toEqual({
      mon: [h('09:00', '17:00')],
      tue: [h('09:00', '17:00')],
      wed: [h('09:00', '17:00')],
      thu: [h('09:00', '17:00')],
      fri: [h('09:00', '12:00'), h('13:00', '15:00')],
      sat: [],
    });
  });

  it('refuses anything else', () => {
    expect(() => readWorkingHours(42)).toThrow(SlotQueryError);
    expect(() => readWorkingHours({ mon: 9 })).toThrow(/must be strings/);
    expect(() => readWorkingHours(['mon 09:00-17:00'])).toThrow(SlotQueryError);
    expect(() => readWorkingHours(JSON.parse('{"__proto__": "09:00-17:00"}'))).toThrow(/is not a weekday/);
    expect(() => readWorkingHours({ constructor: '09:00-17:00' })).toThrow(/is not a weekday/);
  });
});

describe('formatWorkingHours', () => {
  it('joins consecutive days with the same hours, Monday first', () => {
    expect(formatWorkingHours(DEFAULT_WORKING_HOURS)).toBe('mon-fri 09:00-17:00');
    expect(formatWorkingHours({ sun: [h('10:00', '12:00')], mon: [h('09:00', '12:00'), h('13:00', '17:00')], fri: [h('09:00', '12:00')] })).toBe(
      'mon 09:00-12:00,13:00-17:00; fri 09:00-12:00; sun 10:00-12:00',
    );
    expect(formatWorkingHours({})).toBe('none');
  });

  it('round-trips through parseWorkingHours (property)', () => {
    const clock = fc.integer({ min: 0, max: 95 }).map((q) => `${String(Math.floor(q / 4)).padStart(2, '0')}:${String((q % 4) * 15).padStart(2, '0')}`);
    const day = fc.option(fc.tuple(clock, clock).filter(([a, b]) => a < b), { nil: undefined });
    fc.assert(
      fc.property(fc.tuple(day, day, day, day, day, day, day), (days) => {
        const names = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
        const hours = Object.fromEntries(days.flatMap((d, i) => (d ? [[names[i], [h(d[0], d[1])]]] : [])));
        const text = formatWorkingHours(hours);
        if (text === 'none') return;
        const back = parseWorkingHours(text);
        for (const name of names) expect([name, back[name] ?? []]).toEqual([name, hours[name] ?? []]);
      }),
    );
  });
});
