// How CalendarAgent reads busy time from the calendar backend: one
// `GET /freebusy?from&to` with the exchanged token (docs/internals.md), under
// a timeout, with every way it can fail named by a stable code so the tool can
// say clearly what went wrong and the agent stays up.
import { selectionParams, type FreeBusySelection } from '../calendar/freebusy-query.js';
import type { Interval } from '../calendar/intervals.js';
import { minuteRanges, type WorkingHours } from '../calendar/slots.js';
import { isIanaZone } from '../config.js';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { resendIfUnanswered, type ServersGone } from '../client/servers-gone.js';
import { ForeignListenerError, refuseForeignListener } from '../http/listener-owner.js';
import { requestIdHeader } from '../http/logging.js';
import { UNRECORDED_READ_DESCRIPTIONS } from '../resource/audit.js';
import { printableClipped } from '../terminal-text.js';

export type CalendarErrorCode =
  /** Nothing answered at the calendar backend's address. */
  | 'unreachable'
  /** It did not answer within the timeout. */
  | 'timeout'
  /** It refused the token (401) or the request (403): the delegation does not allow it. */
  | 'refused'
  /** It said the request was wrong (400 and other 4xx). */
  | 'rejected'
  /** The user has no calendar at all (404 `no_calendars`): there is nothing to check, so no answer. */
  | 'no_calendars'
  /** The owner's setup cannot be used (500 `invalid_configuration`: config.json, a calendar file); it must be fixed, not retried. */
  | 'misconfigured'
  /** It failed (5xx). */
  | 'failed'
  /**
   * It read the busy time but could not record the read in the audit log, whose storage is full or read-only (500
   * with an UNRECORDED_READ_DESCRIPTIONS description): a person must free space or make it writable, waiting does not.
   */
  | 'unrecorded'
  /** It answered something that is not a free/busy document. */
  | 'invalid_response';

export class CalendarError extends Error {
  readonly code: CalendarErrorCode;
  /** HTTP status, when the backend answered. */
  readonly status: number | undefined;

  constructor(code: CalendarErrorCode, message: string, status?: number) {
    super(message);
    this.name = 'CalendarError';
    this.code = code;
    this.status = status;
  }
}

export interface FreeBusy {
  /** The calendar owner's IANA time zone. */
  timeZone: string;
  /** Busy intervals, epoch ms, half-open. */
  busy: Interval[];
  /** issue 4: the owner's configured working hours, when the backend sends them. */
  workingHours?: WorkingHours;
  /** Calendars left out because they could not be read (on_calendar_error=skip). */
  skipped?: Array<{ calendar: string; reason: string }>;
  /** Feeds whose fetch failed, so an older copy was used. */
  stale?: Array<{ calendar: string; fetchedAt: string; reason: string }>;
}

export interface FreeBusyRequest {
  calendarUrl: string;
  /** A token whose audience is the calendar backend (never the caller's own token). */
  accessToken: string;
  window: Interval;
  /**
   * A fetch to ask with (tests put one in the way). Without it, node:http with
   * its keep-alive agent: a fetch (undici) costs the agent several times more
   * CPU per call, and this is one request on every tool call.
   */
  fetchFn?: typeof fetch;
  timeoutMs: number;
  /** Told when the connection is refused or dropped unanswered: brings the servers back, and the read is sent again. */
  serversGone?: ServersGone;
  /** issue 4: which calendars, and how to count tentative events and broken calendars. */
  selection?: FreeBusySelection;
  /** Sent as X-Request-Id: the backend's log line of the read carries the id of the call it serves. */
  requestId?: string;
}

export const DEFAULT_CALENDAR_TIMEOUT_MS = 5_000;

export async function fetchFreeBusy(request: FreeBusyRequest): Promise<FreeBusy> {
  const url = new URL(`${request.calendarUrl.replace(/\/$/, '')}/freebusy`);
  url.searchParams.set('from', new Date(request.window.start).toISOString());
  url.searchParams.set('to', new Date(request.window.end).toISOString());
  for (const [name, value] of selectionParams(request.selection ?? {})) url.searchParams.append(name, value);

  const headers: Record<string, string> = {
    Authorization: `Bearer ${request.accessToken}`,
    Accept: 'application/json',
    ...requestIdHeader(request.requestId),
  };
  const timedOut = () => new CalendarError('timeout', `The calendar did not answer within ${formatSeconds(request.timeoutMs)}.`);
  // One limit for the whole read (every send of it, and the body): fetch takes a signal, node:http a Deadline.
  const fetchFn = request.fetchFn;
  const timeout = fetchFn ? AbortSignal.timeout(request.timeoutMs) : new Deadline(request.timeoutMs);
  try {
    let answer: Answer;
    try {
      const get = () => (fetchFn ? getWithFetch(fetchFn, url, headers, timeout as AbortSignal) : getWithNodeHttp(url, headers, timeout as Deadline));
      answer = await resendIfUnanswered(get, request.serversGone);
    } catch (error) {
      if (timeout.aborted) throw timedOut();
      const held = error instanceof ForeignListenerError || (error as { cause?: unknown }).cause instanceof ForeignListenerError;
      throw new CalendarError('unreachable', `The calendar at ${request.calendarUrl} could not be reached${held ? ": another user's program holds its port" : ''}.`);
    }
    // It answered; a body that stops halfway, is too large or is not JSON is no free/busy data.
    let body: unknown;
    try {
      body = parseJson(await answer.text());
    } catch {
      if (timeout.aborted) throw timedOut();
      body = undefined;
    }
    // A redirect is not followed (the token is for this backend only): it is a refusal like any other non-2xx.
    if (answer.status < 200 || answer.status > 299) throw refusal(answer.status, body);
    return freeBusyFrom(body);
  } finally {
    if (timeout instanceof Deadline) timeout.clear();
  }
}

/** The status and, read later, the body: both paths behave alike from here on. */
type Answer = { status: number; text(): Promise<string> };

async function getWithFetch(fetchFn: typeof fetch, url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<Answer> {
  const res = await fetchFn(url, { headers, redirect: 'manual', signal });
  return { status: res.status, text: () => res.text() };
}

/**
 * The time limit of a read over node:http: when it passes, the request under
 * way (or its answer, still arriving) is destroyed. A timer rather than an
 * AbortSignal, whose listeners node:http adds to and removes from each
 * request and response: a tenth of the agent's CPU for the read, in the
 * profiles.
 */
class Deadline {
  aborted = false;
  private request: ClientRequest | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(ms: number) {
    this.timer = setTimeout(() => {
      this.aborted = true;
      this.request?.destroy(new Error('The calendar read took too long.'));
    }, ms);
    this.timer.unref();
  }

  /** The request to destroy when the time is up (each send of the read in turn). */
  watch(request: ClientRequest): void {
    this.request = request;
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}

async function getWithNodeHttp(url: URL, headers: Record<string, string>, deadline: Deadline): Promise<Answer> {
  refuseForeignListener(url); // before the exchanged token leaves
  if (deadline.aborted) throw new Error('The calendar read took too long.');
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method: 'GET', headers }, resolve);
    deadline.watch(request);
    request.on('error', reject).end();
  });
  return { status: res.statusCode ?? 0, text: () => bodyText(res) };
}

/** The most of an answer read, as the CLI's MCP client reads (src/client/mcp-post.ts): a free/busy answer is far smaller. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

/** A whole answer as text; one cut off (destroyed at the deadline, the connection lost) or too large fails. */
function bodyText(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let ended = false;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        res.destroy();
        reject(new Error(`The answer is larger than ${MAX_BODY_BYTES} bytes.`));
        return;
      }
      chunks.push(chunk);
    });
    res.once('end', () => {
      ended = true;
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    res.once('error', reject);
    res.once('close', () => {
      if (!ended) reject(new Error('The answer was cut off.'));
    });
  });
}

/** JSON text as JSON.parse reads it, a leading byte-order mark allowed (fetch's Response.json() allows it too). */
function parseJson(text: string): unknown {
  return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
}

function refusal(status: number, body: unknown): CalendarError {
  const description = errorDescription(body);
  const said = description ? `: ${description}` : '.';
  if (status === 401 || status === 403) return new CalendarError('refused', `The calendar refused access${said}`, status);
  if (status === 404 && errorCode(body) === 'no_calendars') return new CalendarError('no_calendars', description ?? 'There are no calendars to check.', status);
  if (status >= 500 && errorCode(body) === 'invalid_configuration') {
    return new CalendarError('misconfigured', description ?? 'The calendar owner’s setup cannot be used.', status);
  }
  if (status >= 500) return new CalendarError(unrecorded(body) ? 'unrecorded' : 'failed', `The calendar failed (HTTP ${status})${said}`, status);
  return new CalendarError('rejected', `The calendar rejected the request (HTTP ${status})${said}`, status);
}

/** Whether delegate's calendar backend says that it could not record the read because the audit log's storage is full or read-only. */
function unrecorded(body: unknown): boolean {
  const d = (body as { error_description?: unknown } | undefined)?.error_description;
  return typeof d === 'string' && UNRECORDED_READ_DESCRIPTIONS.has(d);
}

function errorCode(body: unknown): string | undefined {
  const e = (body as { error?: unknown } | undefined)?.error;
  return typeof e === 'string' ? e : undefined;
}

/**
 * The backend's own words, to pass on in a tool error that MCP clients show and
 * the CLI prints: clipped, and its control characters written as escapes (a
 * backend that is not delegate's may send ESC, a bare CR or OSC … BEL).
 */
function errorDescription(body: unknown): string | undefined {
  const d = (body as { error_description?: unknown } | undefined)?.error_description;
  return typeof d === 'string' && d !== '' ? printableClipped(d, 300) : undefined;
}

/** `{timeZone, busy: [{start, end}]}` with ISO 8601 instants, checked and turned into epoch ms. */
function freeBusyFrom(body: unknown): FreeBusy {
  const invalid = () => new CalendarError('invalid_response', 'The calendar answered with something that is not free/busy data.');
  if (typeof body !== 'object' || body === null) throw invalid();
  const { timeZone, busy } = body as { timeZone?: unknown; busy?: unknown };
  if (typeof timeZone !== 'string' || !isIanaZone(timeZone) || !Array.isArray(busy)) throw invalid();
  const intervals: Interval[] = [];
  for (const item of busy) {
    const start = Date.parse(String((item as { start?: unknown } | null)?.start));
    const end = Date.parse(String((item as { end?: unknown } | null)?.end));
    if (!Number.isFinite(start) || !Number.isFinite(end) || end < start) throw invalid();
    intervals.push({ start, end });
  }
  return { timeZone, busy: intervals, ...freeBusyExtras(body as Record<string, unknown>, invalid) };
}

/** issue 4: the optional parts of a free/busy answer: working hours, skipped calendars, stale feeds. */
function freeBusyExtras(body: Record<string, unknown>, invalid: () => CalendarError): Omit<FreeBusy, 'timeZone' | 'busy'> {
  const extras: Omit<FreeBusy, 'timeZone' | 'busy'> = {};
  if (body.workingHours !== undefined) {
    try {
      minuteRanges(body.workingHours as WorkingHours);
    } catch {
      throw invalid();
    }
    extras.workingHours = body.workingHours as WorkingHours;
  }
  const list = (value: unknown) => (Array.isArray(value) ? (value as Array<Record<string, unknown>>) : []);
  // The backend's text goes on into the tool's result, which MCP clients show: no control character acts there.
  const text = (value: unknown) => printableClipped(String(value), 300);
  const skipped = list(body.skipped).map((s) => ({ calendar: text(s.calendar), reason: text(s.error_description) }));
  if (skipped.length > 0) extras.skipped = skipped;
  const stale = list(body.stale).map((s) => ({ calendar: text(s.calendar), fetchedAt: text(s.fetchedAt), reason: text(s.error_description) }));
  if (stale.length > 0) extras.stale = stale;
  return extras;
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
