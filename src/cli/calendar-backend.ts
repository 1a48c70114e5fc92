// How this installation's calendar backend learns about a user: their
// calendars from the store (files and feeds), the owner's settings from
// config.json (time zone, working hours, tentative events, broken calendars),
// and the feed cache kept in the store. Imported lazily with the servers.
import type { FastifyBaseLogger } from 'fastify';
import { createFeedLoader, type FeedCache } from '../calendar/feeds.js';
import type { UserCalendars } from '../calendar/server.js';
import { createCalendarLoader, type CalendarLoader, type CalendarRef } from '../calendar/sources.js';
import { SlotQueryError } from '../calendar/errors.js';
import type { WorkingHours } from '../calendar/slots.js';
import { readWorkingHours } from '../calendar/working-hours.js';
import { ConfigError, unknownKeysWarning, userConfigReader, type Paths, type UserConfig } from '../config.js';
import type { CalendarRecord, Store } from '../store/index.js';

/** The store as the feed loader's cache. */
export function feedCacheOf(store: Store): FeedCache {
  return {
    feedCache: (calendarId) => store.calendarFeed(calendarId),
    saveFeedCache: (record) => store.saveCalendarFeed(record),
    feedKept: (calendarId) => store.hasCalendarFeed(calendarId),
  };
}

/** Files and feeds, feeds cached in the store. */
export function calendarLoaderFor(store: Store, options: { now?: () => number } = {}): CalendarLoader {
  return createCalendarLoader({ feeds: createFeedLoader({ cache: feedCacheOf(store), ...options }) });
}

/** A stored calendar as the backend reads it. */
export function calendarRefOf(calendar: CalendarRecord): CalendarRef {
  return calendar.kind === 'url' ? { name: calendar.name, id: calendar.id, url: calendar.source } : { name: calendar.name, path: calendar.source };
}

/**
 * The working hours of the owner's settings (config.json, as readUserConfig read it at `path`) as searches use them,
 * or none when it names none; what cannot be used throws ConfigError naming it. readUserConfig checks only that the
 * value is a string or an object: the calendar backend reads it here on every request, and `delegate calendar list`
 * here too, so that the two say the same problem (found in review, s30: for "mon-fri 25:00-26:00" find-slot said the
 * settings cannot be used, "`delegate calendar list` shows where it is", and calendar list said nothing).
 */
export function ownerWorkingHours(path: string, config: UserConfig): { workingHours?: WorkingHours } {
  if (config.workingHours === undefined) return {};
  try {
    return { workingHours: readWorkingHours(config.workingHours) };
  } catch (error) {
    if (error instanceof SlotQueryError) throw new ConfigError(path, error.message);
    throw error;
  }
}

/** The owner's zone is config.json's `timeZone` when it has one, else the stored one: the file is where to set it. */
const OWNER_ZONE_MEND = "set 'timeZone' in the owner's config.json to an IANA time zone such as Europe/Berlin";

/** A named account's zone is the one stored with it, which `users set-time-zone` sets (its password untouched). */
function namedAccountZoneMend(name: string): string {
  return `an administrator sets another with \`delegate users set-time-zone ${name} ZONE\` (ZONE an IANA time zone such as Europe/Berlin)`;
}

/**
 * The backend's `calendarsFor`: a user's calendars and zone from the store;
 * for the local owner, also the settings in config.json, looked at on every
 * request so that a change needs no restart. Settings that cannot be used
 * are reported, not ignored, on the log of the request that found them (its
 * lines carry its reqId; found in review s25faults: the server's logger was
 * used, and the lines carried none).
 */
export function userCalendarsFromStore(store: Store, paths: Paths): (sub: string, log: FastifyBaseLogger) => Promise<UserCalendars | undefined> {
  const readUserConfig = userConfigReader(paths.config);
  // Said once, not on every request: again only once the file has said something else.
  let lastWarning: string | undefined;
  return async (sub, log) => {
    const user = await store.userById(sub);
    if (!user) return undefined;
    const calendars = (await store.listCalendars(user.id)).map(calendarRefOf);
    // A named account's zone is only the stored one (it has no config.json); an administrator changes it.
    if (!user.isOwner) return { timeZone: user.timeZone, calendars, timeZoneMend: namedAccountZoneMend(user.name), accountName: user.name };
    try {
      const config = await readUserConfig();
      const warning = unknownKeysWarning(paths.config, config);
      if (warning !== undefined && warning !== lastWarning) log.warn(warning);
      lastWarning = warning;
      return {
        timeZone: config.timeZone ?? user.timeZone,
        calendars,
        timeZoneMend: OWNER_ZONE_MEND,
        ...ownerWorkingHours(paths.config, config),
        ...(config.tentative ? { tentative: config.tentative } : {}),
        ...(config.onCalendarError ? { onCalendarError: config.onCalendarError } : {}),
      };
    } catch (error) {
      const reason = error instanceof ConfigError ? error.reason : error instanceof Error ? error.message : String(error);
      log.error({ reason }, 'the owner settings cannot be used');
      // Nothing passes by waiting: the file must change. (Without it, the defaults apply.)
      return {
        timeZone: user.timeZone,
        calendars,
        timeZoneMend: OWNER_ZONE_MEND,
        // Without the file's path, which may go to a remote client; `delegate calendar list` names it.
        settingsProblem: `The owner's settings (config.json) cannot be used: ${reason} Fix the file (\`delegate calendar list\` shows where it is), or remove it to search with the defaults.`,
      };
    }
  };
}
