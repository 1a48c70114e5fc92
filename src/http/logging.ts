// Structured request logs (pino, through fastify) that cannot leak secrets:
// requests are logged by path only, never with their query string (which can
// carry codes, login assertions and states), and credential-bearing headers
// and fields are redacted by configuration.
import { pino, type Logger, type LevelWithSilent } from 'pino';

/** Log paths that must never be written out, whatever the log level. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["dpop"]',
  'res.headers["set-cookie"]',
  '*.access_token',
  '*.refresh_token',
  '*.subject_token',
  '*.actor_token',
  '*.client_secret',
  '*.client_assertion',
  '*.code',
  '*.code_verifier',
  '*.password',
  '*.assertion',
  '*.token',
];

export type LogLevel = LevelWithSilent;

/** A logger that writes JSON lines to `stream` (stderr by default, so stdout stays the program's). */
export function createLogger(level: LogLevel, stream: NodeJS.WritableStream = process.stderr): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
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
