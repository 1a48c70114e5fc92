// `delegate audit`: who acted for whom, through which chain of agents, on
// what, and when, from the hash-chained audit log, filtered by grant, client,
// event, user and time; `--verify` checks the chain and names the first
// edited, deleted, inserted or reordered record, and any record it cannot
// verify (its content unreadable), checking on past it. The chain alone cannot
// show a cut tail or a rewritten chain: `--verify --head <hash>` checks it
// against a head an earlier check printed and that was kept elsewhere.
import { BoundedMap } from '../../bounded-map.js';
import type { Paths } from '../../config.js';
import { GENESIS_HASH, KEPT_HEAD } from '../../store/audit-chain.js';
import type { AccountName, AuditFilter, AuditRecord, StoredRecord, Store } from '../../store/index.js';
import { AUDIT_EVENTS } from '../audit-events.js';
import { calendarDetailFor, isDetailSubset, parseCalendarDetail, parseScope, type AuthorizationDetail } from '../../delegation/index.js';
import { EXIT_ERROR, EXIT_OK, UsageError } from '../errors.js';
import type { CliIo, OutputStream } from '../io.js';
import { namedClient, printable } from '../shown.js';
import { databaseStarted, parseSince, pickedAccount, readOnlyNotice, refuseBlankUser, removedField, shownAccount, withStore, type AccountUse } from './admin-store.js';
import { delegateCommandLine, sameDataDelegateCommand, shellQuote } from './mcp-config.js';

export interface AuditArgs {
  paths: Paths;
  grant?: string;
  /** Client ids (a registered agent's id, a client's `cli_…`, or a metadata-document client's URL). */
  clients?: string[];
  /** Event names, each one of AUDIT_EVENTS. */
  events?: string[];
  /** An account's name, or a user id. */
  user?: string;
  since?: string;
  until?: string;
  json: boolean;
  verify: boolean;
  /** With verify: a head an earlier --verify printed (or a prefix of it, at least 32 hex digits) that the chain must hold. */
  head?: string;
}

export async function auditCommand(args: AuditArgs, io: CliIo): Promise<number> {
  const filter = checkedFilter(args, io.now());
  const keptHead = checkedHead(args);
  if (args.verify && !databaseStarted(args.paths)) return noLogToVerify(args, keptHead, io);
  return withStore(args.paths, async (store) => {
    if (args.verify) {
      const verdict = await store.verifyAudit(keptHead);
      if (args.json) io.stdout.write(`${JSON.stringify(verdict)}\n`);
      if (!verdict.ok) {
        if (!args.json) io.stderr.write(verdict.problem === 'unverifiable' ? `delegate: ${verdict.message}\n` : `delegate: The audit log has been tampered with. ${verdict.message}\n`);
        return EXIT_ERROR;
      }
      if (args.json) return EXIT_OK;
      io.stdout.write(`The audit log is intact: ${verdict.count} records, head ${verdict.head}${keptHead !== undefined ? `; it holds the head you kept (${keptHead})` : ''}.\n`);
      // The chain shows changes inside it, not a cut tail or a chain rewritten whole: only a head kept elsewhere can.
      // The command with this data directory pinned, as login's hints pin it (found in review, s33audit: typed in
      // another shell, the hint's bare `delegate audit --verify --head …` checked the default data directory's log).
      if (keptHead === undefined) io.stderr.write(`Keep this head where whoever can write the log cannot; \`${sameDataDelegateCommand(io.env)} ${['audit', '--verify', '--head', verdict.head].map(shellQuote).join(' ')}\` then also shows a log cut back or rewritten since.\n`);
      return EXIT_OK;
    }
    // Removed accounts too (users remove): the log keeps their records, under the names they had.
    const accounts = await store.listAccountNames();
    const user = args.user !== undefined ? pickedAccount(args.user, accounts, userUse(args.user, io)) : undefined;
    const pages = store.auditPages({ ...filter, ...(user ? { user: user.id } : {}) });
    const userNames = new Map(accounts.map((u) => [u.id, u]));
    const knownClients = new BoundedMap<string, string | null>(KNOWN_CLIENTS);
    // Written a page at a time as the records are read (found in review, s24: the whole log was held and written as
    // one string, which at 1,000,000 records took 2.9 GB and failed with "Invalid string length"). --json is still
    // one array, the same bytes as JSON.stringify of the list: "[", the elements with "," between them, "]". The "["
    // goes out with the first page, once a read has succeeded (found in review, s26: a damaged log printed "[" and
    // then the error, which a script took for the start of an answer); a read failing after that ends the command
    // with its one line and exit 1, the array left unclosed, so that no part of it parses as a whole answer.
    const unreadable: Array<{ seq: number; why: string }> = [];
    let listed = 0;
    let begun = false;
    for await (const page of pages) {
      const names: Names = { users: userNames, clients: await clientNames(store, page, knownClients) };
      // The records as stored, with the names `grants list` shows beside the ids (fields added, none changed);
      // one whose content cannot be read, without its actors and detail and marked `unreadable: true`.
      const text = args.json
        ? `${begun ? '' : '['}${page.map((r, i) => `${listed + i > 0 ? ',' : ''}${JSON.stringify(withNames(r, names))}`).join('')}`
        : page.map((r) => `${r.unreadable === undefined ? line(r, names) : unreadableLine(r)}\n`).join('');
      listed += page.length;
      begun = true;
      for (const r of page) if (r.unreadable !== undefined) unreadable.push({ seq: r.seq, why: r.unreadable });
      await written(io.stdout, text);
    }
    if (args.json) await written(io.stdout, begun ? ']\n' : '[]\n');
    else if (listed === 0) io.stderr.write('No audit records match.\n');
    // Every other record is listed; the ones that cannot be read are named, and the exit is 1, as --verify's.
    for (const r of unreadable) io.stderr.write(`delegate: Record ${r.seq} cannot be read: ${r.why}\n`);
    return unreadable.length > 0 ? EXIT_ERROR : EXIT_OK;
  }, readOnlyNotice(io));
}

/**
 * `--verify` where the data directory has no database (none yet, or removed): there is no audit log to check. Found
 * in review (s33audit): `--verify --head` read the empty log a reading command opens in its place and said "The audit
 * log has been tampered with … Its 0 records", as of a log cut back to nothing. With --head that is still exit 1 (the
 * head is not there to be held), saying why (--json: `problem: "no_database"`); without it, exit 0 and no head to
 * keep (--json: the verdict of an empty chain, as before).
 */
function noLogToVerify(args: AuditArgs, keptHead: string | undefined, io: CliIo): number {
  const none = `There is no audit log in ${args.paths.home}: no database there (${args.paths.db}).`;
  if (keptHead === undefined) {
    io.stdout.write(args.json ? `${JSON.stringify({ ok: true, count: 0, head: GENESIS_HASH })}\n` : printable(`${none} Nothing to verify.`) + '\n');
    return EXIT_OK;
  }
  const message = `${none} The head you kept (${keptHead}) is from another data directory, or this one's database was moved or removed.`;
  if (args.json) io.stdout.write(`${JSON.stringify({ ok: false, seq: 0, problem: 'no_database', message })}\n`);
  else io.stderr.write(`delegate: ${printable(message)}\n`);
  return EXIT_ERROR;
}

/** The filters that need no store, checked: a bad one is bad usage (exit 2), before the database is opened. */
function checkedFilter(args: AuditArgs, now: number): Omit<AuditFilter, 'user'> {
  const since = timeOption('--since', args.since, now, false, 'an ISO 8601 time (UTC when it has no offset) or a span such as 30m, 2h, 7d');
  const until = timeOption('--until', args.until, now, true, 'an ISO 8601 time (UTC when it has no offset) or a span back from now such as 30m, 2h, 7d');
  if (since !== undefined && until !== undefined && since > until) throw new UsageError(`--since (${new Date(since).toISOString()}) is after --until (${new Date(until).toISOString()}).`);
  const events = args.events?.map((e) => e.trim());
  const unknown = events?.find((e) => !(AUDIT_EVENTS as readonly string[]).includes(e));
  if (unknown !== undefined) throw new UsageError(`--event takes ${AUDIT_EVENTS.join(', ')} (several: repeated or comma-separated), not "${unknown}".`);
  if (args.grant !== undefined && args.grant.trim() === '') throw new UsageError('--grant takes a grant id (grt_…), as grants list shows it.');
  const clients = args.clients?.map((c) => c.trim());
  if (clients?.some((c) => c === '')) throw new UsageError('--client takes a client id: an agent’s (calendar-agent), a client’s (cli_…) or a metadata-document client’s URL, as audit and grants show shows it.');
  refuseBlankUser(args.user);
  return {
    ...(args.grant ? { grant: args.grant } : {}),
    ...(clients ? { clients } : {}),
    ...(events ? { events } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
  };
}

/** The head --head names, lower-cased; one that is not a head's hex digits, or without --verify, is bad usage. */
function checkedHead(args: AuditArgs): string | undefined {
  // --verify checks the whole chain: a filter beside it would be dropped in silence (found in review, s33audit: `audit
  // --verify --user bob` said the whole log was intact, as if it had checked bob's records alone).
  const filters = (
    [
      ['--grant', args.grant],
      ['--client', args.clients],
      ['--event', args.events],
      ['--user', args.user],
      ['--since', args.since],
      ['--until', args.until],
    ] as const
  ).filter(([, value]) => value !== undefined);
  if (args.verify && filters.length > 0) {
    throw new UsageError(`--verify checks the whole hash chain, so it takes no ${filters.map(([flag]) => flag).join(' or ')}: run \`${delegateCommandLine(['audit', '--verify'])}\` alone.`);
  }
  if (args.head === undefined) return undefined;
  if (!args.verify) throw new UsageError(`--head goes with --verify: ${delegateCommandLine(['audit', '--verify', '--head'])} HASH.`);
  const head = args.head.trim().toLowerCase();
  if (!KEPT_HEAD.test(head)) throw new UsageError('--head takes the head an earlier delegate audit --verify printed, or at least its first 32 hex digits: fewer can be matched by a rewritten log.');
  return head;
}

/** A record as --json gives it: as stored, or, when its content cannot be read, its columns and `unreadable: true`. */
function jsonRecord(r: StoredRecord): object {
  if (r.unreadable === undefined) return r;
  const { actors: _actors, detail: _detail, unreadable: _why, ...columns } = r;
  return { ...columns, unreadable: true };
}

/** The line of a record whose actors or detail cannot be read: its seq, time and event, and that it cannot be read. */
function unreadableLine(r: StoredRecord): string {
  return [new Date(r.at).toISOString(), `#${r.seq}`, r.event, 'cannot be read'].map(printable).join('  ');
}

/**
 * A time option read as parseSince reads it (`end`: --until, where a date is the end of that day), or undefined when
 * not given; one it cannot read, an empty one included, is bad usage.
 */
function timeOption(flag: string, given: string | undefined, now: number, end: boolean, takes: string): number | undefined {
  if (given === undefined) return undefined;
  const at = parseSince(given, now, end);
  if (at === undefined) throw new UsageError(`${flag} takes ${takes}.`);
  return at;
}

/** How `--user` refuses (bad usage, exit 2) and says what else a name named: as `grants list --user`, by name or id. */
function userUse(given: string, io: CliIo): AccountUse {
  return {
    what: 'records',
    none: `--user: there is no account named ${given}, nor with that id.`,
    refuse: (message) => new UsageError(message),
    notice: (line) => io.stderr.write(line),
  };
}

/**
 * A record as --json gives it: as stored, with the names `grants list` shows beside the ids (a removed account's
 * the name it had, and `user_removed_at`); fields added, none changed.
 */
function withNames(r: StoredRecord, names: Names): object {
  const user = r.user ? names.users.get(r.user) : undefined;
  return { ...jsonRecord(r), user_name: user?.name ?? null, ...removedField(user), client_name: r.client ? (names.clients.get(r.client) ?? null) : null };
}

interface Names {
  /** User id → the account, removed ones included. */
  users: Map<string, AccountName>;
  /** Client id → the name it registered with (the one `grants list` shows), for the clients still registered. */
  clients: Map<string, string>;
}

/** Clients whose names are kept between pages: a log names a few clients many times, or (swept ones) many once. */
const KNOWN_CLIENTS = 10_000;

/** The names of the clients `records` name, each looked up once while `known` keeps it (null: none, or not registered). */
async function clientNames(store: Store, records: readonly AuditRecord[], known: BoundedMap<string, string | null>): Promise<Map<string, string>> {
  const ids = new Set(records.flatMap((r) => (r.client ? [r.client] : [])));
  const names = new Map<string, string>();
  for (const id of ids) {
    let name = known.get(id);
    if (name === undefined) {
      name = (await store.clientById(id))?.clientName ?? null;
      known.set(id, name);
    }
    if (name) names.set(id, name);
  }
  return names;
}

/** Writes `text`, and when the stream says its buffer is full (a slow reader of a pipe), waits for it to drain. */
async function written(out: OutputStream, text: string): Promise<void> {
  if (out.write(text) === false && out.once) await new Promise<void>((resolve) => out.once!('drain', resolve));
}

/** The events resource servers write (or report, POST /audit); the AS writes every other. */
const RESOURCE_EVENTS: ReadonlySet<string> = new Set(['tool_call', 'freebusy_read']);

function line(r: AuditRecord, names: Names): string {
  const account = r.user ? names.users.get(r.user) : undefined;
  const user = account ? shownAccount(account.name, account.removedAt !== null) : r.user;
  // A consent is the user's decision about a client: by the user, for the client (named, with the id --client takes).
  const consent = r.event === 'consent';
  const who = !user ? '' : consent ? `by ${user}` : `for ${user}`;
  // The chain ends with the user, already named.
  const actors = r.actors.filter((a) => a !== r.user);
  // An administrator's change (detail.by) was made by the CLI, not by the client it names (a registered agent).
  // by, name and timeZone are the AS's words: a resource server's record (found in review: a report forging them) shows none.
  const asWrote = !RESOURCE_EVENTS.has(r.event);
  const by = asWrote && typeof r.detail.by === 'string' ? r.detail.by : undefined;
  const clientName = r.client ? names.clients.get(r.client) : undefined;
  const chain = consent
    ? r.client
      ? `for ${clientName ? namedClient(clientName, r.client) : r.client}`
      : ''
    : actors.length > 0
      ? `by ${actors.join(' ← ')}`
      : by
        ? `by ${by}`
        : r.client
          ? `by ${r.client}`
          : '';
  const changed = by ? [r.client, r.detail.name].filter((x) => typeof x === 'string' && x !== account?.name) : [];
  // A record an agent reported (POST /audit) is its word, checked against the token it names; say whose word it is.
  const reporter = typeof r.detail.reported_by === 'string' ? `reported by ${r.detail.reported_by}` : '';
  // A password reset that also moved the account's time zone says so (found in review: only --json showed it).
  const zone = asWrote && typeof r.detail.timeZone === 'string' ? `time zone ${r.detail.timeZone}` : undefined;
  const what = [...changed, r.detail.tool, r.detail.decision, r.detail.scope, r.detail.outcome, zone, ...(asWrote ? [...added(r), ...tokenWays(r)] : [])].filter((x) => typeof x === 'string').join(' ');
  // Every part is stored data, some of it an agent's or a client's word: printed escaped, it cannot forge or erase a line.
  return [new Date(r.at).toISOString(), `#${r.seq}`, r.event, who, chain, reporter, r.grant ?? '', r.resource ?? '', what, consent ? grantChange(r.detail) : why(r.detail)]
    .filter((x) => x !== '')
    .map(printable)
    .join('  ');
}

/**
 * What a record of something added says beside its actors: a registered client's redirect URIs' hosts, its source and its name
 * (a private-use scheme for an app's) and the address it registered from; "owner" for the account setup made; a signing
 * key's id, and the one a rotation retired or withdrew.
 */
function added(r: AuditRecord): string[] {
  if (r.event === 'user_added') return r.detail.owner === true ? ['owner'] : [];
  // A signing key by its id (RFC 7638 thumbprint), as tokens' `kid` names it: which key signed a period's tokens.
  if (r.event === 'signing_key_created' || r.event === 'signing_key_rotated') {
    const { kid, previous_kid: previous, withdrawn } = r.detail;
    return [
      ...(typeof kid === 'string' ? [`key ${kid}`] : []),
      ...(typeof previous === 'string' ? [`${withdrawn === true ? 'withdrawing' : 'retiring'} ${previous}`] : []),
    ];
  }
  if (r.event !== 'client_registered' && r.event !== 'client_updated') return [];
  const { client_name: name, redirect_uris: uris, source_address: from } = r.detail;
  const hosts = Array.isArray(uris) ? [...new Set(uris.filter((u) => typeof u === 'string').map(redirectHost))] : [];
  // The name last, labelled, and quoted as JSON quotes it: found in review (s24new2), a name holding `" redirect
  // 127.0.0.1:8410 from 10.1.2.3 "` printed raw in quotes showed a redirect host and a source it did not have.
  return [...(hosts.length > 0 ? [`redirect ${hosts.join(',')}`] : []), ...(typeof from === 'string' ? [`from ${from}`] : []), ...(typeof name === 'string' ? [`name ${JSON.stringify(name)}`] : [])];
}

/**
 * How a token was issued, where --json alone said it (found in review, s33audit): an exchange that handed the new
 * token on to a sub-agent (`detail.handed_to`, its may_act, RFC 8693 §4.4) names that agent and the resource it may
 * exchange the token for (the record's resource is the authorization server then: the token's audience); a refresh of
 * a refresh token presented again within the grace window (`within_grace`) says so.
 */
function tokenWays(r: AuditRecord): string[] {
  const { handed_to: handedTo, target, within_grace: grace } = r.detail;
  if (r.event === 'token_exchanged' && typeof handedTo === 'string') return [`handed to ${handedTo}${typeof target === 'string' ? ` for ${target}` : ''}`];
  if (r.event === 'token_refreshed' && grace === true) return ['within grace'];
  return [];
}

/** A redirect URI's host and port, or its scheme when it has none (an app's private-use scheme, RFC 8252 §7.1). */
function redirectHost(uri: string): string {
  try {
    const url = new URL(uri);
    return url.host !== '' ? url.host : url.protocol;
  } catch {
    return uri;
  }
}

/** Why a request was refused or failed: the limit it went past, the scope it lacked, or the tool's message. */
function why(detail: Record<string, unknown>): string {
  // A refused token exchange names its OAuth error code (`detail.error`) instead of an outcome.
  const code = typeof detail.error === 'string' ? detail.error : '';
  if (detail.outcome !== 'refused' && detail.outcome !== 'error' && code === '') return '';
  const missing = Array.isArray(detail.missing_scope) ? detail.missing_scope.filter((s) => typeof s === 'string').join(' ') : typeof detail.missing_scope === 'string' ? detail.missing_scope : '';
  if (missing !== '') return `(missing scope ${missing})`;
  const reason = typeof detail.reason === 'string' ? detail.reason : typeof detail.message === 'string' ? detail.message : '';
  const said = [code, reason].filter((x) => x !== '').join(': ');
  return said === '' ? '' : `(${said})`;
}

/**
 * What a consent changed in a grant that existed before: "narrowed (…)" when
 * it only took something back (the tokens issued under the old limits revoked),
 * "changed (…)" when it allowed anything more (with the tokens revoked, when it
 * also took something back) or changed nothing it can name; nothing for a new
 * grant or a refusal.
 */
function grantChange(detail: Record<string, unknown>): string {
  if (!('previous_scope' in detail)) return '';
  const changes: string[] = [];
  if (typeof detail.previous_scope === 'string' && typeof detail.scope === 'string' && detail.previous_scope !== detail.scope) changes.push(`scope ${detail.previous_scope} → ${detail.scope}`);
  changes.push(...calendarChanges(detail.previous_authorization_details, detail.authorization_details));
  if (typeof detail.previous_max_depth === 'number' && typeof detail.max_depth === 'number' && detail.previous_max_depth !== detail.max_depth) {
    changes.push(`hops ${detail.previous_max_depth} → ${detail.max_depth}`);
  }
  if (typeof detail.previous_expires_at === 'string' && typeof detail.expires_at === 'string' && detail.previous_expires_at !== detail.expires_at) {
    changes.push(`until ${detail.previous_expires_at.slice(0, 10)} → ${detail.expires_at.slice(0, 10)}`);
  }
  if (detail.narrowed === true) {
    const revoked = typeof detail.tokens_revoked === 'number' ? detail.tokens_revoked : 0;
    // Found in review (s33deleg): a step-up that added busy:read and lowered hops 2 → 1 read "narrowed (…)".
    return `${widens(detail) ? 'changed' : 'narrowed'} (${[...changes, `${revoked} token${revoked === 1 ? '' : 's'} revoked`].join(', ')})`;
  }
  return changes.length > 0 ? `changed (${changes.join(', ')})` : '';
}

/**
 * Whether a consent allowed anything the grant did not before (the converse of consent.ts `narrows`, with the scope,
 * which a step-up adds to): a scope added, a longer chain, a later end, or a calendar entry, at any of its places, that
 * the previous ones do not cover (a place added, more calendars, a longer lookahead). A member a record does not hold
 * (an older record's) says nothing either way.
 */
function widens(detail: Record<string, unknown>): boolean {
  const { previous_scope: previousScope, scope, previous_max_depth: previousDepth, max_depth: depth, previous_expires_at: previousEnd, expires_at: end } = detail;
  if (typeof previousScope === 'string' && typeof scope === 'string') {
    const before = new Set(parseScope(previousScope));
    if (parseScope(scope).some((s) => !before.has(s))) return true;
  }
  if (typeof previousDepth === 'number' && typeof depth === 'number' && depth > previousDepth) return true;
  if (typeof previousEnd === 'string' && typeof end === 'string' && Date.parse(end) > Date.parse(previousEnd)) return true;
  if (!Array.isArray(detail.previous_authorization_details) || !Array.isArray(detail.authorization_details)) return false;
  const previous = detail.previous_authorization_details as AuthorizationDetail[];
  return detail.authorization_details.some((raw) => {
    const now = parseCalendarDetail(raw);
    return now.ok && now.detail.locations.some((location) => {
      const old = calendarDetailFor(previous, location);
      return old === undefined || !isDetailSubset({ ...now.detail, locations: [location] }, old).ok;
    });
  });
}

interface CalendarLimits {
  calendars: string;
  lookahead: string;
}

/** A calendar entry's limits as the audit line shows them: which calendars, how many days ahead. */
function calendarLimits(entry: Record<string, unknown> | undefined): CalendarLimits {
  const calendars = Array.isArray(entry?.calendars) ? entry.calendars.filter((c) => typeof c === 'string').join(',') : 'all';
  const lookahead = typeof entry?.lookahead_days === 'number' ? String(entry.lookahead_days) : 'any';
  return { calendars, lookahead };
}

/**
 * A grant's calendar entries by each place (location) they are for, in their order: an entry naming two places is
 * there under each, and a place an older grant named twice (`[A, A]`, stored as sent before repeats were dropped)
 * once (found in review, s25new: keyed on the whole list, `[A, A]` → `[A]` read as one place removed and another added).
 */
function calendarEntries(details: unknown): Map<string, Record<string, unknown>> {
  const entries = new Map<string, Record<string, unknown>>();
  for (const d of Array.isArray(details) ? details : []) {
    if (typeof d !== 'object' || d === null) continue;
    const locations = (d as Record<string, unknown>).locations;
    const places = Array.isArray(locations) ? locations.filter((l): l is string => typeof l === 'string') : [];
    for (const place of places.length > 0 ? places : ['']) if (!entries.has(place)) entries.set(place, d as Record<string, unknown>);
  }
  return entries;
}

/**
 * What a consent changed in a grant's calendar limits. With one entry before and after, as most grants hold, the
 * change as it always read ("lookahead 30 → 7 days"); with several, each place's change, naming the place (found
 * at stop 25: only the first entries were compared, so a step-up that narrowed only a second place read "narrowed"
 * with no word of what).
 */
function calendarChanges(previous: unknown, current: unknown): string[] {
  const before = calendarEntries(previous);
  const after = calendarEntries(current);
  const compare = (b: CalendarLimits, a: CalendarLimits, at: string): string[] => [
    ...(b.calendars !== a.calendars ? [`calendars${at} ${b.calendars} → ${a.calendars}`] : []),
    ...(b.lookahead !== a.lookahead ? [`lookahead${at} ${b.lookahead} → ${a.lookahead} days`] : []),
  ];
  if (before.size <= 1 && after.size <= 1) return compare(calendarLimits([...before.values()][0]), calendarLimits([...after.values()][0]), '');
  const places = [...new Set([...after.keys(), ...before.keys()])];
  return places.flatMap((place) => {
    const b = before.get(place);
    const a = after.get(place);
    const named = place === '' ? 'any place' : place;
    if (!b) return [`${named} added`];
    if (!a) return [`${named} removed`];
    return compare(calendarLimits(b), calendarLimits(a), ` at ${named}`);
  });
}
