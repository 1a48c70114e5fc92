// Text that a calendar feed, a calendar backend or an agent wrote, as the CLI
// prints it: find-slot's warnings and the one-line error. Found in review
// "logs-faults": ESC, a bare CR and OSC … BEL reached the terminal as they came,
// so a feed could retitle the window, colour the line or erase and forge it.
import { describe, expect, it } from 'vitest';
import { ClientError } from '../../src/client/errors.js';
import { notices } from '../../src/cli/commands/find-slot.js';
import { errorText } from '../../src/cli/errors.js';

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
});
