// Where a feed's fetch may go. Its redirects are followed one at a time
// (feeds.ts), and each address, the first too, is checked before anything is
// sent there: a port of this machine held by another user's program is refused
// (src/http/listener-owner.ts), as for every plain-http request delegate makes;
// and a feed whose own address is public may not send delegate to a loopback,
// private, link-local or other special-use address (RFC 6890,
// src/http/special-use.ts), which would let whoever serves the feed aim the
// calendar backend at this machine's or its network's services. A feed added
// on such an address itself (a Radicale on this machine, a server of the
// office network) is the user's choice and may redirect within it. Reasons
// never name the URL: a private feed's URL is a secret.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { isAnyLoopbackHost } from '../delegation/resource.js';
import { foreignListenerAt } from '../http/listener-owner.js';
import { isSpecialUseAddress } from '../http/special-use.js';

/** A host name's addresses, as the system resolves them for the fetch itself; tests inject their own. */
export type ResolveHost = (hostname: string) => Promise<string[]>;

export const resolveBySystem: ResolveHost = async (hostname) => (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

/**
 * Why the fetch may not go to `target` (the feed's own URL `first`, or where one of its redirects leads), or
 * undefined when it may. `redirected`: whether `target` came from a redirect. Waits for name resolution no longer
 * than `signal` allows.
 */
export async function refusedFeedTarget(first: string, target: string, redirected: boolean, resolve: ResolveHost, signal: AbortSignal): Promise<string | undefined> {
  const url = new URL(target);
  const uid = foreignListenerAt(url);
  if (uid !== undefined) {
    const where = redirected ? 'The feed redirected to a port of this machine that is' : "The feed's port on this machine is";
    return `${where} held by a program of another user (uid ${uid}); nothing was sent to it.`;
  }
  if (!redirected) return undefined;
  const inside = await reachesInside(url, resolve, signal);
  if (inside === false || (await reachesInside(new URL(first), resolve, signal)) === true) return undefined;
  if (inside === 'unresolved') return "The feed redirected to a host whose name could not be resolved; the redirect was not followed.";
  return 'The feed redirected to a loopback, private or other special-use address (RFC 6890), where a feed on a public address may not send delegate; the redirect was not followed.';
}

/**
 * Whether a URL's host is, or resolves to, any address that is not one host on the public Internet (loopback, a
 * private network, link-local…); 'unresolved' when its name could not be resolved.
 */
async function reachesInside(url: URL, resolve: ResolveHost, signal: AbortSignal): Promise<boolean | 'unresolved'> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  // `localhost` and its subdomains are this machine whatever DNS says (RFC 6761 §6.3).
  if (isAnyLoopbackHost(url.hostname) || /(^|\.)localhost\.?$/i.test(host)) return true;
  if (isIP(host) !== 0) return isSpecialUseAddress(host);
  try {
    const addresses = await Promise.race([resolve(host), aborted(signal)]);
    return addresses.length === 0 ? 'unresolved' : addresses.some(isSpecialUseAddress);
  } catch (error) {
    if (signal.aborted) throw error; // the fetch's deadline: said as such
    return 'unresolved';
  }
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}
