// `delegate approve '<authorization URL>'` and `delegate approve <USER-CODE>`:
// the owner approves (or denies) a request another app made at this data
// directory's authorization server: an MCP client doing its own OAuth
// (Claude Code, the MCP Inspector, the SDK's auth()) opened an /authorize
// URL, or a device client showed a user code. The owner signs in from the
// command line only (docs/internals.md, "Local owner sign-in"), and `login`
// signs in its own request alone (the link is bound to one request by its
// next_sha256 claim), so without this command nobody could ever approve such
// a request (found in review, s22mcp; OAuth 2.1 §4.1.1: the resource owner
// must be able to authenticate and decide on it).
//
// The URL must be this data directory's authorization server's /authorize or
// /device, on the origin found by the same options as `login` (its ports), on
// the loopback address the URL names (a server started with `serve --host ::1`
// is at http://[::1]:<port>; found in review, s22new: approve looked only at
// 127.0.0.1 and refused the command the server's own page printed); anything
// else is refused before anything is signed (exit 2). So is a request the
// server does not wait on (exit 1, no link): a user code no pending device
// authorization has, an /authorize request the server refuses (found in
// review, s30: both got a link and "Signed in for that request", exit 0).
// The link is signed for exactly that request, with the approval claim, so the server
// always shows its consent page for it and never names the app as the
// owner's own command. Like `login`, the link itself never goes on a command
// line: the browser gets this process's /start, which answers only this user
// (src/client/loopback.ts). The app gets the answer; this command ends once
// the browser was sent on.
import { urlsFor, type Paths, type Ports } from '../../config.js';
import { isAnyLoopbackHost } from '../../delegation/resource.js';
import { foreignListenersAt, refuseForeignListener, uidsSaid } from '../../http/listener-owner.js';
import { startOnlyListener } from '../../client/loopback.js';
import { loadOrCreateOwnerKey, ownerLoginUrl, signOwnerAssertion } from '../../client/owner-login.js';
import { DEFAULT_LOGIN_TIMEOUT_MS } from '../../client/sign-in.js';
import { printableClipped } from '../../terminal-text.js';
import { loadStack } from '../contracts.js';
import { CommandFailed, EXIT_OK, UsageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { startSpinner, stylesFor, type Spinner } from '../terminal.js';
import { readOnlyNotice, withStore } from './admin-store.js';
import { profilePaths } from './agent-access.js';
import { delegateCommandLine } from './mcp-config.js';

export interface ApproveArgs {
  ports: Ports;
  host: string;
  /** DELEGATE_AGENT_URL: refused (approve takes no --agent-url), a deployment published elsewhere signs its users in with its own accounts. */
  agentUrl?: string;
  profile?: string;
  browser: boolean;
  loginTimeoutMs?: number;
}

/** A user code as the authorization server makes them (RFC 8628 §6.1: eight letters), typed in any case, with or without the dash. */
const USER_CODE = /^[A-Za-z]{4}[- ]?[A-Za-z]{4}$/;
const METADATA_TIMEOUT_MS = 3000;
/** /authorize may fetch the app's client metadata document first (client-documents.ts: up to 3 s). */
const REQUEST_CHECK_TIMEOUT_MS = 10_000;

export async function approveCommand(target: string, args: ApproveArgs, io: CliIo): Promise<number> {
  if (args.agentUrl !== undefined) {
    throw new UsageError(
      `DELEGATE_AGENT_URL names CalendarAgent at ${printableClipped(args.agentUrl, 200)}, published elsewhere, where you sign in with that deployment's own account; approve signs in the owner of this computer's servers, found by their ports: unset DELEGATE_AGENT_URL to approve a request made here.`,
    );
  }
  const host = loopbackAddressOf(target) ?? args.host;
  const issuer = urlsFor(args.ports, host).issuer;
  const request = requestToApprove(target, issuer);
  const paths = profilePaths(io, args.profile);
  // The server must be this data directory's (its owner key checks the link) and be there at all (the request lives in it).
  const { refuseOtherDataDirectoryAt } = await loadStack();
  await refuseOtherDataDirectoryAt({ paths, ports: args.ports, host }, issuer);
  await requireServer(issuer);
  const page = new URL(request, issuer);
  await requireWaitingRequest(page, issuer, paths, io);
  const key = await loadOrCreateOwnerKey(paths.ownerKey); // a key problem shows now, not in the browser
  const listener = await startOnlyListener({ timeoutMs: args.loginTimeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS }, async () => {
    // Who holds the server's port is looked up when the link is given, afresh: the server may have stopped since the
    // command began, and another user's program taken its port (found in review, s28new2: it got the owner's link).
    refuseForeignListener(issuer, { fresh: true });
    // And the server must still be there: the request lives in it (found in review, s28new3: with `serve` stopped, the
    // browser was sent to a refused port and approve said "Signed in for that request", exit 0).
    await requireServer(issuer);
    return ownerLoginUrl(issuer, await signOwnerAssertion({ key, issuer, now: () => io.now(), next: request, approval: true }), page);
  });
  const styles = stylesFor(io);
  const elsewhere = foreignListenerOfAnswer(page);
  if (elsewhere !== undefined) io.stderr.write(`delegate: ${styles.bold(elsewhere)}\n`);
  let spinner: Spinner | undefined;
  try {
    io.stderr.write(`${styles.bold(`Approve or deny ${whatIsAsked(page)} in your browser.`)} ${args.browser ? 'If no browser opened, open this link' : 'Open this link in a browser on this computer'}:\n`);
    io.stderr.write(`${listener.startUrl}\n`);
    if (args.browser) await io.openBrowser(listener.startUrl);
    spinner = startSpinner(io, 'Waiting for the browser…');
    await listener.visited();
  } finally {
    spinner?.stop();
    await listener.close();
  }
  io.stderr.write(`Signed in for that request. ${styles.bold('Approve or deny it on the page in your browser')}: the app that asked gets the answer.\n`);
  return EXIT_OK;
}

/**
 * The path and query on `issuer` that the link continues to: an /authorize request as given, or a device's code page
 * as the server writes it (so that the session it starts is good for that page). Anything else: exit 2, one line.
 */
export function requestToApprove(target: string, issuer: string): string {
  const trimmed = target.trim();
  if (USER_CODE.test(trimmed)) return devicePage(trimmed);
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw new UsageError(`${shown(trimmed)} is neither an authorization URL (…/authorize?…) nor a user code (ABCD-EFGH).`);
  }
  const server = new URL(issuer);
  if (url.origin !== server.origin || url.username !== '' || url.password !== '') {
    throw new UsageError(
      `${shown(url.href)} is not on this data directory's authorization server ${server.origin}, so it was not signed; approve signs in there only (servers on other ports: give --auth-port).`,
    );
  }
  if (url.pathname === '/authorize' && url.search.length > 1) return `${url.pathname}${url.search}`;
  const code = url.searchParams.get('user_code');
  if (url.pathname === '/device' && code !== null && USER_CODE.test(code.trim())) return devicePage(code.trim());
  throw new UsageError(`${shown(url.href)} is not an authorization request (${server.origin}/authorize?…) or a device's code page (${server.origin}/device?user_code=…).`);
}

/**
 * The loopback address a pasted URL names, as the servers' URLs write it (IPv6 without brackets: `::1`), or undefined
 * for a user code, a name (`localhost` is resolved, not an address: it stays another origin) or an address off this
 * machine. Only where the server is looked for: its metadata must then name that issuer, and its data directory be
 * this one (refuseOtherDataDirectoryAt), before anything is signed for it.
 */
function loopbackAddressOf(target: string): string | undefined {
  let hostname: string;
  try {
    hostname = new URL(target.trim()).hostname;
  } catch {
    return undefined;
  }
  return hostname !== 'localhost' && isAnyLoopbackHost(hostname) ? hostname.replace(/^\[(.*)\]$/, '$1') : undefined;
}

/** verification_uri_complete's path and query for a user code, as the authorization server writes it (completeVerificationPath). */
function devicePage(code: string): string {
  const letters = code.toUpperCase().replace(/[^A-Z]/g, '');
  return `/device?user_code=${letters.slice(0, 4)}-${letters.slice(4)}`;
}

/** "the request of client X" or "the device code X", for the line the person reads. */
function whatIsAsked(page: URL): string {
  const code = page.searchParams.get('user_code');
  if (page.pathname === '/device' && code !== null) return `the device code ${code}`;
  return `the request of the app ${shown(page.searchParams.get('client_id') ?? 'that names no client_id')}`;
}

/**
 * What the owner is told before the browser opens when the app's answer goes to a program of another user of this
 * computer: the redirect URI the request names (loopback, http) and the uids of the programs listening there (for
 * `localhost`, on either loopback), as the consent page says it (found in review, s23local: another user registered
 * "Claude Code" with his own listener's port). Undefined when the request names no redirect URI, or nobody else
 * listens there yet (the page looks again).
 */
function foreignListenerOfAnswer(page: URL): string | undefined {
  const given = page.pathname === '/authorize' ? page.searchParams.get('redirect_uri') : null;
  if (given === null) return undefined;
  let redirect: URL;
  try {
    redirect = new URL(given);
  } catch {
    return undefined;
  }
  if (redirect.protocol !== 'http:' || !isAnyLoopbackHost(redirect.hostname)) return undefined;
  const uids = foreignListenersAt(redirect);
  if (uids.length === 0) return undefined;
  return `The app's answer goes to a program of another user of this computer (${uidsSaid(uids)}), the one listening at ${shown(redirect.host)}, not to a program of yours, whatever name the app gave: approve only if you mean to let that user act for you.`;
}

function shown(text: string): string {
  return printableClipped(text, 200);
}

/**
 * The request is one the server waits on a decision for, or the command stops here (exit 1, one line, no link given).
 * Found in review (s30): a mistyped user code, or an /authorize URL of an app the server does not know, got a link and
 * "Signed in for that request. Approve or deny it on the page in your browser" (exit 0) while the page said the code
 * is not valid, or "Unknown app"; without a browser, a mistyped code waited out --login-timeout. Each look changes
 * nothing of the request: the /authorize one is the page any browser without a session gets, and a device's is read
 * from this data directory's database (which the server was found to use), as the administrator's commands read it;
 * the server tells nobody without a session whether a user code waits (RFC 8628 §5.1: codes must not be guessable).
 */
async function requireWaitingRequest(page: URL, issuer: string, paths: Paths, io: CliIo): Promise<void> {
  const code = page.pathname === '/device' ? page.searchParams.get('user_code') : null;
  if (code !== null) {
    let waiting;
    try {
      waiting = await withStore(paths, async (store) => store.deviceAuthorizationByUserCode(code, io.now()), readOnlyNotice(io));
    } catch {
      // The database cannot be read here (an older delegate serving it, which refuses the upgrade a read would make, say
      // (review s30fix)): the code is not looked at, and the browser's page says what there is, as before.
      return;
    }
    if (waiting?.status !== 'pending') {
      throw new CommandFailed(
        `No device sign-in waits with the code ${code} at ${issuer}: it is mistyped, was answered already, or has expired. Check the code the device shows, or start again on the device.`,
      );
    }
    return;
  }
  const refusal = await authorizationRefusal(page);
  if (refusal !== undefined) {
    throw new CommandFailed(`Nothing to approve: the authorization server at ${issuer} refuses that request (${printableClipped(refusal, 500)}) Start again from the app.`);
  }
}

/**
 * Why /authorize refuses the request, as it answers a browser without a session, or undefined when it asks that
 * browser to sign in (403, sign-in-page.ts: the request is valid and waits for the owner) or could not be asked (the
 * browser then shows what there is). authorize.ts: a request whose app or redirect URI does not check out is a 400
 * page (its heading and first paragraph say why); one refused after that goes back to the app, a redirect carrying
 * `error` and `error_description` (RFC 6749 §4.1.2.1), which is not followed here.
 */
async function authorizationRefusal(page: URL): Promise<string | undefined> {
  let res: Response;
  try {
    res = await fetch(page, { redirect: 'manual', signal: AbortSignal.timeout(REQUEST_CHECK_TIMEOUT_MS) });
  } catch {
    return undefined;
  }
  if (res.status >= 300 && res.status < 400) {
    await res.body?.cancel();
    const location = res.headers.get('location');
    let answer: URL;
    try {
      answer = new URL(location ?? '', page);
    } catch {
      return undefined;
    }
    const error = answer.searchParams.get('error');
    if (error === null) return undefined;
    return `${error}: ${sentence(answer.searchParams.get('error_description') ?? 'no description')}`;
  }
  if (res.status !== 400) {
    await res.body?.cancel();
    return undefined;
  }
  const text = await res.text().catch(() => '');
  const heading = pageText(/<h1[^>]*>([\s\S]*?)<\/h1>/i.exec(text)?.[1]);
  const detail = pageText(/<\/h1>\s*<p[^>]*>([\s\S]*?)<\/p>/i.exec(text)?.[1]);
  if (heading === '') return 'it answers 400, with no reason given.';
  return detail === '' ? sentence(heading) : `${heading}: ${sentence(detail)}`;
}

/** An element's text as one line: tags dropped, the entities pages.ts escapes (and numeric ones) decoded, spaces joined. */
function pageText(html: string | undefined): string {
  if (html === undefined) return '';
  return html
    .replace(/<[^>]*>/g, '')
    .replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, name: string) => {
      const lower = name.toLowerCase();
      if (lower.startsWith('#')) {
        const point = lower.startsWith('#x') ? Number.parseInt(lower.slice(2), 16) : Number.parseInt(lower.slice(1), 10);
        return point <= 0x10ffff ? String.fromCodePoint(point) : '\ufffd';
      }
      return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[lower]!;
    })
    .replace(/\s+/g, ' ')
    .trim();
}

/** `text` ending with a full stop (or its own ? or !). */
function sentence(text: string): string {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

/** The authorization server answers its metadata with this issuer (RFC 8414 §3.3), or the command stops here (exit 1). */
async function requireServer(issuer: string): Promise<void> {
  const metadata = await fetch(`${issuer}/.well-known/oauth-authorization-server`, { signal: AbortSignal.timeout(METADATA_TIMEOUT_MS), redirect: 'manual' })
    .then(async (res) => (res.ok ? ((await res.json()) as { issuer?: unknown }) : undefined))
    .catch(() => undefined);
  if (metadata?.issuer !== issuer) {
    throw new CommandFailed(
      `No delegate authorization server answers at ${issuer}: the request can be approved only while the server that it was made at runs (start it with \`${delegateCommandLine(['serve'])}\`, on the ports the app uses).`,
    );
  }
}
