// `delegate calendar add|list|remove`: the local owner's calendars, managed
// in the store as an administrator would, or with `--user` a named account's
// (server mode: those accounts cannot add their own). A calendar is an .ics
// file or an ICS feed URL, the feed's read from stdin (piped, or typed unseen), not from
// the command line that other users can read (one given there is taken, with
// a warning); `add` reads it once (a feed is fetched and its copy cached)
// so a calendar that cannot be used is refused at once, with the line at
// fault. `list` says when each feed was last fetched and whether its last
// fetch failed. Feed URLs are shown without their path, which is often the
// secret of a private address, unless asked for. Adding and removing are put
// on the audit log (`calendar_added`, `calendar_removed`, by cli, for the
// account whose calendar it is), a feed named without its path.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CalendarSourceError } from '../../calendar/errors.js';
import { createFeedLoader, normalizeFeedUrl, redactFeedUrl } from '../../calendar/feeds.js';
import { expandBusy, type ParsedCalendar } from '../../calendar/ics.js';
import { createCalendarLoader } from '../../calendar/sources.js';
import { DAY_MS } from '../../calendar/zone.js';
import { demoCalendarPath, readUserConfig, resolvePaths, systemTimeZone, systemUserName, unknownKeysWarning, type Env, type Paths, type UserConfig } from '../../config.js';
import { AccountRemovedError, type CalendarFeedRecord, type CalendarRecord, type Store, type UserRecord } from '../../store/index.js';
import { CommandFailed, EXIT_OK, UsageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { pipedSecret, secretTypedAtTerminal, typedSecret } from '../secret-input.js';
import { shown } from '../shown.js';
import { NAMELESS_APP, registeredName } from '../../authz/app-name.js';
import { ensureOwner } from '../../authz/bootstrap.js';
import { parseCalendarDetail } from '../../delegation/index.js';
import { instantLine } from '../output.js';
import { openCommandStore, pickedAccount, readOnlyNotice, refuseBlankUser, withStore } from './admin-store.js';
import { ownerWorkingHours } from '../calendar-backend.js';
import { delegateCommandLine } from './mcp-config.js';
import { untrustedFileReason } from '../../trusted-directory.js';

export interface CalendarAddArgs {
  name: string;
  /**
   * A path to an .ics file; `-` or undefined: a feed, whose address is read from stdin (typed unseen at a terminal,
   * or piped); an http(s) or webcal URL: a feed, as before (with a warning: other users can see it).
   */
  source?: string;
  /** Read the calendar before adding it (the default). */
  check: boolean;
  /** `--user`: the account whose calendar it is, by name or id (as `grants list --user`); the local owner without it. */
  user?: string;
}

export interface CalendarListArgs {
  json: boolean;
  /** Show feed URLs in full. */
  showUrls: boolean;
  /** `--user`: whose calendars, by name or id (as `grants list --user`); the local owner's without it. */
  user?: string;
}

export interface CalendarRemoveArgs {
  name: string;
  /** `--user`: whose calendar, by name or id (as `grants list --user`); the local owner's without it. */
  user?: string;
}

/** One calendar as `list --json` prints it. */
export interface CalendarListing {
  name: string;
  kind: 'file' | 'feed';
  source: string;
  /** Feeds: when the copy in use was fetched or confirmed, and the last attempt (ISO 8601, UTC). */
  fetchedAt?: string;
  checkedAt?: string;
  /** Feeds: why the last attempt failed, and when; absent after a success. */
  error?: string;
  errorAt?: string;
  /** Files: whether the file is missing. */
  missing?: boolean;
}

export async function calendarAddCommand(args: CalendarAddArgs, io: CliIo): Promise<number> {
  const paths = resolvePaths(io.env);
  refuseBlankUser(args.user);
  // A name taken (or an account --user does not name) is said before a feed's address is asked for, as `users add`
  // does before the password.
  if (readsAddress(args) || args.user !== undefined) {
    const taken = await calendarNamed(paths, args.name, args.user);
    if (taken) throw nameTaken(args.name, taken.user);
  }
  const calendar = await calendarSource(args, io);
  const url = calendar.kind === 'url' ? calendar.source : undefined;
  return withAccount(paths, io, args.user, { demo: false }, async (store, account) => {
    const who = args.user !== undefined ? account.name : undefined;
    const existing = await store.listCalendars(account.id);
    if (existing.some((c) => c.name === args.name)) throw nameTaken(args.name, who);
    const record: CalendarRecord = {
      id: `cal_${randomBytes(16).toString('base64url')}`,
      userId: account.id,
      name: args.name,
      ...calendar,
      createdAt: io.now(),
    };
    // Read before it is added, a feed's copy kept aside until then: the calendar and its record are then written in
    // one transaction (found in review, s22store: two transactions, and a kill between them left it off the log).
    let feedCopy: CalendarFeedRecord | undefined;
    if (args.check) {
      try {
        const calendar = await readOnce(record, io, (copy) => (feedCopy = copy));
        // Expanding is where an endless series would show: a short look ahead catches it now.
        expandBusy(calendar, { start: io.now(), end: io.now() + 31 * DAY_MS }, { timeZone: account.timeZone });
        // A warning quotes the calendar's text (an unknown TZID): escaped, as every feed's text the CLI prints (found in review, s23feeds).
        for (const warning of calendar.warnings) io.stderr.write(shown`delegate: calendar "${args.name}": ${warning}\n`);
      } catch (error) {
        if (error instanceof CalendarSourceError) throw new CommandFailed(`${error.ownerMessage} The calendar was not added.`);
        throw error;
      }
    }
    // A feed's path is often the secret of a private address: the record names the feed without it.
    const detail = { by: 'cli', name: args.name, kind: record.kind, source: url ? redactFeedUrl(url) : record.source };
    try {
      await store.addCalendar(record, { event: { event: 'calendar_added', user: account.id, detail }, at: io.now() });
    } catch (error) {
      // Another process added the name between the look and the write (a calendar's name is UNIQUE per account, so this
      // write was refused, and nothing of it was kept): the answer the look would have given, not the database's own
      // words. Found in review (s26race): six `calendar add work …` at once, four said "UNIQUE constraint failed".
      if ((await store.listCalendars(account.id)).some((c) => c.name === args.name)) throw nameTaken(args.name, who);
      // The account was removed by another command after it was looked up (a feed's first read takes a while): the
      // database refused the write, and nothing was added (noticed in review, s33team).
      if (error instanceof AccountRemovedError) throw new CommandFailed(shown`${account.name} was removed (by another command) while the calendar was being added; the calendar was not added.`);
      throw error;
    }
    if (feedCopy) await store.saveCalendarFeed(feedCopy);
    const whose = who !== undefined ? shown` for ${who}` : '';
    io.stderr.write(`Added calendar "${args.name}"${whose} (${url ? `feed ${redactFeedUrl(url)}` : `file ${record.source}`}). Every calendar counts toward busy time unless find-slot is given --calendar.\n`);
    // Added all the same (the administrator chose it), but said: its busy times are whoever controls it's (found in review, s27web).
    const untrusted = record.kind === 'file' ? untrustedFileReason(record.source) : undefined;
    if (untrusted) io.stderr.write(shown`delegate: warning: calendar "${args.name}": the file ${record.source} ${untrusted}: searches would count whatever busy times another user puts there. Keep calendar files in a directory of your own.\n`);
    const unseen = await delegationsNotSeeing(store, account, args.name, io.now(), io.env);
    if (unseen) io.stderr.write(`${unseen}\n`);
    if (existing.some((c) => c.kind === 'file' && c.source === demoCalendarPath())) {
      const demo = existing.find((c) => c.source === demoCalendarPath())!;
      io.stderr.write(`The demo calendar "${demo.name}" still counts too; remove it with: ${delegateCommandLine(['calendar', 'remove', demo.name], io.env)}\n`);
    }
    return EXIT_OK;
  });
}

export async function calendarListCommand(args: CalendarListArgs, io: CliIo): Promise<number> {
  const paths = resolvePaths(io.env);
  refuseBlankUser(args.user);
  // Only looks: with no owner yet, nothing is created (the first start gives the owner the demo calendar).
  const store = await openCommandStore(paths, readOnlyNotice(io), io.stderr);
  try {
    const account = args.user !== undefined ? await accountOption(store, args.user) : await store.ownerUser();
    // The owner's settings (config.json) are the owner's alone: a named account's searches do not read them.
    const config = account === undefined || account.isOwner ? await ownerSettings(paths, io) : {};
    const zone = config.timeZone ?? account?.timeZone ?? systemTimeZone(io.env);
    const calendars = account ? await store.listCalendars(account.id) : [demoCalendarOf(undefined, io.now())];
    const listings: CalendarListing[] = [];
    for (const calendar of calendars) {
      listings.push(calendar.kind === 'url' ? feedListing(calendar, await store.calendarFeed(calendar.id), args.showUrls) : await fileListing(calendar));
    }
    if (!account) io.stderr.write(`Nothing is set up yet: a new owner starts with the demo calendar, unless their first command is \`${delegateCommandLine(['calendar', 'add'], io.env)}\`.\n`);
    if (args.json) {
      io.stdout.write(`${JSON.stringify(listings)}\n`);
      return EXIT_OK;
    }
    if (listings.length === 0) {
      const user = args.user !== undefined && account ? ['--user', account.name] : [];
      const whose = user.length > 0 ? shown` for ${account!.name}` : '';
      io.stderr.write(
        `No calendars${whose}: searches have nothing to check. Add one with: ${delegateCommandLine(['calendar', 'add', 'NAME', 'FILE', ...user], io.env)}, or ${delegateCommandLine(['calendar', 'add', 'NAME', ...user], io.env)} for a feed (it asks for its address)\n`,
      );
      return EXIT_OK;
    }
    for (const listing of listings) io.stdout.write(`${listingLines(listing, zone).join('\n')}\n`);
    return EXIT_OK;
  } finally {
    store.close();
  }
}

export async function calendarRemoveCommand(args: CalendarRemoveArgs, io: CliIo): Promise<number> {
  const paths = resolvePaths(io.env);
  refuseBlankUser(args.user);
  // With no owner yet, the one calendar there is to remove is the demo calendar a new owner starts with.
  if (args.user === undefined && args.name !== 'demo' && !existsSync(paths.db)) throw new CommandFailed(`No calendar named "${args.name}"; the calendars are "demo".`);
  return withAccount(paths, io, args.user, { demo: true }, async (store, account) => {
    const whose = args.user !== undefined ? shown` of ${account.name}` : '';
    const removal = { event: { event: 'calendar_removed', user: account.id, detail: { by: 'cli', name: args.name } }, at: io.now() } as const;
    if (!(await store.removeCalendar(account.id, args.name, removal))) {
      const names = (await store.listCalendars(account.id)).map((c) => `"${c.name}"`);
      throw new CommandFailed(`No calendar named "${args.name}"${whose}; the calendars${whose} are ${names.length > 0 ? names.join(', ') : 'none'}.`);
    }
    io.stderr.write(`Removed calendar "${args.name}"${whose}.\n`);
    return EXIT_OK;
  });
}

/**
 * That there is a calendar named `name` already, and what to do about it (found in review, regress21a): there is no
 * replacing in place, so remove it first; `user`: the account `--user` named, whose calendar it is.
 */
function nameTaken(name: string, user: string | undefined): CommandFailed {
  const remove = delegateCommandLine(['calendar', 'remove', name, ...(user !== undefined ? ['--user', user] : [])]);
  const whose = user !== undefined ? shown` of ${user}` : '';
  return new CommandFailed(`There is already a calendar named "${name}"${whose}. To add this one in its place, remove it first (\`${remove}\`), or give this one another name.`);
}

/**
 * Whether the account (`--user`, else the owner) has a calendar named `name` (with the name `--user` goes by then):
 * a look only, which creates no database and no owner. An account `--user` does not name is refused here.
 */
async function calendarNamed(paths: Paths, name: string, user: string | undefined): Promise<{ user: string | undefined } | undefined> {
  return withStore(
    paths,
    async (store) => {
      const account = user !== undefined ? await accountOption(store, user) : await store.ownerUser();
      const taken = account !== undefined && (await store.listCalendars(account.id)).some((c) => c.name === name);
      return taken ? { user: user !== undefined ? account.name : undefined } : undefined;
    },
    { notice: () => undefined },
  );
}

/**
 * The live account `--user GIVEN` names, as `grants list --user` and `audit --user` find it (pickedAccount: by name,
 * by id, then but for case); the local owner's name or id names the owner. Refused with one line (exit 1, as
 * `grants list --user`): a name or id no account has, and a removed account, whose calendars went with it (its id,
 * or a name only a removed account had).
 */
async function accountOption(store: Store, given: string): Promise<UserRecord> {
  const accounts = await store.listAccountNames();
  // No notice of removed accounts that had the name too: they have no calendars, so the live one is the one meant.
  const use = { what: 'calendars', none: shown`--user: there is no account named ${given}, nor with that id.`, refuse: (message: string) => new CommandFailed(message), notice: () => undefined };
  const account = pickedAccount(given, accounts, use);
  if (account.removedAt !== null) {
    throw new CommandFailed(shown`--user ${given}: the account ${account.name} (${account.id}) was removed, and its calendars with it; a removed account has none.`);
  }
  return account;
}

/**
 * The owner's settings (config.json) as searches read them, what cannot be used said on stderr: `list` does not need
 * them, but says what searches will find wrong with them. Unreadable ones count as none.
 */
async function ownerSettings(paths: Paths, io: CliIo): Promise<UserConfig> {
  const unusable = (error: unknown) => io.stderr.write(`delegate: ${error instanceof Error ? error.message : String(error)} Searches fail until it is fixed.\n`);
  const config = await readUserConfig(paths.config).catch((error: unknown): UserConfig => {
    unusable(error);
    return {};
  });
  // Its working hours read as the calendar backend reads them, so that list says what find-slot would refuse.
  try {
    ownerWorkingHours(paths.config, config);
  } catch (error) {
    unusable(error);
  }
  const warning = unknownKeysWarning(paths.config, config);
  if (warning) io.stderr.write(`delegate: ${warning}\n`);
  return config;
}

/** Whether `add` reads a feed's address from stdin: given `-`, or nothing. */
function readsAddress(args: CalendarAddArgs): boolean {
  return args.source === undefined || args.source === '-';
}

/** A URL's form: a scheme, then `//`. */
const URL_FORM = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * What `add` was given: a file named on the command line, or a feed's address. The address of a feed is read from
 * stdin (`-`, or nothing given): a private feed's address is a secret to the whole calendar, and a command line is
 * readable by every user of this computer while the command runs (/proc/<pid>/cmdline) and stays in the shell's
 * history. Found in review (s23local). One given on the command line still works, with a warning.
 */
async function calendarSource(args: CalendarAddArgs, io: CliIo): Promise<Pick<CalendarRecord, 'kind' | 'source'>> {
  const given = readsAddress(args) ? undefined : args.source;
  if (given !== undefined && !URL_FORM.test(given)) return { kind: 'file', source: resolve(given) };
  if (given !== undefined) {
    io.stderr.write(
      `delegate: The feed's address is visible to other users of this computer while this command runs, on its command line. Next time leave it out, to type it unseen at the prompt, or pipe it to \`${delegateCommandLine(['calendar', 'add', args.name, '-'])}\`.\n`,
    );
    return { kind: 'url', source: feedUrl(given, 'is not') };
  }
  const typed = secretTypedAtTerminal(io);
  const text = typed ? await typedSecret(io, `Address of the feed "${args.name}" (not shown): `, `calendar "${args.name}" was not added`) : await pipedLine(io);
  const address = text.trim();
  if (address === '' && typed) throw new UsageError(`No feed address was typed: calendar "${args.name}" was not added.`);
  if (address === '') {
    throw new UsageError(`No feed address on standard input: pipe it, on one line, or run the command at a terminal to type it. A calendar file is named instead: \`${delegateCommandLine(['calendar', 'add', 'NAME', 'FILE'], io.env)}\`.`);
  }
  return { kind: 'url', source: feedUrl(address, `${typed ? 'typed' : 'on standard input'} is not`) };
}

/** The one line piped to stdin (its line break dropped): more than one is refused, in case it is not what was meant. */
async function pipedLine(io: CliIo): Promise<string> {
  const text = (await pipedSecret(io, 'the feed address')).replace(/\r?\n$/, '');
  if (/[\r\n]/.test(text)) throw new UsageError('Standard input holds more than one line: give the feed address alone, on one line.');
  return text;
}

/** A feed's address as it is stored, or bad usage: one not http(s) or webcal, or with credentials (named without its path). */
function feedUrl(address: string, is: string): string {
  const url = URL_FORM.test(address) ? normalizeFeedUrl(address) : undefined;
  // Found in review (s23new): a file's path piped, as the address once was given, said only "not an http… address".
  const file = URL_FORM.test(address) ? '' : ` A calendar file is named on the command line instead: \`${delegateCommandLine(['calendar', 'add', 'NAME', 'FILE'])}\`.`;
  if (!url) throw new UsageError(`The feed address ${is} an http, https or webcal address without credentials ("${redactFeedUrl(address)}").${file}`);
  return url;
}

/**
 * Runs `work` on the store with the account `--user` names (`user`, accountOption), else with the local owner,
 * creating the owner on a machine where no server has started yet: for `calendar add` without the demo calendar
 * (these are their own calendars), otherwise with it, as the servers' first start does (README: "A new owner starts
 * with the demo calendar, unless their first command is `calendar add`"). With `--user`, nothing is set up: with no
 * database yet, there is no account to name.
 */
async function withAccount<T>(paths: Paths, io: CliIo, user: string | undefined, start: { demo: boolean }, work: (store: Store, account: UserRecord) => Promise<T>): Promise<T> {
  if (user !== undefined && !existsSync(paths.db)) throw new CommandFailed(shown`--user: there is no account named ${user}, nor with that id.`);
  const store = await openCommandStore(paths, 'write', io.stderr);
  try {
    if (user !== undefined) return await work(store, await accountOption(store, user));
    let owner = await store.ownerUser();
    if (!owner) {
      const config = await readUserConfig(paths.config).catch(() => ({ timeZone: undefined }));
      // The name the servers' first start gives the owner (servers.ts bootstrap), whichever comes first.
      const setup = { ownerName: systemUserName(), timeZone: config.timeZone ?? systemTimeZone(io.env) };
      owner = await ensureOwner(store, start.demo ? { ...setup, demoCalendarPath: demoCalendarPath() } : setup, io.now());
    }
    return await work(store, owner);
  } finally {
    store.close();
  }
}

/**
 * The line that names the owner's active delegations that will not see a calendar just added: those whose grant
 * names its calendars (chosen on the consent page with "Calendars added later" unticked, or asked so by the app),
 * and how to let one see it. A sign-in the grant already covers shows no consent page (grant-policy.ts), so
 * `delegate login` alone does not ask again: the delegation is ended first. Undefined when every one sees it.
 */
async function delegationsNotSeeing(store: Store, account: UserRecord, calendar: string, now: number, env: Env): Promise<string | undefined> {
  const grants = (await store.listGrants(account.id)).filter((g) => g.revokedAt === null && g.expiresAt > now);
  const named: Array<{ id: string; text: string }> = [];
  for (const grant of grants) {
    const limits = grant.authorizationDetails.flatMap((d) => {
      const parsed = parseCalendarDetail(d);
      return parsed.ok && parsed.detail.calendars ? [parsed.detail.calendars] : [];
    });
    if (limits.length === 0 || limits.every((names) => names.includes(calendar))) continue;
    const agent = (await store.resourceByUrl(grant.resource))?.name ?? grant.resource;
    const app = registeredName(await store.clientById(grant.clientId)) ?? NAMELESS_APP;
    named.push({ id: grant.id, text: shown`${agent} via ${app} (${grant.id}: only ${[...new Set(limits.flat())].join(', ')})` });
  }
  if (named.length === 0) return undefined;
  const revoke = delegateCommandLine(['grants', 'revoke', named.length === 1 ? named[0]!.id : 'ID'], env);
  // A named account signs in from its app, as itself: `delegate login` here would sign the owner in.
  const again = account.isOwner ? `sign in again (\`${delegateCommandLine(['login'], env)}\`, or from its app)` : shown`${account.name} signs in again from its app`;
  return `Not seen by ${named.map((n) => n.text).join('; ')}. ${shown`To let one see "${calendar}"`}, end it (\`${revoke}\`) and ${again}: the consent page asks again.`;
}

/** The demo calendar a new owner starts with (`userId` undefined: an owner not created yet). */
function demoCalendarOf(userId: string | undefined, now: number): CalendarRecord {
  return { id: `cal_${randomBytes(16).toString('base64url')}`, userId: userId ?? '', name: 'demo', kind: 'file', source: demoCalendarPath(), createdAt: now };
}

/** Reads a new calendar the way the backend will: a file parsed, a feed fetched and its copy handed to `keep` (to cache once it is added). */
async function readOnce(record: CalendarRecord, io: CliIo, keep: (copy: CalendarFeedRecord) => void): Promise<ParsedCalendar> {
  if (record.kind === 'file') {
    return createCalendarLoader({ readText: (path) => readFile(path, 'utf8') }).load({ name: record.name, path: record.source });
  }
  let kept: CalendarFeedRecord | undefined;
  const cache = {
    feedCache: async () => kept,
    saveFeedCache: async (copy: CalendarFeedRecord) => keep((kept = copy)),
  };
  const feeds = createFeedLoader({ cache, now: () => io.now() });
  return feeds.load({ name: record.name, id: record.id, url: record.source });
}

function feedListing(calendar: CalendarRecord, feed: CalendarFeedRecord | undefined, showUrl: boolean): CalendarListing {
  const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? undefined : new Date(ms).toISOString());
  const listing: CalendarListing = { name: calendar.name, kind: 'feed', source: showUrl ? calendar.source : redactFeedUrl(calendar.source) };
  const fetchedAt = iso(feed?.fetchedAt);
  const checkedAt = iso(feed?.checkedAt);
  const errorAt = iso(feed?.errorAt);
  if (fetchedAt) listing.fetchedAt = fetchedAt;
  if (checkedAt) listing.checkedAt = checkedAt;
  if (feed?.error) listing.error = feed.error;
  if (errorAt) listing.errorAt = errorAt;
  return listing;
}

async function fileListing(calendar: CalendarRecord): Promise<CalendarListing> {
  const listing: CalendarListing = { name: calendar.name, kind: 'file', source: calendar.source };
  try {
    await stat(calendar.source);
  } catch {
    listing.missing = true;
  }
  return listing;
}

/** A calendar for people: its name and source, then for a feed when it was fetched and how its last attempt went. */
function listingLines(listing: CalendarListing, zone: string): string[] {
  const when = (iso: string) => instantLine(Date.parse(iso), zone);
  const lines = [shown`${listing.name}  ${listing.kind} ${listing.source}${listing.missing ? '  (the file is missing)' : ''}`];
  if (listing.kind === 'feed') {
    if (listing.fetchedAt) lines.push(shown`    fetched: ${when(listing.fetchedAt)}`);
    else lines.push('    never fetched successfully');
    if (listing.error && listing.errorAt) {
      lines.push(shown`    last fetch failed: ${when(listing.errorAt)}: ${listing.error}`);
      if (listing.fetchedAt) lines.push(shown`    searches use the copy fetched ${when(listing.fetchedAt)}`);
    }
  }
  return lines;
}
