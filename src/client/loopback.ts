// The loopback redirect listener of a native app (RFC 8252 §7.3): bound on
// 127.0.0.1 on an ephemeral port before the browser opens, it waits for one
// authorization response on /callback, checks its `state` (constant time) and
// its RFC 9207 `iss`, answers the browser with a short plain page, and closes.
// Any program on the machine can reach the port (RFC 8252 §8.1), so a request
// without this sign-in's `state` is answered 400 and otherwise ignored: it
// neither ends the wait nor puts anything of its own in front of the person.
// When the browser ran on another computer, the address it ended on can be
// pasted instead (submit), and is judged the same way. A fixed port can be
// asked for, to forward it with `ssh -L`.
//
// For the local owner's sign-in it also serves START_PATH, the address the
// CLI prints and opens: it sends the browser on to the owner's sign-in link,
// made afresh for each visit. That link is a bearer credential, and so is the
// request's `state`; an address given to `xdg-open` and the browser is on
// their command lines, which every user of the machine can read
// (/proc/<pid>/cmdline). So only /start goes there, and on Linux every
// request is answered only when the connecting socket belongs to this user
// (or root): /proc/net/tcp names its owner (peerStanding). Another user's
// request gets a bare 403 and changes nothing, whatever `state` it carries.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { peerStanding, portHeldByAnotherUser } from '../http/listener-owner.js';
import { ClientError, loginTimedOut } from './errors.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { AuthorizationRequestContext } from './provider.js';

export const CALLBACK_PATH = '/callback';
/** Where the browser starts the local owner's sign-in: sent on to the owner's link (see above). */
export const START_PATH = '/start';
export const LOOPBACK_HOST = '127.0.0.1';

export interface LoopbackOptions {
  /** How long to wait for the browser once waitForCode() is called (ms). */
  timeoutMs: number;
  /** 0 (the default) lets the OS pick a free port. */
  port?: number;
  /**
   * Whether the browser that brings the code waits for finished() to say how the sign-in ended (sign-in.ts);
   * otherwise it is told "Signed in" as soon as its code is taken.
   */
  awaitOutcome?: boolean;
}

export interface LoopbackListener {
  /** http://127.0.0.1:<port>/callback */
  readonly redirectUrl: string;
  /** http://127.0.0.1:<port>/start: no secret in it, so it may be printed and opened. */
  readonly startUrl: string;
  /**
   * What the callback must carry; set just before the browser is sent to the authorization URL.
   * `startLink`, when given, makes the link /start sends this user's browser on to (the owner's sign-in link); when
   * it fails, the sign-in ends with its error (waitForCode).
   */
  expect(context: AuthorizationRequestContext, startLink?: () => Promise<string>): void;
  /** The authorization code of the one valid callback, or a ClientError saying what went wrong (or why startLink failed). */
  waitForCode(): Promise<string>;
  /**
   * A callback address the person pasted (the browser ran elsewhere), judged
   * as if the browser had brought it. Returns why it was not taken when it is
   * not this listener's callback at all (the caller may ask again).
   */
  submit(pasted: string): string | undefined;
  /**
   * How the sign-in ended, for the browser that brought the code: its page waits for this (at most RESULT_WAIT_MS),
   * so that it says "Signed in" only once the tokens are saved, and otherwise that it failed (see the terminal).
   */
  finished(error?: unknown): void;
  /** Closes the listener; a page still waiting is told to see the terminal. */
  close(): Promise<void>;
}

/** How long the browser's page waits for the sign-in's outcome (the code redeemed, the tokens saved) before it says to see the terminal. */
export const RESULT_WAIT_MS = 10_000;

const SIGNED_IN = 'Signed in. You can close this window and return to the terminal.';
const NOT_SIGNED_IN = 'Sign-in failed: the sign-in could not be completed. See the terminal for why. You can close this window.';
const OUTCOME_UNKNOWN = 'The sign-in is being completed. See the terminal for whether it succeeded. You can close this window.';

/** The error is a ClientError of the callback, or what stopped /start from making the link (sign-in.ts: the servers could not be brought back). */
type Outcome = { ok: true; code: string } | { ok: false; error: Error };

/** Starts listening; the returned listener is already bound. */
export async function startLoopbackListener(options: LoopbackOptions): Promise<LoopbackListener> {
  let expected: AuthorizationRequestContext | undefined;
  let startLink: (() => Promise<string>) | undefined;
  let outcome: Outcome | undefined;
  let settle: ((outcome: Outcome) => void) | undefined;
  const settled = new Promise<Outcome>((resolve) => {
    settle = resolve;
  });
  let port = 0;

  const finish = (result: Outcome): void => {
    if (outcome) return;
    outcome = result;
    settle?.(result);
  };

  const server = createServer((req, res) => {
    // Another user's program: nothing it sends is looked at, and nothing of it is repeated.
    if (peerStanding(req.socket) === 'theirs') return reply(res, 403, 'Forbidden.');
    if (isStart(req, port)) {
      if (notNavigatedHere(req)) return reply(res, 403, NOT_NAVIGATED);
      if (!startLink || outcome !== undefined) return reply(res, 400, 'This sign-in is not waiting for a response. You can close this window.');
      // A link that cannot be made ends the sign-in with why, which the terminal says: nothing else will make it.
      return void sendOnTo(res, startLink, (error) => finish({ ok: false, error }));
    }
    const result = judgeCallback(req, port, expected, outcome !== undefined);
    if (result === 'not-found') return reply(res, 404, 'Not found.');
    if (result === 'ignored') return reply(res, 400, 'This sign-in is not waiting for a response. You can close this window.');
    // Not ours: nothing of it is shown, and the sign-in goes on waiting for its own response until the timeout.
    if (result === 'foreign') return reply(res, 400, NOT_THIS_SIGN_IN);
    if (result.ok && options.awaitOutcome) {
      // Not "Signed in" yet: the code is still to be redeemed and its tokens saved (finished()).
      waiting = res;
      setTimeout(() => answerWaiting(200, OUTCOME_UNKNOWN), RESULT_WAIT_MS).unref();
    } else if (result.ok) {
      reply(res, 200, SIGNED_IN);
    } else {
      reply(res, 400, `Sign-in failed: ${result.error.message} You can close this window and return to the terminal.`);
    }
    finish(result);
  });

  /** The browser whose code is being redeemed, answered once. */
  let waiting: ServerResponse | undefined;
  const answerWaiting = (status: number, text: string): void => {
    const res = waiting;
    waiting = undefined;
    if (res && !res.writableEnded && !res.destroyed) reply(res, status, text);
  };

  port = await listen(server, options);
  const closeServer = closerOf(server);
  const close = (): Promise<void> => {
    answerWaiting(500, NOT_SIGNED_IN);
    return closeServer();
  };

  return {
    redirectUrl: `http://${LOOPBACK_HOST}:${port}${CALLBACK_PATH}`,
    startUrl: `http://${LOOPBACK_HOST}:${port}${START_PATH}`,
    expect(context, link) {
      expected = context;
      startLink = link;
    },
    async waitForCode() {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<Outcome>((resolve) => {
        timer = setTimeout(() => {
          resolve({ ok: false, error: loginTimedOut(options.timeoutMs) });
        }, options.timeoutMs);
      });
      try {
        const result = await Promise.race([settled, timedOut]);
        finish(result);
        if (!result.ok) throw result.error;
        return result.code;
      } finally {
        clearTimeout(timer);
        // A browser waiting for the outcome keeps the listener until finished() or close(); nothing else is taken meanwhile.
        if (waiting === undefined) await close();
      }
    },
    finished(error) {
      if (error === undefined) answerWaiting(200, SIGNED_IN);
      else answerWaiting(500, NOT_SIGNED_IN);
    },
    submit(pasted) {
      let url: URL;
      try {
        url = new URL(pasted.trim());
      } catch {
        return 'That is not an address. Paste the whole address from the browser, starting with http://';
      }
      if (url.pathname !== CALLBACK_PATH || (!url.searchParams.has('code') && !url.searchParams.has('error'))) {
        return `That is not the address the sign-in ended on (it ends in ${CALLBACK_PATH}?code=…).`;
      }
      if (!expected || outcome) return 'This sign-in is not waiting for an answer.';
      const result = judgeParams(url.searchParams, expected);
      if (result === 'foreign') return 'That address belongs to another sign-in (its state is not this one’s).';
      finish(result);
      return undefined;
    },
    close,
  };
}

/** Binds the listener on LOOPBACK_HOST; its port. */
async function listen(server: Server, options: LoopbackOptions): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const held = error.code === 'EADDRINUSE' ? (portHeldByAnotherUser(LOOPBACK_HOST, options.port ?? 0) ?? `Port ${options.port} on ${LOOPBACK_HOST} is in use`) : undefined;
      reject(held ? new ClientError('AUTHORIZATION_FAILED', `${held}, so the sign-in cannot listen there; choose another --redirect-port.`) : error);
    });
    server.listen(options.port ?? 0, LOOPBACK_HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/**
 * Closes once, however often asked. Responses carry `Connection: close`, so idle sockets go at once and a page still
 * being written finishes first; a browser that holds on is cut after a second.
 */
function closerOf(server: Server): () => Promise<void> {
  let closed: Promise<void> | undefined;
  return () => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 1000).unref();
    });
    return closed;
  };
}

/** Sends this user's browser on to the owner's link, made now; whether it was made and sent. `failed` is told why it was not. */
function sendOnTo(res: ServerResponse, startLink: () => Promise<string>, failed?: (error: Error) => void): Promise<boolean> {
  return startLink().then(
    (link) => {
      res.writeHead(302, { location: link, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', connection: 'close' });
      res.end();
      return true;
    },
    (error: unknown) => {
      reply(res, 500, 'The sign-in link could not be made; see the terminal.');
      failed?.(error instanceof Error ? error : new Error(String(error)));
      return false;
    },
  );
}

export interface StartOnlyListener {
  /** http://127.0.0.1:<port>/start: no secret in it, so it may be printed and opened. */
  readonly startUrl: string;
  /**
   * Resolves once this user's browser was sent on to the link; rejects with loginTimedOut when none came in time, or
   * with why the link could not be made. Closes the listener either way.
   */
  visited(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Only /start, for `delegate approve`: the owner's link to another app's request, whose answer goes to that app, not
 * here. Same rules as the sign-in's /start (another user's connection: a bare 403; a foreign Host: 404), and it
 * serves one browser: after it, nothing is sent on.
 */
export async function startOnlyListener(options: LoopbackOptions, startLink: () => Promise<string>): Promise<StartOnlyListener> {
  let port = 0;
  let sent = false;
  let done: () => void = () => {};
  let failed: (error: Error) => void = () => {};
  const visit = new Promise<void>((resolve, reject) => {
    done = resolve;
    failed = reject;
  });
  visit.catch(() => {}); // read by visited(); a link that could not be made before it is called is not unhandled
  const server = createServer((req, res) => {
    if (peerStanding(req.socket) === 'theirs') return reply(res, 403, 'Forbidden.');
    if (!isStart(req, port)) return reply(res, 404, 'Not found.');
    if (notNavigatedHere(req)) return reply(res, 403, NOT_NAVIGATED);
    if (sent) return reply(res, 400, 'This link was opened already. Run the command again for a new one.');
    sent = true;
    // A link that cannot be made (another user's program on the authorization server's port) ends the command with
    // why, as the sign-in's /start does (found in review, s28new2: it waited out its timeout saying nothing of it).
    void sendOnTo(res, startLink, failed).then((ok) => ok && done());
  });
  port = await listen(server, options);
  const close = closerOf(server);
  return {
    startUrl: `http://${LOOPBACK_HOST}:${port}${START_PATH}`,
    async visited() {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(loginTimedOut(options.timeoutMs)), options.timeoutMs);
      });
      try {
        await Promise.race([visit, timedOut]);
      } finally {
        clearTimeout(timer);
        await close();
      }
    },
    close,
  };
}

/** The whole answer to a request that does not carry this sign-in's `state`: none of the request's own text. */
const NOT_THIS_SIGN_IN = 'This response does not belong to the sign-in waiting here (its state does not match), so it was ignored. You can close this window.';

/**
 * What a request to the listener means. Order matters: `state` first (a
 * response to someone else's request is not ours to act on, not even its
 * error, and may not end this sign-in: any local program can send one), then
 * `iss` (RFC 9207 §2.4: stop on a mix-up before using anything else), then
 * the error or the code.
 */
function isStart(req: IncomingMessage, port: number): boolean {
  if (req.method !== 'GET' || req.headers.host !== `${LOOPBACK_HOST}:${port}`) return false;
  return new URL(req.url ?? '/', `http://${LOOPBACK_HOST}:${port}`).pathname === START_PATH;
}

const NOT_NAVIGATED = 'Open this address yourself, in the address bar of your browser; another page cannot open it for you.';

/**
 * Whether a browser says (Fetch Metadata, W3C "Fetch Metadata Request Headers") that this request is not the person
 * opening the address: a fetch, an image, a frame (Sec-Fetch-Mode/-Dest), or started by another site (Sec-Fetch-Site:
 * cross-site, same-site: another port of 127.0.0.1 is same-site). Browsers that send these send Sec-Fetch-Site on
 * every request; a request without it (curl, an older browser, Node's fetch, which sends Sec-Fetch-Mode: cors alone)
 * is taken as before: the Host and owner checks are all it meets.
 */
function notNavigatedHere(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site === undefined) return false;
  return req.headers['sec-fetch-mode'] !== 'navigate' || req.headers['sec-fetch-dest'] !== 'document' || (site !== 'none' && site !== 'same-origin');
}

function judgeCallback(
  req: IncomingMessage,
  port: number,
  expected: AuthorizationRequestContext | undefined,
  done: boolean,
): Outcome | 'foreign' | 'not-found' | 'ignored' {
  // DNS rebinding: a page on another name that resolves to 127.0.0.1 carries its own Host.
  if (req.method !== 'GET' || req.headers.host !== `${LOOPBACK_HOST}:${port}`) return 'not-found';
  const url = new URL(req.url ?? '/', `http://${LOOPBACK_HOST}:${port}`);
  if (url.pathname !== CALLBACK_PATH) return 'not-found';
  if (!expected || done) return 'ignored';
  return judgeParams(url.searchParams, expected);
}

/**
 * The error an authorization server answered at once, without a session, for `authorizationUrl`: its redirect to this
 * request's redirect URI, carrying an `error` for this request (its state and, as promised, its issuer: judgeParams),
 * which the browser would have brought here after the person's round trip. Undefined when it answered anything else
 * (the sign-in page a request that waits gets), or could not be asked: the browser then shows what there is. For
 * delegate's own authorization server on this machine, which saves nothing for a request without a session
 * (src/authz/authorize.ts). Found in review (s30ux): `login --scope busy:raed` printed a link, and only after the
 * browser's round trip said invalid_scope.
 */
export async function refusedAtOnce(authorizationUrl: URL, expected: AuthorizationRequestContext, fetchFn: FetchLike, timeoutMs: number): Promise<Error | undefined> {
  const redirectUri = authorizationUrl.searchParams.get('redirect_uri');
  let location: string | null;
  try {
    const res = await fetchFn(authorizationUrl, { redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    location = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null;
  } catch {
    return undefined;
  }
  if (location === null || redirectUri === null) return undefined;
  let answer: URL;
  try {
    answer = new URL(location, authorizationUrl);
  } catch {
    return undefined;
  }
  const to = new URL(redirectUri);
  if (answer.origin !== to.origin || answer.pathname !== to.pathname || answer.searchParams.get('error') === null) return undefined;
  const outcome = judgeParams(answer.searchParams, expected);
  return outcome === 'foreign' || outcome.ok ? undefined : outcome.error;
}

function judgeParams(params: URLSearchParams, expected: AuthorizationRequestContext): Outcome | 'foreign' {
  const state = params.get('state');
  if (state === null || !sameSecret(state, expected.state)) return 'foreign';
  const iss = params.get('iss');
  if (iss === null ? expected.requireIss : iss !== expected.issuer) {
    return fail(
      'ISSUER_MISMATCH',
      iss === null
        ? `The response does not name its authorization server, which ${expected.issuer} promised to do (RFC 9207).`
        : `The response comes from ${iss}, not from ${expected.issuer}, the authorization server this sign-in used (RFC 9207).`,
    );
  }
  const error = params.get('error');
  if (error !== null) {
    const description = params.get('error_description');
    // The server's own words, quoted as theirs: never to read as delegate's instruction.
    const said = description ? ` (${JSON.stringify(bounded(description))})` : '';
    if (error === 'access_denied') return fail('ACCESS_DENIED', `Access was denied. The authorization server answered access_denied${said}.`);
    return fail('AUTHORIZATION_FAILED', `The authorization server answered ${bounded(error)}${said}.`);
  }
  const code = params.get('code');
  if (!code) return fail('AUTHORIZATION_FAILED', 'The response carries neither a code nor an error.');
  return { ok: true, code };
}

function fail(code: ConstructorParameters<typeof ClientError>[0], message: string): Outcome {
  return { ok: false, error: new ClientError(code, printable(message)) };
}

/** Compares secrets in time independent of where they differ. */
function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

function reply(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
    'x-content-type-options': 'nosniff',
    connection: 'close',
  });
  res.end(`${text}\n`);
}

/** Text from the query string, shown in a terminal and a page: no control characters, bounded length. */
function printable(text: string): string {
  // Control characters, and the format characters that reorder or hide text on a screen.
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g, ' ');
  return clean.length > 600 ? `${clean.slice(0, 600)}…` : clean;
}

function bounded(text: string): string {
  const clean = printable(text);
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}
