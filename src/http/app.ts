// The fastify plumbing the three servers share: a form-body parser that keeps
// repeated parameters visible (RFC 6749 §3.1 forbids them), a Host check
// against DNS rebinding, baseline security headers, 405 with Allow for a
// method an endpoint does not take, and an error handler that answers with an
// RFC-style `error` body and never a stack trace.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type HTTPMethods } from 'fastify';
import type { Logger } from 'pino';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { errorDescription } from '../error-description.js';
import { noteRefusal } from './refusal-log.js';
import { finishAnswersOnClose } from './graceful-close.js';
import { REQUEST_ID_HEADER, requestIdFor } from './logging.js';
import { LOOPBACK_NAMES } from '../delegation/resource.js';

export interface AppOptions {
  /** A pino logger; none (silent) by default. */
  logger?: Logger;
  /** Largest accepted request body, in bytes. */
  bodyLimit?: number;
  /**
   * Host header values accepted besides the loopback names on the port the
   * request arrived on (for a server published under another name).
   */
  extraHosts?: readonly string[];
  /**
   * The server's own URL as its clients are told it (issuer or resource URL):
   * its host is answered for too, so that a server named by an address that is
   * not a loopback name (`serve --host 192.168.1.20`, or 127.0.0.2) answers the
   * URLs it publishes.
   */
  publicUrl?: string;
  /**
   * The server's name, for a server that answers only as publicUrl names it: a request by another loopback
   * name that reaches it (`localhost:P` for a server published as http://127.0.0.1:P) is refused with 421,
   * naming publicUrl. For CalendarAgent: its metadata's `resource` must be identical to the URL the client
   * used, or the client must not use it (RFC 9728 §3.3), so an MCP client there could never authorize; a
   * 421 that names the URL to use is the clear early failure. Hosts in extraHosts are still answered, and so is
   * every loopback name when publicUrl is https (a reverse proxy's, which may send its upstream's name as Host).
   */
  answersOnlyAsPublished?: string;
  /**
   * What a 404 for a path that is no endpoint says after "No such endpoint:", for a server that clients find by one
   * URL (CalendarAgent: "CalendarAgent's MCP endpoint is http://127.0.0.1:8412/mcp."). Without it: "No such endpoint."
   */
  notFoundNames?: string;
  /**
   * The reverse proxies whose `X-Forwarded-For` names the client (IP addresses, CIDR ranges, or `loopback`): a request
   * from one of them counts as from the address the header's entries give, read from the right past each trusted hop
   * (fastify's trustProxy, @fastify/proxy-addr), so `req.ip` and every per-address limit are the client's, not the
   * proxy's. None by default: then the header is ignored, as any peer could write it. `X-Forwarded-Host` and
   * `X-Forwarded-Proto` change nothing that matters: the Host check reads the Host header, and the URLs a server
   * publishes come from its configuration (publicUrl), never from a request.
   */
  trustProxy?: readonly string[];
}

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Fields a handler adds to the request's access line (the one line per request at info, written when it is
     * answered), instead of a line of its own: names and outcomes, never secrets (the line is redacted as every
     * line is).
     */
    accessLog: Record<string, unknown> | null;
  }
  interface FastifyContextConfig {
    /**
     * The route exists only to refuse its method (as /mcp's GET and DELETE do, with their own 405): the
     * not-found handler's 405 does not name it in Allow.
     */
    refusesMethod?: boolean;
  }
}

/** A parsed form body: a repeated parameter becomes an array, so handlers can refuse it. */
export type FormBody = Record<string, string | string[]>;

/**
 * The options of a GET route whose handler acts (signs in, settles a device, issues a code, counts a typed code,
 * records a read): no automatic HEAD route, so HEAD is 405 with `Allow: GET` and does nothing. fastify answers HEAD
 * by running the GET handler; a link scanner or prefetcher sends HEAD, and a safe method must not spend a one-time
 * link (RFC 9110 §9.2.1, §9.3.2). Found in review (s35fuzz): HEAD /login/owner with a fresh owner link signed in
 * (303, Set-Cookie), spent the link and wrote the audit log; HEAD /freebusy recorded a read.
 */
export const ACTS_ON_GET = { exposeHeadRoute: false } as const;

export const DEFAULT_BODY_LIMIT = 64 * 1024;

const TOO_MANY_PARAMETERS = 'DELEGATE_TOO_MANY_PARAMETERS';

export function createApp(options: AppOptions = {}): FastifyInstance {
  const trustsProxy = options.trustProxy !== undefined && options.trustProxy.length > 0;
  const app: FastifyInstance = Fastify({
    ...(options.logger ? { loggerInstance: options.logger as FastifyBaseLogger } : { logger: false }),
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // Large headers are refused by Node itself (16 KiB by default) with 431.
    // A caller's X-Request-Id is used only if it is a safe short token (logging.ts), so fastify must not take it as is.
    genReqId: (req) => requestIdFor(req.headers),
    requestIdHeader: false,
    trustProxy: trustsProxy ? [...options.trustProxy!] : false,
    // A request that arrives on an open connection while the server closes is answered, not
    // refused with 503: its client may be another delegate command in the middle of its work.
    return503OnClosing: false,
    // One access line per request at info (below, when it is answered); the
    // line on arrival only at debug. Half the log writes on the hot path.
    // (Through a LogController: fastify 5.12 deprecates the top-level option with a warning on stderr.)
    logController: new LogController({ disableRequestLogging: true }),
    // Closing finishes the answers in flight, for a while (finishAnswersOnClose, below).
    forceCloseConnections: false,
    // Requests Node's parser refuses (headers over 16 KiB, a malformed request line) never
    // reach fastify; its default answer is no RFC error body. Found by test/fuzz.
    clientErrorHandler: (err, socket) => answerClientError(app, err, socket, trustsProxy),
    // Requests refused before routing (a malformed percent-encoding in the path, an over-long
    // parameter) bypass the hooks and the error handler below; without this, fastify answers
    // them with its own body, which echoes the path and is no RFC error. Found by test/fuzz.
    frameworkErrors: (err, req, reply) => {
      reply.header(REQUEST_ID_HEADER, req.id);
      reply.header('X-Content-Type-Options', 'nosniff');
      const status = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : err.code === 'FST_ERR_BAD_URL' ? 400 : 500;
      // The onResponse hook does not run for these: their one line, with the id the answer names. The path only (see logging.ts).
      if (status === 500) req.log.error({ err: { code: err.code }, req, res: { statusCode: status } }, 'request failed before routing');
      else req.log.info({ err: { code: err.code }, req, res: { statusCode: status } }, 'request refused before routing');
      return sendError(reply, status, status === 500 ? 'server_error' : 'invalid_request', status === 500 ? 'The server could not complete the request.' : 'The request URL is malformed.');
    },
  });

  finishAnswersOnClose(app);

  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseForm(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  // A page on another name that only resolves to our address still gets 421: its Host is neither a loopback name nor ours.
  const extraHosts = new Set([...(options.extraHosts ?? []), ...(options.publicUrl ? publishedHosts(new URL(options.publicUrl)) : [])].map((h) => h.toLowerCase()));
  // The servers speak only http, so a published https URL is a reverse proxy's: the request came through it, by the
  // URL the client used, whatever Host the proxy sends on (nginx sends its upstream's, a loopback name on our port).
  const publishedHttp = options.publicUrl !== undefined && new URL(options.publicUrl).protocol === 'http:';
  const published = options.answersOnlyAsPublished !== undefined && publishedHttp ? { name: options.answersOnlyAsPublished, url: options.publicUrl!, parsed: new URL(options.publicUrl!) } : undefined;
  app.addHook('onRequest', async (req, reply) => {
    // First, so that every answer, refusals included, names the id its log lines carry.
    reply.header(REQUEST_ID_HEADER, req.id);
    req.log.debug({ req }, 'incoming request');
    // RFC 9112 §3.2: a request with no Host, or with more than one, is a 400 (Node keeps the first).
    if (hostLines(req.raw.rawHeaders) !== 1) return sendError(reply, 400, 'invalid_request', 'A request carries exactly one Host header.');
    const target = requestTarget(req);
    if (!hostAllowed(target.authority, req, extraHosts)) {
      // DNS rebinding: a page on another name that resolves to loopback must not reach us.
      return sendError(reply, 421, 'invalid_request', 'This server does not answer for that Host.');
    }
    if (published && !extraHosts.has(target.authority!) && !extraHosts.has(withDefaultPort(target.authority!, published.parsed))) {
      // A loopback alias of the published host (the check above took it): what this server publishes names
      // another URL than the one the client used (RFC 9728 §3.3), so the client is told the one to use.
      return sendError(reply, 421, 'invalid_request', `${published.name} is published as ${published.url}; connect to that URL.`);
    }
    // An absolute-form target for this server (accepted, RFC 9112 §3.2.2) reads as its origin form from here on,
    // so that every handler comparing req.url with a path sees the same request.
    if (target.originForm !== undefined) req.raw.url = target.originForm;
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Referrer-Policy', 'no-referrer');
  });

  app.decorateRequest('accessLog', null);
  app.addHook('onResponse', async (req, reply) => {
    // A 5xx is the server's failure, for an operator's alerting on level: at error. A 4xx is the client's, at info.
    const line = { ...req.accessLog, req, res: reply, responseTime: reply.elapsedTime };
    if (reply.statusCode >= 500) req.log.error(line, 'request completed');
    else req.log.info(line, 'request completed');
  });

  // RFC 9110 §15.5.6: a path that is an endpoint, asked with a method it does not take (GET /token), is 405
  // with the methods it does take in Allow; a path that is no endpoint stays 404. Read from the router, so that
  // every route of every server counts, whoever registered it.
  const routeMethods = new Set<string>();
  const refusingRoutes = new Set<string>();
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      routeMethods.add(method);
      if (route.config?.refusesMethod) refusingRoutes.add(`${method} ${route.url}`);
    }
  });
  const notFound = options.notFoundNames === undefined ? 'No such endpoint.' : `No such endpoint: ${options.notFoundNames}`;
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    const allowed = [...routeMethods].filter((method) => !refusingRoutes.has(`${method} ${path}`) && app.findRoute({ method: method as HTTPMethods, url: path }) !== null).sort();
    if (allowed.length === 0) return sendError(reply, 404, 'not_found', notFound);
    const meant = allowed.filter((method) => method !== 'HEAD' && method !== 'OPTIONS');
    reply.header('Allow', allowed.join(', '));
    return sendError(reply, 405, 'invalid_request', meant.length > 0 ? `Use ${meant.join(' or ')}.` : `This endpoint does not take ${req.method}.`);
  });

  app.setErrorHandler((err: { statusCode?: number; code?: string; message?: string }, req, reply) => {
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) {
      req.log.error({ err: { code: err.code, message: err.message } }, 'unhandled error');
      return sendError(reply, 500, 'server_error', 'The server could not complete the request.');
    }
    return sendError(reply, status, 'invalid_request', clientErrorMessage(err.code, status));
  });

  return app;
}

/**
 * The Host values naming a published URL's authority: as written, and with its scheme's default port spelled out when
 * it has none (RFC 9110 §4.2.3: the same origin; nginx's `proxy_set_header Host $host:$server_port` sends `name:443`;
 * found in review, regress19a).
 */
function publishedHosts(url: URL): string[] {
  return url.port === '' ? [url.host, `${url.host}:${url.protocol === 'https:' ? 443 : 80}`] : [url.host];
}

function clientErrorMessage(code: string | undefined, status: number): string {
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'The request body is too large.';
    case TOO_MANY_PARAMETERS:
      return `The request carries more than ${MAX_FORM_PARAMETERS} parameters.`;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'The request body has an unsupported media type.';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return 'The request body is not valid JSON.';
    default:
      return status === 413 ? 'The request body is too large.' : 'The request is malformed.';
  }
}

/**
 * What Node's HTTP parser refuses before fastify sees a request (headers over
 * the limit, a malformed request line, a client too slow to send its
 * request): the status fastify would send, with an RFC 6749 §5.2-style body
 * like every other error here, then the connection closes.
 */
function answerClientError(app: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket, trustsProxy: boolean): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, description] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'The request headers are too large.']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'The request took too long to arrive.']
        : [400, 'Bad Request', 'The request is malformed.'];
  // Node's parser refused the request: there is no request object, so a fresh id, on the answer and on the one line about it.
  const reqId = randomUUID();
  // The client's address as on every access line (remoteAddress, from the req serializer's `ip`; logging.ts), where it
  // is known without the headers: the peer's, unless a trusted proxy's X-Forwarded-For (unread) would name another.
  const peer = trustsProxy ? {} : { req: { ip: socket.remoteAddress } };
  app.log.info({ reqId, err: { code: err.code }, ...peer, res: { statusCode: status } }, 'request refused by the HTTP parser');
  const body = JSON.stringify({ error: 'invalid_request', error_description: errorDescription(description) });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\n${REQUEST_ID_HEADER}: ${reqId}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** An error response with an RFC 6749 §5.2-style body (its description in the characters §5.2 allows), noted on the access line; never cached. */
export function sendError(reply: FastifyReply, status: number, error: string, description: string): FastifyReply {
  noteRefusal(reply.request, error, description);
  return reply
    .code(status)
    .header('Cache-Control', 'no-store')
    .header('Pragma', 'no-cache')
    .type('application/json')
    .send({ error, error_description: errorDescription(description) });
}

/**
 * The most parameters a form body or query string may carry. The largest form
 * the servers take (a consent decision) carries a few dozen; 64 KiB of `a&`
 * would be 32,000.
 */
export const MAX_FORM_PARAMETERS = 1_000;

export function parseForm(body: string): FormBody {
  // No prototype: a parameter named constructor or toString is a parameter like any other (it was
  // taken for a repeated one, an existing value being found), and __proto__ sets no prototype.
  const out: FormBody = Object.create(null) as FormBody;
  let count = 0;
  for (const [key, value] of new URLSearchParams(body)) {
    // Found in review (regress21b): a repeated parameter's list was copied on every repeat, so 32,000 repeats of one
    // name (a 64 KiB body from any web page, as a no-cors form post) held the event loop for 10 s. Now each value is
    // appended in place, and a body with more parameters than any form here has is refused before it is read further.
    if (++count > MAX_FORM_PARAMETERS) throw Object.assign(new Error('too many parameters'), { statusCode: 400, code: TOO_MANY_PARAMETERS });
    const prior = out[key];
    if (prior === undefined) out[key] = value;
    else if (Array.isArray(prior)) prior.push(value);
    else out[key] = [prior, value];
  }
  return out;
}

/** How many Host header lines a request carries (Node's parsed headers keep only the first). */
function hostLines(rawHeaders: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.length === 4 && rawHeaders[i]!.toLowerCase() === 'host') count++;
  return count;
}

/**
 * The authority the request is for: a request target in absolute form names it,
 * and then the Host header is ignored (RFC 9112 §3.2.2); else the Host header.
 * For an absolute-form target, also its origin form (path and query).
 */
function requestTarget(req: FastifyRequest): { authority: string | undefined; originForm?: string } {
  const target = req.raw.url ?? '';
  if (target.startsWith('/')) return { authority: req.headers.host?.toLowerCase() };
  const absolute = /^https?:\/\/([^/?#]*)(.*)$/is.exec(target);
  return absolute ? { authority: absolute[1]!.toLowerCase(), originForm: absolute[2] || '/' } : { authority: undefined };
}

/** `authority` as URL.host writes it for `like`'s scheme: `127.0.0.1:80` is `127.0.0.1` for http. */
function withDefaultPort(authority: string, like: URL): string {
  try {
    return new URL(`${like.protocol}//${authority}`).host;
  } catch {
    return authority;
  }
}

/**
 * The request must be for this server: a loopback name with the port the
 * connection arrived on, or one of the configured extra hosts. The names only
 * (LOOPBACK_NAMES), not any loopback address: another (127.0.0.2) is answered
 * when the server's published URL names it, in extraHosts.
 */
function hostAllowed(host: string | undefined, req: FastifyRequest, extraHosts: ReadonlySet<string>): boolean {
  if (!host) return false;
  if (extraHosts.has(host)) return true;
  const port = req.raw.socket.localPort;
  // Requests injected by tests (fastify.inject) have no socket port.
  if (port === undefined) return LOOPBACK_NAMES.some((name) => host === name || host.startsWith(`${name}:`));
  return LOOPBACK_NAMES.some((name) => host === `${name}:${port}` || (port === 80 && host === name));
}
