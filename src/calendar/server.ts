// The calendar backend, a resource server (RFC 9728) answering one question:
// when is this user busy in this window? `GET /freebusy?from&to` returns the
// merged busy intervals of the token subject's calendars, clipped to the
// window, and the user's time zone; never titles, places or people. The query
// may narrow it to some calendars and say how to count tentative events and
// broken calendars (freebusy-query.ts). Built by
// buildCalendarServer, which never listens (docs/internals.md).
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import { SCOPE_FREEBUSY_READ, canonicalResource, type AccessTokenClaims } from '../delegation/index.js';
import { DATA_DIRECTORY_HEADER, publishedDataDirectoryId } from '../data-directory-id.js';
import { errorDescription } from '../error-description.js';
import { ACTS_ON_GET, createApp, sendError, type AppOptions } from '../http/app.js';
import { noteRefusal } from '../http/refusal-log.js';
import { delegationLogFields } from '../http/logging.js';
import { answerPreflight } from '../http/cors.js';
import { printable } from '../terminal-text.js';
import { auditLogCannotRecord, auditRecord, unrecordedReadDescription, type AuditSink } from '../resource/audit.js';
import { BearerError, VerifierUnavailableError, createBearerVerifier, wwwAuthenticate, type TokenHeader } from '../resource/bearer.js';
import { calendarLimits, calendarsToRead, checkWindow, permittedCalendars } from '../resource/constraints.js';
import { attachRevocationList, createRevocationList, type RevocationList } from '../resource/revocations.js';
import { createBusyCache, type BusyCache } from './busy-cache.js';
import { CalendarSourceError } from './errors.js';
import { toUtcIso, parseIsoInstant } from './format.js';
import { chooseCalendars, readSelection, type CalendarErrorMode, type TentativeMode } from './freebusy-query.js';
import { mergeIntervals, type Interval } from './intervals.js';
import { createCalendarLoader, type CalendarLoader, type CalendarRef } from './sources.js';
import { MAX_WINDOW_MS, type WorkingHours } from './slots.js';
import { isIanaZone } from './zone.js';

/** The answer for a user with no calendar at all (404 `no_calendars`): what to do, since there is nothing to check. */
export const NO_CALENDARS = 'There are no calendars to check: add one with `delegate calendar add NAME FILE`, or `delegate calendar add NAME` for a feed (it asks for its address).';

/**
 * NO_CALENDARS for a named account (server mode), which cannot add its own: the administrator's command names it with
 * `--user` (found in review, s33team: it named the command that adds to the owner, so the account's next search said
 * the same). Its name when a command line and an error_description (RFC 6749 §5.2: printable ASCII) hold it as it
 * is, else its id (`sub`), which `--user` takes too.
 */
export function noCalendarsOf(account: string, sub: string): string {
  const user = /^[A-Za-z0-9][A-Za-z0-9._@-]*$/.test(account) ? account : sub;
  return `There are no calendars to check for this account: an administrator adds one with \`delegate calendar add NAME FILE --user ${user}\`, or \`delegate calendar add NAME --user ${user}\` for a feed (it asks for its address).`;
}

/** A user's calendars and the zone their floating times, all-day events and working hours are read in. */
export interface UserCalendars {
  timeZone: string;
  calendars: CalendarRef[];
  /** The user's own working hours, when they configured them (sent along so the agent searches inside them). */
  workingHours?: WorkingHours;
  /** The user's defaults for what a request does not say (issue 4). */
  tentative?: TentativeMode;
  onCalendarError?: CalendarErrorMode;
  /** Why the user's settings cannot be used; the request fails with it rather than run on guesses. */
  settingsProblem?: string;
  /**
   * How this account's time zone is set, as advice to end a message saying that the zone is one this computer
   * does not know (the owner: in config.json; a named account: a command), e.g. "set 'timeZone' in the owner's
   * config.json to an IANA time zone such as Europe/Berlin". Without it, the message names no place.
   */
  timeZoneMend?: string;
  /**
   * A named account's name (server mode), for the answer when it has no calendar: it names the administrator's
   * `calendar add … --user` (noCalendarsOf). None for the local owner.
   */
  accountName?: string;
}

export interface CalendarServerOptions {
  /** Canonical URL of this backend: the audience its tokens must name, e.g. http://127.0.0.1:8411. */
  resourceUrl: string;
  /** The authorization server whose tokens are accepted. */
  issuer: string;
  /**
   * The calendars of a token's `sub`; undefined for a user this backend does not know. What it logs goes to `log`,
   * the request's logger, so that its lines carry the request's reqId (README: every line about a request does).
   */
  calendarsFor: (sub: string, log: FastifyBaseLogger) => Promise<UserCalendars | undefined>;
  now?: () => number;
  logger?: Logger;
  /** Verification keys (tests); by default the issuer's JWKS, found through its metadata. */
  keys?: JWTVerifyGetKey;
  fetchFn?: typeof fetch;
  /**
   * What a calendar that cannot be read or parsed does to a request: fail it
   * (502, the default) or leave that calendar out and name it under `skipped`.
   */
  onCalendarError?: 'fail' | 'skip';
  /** Whether tentative events count as busy (default) or free. */
  tentative?: 'busy' | 'free';
  /** Parsed-calendar cache; one per server by default. */
  loader?: CalendarLoader;
  /** Expanded busy time kept across requests; one per server by default. */
  busyCache?: BusyCache;
  /**
   * The revocation list (src/resource/revocations.ts) that refuses revoked
   * grants and tokens; by default one that polls the issuer, started and
   * stopped with this server. `false` turns it off: only for tests whose
   * issuer is a bare key.
   */
  revocations?: RevocationList | false;
  /** Where every read is recorded (Store.appendAudit in the CLI); none means reads are not recorded. */
  audit?: AuditSink;
  /** Reverse proxies whose X-Forwarded-For names the client (createApp's AppOptions.trustProxy); none by default. */
  trustProxy?: AppOptions['trustProxy'];
  /**
   * The data directory it runs from: with a loopback resource URL, its identity goes with the metadata
   * (DATA_DIRECTORY_HEADER, src/data-directory-id.ts), as the authorization server's does.
   */
  dataDirectory?: string;
}

/** Wire format of `GET /freebusy`. */
export interface FreeBusyResponse {
  timeZone: string;
  /** Merged busy intervals, UTC ISO 8601 ("2026-12-01T10:45:00Z"), sorted, inside the window. */
  busy: Array<{ start: string; end: string }>;
  /** Only with onCalendarError 'skip', and only when a calendar was left out. */
  skipped?: Array<{ calendar: string; error_description: string }>;
  /** The user's configured working hours, when they have configured them. */
  workingHours?: WorkingHours;
  /** Feeds whose last fetch failed, so an older copy was used: when it was fetched, and why the fetch failed. */
  stale?: Array<{ calendar: string; fetchedAt: string; error_description: string }>;
}

export async function buildCalendarServer(options: CalendarServerOptions): Promise<FastifyInstance> {
  const resource = canonicalResource(options.resourceUrl);
  if (!resource) throw new Error(`The calendar backend's resource URL is not an absolute http(s) URL: ${options.resourceUrl}`);
  const url = new URL(resource);
  const basePath = url.pathname === '/' ? '' : url.pathname;
  // RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
  const metadataPath = `/.well-known/oauth-protected-resource${basePath}`;
  const metadataUrl = `${url.origin}${metadataPath}`;

  const now = options.now ?? Date.now;
  const app = createApp({ ...(options.logger ? { logger: options.logger } : {}), publicUrl: resource, ...(options.trustProxy ? { trustProxy: options.trustProxy } : {}) });
  const revocations =
    options.revocations === false
      ? undefined
      : (options.revocations ?? createRevocationList({ issuer: options.issuer, now, logger: app.log, ...(options.fetchFn ? { fetchFn: options.fetchFn } : {}) }));
  const verify = createBearerVerifier({
    issuer: options.issuer,
    audience: resource,
    ...(options.keys ? { keys: options.keys } : {}),
    ...(options.now ? { now: options.now } : {}),
    ...(options.fetchFn ? { fetchFn: options.fetchFn } : {}),
    ...(revocations ? { reject: (claims: AccessTokenClaims, header: TokenHeader) => revocations.check(claims, header.kid) } : {}),
  });
  if (revocations) attachRevocationList(app, revocations, verify);
  const loader = options.loader ?? createCalendarLoader();
  const busyCache = options.busyCache ?? createBusyCache();
  // The feeds whose last good copy stands in, by user and feed (in memory only: never logged), with that copy's
  // fetchedAt: one warning a failure streak, not one a read (found in review, s35logs: a feed that was down left no
  // line at all, only `stale` in the answers). Cleared when the feed is read fresh again.
  const staleWarned = new Map<string, number>();

  // Free/busy is personal and changes: no response of this server may be stored (RFC 9111 §5.2.2.5).
  app.addHook('onRequest', async (_req, reply) => {
    reply.header('Cache-Control', 'no-store');
  });

  // Which data directory it runs from, for a serve command of this machine that finds this port taken (src/cli/servers.ts
  // listen); in a header, as the authorization server's, which a web page cannot read cross-origin.
  const dataDirectoryId = await publishedDataDirectoryId(resource, options.dataDirectory);
  // Public metadata, readable from another origin and preflighted as CalendarAgent's and the authorization server's
  // metadata are (src/http/cors.ts; found in review, s31mcp: none answered a preflight, and this one no CORS at all).
  app.get(metadataPath, async (_req, reply) => {
    if (dataDirectoryId !== undefined) reply.header(DATA_DIRECTORY_HEADER, dataDirectoryId);
    reply.header('Access-Control-Allow-Origin', '*');
    return {
      resource,
      authorization_servers: [options.issuer],
      scopes_supported: [SCOPE_FREEBUSY_READ],
      bearer_methods_supported: ['header'],
      resource_name: 'delegate calendar backend (free/busy)',
    };
  });
  app.options(metadataPath, async (_req, reply) => answerPreflight(reply, 'GET, OPTIONS'));

  app.get(`${basePath}/freebusy`, ACTS_ON_GET, async (req, reply) => {
    let claims: AccessTokenClaims;
    try {
      claims = (await verify(req, [SCOPE_FREEBUSY_READ])).claims;
    } catch (err) {
      if (err instanceof BearerError) return refuse(reply, metadataUrl, err);
      if (err instanceof VerifierUnavailableError) return unavailable(reply, err);
      throw err;
    }
    // No passthrough (docs/delegation.md): only a token an agent got by exchange (RFC 8693) reaches this backend,
    // and every such token names its actor (`act`, §4.1) and carries the user's limits for this URL (RFC 9396).
    // One without either was issued for this audience some other way (found in review: an agent registered at this
    // URL turned it into an agent's resource, and a public client's token then read it); read without a detail it
    // would have no lookahead, calendar or window limit at all. An unlimited detail is never implied: refused as
    // invalid_token (RFC 6750 §3.1), with the challenge like any other.
    // Who asked, on the access line (found in review, s35logs: a /freebusy line named no one).
    req.accessLog = { ...req.accessLog, ...delegationLogFields(claims) };
    if (typeof claims.act?.sub !== 'string') {
      return refuse(reply, metadataUrl, new BearerError(401, 'invalid_token', 'The token names no agent acting for the user (act); only a token exchanged by an agent is accepted here.'));
    }
    const limits = calendarLimits(claims, resource);
    if (!limits.ok) return refuse(reply, metadataUrl, new BearerError(401, 'invalid_token', limits.reason));
    if (!limits.detail) {
      return refuse(reply, metadataUrl, new BearerError(401, 'invalid_token', "The token carries no calendar limits (authorization_details) for this backend; only a token exchanged by an agent is accepted here."));
    }
    const sub = claims.sub;
    const window = windowOf(req);
    if ('problem' in window) return sendError(reply, 400, 'invalid_request', window.problem);
    const selection = readSelection(req.query as Record<string, string | string[] | undefined>);
    if ('problem' in selection) return sendError(reply, 400, 'invalid_request', selection.problem);

    // The user's limits travel in the token (RFC 9396, docs/internals.md): a request beyond them is refused, never cut down.
    /** Records the read; undefined when recorded (or nothing records), else the failure. */
    const record = async (outcome: 'ok' | 'refused', detail: Record<string, unknown>): Promise<{ failed: unknown } | undefined> => {
      if (!options.audit) return undefined;
      try {
        await options.audit(
          auditRecord('freebusy_read', claims, resource, { outcome, window: { from: toUtcIso(window.start), to: toUtcIso(window.end) }, ...detail }),
        );
        return undefined;
      } catch (err) {
        req.log.warn({ err: { name: (err as Error)?.name, message: (err as Error)?.message } }, 'free/busy read could not be audited');
        return { failed: err };
      }
    };
    const inWindow = checkWindow(limits.detail, { from: window.start, to: window.end }, now());
    const permitted = permittedCalendars(limits.detail, selection.calendars);
    const beyond = !inWindow.ok ? inWindow.reason : !permitted.ok ? permitted.reason : undefined;
    if (beyond !== undefined) {
      await record('refused', { reason: beyond, ...(selection.calendars ? { calendars: selection.calendars } : {}) });
      return refuse(reply, metadataUrl, new BearerError(403, 'insufficient_scope', beyond));
    }

    const user = await options.calendarsFor(sub, req.log);
    if (!user) return sendError(reply, 404, 'not_found', 'No calendars are known for this user.');
    // What the owner set up cannot be used (config.json, the stored time zone, below a calendar file): not the
    // client's fault, so 5xx, but no passing failure either: `invalid_configuration`, which CalendarAgent relays
    // without advice to retry. Found in review: a stored zone this computer does not know (a database moved from
    // another machine, an older time zone database) was 500 server_error, "try again shortly". The mend depends on
    // the account (found in a later review: config.json was named to every account, and only the owner's is read).
    if (user.settingsProblem !== undefined) return sendError(reply, 500, 'invalid_configuration', user.settingsProblem);
    if (!isIanaZone(user.timeZone)) {
      req.log.error({ timeZone: user.timeZone }, 'user has an invalid time zone');
      const mend = user.timeZoneMend ?? 'it must be set to an IANA time zone such as Europe/Berlin';
      return sendError(reply, 500, 'invalid_configuration', `The calendar owner's time zone '${user.timeZone}' is not one this computer knows; ${mend}.`);
    }
    // From here on, only the calendars the delegation covers: whatever the answer, its holder learns nothing of the
    // others, not their names, not their count (found in review s23deleg: see chooseCalendars). With no calendar
    // named, all of these are read.
    const delegated = limits.detail.calendars;
    const coveredNames = calendarsToRead(limits.detail, undefined, user.calendars.map((c) => c.name));
    const covered = user.calendars.filter((c) => coveredNames.includes(c.name));
    if (delegated && covered.length === 0 && selection.calendars === undefined) {
      // Reading nothing would answer "free" for calendars that are gone: say so instead. The same answer whether the
      // user has other calendars or none at all (that is their count, which the delegation does not cover).
      const reason = `None of the calendars the delegation allows (${delegated.map((c) => `"${c}"`).join(', ')}) exists any more.`;
      await record('refused', { reason });
      return refuse(reply, metadataUrl, new BearerError(403, 'insufficient_scope', reason));
    }
    // No calendar at all: every slot would look free, an answer nothing was checked for. Say so instead.
    if (!delegated && covered.length === 0) return sendError(reply, 404, 'no_calendars', user.accountName !== undefined ? noCalendarsOf(user.accountName, sub) : NO_CALENDARS);
    const chosen = chooseCalendars(covered, selection.calendars, delegated !== undefined);
    if ('problem' in chosen) return sendError(reply, 400, 'invalid_request', chosen.problem);
    const tentative = selection.tentative ?? user.tentative ?? options.tentative ?? 'busy';
    const onCalendarError = selection.onCalendarError ?? user.onCalendarError ?? options.onCalendarError ?? 'fail';

    const busy: Interval[] = [];
    const skipped: NonNullable<FreeBusyResponse['skipped']> = [];
    const stale: NonNullable<FreeBusyResponse['stale']> = [];
    for (const calendar of chosen) {
      try {
        const parsed = await loader.load(calendar);
        busy.push(...(await busyCache.busy(parsed, window, { timeZone: user.timeZone, tentative })));
        const old = loader.staleness?.(calendar);
        const feedKey = `${sub}\u0000${'url' in calendar ? calendar.url : calendar.name}`;
        if (!old) staleWarned.delete(feedKey);
        else if (staleWarned.get(feedKey) !== old.fetchedAt) {
          staleWarned.set(feedKey, old.fetchedAt);
          // The calendar's name, never its URL (a feed's URL may carry a secret); the reason names no URL (feeds.ts).
          req.log.warn({ calendar: old.calendar, fetchedAt: toUtcIso(old.fetchedAt), reason: old.reason }, 'calendar feed unavailable: its last good copy stands in');
        }
        // Not an error response, so not held to RFC 6749 §5.2: the message reaches the person as written, but a
        // feed's text in it (ESC, a bare CR, OSC … BEL) would act on their terminal: controls are shown as escapes.
        // The calendar's name too (found by the s18 helpers): `calendar add` refuses controls in one, a store written otherwise need not.
        if (old) stale.push({ calendar: printable(old.calendar), fetchedAt: toUtcIso(old.fetchedAt), error_description: printable(old.reason) });
        if (old?.quoted !== undefined) req.log.debug({ calendar: old.calendar, quoted: old.quoted }, 'calendar feed refused: its text at fault');
      } catch (err) {
        if (!(err instanceof CalendarSourceError)) throw err;
        req.log.warn({ calendar: err.calendar, code: err.code, line: err.line, reason: err.reason }, 'calendar unavailable');
        // The calendar's text at fault is the owner's, never sent (errors.ts); their own log shows it at debug.
        if (err.quoted !== undefined) req.log.debug({ calendar: err.calendar, line: err.line, quoted: err.quoted }, 'calendar unavailable: its text at fault');
        if (onCalendarError === 'skip') {
          skipped.push({ calendar: printable(err.calendar), error_description: printable(err.message) });
          continue;
        }
        if ('path' in calendar) {
          // A file on this computer: only its owner can mend it.
          noteRefusal(req, 'invalid_configuration', fileCalendarProblem(err));
          return reply
            .code(500)
            .type('application/json')
            .send({ error: 'invalid_configuration', error_description: errorDescription(fileCalendarProblem(err)), calendar: printable(err.calendar) });
        }
        // A feed with no good copy yet: its next fetch may succeed, and says when it will be made (RFC 9110 §10.2.3).
        if (err.retryAfterSec !== undefined) reply.header('Retry-After', String(err.retryAfterSec));
        noteRefusal(req, 'calendar_unavailable', err.message);
        return reply
          .code(502)
          .type('application/json')
          .send({ error: 'calendar_unavailable', error_description: errorDescription(err.message), calendar: printable(err.calendar) });
      }
    }
    const body: FreeBusyResponse = {
      timeZone: user.timeZone,
      busy: mergeIntervals(busy).map((i) => ({ start: toUtcIso(i.start), end: toUtcIso(i.end) })),
      ...(skipped.length > 0 ? { skipped } : {}),
      ...(stale.length > 0 ? { stale } : {}),
      ...(user.workingHours ? { workingHours: user.workingHours } : {}),
    };
    // What was read, for whom and through which chain goes on the log before the answer goes out.
    const unrecorded = await record('ok', { calendars: chosen.map((c) => c.name) });
    if (unrecorded) {
      // A full or read-only store is named, as the authorization server names it, and is no passing failure: 500
      // server_error, without "try again shortly" (found in review: a full disk got 503 "try again shortly").
      const cannotRecord = auditLogCannotRecord(unrecorded.failed);
      if (cannotRecord !== undefined) return sendError(reply, 500, 'server_error', unrecordedReadDescription(cannotRecord));
      return sendError(reply, 503, 'temporarily_unavailable', 'The read could not be recorded in the audit log; try again shortly.');
    }
    return body;
  });

  return app;
}

/**
 * What is wrong with a calendar file, and the two ways out. Not where it is: the answer may go to a remote
 * client (server mode), and the file's path is this computer's business; `delegate calendar list` names it.
 */
function fileCalendarProblem(err: CalendarSourceError): string {
  const remove = calendarAsShellWord(err.calendar);
  const removal = remove === undefined ? '`delegate calendar remove` and its name, quoted' : `\`delegate calendar remove ${remove}\``;
  return `${err.message} Fix the calendar's file (\`delegate calendar list\` shows where it is), or remove the calendar with ${removal}.`;
}

/**
 * A calendar's name as one shell word that an error_description carries as it is (printable ASCII without `"` or
 * `\`, RFC 6749 §5.2): bare when it needs no quoting, else in single quotes. Undefined for a name that no such word
 * holds: one with an apostrophe (quoting it needs `"` or `\`), or with a letter outside ASCII (errorDescription
 * writes `é` as `e`, another name). Names may hold spaces and any letter (`delegate calendar add 'my work' …`): the
 * bare name was two words, and the advised command failed ("too many arguments").
 */
function calendarAsShellWord(name: string): string | undefined {
  if (/^[A-Za-z0-9_.@+-]+$/.test(name)) return name;
  return /^[\x20\x21\x23-\x26\x28-\x5b\x5d-\x7e]+$/.test(name) ? `'${name}'` : undefined;
}

/** 401/403 (or 400) with the RFC 6750 §3 challenge naming our metadata (RFC 9728 §5.1). */
function refuse(reply: FastifyReply, metadataUrl: string, err: BearerError): FastifyReply {
  reply.header('WWW-Authenticate', wwwAuthenticate(metadataUrl, err));
  return sendError(reply, err.status, err.code ?? 'invalid_token', err.message);
}

/** 503 when the token cannot be judged now (a stale revocation list): refused, fail-closed, but not declared invalid. */
function unavailable(reply: FastifyReply, err: VerifierUnavailableError): FastifyReply {
  reply.header('Retry-After', String(err.retryAfterSec));
  return sendError(reply, 503, 'temporarily_unavailable', err.message);
}

/** The requested window [from, to) from the query, or what is wrong with it. */
function windowOf(req: FastifyRequest): Interval | { problem: string } {
  const query = req.query as Record<string, string | string[] | undefined>;
  const read = (name: 'from' | 'to'): number | string => {
    const value = query[name];
    if (value === undefined || value === '') return `The "${name}" parameter is required (ISO 8601 with an offset, e.g. 2026-12-01T09:00:00Z).`;
    if (Array.isArray(value)) return `The "${name}" parameter must be given once.`;
    return parseIsoInstant(value) ?? `"${name}" must be an ISO 8601 date-time with an offset or Z, e.g. 2026-12-01T09:00:00+01:00.`;
  };
  const from = read('from');
  if (typeof from === 'string') return { problem: from };
  const to = read('to');
  if (typeof to === 'string') return { problem: to };
  if (to <= from) return { problem: '"to" must be later than "from".' };
  if (to - from > MAX_WINDOW_MS) return { problem: 'The window may cover at most 366 days.' };
  return { start: from, end: to };
}
