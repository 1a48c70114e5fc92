// What the owner types to approve a request another app made here (an MCP
// client doing its own OAuth): `delegate approve '<its authorization URL>'`,
// or `delegate approve <USER-CODE>` for a device's code page (its URL instead
// when the server is on another loopback address than 127.0.0.1, such as
// `serve --host ::1`: approve finds that address in the URL). Shown on the
// sign-in page, since the owner signs in from the command line only
// (src/client/owner-login.ts), and `delegate login` signs in its own request.
// The URL is front-channel (what the app opened), not a secret; it is written
// so that pasted into a shell it stays one argument: the query is the app's
// (or anyone's) text, so no quote or backslash of it ends the quoting.
import { DEFAULT_HOST, DEFAULT_PORTS } from '../config.js';
import { verificationPageCode } from './bound-pages.js';

const AUTHORIZE_PREFIX = '/authorize?';

/**
 * The command for the page `returnTo` (path and query on this server), or undefined when it is neither an authorization
 * request nor a device's code page. `delegate`: what runs delegate in the owner's shell (AuthContext.delegateCommand).
 */
export function approveCommand(issuer: string, returnTo: string, delegate = 'delegate'): string | undefined {
  const code = verificationPageCode(returnTo);
  const url = `'${shellQuotable(`${issuer.replace(/\/+$/, '')}${returnTo}`)}'`;
  // A user code alone names no server: approve looks for it at 127.0.0.1, so another address goes in as the page's URL.
  const byCode = code !== undefined && new URL(issuer).hostname !== DEFAULT_HOST ? url : code;
  const target = byCode ?? (returnTo.startsWith(AUTHORIZE_PREFIX) ? url : undefined);
  if (target === undefined) return undefined;
  return [delegate, 'approve', ...portOption(issuer), target].join(' ');
}

/** `--auth-port N` when the server is not on the port `delegate approve` assumes (the CLI finds it by its port, as `login` does). */
function portOption(issuer: string): string[] {
  const port = new URL(issuer).port;
  return port === '' || Number(port) === DEFAULT_PORTS.auth ? [] : ['--auth-port', port];
}

/**
 * The URL with every character that is not plain printable ASCII, and every quote and backslash, percent-encoded
 * (UTF-8): inside single quotes neither sh nor fish then sees anything but one word. A query value means the same
 * encoded (RFC 3986 §2.1); the CLI signs the link for the URL as it parses it.
 */
function shellQuotable(url: string): string {
  return url.replace(/[^\x21-\x26\x28-\x5b\x5d-\x7e]/gu, (c) => [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
}
