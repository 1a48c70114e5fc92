// Redirect URI policy: which URIs a client may register (RFC 7591 with the
// rules of RFC 8252 and OAuth 2.1), and whether a requested URI matches a
// registered one. Pure: returns tagged results that callers map to errors.

import { LOOPBACK_NAMES, isLoopbackName } from '../../delegation/resource.js';

export type RedirectUriCheck = { ok: true } | { ok: false; reason: string };

/** An http redirect URI on a loopback name: RFC 8252 §7.3 names 127.0.0.1 and [::1] (and §8.3 localhost), no other loopback address. */
export function isLoopbackRedirect(url: URL): boolean {
  return url.protocol === 'http:' && isLoopbackName(url.hostname);
}

/**
 * Whether a redirect URI may be registered: an absolute https URI, an http URI on a loopback host (native apps,
 * RFC 8252 §7.3), or a private-use URI scheme of a native app (RFC 8252 §7.1, such as `com.example.app:/cb` or
 * `cursor://anysphere.cursor-mcp/oauth/callback`), that the browser is sent to as written (checkDeliveredAsWritten).
 * No userinfo, no wildcard.
 */
export function checkRegistrableRedirectUri(value: string): RedirectUriCheck {
  const delivered = checkDeliveredAsWritten(value);
  if (!delivered.ok) return delivered;
  const scheme = SCHEME.exec(value)![1]!;
  if (value.includes('*')) return { ok: false, reason: 'a redirect URI must not contain a wildcard' };
  if (scheme === 'https') return { ok: true };
  if (scheme === 'http') {
    if (isLoopbackRedirect(new URL(value))) return { ok: true };
    return { ok: false, reason: 'an http redirect URI must be on a loopback address (127.0.0.1, [::1] or localhost)' };
  }
  return checkPrivateUseScheme(scheme, value);
}

/**
 * Whether the code would go to the string as written: RFC 6749 §3.1.2 asks for an absolute URI (RFC 3986 §4.3)
 * without a fragment, and matching at /authorize is exact (RFC 9700 §4.1.3), so the URI the browser is sent to
 * must be the registered one, not what a URL parser makes of it. Checked at registration (here and in metadata
 * documents, through checkRegistrableRedirectUri) and again at /authorize, for a client stored before these checks.
 *
 * The string is checked as written, before any parser reads it: WHATWG URL (and so the browser that reads the
 * Location) lower-cases the scheme, drops tabs and newlines anywhere and spaces and controls at either end, reads
 * `\` as `/`, resolves `.` and `..` segments (also written `%2e`), percent-encodes what RFC 3986 does not allow,
 * turns a Unicode host into punycode and a numeric host into an IPv4 address. Found in review (s25rfc):
 * `https://app.example.com/cb\..\other` was registered and its denial sent to `https://app.example.com/other`.
 * So: RFC 3986 characters only (unreserved, reserved, `%HH`), a lower-case scheme (§3.1), no userinfo, no dot
 * segment (§3.3), no response parameter in the query (RFC 6749 §3.1: each only once; redirect.ts adds them to
 * the query as written, §3.1.2), and the parser must read the string back unchanged but for what RFC 3986 §6.2.2
 * and §6.2.3 call equivalent: the host's case, a default or empty port, the empty path of an http(s) origin.
 */
export function checkDeliveredAsWritten(value: string): RedirectUriCheck {
  if (/[\u0000-\u0020\u007f-\u009f]/.test(value)) return { ok: false, reason: 'a redirect URI must not contain spaces or control characters' };
  const scheme = SCHEME.exec(value)?.[1];
  if (scheme === undefined) return { ok: false, reason: `${truncate(value)} is not an absolute URI with a lower-case scheme (RFC 3986 section 3.1)` };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, reason: `${truncate(value)} is not an absolute URI` };
  }
  if (value.includes('#')) return { ok: false, reason: 'a redirect URI must not contain a fragment' };
  if (url.username || url.password) return { ok: false, reason: 'a redirect URI must not contain user information' };
  if (!RFC3986_CHARACTERS.test(value)) {
    return { ok: false, reason: `${truncate(value)} holds characters that RFC 3986 section 2 does not allow in a URI unencoded (or a % not followed by two hex digits)` };
  }
  const parts = RFC3986_PARTS.exec(value)!;
  const [, , authority, path = '', query] = parts;
  if (path.split('/').some((segment) => DOT_SEGMENT.test(segment))) {
    return { ok: false, reason: 'a redirect URI must not contain . or .. path segments (RFC 3986 section 3.3): the browser would resolve them to another path' };
  }
  // `[` and `]` only around an IPv6 literal host (RFC 3986 §3.2.2); a path or query may not hold them unencoded (§3.3, §3.4).
  if (/[[\]]/.test(path) || /[[\]]/.test(query ?? '')) {
    return { ok: false, reason: `${truncate(value)} holds [ or ] outside an IPv6 host, which RFC 3986 sections 3.3 and 3.4 do not allow unencoded` };
  }
  // The names as the client's parser reads them, percent-decoded (found in review, s25new2: `?%63ode=EVIL` passed the
  // check on the text as written, and the client's searchParams.get('code') was EVIL, the real code second).
  const names = query === undefined ? [] : [...new URLSearchParams(query).keys()];
  if (names.some((name) => /[\u0000-\u001f\u007f]/.test(name))) return { ok: false, reason: 'a redirect URI must not carry control characters in its query, encoded or not' };
  const named = names.find((name) => RESPONSE_PARAMETERS.has(name));
  if (named !== undefined) return { ok: false, reason: `a redirect URI must not carry the response parameter ${named} in its query (RFC 6749 section 3.1)` };
  const special = scheme === 'http' || scheme === 'https';
  const expected = `${scheme}:${authority === undefined ? '' : `//${equivalentAuthority(authority, scheme)}`}${path === '' && special ? '/' : path}${query === undefined ? '' : `?${query}`}`;
  if (url.href !== expected) {
    return { ok: false, reason: `${truncate(value)} is read as ${truncate(url.href)}, so the code would not go to the URI as registered (RFC 3986 section 6.2)` };
  }
  return { ok: true };
}

/** RFC 3986 §2: unreserved, reserved (gen-delims, sub-delims) and pct-encoded, nothing else. */
export const RFC3986_CHARACTERS = /^(?:[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$/;
/** RFC 3986 Appendix B: scheme, authority, path, query (no fragment: refused before). */
const RFC3986_PARTS = /^([^:/?#]+):(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?$/;
/** `.` or `..`, also percent-encoded (RFC 3986 §2.3: %2E is the unreserved `.`), which WHATWG URL resolves too. */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;
/** The parameters of the authorization response (RFC 6749 §4.1.2, §4.1.2.1, RFC 9207), which redirect.ts adds. */
const RESPONSE_PARAMETERS = new Set(['code', 'state', 'iss', 'error', 'error_description', 'error_uri']);
const DEFAULT_PORTS: Record<string, number> = { http: 80, https: 443 };

/**
 * An authority as WHATWG URL writes it back when the two are equivalent (RFC 3986 §6.2.2.1, §6.2.3): for http(s)
 * the host in lower case and a default or empty port left out; for another scheme as written, an empty port left out.
 */
function equivalentAuthority(authority: string, scheme: string): string {
  const [, host, port] = /^(.*?)(?::(\d*))?$/.exec(authority)!;
  const defaultPort = DEFAULT_PORTS[scheme];
  const portShown = !port || Number(port) === defaultPort ? '' : `:${port}`;
  return `${defaultPort === undefined ? host : host!.toLowerCase()}${portShown}`;
}

/** RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), here in its canonical lower case. */
const SCHEME = /^([a-z][a-z0-9+.-]*):/;

/**
 * Schemes that are not an app's own: the browser acts on them itself (script, inline or local content, its own
 * pages and extensions, other network protocols), or hands them to a standard application or a web site rather
 * than to the app that asked (mail, telephone, Android intents that start any activity, `web+` schemes that
 * registerProtocolHandler sends to a site), or to Windows tools that ran code from a link (ms-msdt,
 * CVE-2022-30190; search-ms and ms-officecmd in phishing). A code sent there reaches no app that asked for it.
 */
const NOT_PRIVATE_USE = new Set([
  'javascript', 'vbscript', 'data', 'blob', 'file', 'filesystem', 'about', 'view-source',
  'chrome', 'chrome-extension', 'moz-extension', 'resource', 'ws', 'wss', 'ftp',
  'mailto', 'tel', 'sms', 'intent', 'ms-msdt', 'search-ms', 'search', 'ms-officecmd',
  // Found in review s22new: network protocols whose link sends the browser's system to another host (smb: with the
  // user's Windows credentials), other browsers' own pages, and schemes that open system settings, Office documents,
  // archives and installers rather than the app that asked.
  'smb', 'cifs', 'nfs', 'afp', 'ssh', 'sftp', 'scp', 'telnet', 'rlogin', 'irc', 'ircs', 'ldap', 'ldaps', 'nntp', 'news',
  'gopher', 'git', 'svn', 'rsync', 'rtsp', 'rtmp', 'sip', 'sips', 'xmpp', 'webcal', 'feed', 'ipfs', 'ipns', 'magnet',
  'edge', 'opera', 'brave', 'vivaldi', 'chrome-untrusted', 'devtools', 'moz-icon',
  'ms-settings', 'ms-word', 'ms-excel', 'ms-powerpoint', 'ms-access', 'ms-visio', 'ms-project', 'ms-publisher',
  'ms-infopath', 'ms-spd', 'ms-windows-store', 'ms-appinstaller', 'shell', 'itms-services', 'itms-apps', 'mhtml', 'jar', 'res',
]);

/**
 * A native app's private-use scheme (RFC 8252 §7.1). Accepted with a single label (`cursor:`) as well as in
 * reverse-domain form (`com.example.app:`), although §8.4 says an authorization server SHOULD refuse a scheme
 * without a period: desktop MCP clients register single-label schemes (Cursor's `cursor://…`), and the name of
 * a scheme is not what keeps the code safe. Any app on the device can claim any scheme, with a period or
 * without (§8.6), so the safeguards are the same for both: PKCE S256 on every code (§8.1, policy/pkce.ts);
 * public clients only (register.ts, §8.5: an app on a device keeps no secret); never answered without the
 * consent page, which names the destination as an app on this device that delegate cannot verify
 * (authorize.ts identityAssured, consent-page.ts); an error redirected there only to a signed-in user with an
 * active delegation to the app, as for https (authorize.ts errorMayGoBack); exact string match at /authorize.
 * Refused: NOT_PRIVATE_USE, and a URI that is not `scheme:/path` or `scheme://authority/path` (§7.1 writes
 * `com.example.app:/oauth2redirect/example-provider`; an opaque `scheme:text` is a pseudo-URL, not a place).
 * MCP authorization's "All redirect URIs MUST be either localhost or use HTTPS" is about codes crossing a network
 * in the clear; a private-use redirect never leaves the device, so it is taken as loopback is (SECURITY.md).
 */
function checkPrivateUseScheme(scheme: string, value: string): RedirectUriCheck {
  if (NOT_PRIVATE_USE.has(scheme) || scheme.startsWith('web+')) {
    return { ok: false, reason: `the ${scheme}: scheme is not accepted for redirect URIs: it is not an app's own (private-use) scheme` };
  }
  if (!value.startsWith(`${scheme}:/`)) {
    return { ok: false, reason: `a private-use redirect URI must be written ${scheme}:/path or ${scheme}://name/path (RFC 8252 section 7.1)` };
  }
  return { ok: true };
}

/**
 * The scheme of a private-use redirect URI (RFC 8252 §7.1), such as `cursor` or `com.example.app`; undefined for
 * http and https. Registration lets no other scheme in, so any other one a client holds is an app's own.
 */
export function privateUseScheme(url: URL): string | undefined {
  return url.protocol === 'http:' || url.protocol === 'https:' ? undefined : url.protocol.slice(0, -1);
}

/** Where a redirect URI sends the browser, in a few words: its host as the browser resolves it, or `cursor:` for an app's own scheme. */
export function redirectDestination(url: URL): string {
  const scheme = privateUseScheme(url);
  return scheme === undefined ? url.host : `${scheme}:`;
}

/**
 * Whether `requested` matches one of `registered`. Matching is exact, string
 * for string (OAuth 2.1 §2.3.1; no normalisation, so case, percent-encoding
 * and trailing slashes all count). The one exception: for a loopback http URI
 * the port may differ (RFC 8252 §7.3), since native apps listen on an
 * ephemeral port; scheme, host, path and query must still be identical.
 */
export function matchRedirectUri(requested: string, registered: readonly string[]): boolean {
  if (registered.includes(requested)) return true;
  const req = loopbackParts(requested);
  if (!req) return false;
  return registered.some((candidate) => {
    const reg = loopbackParts(candidate);
    return reg !== undefined && reg.hostname === req.hostname && reg.rest === req.rest;
  });
}

/**
 * The redirect URI of an authorization request that sends none. OAuth 2.1 §4.1.1 (RFC 6749 §3.1.2.3): the
 * parameter is optional when the client registered exactly one, which is then used, and required when it
 * registered several. Also required when that one is a loopback URI without a port: RFC 8252 §7.3 (OAuth 2.1
 * §8.4.2) has the app choose the port for each sign-in, so the registered URI names no address the app listens
 * on (port 80 is not it). A loopback URI registered with a port is an address like any other, and is used.
 */
export type ImpliedRedirectUri = { ok: true; uri: string } | { ok: false; why: 'none-registered' | 'several-registered' | 'port-chosen-per-request' };

export function impliedRedirectUri(registered: readonly string[]): ImpliedRedirectUri {
  if (registered.length === 0) return { ok: false, why: 'none-registered' };
  if (registered.length > 1) return { ok: false, why: 'several-registered' };
  const only = registered[0]!;
  // As matchRedirectUri reads it: a URI that is not loopback there is matched exactly, so names its address.
  const loopback = loopbackParts(only);
  if (loopback !== undefined && loopback.port === undefined) return { ok: false, why: 'port-chosen-per-request' };
  return { ok: true, uri: only };
}

/** `http://<a loopback name>[:port][/rest]`, as written (the names of isLoopbackName). */
const LOOPBACK_URI = new RegExp(`^http://(${LOOPBACK_NAMES.map((name) => name.replace(/[.[\]]/g, '\\$&')).join('|')})(?::(\\d{1,5}))?(/[^#]*)?$`);

/**
 * A loopback http URI split at its port, using the raw string so that no
 * parser normalisation (case, dot segments, encoding) can make two different
 * strings equal: `http://127.0.0.1:PORT/rest` → {hostname, port (undefined when none is written), rest}.
 */
function loopbackParts(value: string): { hostname: string; port: string | undefined; rest: string } | undefined {
  const m = LOOPBACK_URI.exec(value);
  if (!m) return undefined;
  if (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535)) return undefined;
  return { hostname: m[1]!, port: m[2], rest: m[3] ?? '' };
}

function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 77)}...` : value;
}
