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
 * Whether a redirect URI may be registered: an absolute https URI, or an http
 * URI on a loopback host (native apps, RFC 8252 §7.3). No fragment
 * (RFC 6749 §3.1.2), no userinfo, no wildcard.
 */
export function checkRegistrableRedirectUri(value: string): RedirectUriCheck {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, reason: `${truncate(value)} is not an absolute URI` };
  }
  if (value.includes('#')) return { ok: false, reason: 'a redirect URI must not contain a fragment' };
  if (url.username || url.password) return { ok: false, reason: 'a redirect URI must not contain user information' };
  if (value.includes('*')) return { ok: false, reason: 'a redirect URI must not contain a wildcard' };
  if (url.protocol === 'https:') return { ok: true };
  if (url.protocol === 'http:') {
    if (isLoopbackRedirect(url)) return { ok: true };
    return { ok: false, reason: 'an http redirect URI must be on a loopback address (127.0.0.1, [::1] or localhost)' };
  }
  return { ok: false, reason: `the ${url.protocol} scheme is not accepted for redirect URIs` };
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
