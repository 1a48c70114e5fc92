// Resource indicators (RFC 8707) and audiences: one canonical spelling so that
// the value a client sends, the value the AS stores and the `aud` a resource
// server checks compare as plain strings. Pure: no I/O.

/**
 * The canonical form of a resource URL: scheme and host lower-cased (the URL
 * parser does this), default port dropped, no fragment (RFC 8707 §2 forbids
 * one), and no trailing slash on a bare origin, so `http://127.0.0.1:8411/`
 * and `http://127.0.0.1:8411` are one resource. The path is kept exactly.
 * Returns undefined for anything that is not an absolute http(s) URL.
 */
export function canonicalResource(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.hash || value.includes('#')) return undefined;
  if (url.username || url.password) return undefined;
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.protocol}//${url.host}${path}${url.search}`;
}

/** Whether `aud` (a JWT audience claim) names `resource`. */
export function audienceIncludes(aud: string | string[] | undefined, resource: string): boolean {
  if (aud === undefined) return false;
  const list = Array.isArray(aud) ? aud : [aud];
  return list.some((a) => canonicalResource(a) === resource);
}

/**
 * Whether `resource` is `parent` or lies within it: the same origin, and `parent`'s path a whole-segment prefix of
 * `resource`'s (as the MCP SDK's checkResourceAllowed, which the browser sign-in applies to protected resource
 * metadata: an agent at https://a.example/mcp may name https://a.example as its resource). False when either is no
 * absolute http(s) URL.
 */
export function resourceWithin(resource: string, parent: string): boolean {
  const [r, p] = [canonicalResource(resource), canonicalResource(parent)];
  if (r === undefined || p === undefined) return false;
  const [child, base] = [new URL(r), new URL(p)];
  if (child.origin !== base.origin || child.search !== base.search) return false;
  const basePath = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
  return child.pathname === base.pathname || child.pathname.startsWith(basePath);
}

/**
 * The loopback names of RFC 8252 §7.3 and §8.3, as a URL's `hostname` spells them: the literals 127.0.0.1 and [::1],
 * and localhost. The narrow rule, for what must be one of these exactly: a loopback redirect URI, and the names a
 * server answers for in Host and Origin on any port (another loopback address only as its published URL names it).
 * Any address of this machine's loopback is isAnyLoopbackHost.
 */
export const LOOPBACK_NAMES: readonly string[] = ['127.0.0.1', '[::1]', 'localhost'];

export function isLoopbackName(hostname: string): boolean {
  return LOOPBACK_NAMES.includes(hostname);
}

/**
 * Whether a URL's hostname, as the URL parser spells it (`127.1` is 127.0.0.1, `[::ffff:127.0.0.1]` is
 * `[::ffff:7f00:1]`), is any address of this machine's loopback: localhost, 127.0.0.0/8, [::1], and 127.0.0.0/8
 * IPv4-mapped (::ffff:127.0.0.0/104, which reaches the IPv4 loopback through a dual-stack socket). The broad rule,
 * for "traffic that never leaves this machine": OAuth 2.1 §1.5's exception to https, and "the server runs here".
 */
export function isAnyLoopbackHost(hostname: string): boolean {
  return (
    hostname === 'localhost' ||
    hostname === '[::1]' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname) ||
    // The parser writes an IPv4-mapped address's last 32 bits as two hex groups: 127.x.y.z is 7fxx:yyzz.
    /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(hostname)
  );
}

/** Whether `url` (a string, perhaps no URL at all) names a host of this machine's loopback (isAnyLoopbackHost). */
export function isLoopbackUrl(url: string): boolean {
  try {
    return isAnyLoopbackHost(new URL(url).hostname);
  } catch {
    return false;
  }
}

/**
 * Whether two URLs (any spelling canonicalResource takes) are on one origin (RFC 6454: scheme, host, port),
 * counting every loopback host (isAnyLoopbackHost) with the same scheme and port as one: `http://localhost:8410`,
 * `http://127.0.0.2:8410` and `http://[::1]:8410` may all reach the listener of `http://127.0.0.1:8410` (a wildcard
 * or dual-stack one, or `localhost` resolved to either), so a rule that keeps something off an origin must keep it
 * off all of them. False when either is no absolute http(s) URL.
 */
export function sameOriginOrLoopbackAlias(a: string, b: string): boolean {
  const [x, y] = [loopbackFolded(a), loopbackFolded(b)];
  return x !== undefined && y !== undefined && x.origin === y.origin;
}

/** Whether two URLs are one resource (canonical forms, RFC 8707), counting loopback hosts as one as sameOriginOrLoopbackAlias does. */
export function sameResourceOrLoopbackAlias(a: string, b: string): boolean {
  const [x, y] = [loopbackFolded(a), loopbackFolded(b)];
  return x !== undefined && y !== undefined && x.href === y.href;
}

/** The canonical form of `value` with a loopback host replaced by one name that no other host has. */
function loopbackFolded(value: string): URL | undefined {
  const canonical = canonicalResource(value);
  if (canonical === undefined) return undefined;
  const url = new URL(canonical);
  // `name.` and `name` are one DNS name (RFC 1034 §3.1): one listener, and a certificate for the one passes for the
  // other (found in review, regress20a: `https://cal.example.com./mcp` was taken for an origin other than the backend's).
  if (url.hostname.endsWith('.')) url.hostname = url.hostname.slice(0, -1);
  if (isAnyLoopbackHost(url.hostname)) url.hostname = 'loopback.invalid';
  return url;
}

/** The well-known path of protected resource metadata (RFC 9728 §3). */
export const PRM_WELL_KNOWN = '/.well-known/oauth-protected-resource';

/**
 * Where the metadata of `resourceUrl` lives (RFC 9728 §3.1): the well-known
 * segment goes between the host and the resource's path, so the metadata of
 * `http://127.0.0.1:8412/mcp` is at
 * `http://127.0.0.1:8412/.well-known/oauth-protected-resource/mcp`.
 */
export function protectedResourceMetadataUrl(resourceUrl: string): string {
  const url = new URL(resourceUrl);
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.origin}${PRM_WELL_KNOWN}${path}${url.search}`;
}

/** Where an authorization server's metadata lives (RFC 8414 §3.1): the well-known segment goes between the issuer's host and its path. */
export function authorizationServerMetadataUrl(issuer: string): string {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.origin}/.well-known/oauth-authorization-server${path}`;
}
