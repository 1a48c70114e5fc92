// Client Identifier URLs (draft-ietf-oauth-client-id-metadata-document, Client Identifier URL):
// which client_id values name a client by the URL of its metadata document,
// and whether such a URL is one this server may fetch. Pure: returns tagged
// results that callers map to errors.

export type ClientIdUrlCheck = { ok: true; url: URL } | { ok: false; reason: string };

/** Longer than any Client Identifier URL a client needs; the id is stored with every grant and audit record. */
export const MAX_CLIENT_ID_URL_LENGTH = 2048;

/**
 * Whether a client_id is meant as a URL (and so is checked as a Client Identifier URL): it starts with a scheme
 * of the web. Ids this server generates never do (`cli_…`; the draft's Implementation Considerations ask that they not start with https://),
 * so an http:// one is refused as a Client Identifier URL rather than looked up as an unknown id.
 */
export function isClientIdUrlAttempt(clientId: string): boolean {
  return /^https?:\/\//i.test(clientId);
}

/**
 * The draft's rules: https; no userinfo; a path, here other than "/" (the MCP SDK's rule too: the root of a site
 * is its home page, which the draft calls NOT RECOMMENDED); no "." or ".." segments; no fragment. The draft compares Client
 * Identifier URLs as plain strings and the AS does not normalize them, and the document's client_id must equal the
 * URL fetched: so the id must already be in the form a URL parser gives back (lower-case scheme and host, no
 * default port, no dot segments, percent-encoding as WHATWG writes it), and is fetched exactly as written.
 */
export function checkClientIdUrl(clientId: string): ClientIdUrlCheck {
  if (clientId.length > MAX_CLIENT_ID_URL_LENGTH) return { ok: false, reason: `a client_id URL may have at most ${MAX_CLIENT_ID_URL_LENGTH} characters` };
  let url: URL;
  try {
    url = new URL(clientId);
  } catch {
    return { ok: false, reason: 'the client_id is not a valid URL' };
  }
  if (url.protocol !== 'https:') return { ok: false, reason: 'a client_id URL must use https' };
  if (url.username !== '' || url.password !== '') return { ok: false, reason: 'a client_id URL must not contain user information' };
  if (clientId.includes('#')) return { ok: false, reason: 'a client_id URL must not contain a fragment' };
  if (/\/\.{1,2}(?:\/|\?|$)|\/%2e(?:%2e|\.)?(?:\/|\?|$)|\/\.%2e(?:\/|\?|$)/i.test(clientId)) {
    return { ok: false, reason: 'a client_id URL must not contain . or .. path segments' };
  }
  if (url.pathname === '/' || url.pathname === '') return { ok: false, reason: 'a client_id URL must have a path (not only /)' };
  if (url.href !== clientId) {
    return { ok: false, reason: `a client_id URL must be written in normalized form (here: ${url.href}), since it is compared as a plain string` };
  }
  return { ok: true, url };
}

/**
 * Whether a stored client came from a metadata document: its record keeps the document's own client_id, which
 * registered clients' records never hold.
 */
export function isDocumentClient(client: { clientId?: string; metadata?: Record<string, unknown> }): boolean {
  return client.clientId !== undefined && client.metadata?.client_id === client.clientId && isClientIdUrlAttempt(client.clientId);
}

/** The host that publishes a metadata-document client's document (as WHATWG URL writes it: punycode), else undefined. */
export function documentHost(client: { clientId?: string; metadata?: Record<string, unknown> }): string | undefined {
  return isDocumentClient(client) ? new URL(client.clientId!).host : undefined;
}
