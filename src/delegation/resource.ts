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

/** Loopback hosts as a URL's `hostname` spells them (RFC 8252 §7.3, §8.3). */
export function isLoopbackHostname(hostname: string): boolean {
  return hostname === '127.0.0.1' || hostname === '[::1]' || hostname === 'localhost';
}
