// Structured request logs (pino, through fastify) that cannot leak secrets:
// requests are logged by path only, never with their query string (which can
// carry codes, login assertions and states) or an absolute-form target's user information, with the client's address
// (`remoteAddress`, fastify's req.ip), and credential-bearing headers
// and fields are redacted by configuration (the lists in src/delegation/secrets.ts, applied to every
// line the logger writes), not by the care of whoever writes a log call.
// Every request carries an id (fastify's reqId): an incoming X-Request-Id when
// it is a short safe token, else a fresh UUID, echoed in the X-Request-Id
// response header.
import { randomUUID } from 'node:crypto';
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { censorCredentials } from '../delegation/secrets.js';

const dropped = (why: string) => `${JSON.stringify({ level: 50, time: Date.now(), msg: `a log line was dropped unwritten: ${why}` })}\n`;

/**
 * A log line (pino's JSON, with its newline) as it may be written: parsed, its
 * credentials censored wherever they sit, written again. A line that cannot
 * be read or censored (pino writes none) is replaced by a notice rather than
 * written as it was; this never throws.
 */
export function redactLine(line: string): string {
  try {
    return `${JSON.stringify(censorCredentials(JSON.parse(line)))}\n`;
  } catch (err) {
    return dropped(err instanceof SyntaxError ? 'it was not JSON' : 'it could not be redacted');
  }
}

/**
 * The destination every log line goes through before `stream`: redaction by
 * configuration (src/delegation/secrets.ts), applied to the finished line, so that it
 * covers what serializers, child loggers' bindings and log calls put there
 * alike. (pino's own `redact`, with the wildcard paths this needs, cost 37 µs
 * a line against about 4 µs for this; a line per request.) The stream's
 * `flush` is passed on. pino's multistream, which pino recognises by a marker
 * this wrapper would hide (and then writes nothing), is refused.
 */
function redacting(stream: DestinationStream): DestinationStream {
  if ((stream as unknown as Record<symbol, unknown>)[Symbol.for('pino.metadata')]) {
    throw new Error('createLogger: a pino multistream cannot be redacted line by line; give each stream its own logger.');
  }
  const target = stream as DestinationStream & { flush?: (cb?: (err?: Error) => void) => void; flushSync?: () => void };
  return Object.assign(
    { write: (line: string) => target.write(redactLine(line)) },
    target.flush ? { flush: (cb?: (err?: Error) => void) => target.flush!(cb) } : {},
    target.flushSync ? { flushSync: () => target.flushSync!() } : {},
  );
}

export type LogLevel = LevelWithSilent;

/** A logger that writes JSON lines to `stream` (stderr by default, so stdout stays the program's), credentials redacted. */
export function createLogger(level: LogLevel, stream: DestinationStream = process.stderr): Logger {
  return pino(
    {
      level,
      serializers: {
        // remoteAddress: the client's address as fastify's trustProxy resolved it (a FastifyRequest's ip: the peer's,
        // or behind a trusted proxy the rightmost X-Forwarded-For entry that is no trusted proxy's), for the operator
        // auditing who signed in or registered. An address, no credential; redacted as the rest of the line is.
        // No id: the request's logger puts it on each of its lines as `reqId` (fastify's own lines carry only that),
        // and an `id` here wrote it a second time on every access line.
        req: (req: { method?: string; url?: string; ip?: string }) => ({
          method: req.method,
          path: pathOnly(req.url),
          remoteAddress: req.ip,
        }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      },
    },
    redacting(stream),
  );
}

/**
 * A request target's path without its query string or fragment. A target in absolute form
 * (`http://user:pass@host/token`, RFC 9112 §3.2.2) gives its path alone: it may carry user information (found in
 * review, s35logs: logged as sent, on the line of the 421 it is answered with before it is read as its origin form).
 * One that does not parse is cut as a path is, and the line's censor takes any user information out of it.
 */
export function pathOnly(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  if (!url.startsWith('/')) {
    try {
      return new URL(url).pathname;
    } catch {
      // Not a URL (`*`, an authority): cut below.
    }
  }
  const cut = url.search(/[?#]/);
  return cut === -1 ? url : url.slice(0, cut);
}

/** What a verified access token's claims give a resource server's access line: who (never the token, nor its jti). */
export interface DelegationLogFields {
  user: string;
  client: string;
  grant: string;
  /** The agent acting (`act.sub`, RFC 8693 §4.1), for an exchanged token. */
  actor?: string;
}

/** The fields an access line names a request's delegation by, from its verified token's claims (RFC 9068 `sub`, `client_id`, delegate's `grant_id`, `act`). */
export function delegationLogFields(claims: { sub: string; client_id: string; grant_id: string; act?: { sub: string } }): DelegationLogFields {
  return { user: claims.sub, client: claims.client_id, grant: claims.grant_id, ...(typeof claims.act?.sub === 'string' ? { actor: claims.act.sub } : {}) };
}

/** At most this many of a batch's methods and tools, each at most MAX_LOGGED_NAME characters, on an access line. */
const MAX_LOGGED_CALLS = 10;
const MAX_LOGGED_NAME = 64;

/**
 * What a JSON-RPC body gives an access line (CalendarAgent's /mcp): its `method`, and for a tools/call its `tool`,
 * never its arguments; for a batch, arrays of them. What the client wrote, so bounded: names cut, a batch's lists
 * too. Nothing for a body that holds no method.
 */
export function jsonRpcLogFields(body: unknown): { method?: string | string[]; tool?: string | string[] } {
  const name = (value: unknown) => (typeof value === 'string' ? value.slice(0, MAX_LOGGED_NAME) : undefined);
  const read = (message: unknown) => {
    if (typeof message !== 'object' || message === null) return {};
    const { method, params } = message as { method?: unknown; params?: { name?: unknown } };
    return { method: name(method), tool: method === 'tools/call' && typeof params === 'object' && params !== null ? name(params.name) : undefined };
  };
  if (!Array.isArray(body)) {
    const { method, tool } = read(body);
    return { ...(method !== undefined ? { method } : {}), ...(tool !== undefined ? { tool } : {}) };
  }
  const calls = body.slice(0, MAX_LOGGED_CALLS).map(read);
  const methods = calls.flatMap((c) => (c.method !== undefined ? [c.method] : []));
  const tools = calls.flatMap((c) => (c.tool !== undefined ? [c.tool] : []));
  return { ...(methods.length > 0 ? { method: methods } : {}), ...(tools.length > 0 ? { tool: tools } : {}) };
}

export const REQUEST_ID_HEADER = 'x-request-id';

/** The header that carries `requestId` on an onward request (none without one), so the next server's log line of it carries the same id. */
export function requestIdHeader(requestId: string | undefined): Record<string, string> {
  return requestId !== undefined ? { [REQUEST_ID_HEADER]: requestId } : {};
}

/** A caller's request id is kept only when it is short and plain: no spaces, quotes or control characters to forge log lines with. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** The id of a request: the caller's X-Request-Id when it is a safe short token, else a fresh UUID. */
export function requestIdFor(headers: Record<string, string | string[] | undefined>): string {
  const given = headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
}
