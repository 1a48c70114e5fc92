// The CalendarSourceError a calendar read throws, for tests that assert its code and line.
import { CalendarSourceError } from '../../../src/calendar/errors.js';

export function sourceError(fn: () => unknown): CalendarSourceError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CalendarSourceError) return err;
    throw err;
  }
  throw new Error('expected a CalendarSourceError');
}
