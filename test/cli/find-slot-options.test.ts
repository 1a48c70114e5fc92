// find-slot's search options on the command line: every bad value is a usage
// error (exit 2, one line on stderr) before anything leaves the terminal, and
// good ones reach find_slot as its parameters.
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/program.js';
import { slotSearchArgs } from '../../src/cli/slot-options.js';
import { fakeIo } from './fake-io.js';

describe('find-slot search options', () => {
  it.each([
    ['--within with --to', ['--within', '3d', '--to', '2026-12-05'], /cannot be used with option '--to/],
    ['a step that is not whole minutes', ['--step', '90s'], /whole minutes/],
    ['a step longer than a day', ['--step', '2d'], /longer than/],
    ['a buffer that is not a span', ['--buffer-before', 'soon'], /not a duration/],
    ['a negative-looking notice', ['--min-notice', '-1h'], /not a duration/],
    ['a window longer than 62 days', ['--within', '70d'], /longer than/],
    ['a limit of zero', ['--limit', '0'], /1 to 100/],
    ['a limit over the maximum', ['--limit', '101'], /1 to 100/],
    ['a limit that is not a number', ['--limit', 'all'], /1 to 100/],
    ['working hours without hours', ['--working-hours', 'mon-fri'], /needs days and hours/],
    ['working hours that end before they start', ['--working-hours', 'mon 17:00-09:00'], /Working hours on mon/],
    ['an unknown tentative mode', ['--tentative', 'maybe'], /Allowed choices are busy, free/],
    ['an unknown calendar-error mode', ['--on-calendar-error', 'ignore'], /Allowed choices are fail, skip/],
    ['an empty calendar name', ['--calendar', ' '], /may not be empty/],
  ])('refuses %s with exit code 2', async (_what, extra, message) => {
    const io = fakeIo({ DELEGATE_HOME: '/nonexistent/delegate-test' });
    const code = await runCli(['find-slot', '--duration', '30m', ...extra], io);
    expect(code).toBe(2);
    expect(io.out).toBe('');
    expect(io.err.trim().split('\n')).toHaveLength(1);
    expect(io.err).toMatch(message);
  });

  it('are handed on as find_slot parameters, calendars collected', () => {
    expect(
      slotSearchArgs({
        within: '3d',
        workingHours: 'mon-fri 08:00-12:00',
        step: '30m',
        bufferBefore: '5m',
        bufferAfter: '10m',
        minNotice: '2h',
        limit: 3,
        calendar: ['work', 'home'],
        tentative: 'free',
        onCalendarError: 'skip',
      }),
    ).toEqual({
      within: '3d',
      workingHours: 'mon-fri 08:00-12:00',
      step: '30m',
      bufferBefore: '5m',
      bufferAfter: '10m',
      minNotice: '2h',
      limit: 3,
      calendars: ['work', 'home'],
      tentative: 'free',
      onCalendarError: 'skip',
    });
    expect(slotSearchArgs({ calendar: [] })).toEqual({});
  });

  it('show in find-slot --help, with examples', async () => {
    const io = fakeIo();
    expect(await runCli(['find-slot', '--help'], io)).toBe(0);
    for (const option of ['--within', '--working-hours', '--step', '--buffer-before', '--buffer-after', '--min-notice', '--limit', '--calendar', '--tentative', '--on-calendar-error']) {
      expect(io.out).toContain(option);
    }
    expect(io.out).toContain('--limit 3');
  });
});
