// Structured request logs (pino, through fastify) that cannot leak secrets:
// requests are logged by path only, never with their query string (which can
// carry codes, login assertions and states), and credential-bearing headers
// and fields are redacted by configuration (pino `redact`), not by the care of
// whoever writes a log call. Every request carries an id (fastify's reqId):
// an incoming X-Request-Id when it is a short safe token, else a fresh UUID,
// echoed in the X-Request-Id response header.
import { randomUUID } from 'node:crypto';
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

/** Field names whose values are credentials wherever they appear in a log object. */
export const SECRET_FIELDS = [
  'access_token',
  'refresh_token',
  'id_token',
  'subject_token',
  'actor_token',
  'device_code',
  'user_code',
  'client_secret',
  'client_assertion',
  'code_verifier',
  'password',
  'assertion',
  'token',
  'authorization',
  'cookie',
  'csrf',
] as const;

/** Where request parameters would sit in a log object (fastify's req, a handler's own fields). */
const PARAMETER_CONTAINERS = ['body', 'query', 'params', 'form', 'search', 'searchParams'] as const;

/**
 * Log paths that must never be written out, whatever the log level. Secret
 * field names are redacted at the top and two levels down. `code` is
 * redacted inside request parameters only: elsewhere it is an error code
 * (`{ code: 'invalid_grant' }`, `{ err: { code: 'FST_ERR_…' } }`) that an
 * operator needs, while `query.code` or `body.code` is an authorization code.
 */
export const REDACTED_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["dpop"]',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  '*.headers.authorization',
  '*.headers.cookie',
  '*.headers["set-cookie"]',
  '*.headers["proxy-authorization"]',
  ...PARAMETER_CONTAINERS.flatMap((container) => [`${container}.code`, `*.${container}.code`]),
  ...SECRET_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]),
];

export const REDACTION_CENSOR = '[redacted]';

export type LogLevel = LevelWithSilent;

/** A logger that writes JSON lines to `stream` (stderr by default, so stdout stays the program's). */
export function createLogger(level: LogLevel, stream: DestinationStream = process.stderr): Logger {
  return pino(
    {
      level,
      redact: { paths: [...REDACTED_PATHS], censor: REDACTION_CENSOR },
      serializers: {
        req: (req: { id?: string; method?: string; url?: string }) => ({
          id: req.id,
          method: req.method,
          path: pathOnly(req.url),
        }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      },
    },
    stream,
  );
}

/** A URL's path without its query string or fragment. */
export function pathOnly(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const cut = url.search(/[?#]/);
  return cut === -1 ? url : url.slice(0, cut);
}

export const REQUEST_ID_HEADER = 'x-request-id';

/** A caller's request id is kept only when it is short and plain: no spaces, quotes or control characters to forge log lines with. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** The id of a request: the caller's X-Request-Id when it is a safe short token, else a fresh UUID. */
export function requestIdFor(headers: Record<string, string | string[] | undefined>): string {
  const given = headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
}
