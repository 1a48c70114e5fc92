// The `delegate calendar` commands (issue 4), registered on the program by
// one call from program.ts: add, list and remove the local owner's calendars,
// or with --user a named account's (.ics files and ICS feeds, a feed's secret
// address read from stdin). Each command's module is imported only when it runs.
import { Command, InvalidArgumentError } from 'commander';
import type { CliIo } from './io.js';

function examples(lines: string[]): string {
  return ['', 'Examples:', ...lines.map((l) => `  ${l}`)].join('\n');
}

/** A calendar name as find-slot --calendar and the delegation's limits will name it. */
function calendarName(value: string): string {
  const name = value.trim();
  if (!/^[\p{L}\p{N}][\p{L}\p{N} ._@'+-]{0,63}$/u.test(name)) {
    throw new InvalidArgumentError("A calendar name is 1 to 64 letters, digits, spaces and . _ @ ' + -, starting with a letter or digit.");
  }
  return name;
}

/** --user on the calendar commands: the administrator's, for a named account (server mode), which cannot add its own. */
const USER_OPTION = [
  '--user <name>',
  'a named account’s calendars instead of the local owner’s (administrator, server mode): its name (exactly, else in any case when that names one account), or its usr_… id',
] as const;

export function registerCalendarCommands(program: Command, io: CliIo, setExitCode: (code: number) => void): void {
  const calendar = program
    .command('calendar')
    .description('Manage the calendars find-slot reads: .ics files and ICS feed URLs (all count toward busy time).')
    .addHelpText(
      'after',
      examples([
        'delegate calendar add work ~/Calendars/work.ics',
        'delegate calendar add google   # a feed: asks for its address',
        'delegate calendar list',
        'delegate calendar remove demo',
        'delegate calendar add work /srv/calendars/bob.ics --user bob   # a named account’s',
      ]),
    );

  calendar
    .command('add')
    .description(
      'Add a calendar: a path to an .ics file, or an ICS feed (https or webcal) whose address is read from stdin (with - or no file: piped, or typed unseen at the prompt). It is read once first; one that cannot be read is not added. A file another user owns, or that others may write to or replace (its directory theirs or writable by others), is added with a warning.',
    )
    .argument('<name>', 'the name to know it by (for find-slot --calendar)', calendarName)
    .argument(
      '[file]',
      'an .ics file; for a feed, - or nothing: its address (such as the secret iCal address of a Google, Outlook or iCloud calendar) is read from stdin. One given here works too, but other users of this computer can read it in the process list.',
    )
    .option('--no-check', 'add it without reading it first')
    .option(...USER_OPTION)
    .addHelpText(
      'after',
      examples([
        'delegate calendar add work ~/Calendars/work.ics',
        'delegate calendar add google        # asks for the feed address, and does not show it',
        'read -rs FEED && printf \'%s\\n\' "$FEED" | delegate calendar add google -',
        'pbpaste | delegate calendar add family -   # the address copied (macOS; wl-paste or xclip -o elsewhere)',
        'delegate calendar add work /srv/calendars/bob.ics --user bob   # for the named account bob',
      ]),
    )
    .action(async (name: string, source: string | undefined, options: { check: boolean; user?: string }) => {
      const { calendarAddCommand } = await import('./commands/calendar.js');
      setExitCode(await calendarAddCommand({ name, ...(source !== undefined ? { source } : {}), check: options.check, ...(options.user !== undefined ? { user: options.user } : {}) }, io));
    });

  calendar
    .command('list')
    .description('List the calendars, with when each feed was last fetched and whether its last fetch failed.')
    .option('--json', 'print a JSON array')
    .option('--show-urls', 'show feed URLs in full (they often contain a secret)')
    .option(...USER_OPTION)
    .addHelpText('after', examples(['delegate calendar list', 'delegate calendar list --json', 'delegate calendar list --user bob']))
    .action(async (options: { json?: boolean; showUrls?: boolean; user?: string }) => {
      const { calendarListCommand } = await import('./commands/calendar.js');
      setExitCode(await calendarListCommand({ json: options.json === true, showUrls: options.showUrls === true, ...(options.user !== undefined ? { user: options.user } : {}) }, io));
    });

  calendar
    .command('remove')
    .description('Remove a calendar (the file itself is left alone; a feed’s cached copy goes with it).')
    .argument('<name>', 'its name, as calendar list shows it')
    .option(...USER_OPTION)
    .addHelpText('after', examples(['delegate calendar remove demo', 'delegate calendar remove work --user bob']))
    .action(async (name: string, options: { user?: string }) => {
      const { calendarRemoveCommand } = await import('./commands/calendar.js');
      setExitCode(await calendarRemoveCommand({ name, ...(options.user !== undefined ? { user: options.user } : {}) }, io));
    });
}
