// Text that a calendar feed, a calendar backend or an agent wrote, as the CLI
// prints it: find-slot's warnings and the one-line error. Found in review
// "logs-faults": ESC, a bare CR and OSC … BEL reached the terminal as they came,
// so a feed could retitle the window, colour the line or erase and forge it.
// And in time linear in the text, at most 300 characters of an agent's tool
// error (found in review regress21c: 80,000 spaces took the line 10 s).
import { describe, expect, it } from 'vitest';
import { ClientError } from '../../src/client/errors.js';
import { notices } from '../../src/cli/commands/find-slot.js';
import { errorText } from '../../src/cli/errors.js';
import { busyList, slotSearchResult } from '../../src/client/tool-results.js';

const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

describe("others' text on the terminal", () => {
  it('find-slot shows the controls in skipped and stale reasons, calendar names and dates as escapes', () => {
    const lines = notices({
      found: true,
      timeZone: 'UTC',
      slots: [],
      skipped: [{ calendar: 'wo\u001b[2Krk', reason: 'Calendar "evil", line 9: FREQ=\u001b]0;PWNED-TITLE\u0007\u001b[2K\u001b[1GFAKE-LINE is not a frequency.' }],
      stale: [{ calendar: 'h\u001b]0;title\u0007ome', fetchedAt: '2026-01-01T00:00:00Z\r', reason: 'st\u001b[1Aale\nforged' }],
    });
    expect(lines).toEqual([
      'warning: not counted, could not be read: Calendar "evil", line 9: FREQ=\\e]0;PWNED-TITLE\\u{0007}\\e[2K\\e[1GFAKE-LINE is not a frequency.',
      'warning: calendar "h\\e]0;title\\u{0007}ome" could not be refreshed (st\\e[1Aale\\nforged); its copy from 2026-01-01T00:00:00Z\\r was used.',
    ]);
  });

  it('the error line shows a tool error’s controls as escapes, its newlines joined as before', () => {
    const error = new ClientError('TOOL_FAILED', 'The calendar failed (HTTP 500): x\u001b[31mRED\u001b[0m\rFAKE\u0007 line\n  two');
    const line = errorText(error, false);
    expect(line).toBe('delegate: The calendar failed (HTTP 500): x\\e[31mRED\\e[0m\\rFAKE\\u{0007} line two\n');
    expect(line.slice(0, -1)).not.toMatch(CONTROL);
  });

  // Found in review (regress21c): the lines were joined by a pattern (white space, newline, white space) that read a
  // run of white space again from each of its characters: 80,000 spaces took 10 s. No timing is asserted, the line
  // is: 240,000 spaces took the old pattern over a minute (vitest fails a test that ran past its 30 s).
  it('the error line of a message with a long run of spaces before a newline: the same line, at once', () => {
    const spaces = ' '.repeat(240_000);
    expect(errorText(new Error(`x${spaces}x\n  y  \n\n z`), false)).toBe(`delegate: x${spaces}x y z\n`);
  });

  it('an agent’s tool error of megabytes: its first 300 characters on one line, controls escaped', () => {
    const text = `x${' '.repeat(240_000)}x\n\u001b[2K${'y'.repeat(8_000_000)}`;
    for (const read of [slotSearchResult, busyList]) {
      let error: unknown;
      try {
        read({ isError: true, content: [{ type: 'text', text }] });
      } catch (e) {
        error = e;
      }
      const said = `x x \\e[2K${'y'.repeat(300 - 9)}…`;
      expect(error).toMatchObject({ code: 'TOOL_FAILED', message: said });
      expect(errorText(error, false)).toBe(`delegate: ${said}\n`);
    }
  });
});
