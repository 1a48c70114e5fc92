import { describe, expect, it } from 'vitest';
import { CalendarSourceError } from '../../src/calendar/errors.js';
import { createCalendarLoader } from '../../src/calendar/sources.js';

const GOOD = 'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260101T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n';
const BAD = 'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260101T100000Z\r\nRRULE:FREQ=SOMETIMES\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n';

/** A file system of one file whose content and mtime the test changes. */
function fakeFile(initial: string) {
  const file = { text: initial, mtimeMs: 1000, reads: 0, exists: true, readFails: false };
  const loader = createCalendarLoader({
    statFile: async () => {
      if (!file.exists) throw Object.assign(new Error('ENOENT: /home/someone/secret/path.ics'), { code: 'ENOENT' });
      return { mtimeMs: file.mtimeMs, size: file.text.length };
    },
    readText: async () => {
      file.reads++;
      if (file.readFails) throw Object.assign(new Error('EIO'), { code: 'EIO' });
      return file.text;
    },
  });
  return { file, load: () => loader.load({ name: 'work', path: '/cal.ics' }) };
}

async function rejection(promise: Promise<unknown>): Promise<CalendarSourceError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof CalendarSourceError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

describe('createCalendarLoader', () => {
  it('parses a file once per version (mtime and size)', async () => {
    const { file, load } = fakeFile(GOOD);
    const first = await load();
    expect(await load()).toBe(first);
    expect(file.reads).toBe(1);
    file.mtimeMs = 2000;
    expect(await load()).not.toBe(first);
    expect(file.reads).toBe(2);
  });

  it('remembers a parse failure until the file changes', async () => {
    const { file, load } = fakeFile(BAD);
    expect((await rejection(load())).code).toBe('ERR_ICS_RULE');
    expect((await rejection(load())).line).toBe(6);
    expect(file.reads).toBe(1);
    file.text = GOOD;
    file.mtimeMs = 3000;
    await expect(load()).resolves.toMatchObject({ name: 'work' });
  });

  it('does not remember a failed read, and never names the path', async () => {
    const { file, load } = fakeFile(GOOD);
    file.readFails = true;
    const error = await rejection(load());
    expect([error.code, error.calendar]).toEqual(['ERR_CALENDAR_UNREADABLE', 'work']);
    file.readFails = false;
    await expect(load()).resolves.toMatchObject({ name: 'work' });
    file.exists = false;
    const missing = await rejection(load());
    expect(missing.message).toBe('Calendar "work": The calendar cannot be read: its file does not exist.');
  });
});
