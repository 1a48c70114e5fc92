// Where a feed's fetch may go. Its redirects are followed one at a time
// (feeds.ts), and each address, the first too, is checked before anything is
// sent there: its host name is resolved once, and the connection made to the
// addresses checked and no other (src/http/pinned-get.ts), so a name that
// answers a public address to the check and 127.0.0.1 to the connect (DNS
// rebinding) cannot slip past. A port of this machine held by another user's
// program is refused (src/http/listener-owner.ts), as for every plain-http
// request delegate makes; and a feed whose own address is public may not send
// delegate to a loopback, private, link-local or other special-use address
// (RFC 6890, src/http/special-use.ts), which would let whoever serves the feed
// aim the calendar backend at this machine's or its network's services. A feed
// added on such an address itself (a Radicale on this machine, a server of the
// office network) is the user's choice and may redirect within it. Reasons
// never name the URL: a private feed's URL is a secret.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { isAnyLoopbackHost } from '../delegation/resource.js';
import { foreignListenerAt } from '../http/listener-owner.js';
import { resolvedAddress, type ResolvedAddress } from '../http/pinned-get.js';
import { isSpecialUseAddress } from '../http/special-use.js';

/** A host name's addresses, as the system resolves them; tests inject their own. */
export type ResolveHost = (hostname: string) => Promise<string[]>;

export const resolveBySystem: ResolveHost = async (hostname) => (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

/** Where one request of a feed's fetch goes: the addresses checked, the only ones it may connect to. */
export interface FeedTarget {
  addresses: ResolvedAddress[];
  /** Whether any of them is not one host on the public Internet (loopback, a private network, link-local…). */
  inside: boolean;
}

/** `localhost` and its subdomains are this machine whatever DNS says (RFC 6761 §6.3): its loopback, both families. */
const LOOPBACK: readonly ResolvedAddress[] = [
  { address: '127.0.0.1', family: 4 },
  { address: '::1', family: 6 },
];

/**
 * Where the fetch of `url` may connect, or why it may not go there. `feed`: undefined for the feed's own URL; for a
 * redirect, the target of the feed's own URL, whose side of the rule it is held to. Resolves the name once, waiting
 * no longer than `signal` allows; the feed's own name unresolved throws (the fetch could not be made), a redirect's
 * is refused.
 */
export async function feedTarget(url: URL, feed: FeedTarget | undefined, resolve: ResolveHost, signal: AbortSignal): Promise<FeedTarget | { refused: string }> {
  const redirected = feed !== undefined;
  let addresses: ResolvedAddress[];
  try {
    addresses = await addressesOf(url, resolve, signal);
  } catch (error) {
    if (!redirected || signal.aborted) throw error; // the fetch's deadline is said as such
    addresses = [];
  }
  if (addresses.length === 0) {
    if (!redirected) throw Object.assign(new Error('the name has no address'), { code: 'ENOTFOUND' });
    return { refused: 'The feed redirected to a host whose name could not be resolved; the redirect was not followed.' };
  }
  // The port's owner at each address the connection may go to: a name of this machine is checked as its address is.
  for (const { address, family } of addresses) {
    const at = new URL(url.href);
    at.hostname = family === 6 ? `[${address}]` : address;
    const uid = foreignListenerAt(at);
    if (uid !== undefined) {
      const where = redirected ? 'The feed redirected to a port of this machine that is' : "The feed's port on this machine is";
      return { refused: `${where} held by a program of another user (uid ${uid}); nothing was sent to it.` };
    }
  }
  const target = { addresses, inside: addresses.some((a) => isSpecialUseAddress(a.address)) };
  if (redirected && target.inside && !feed.inside) {
    return { refused: 'The feed redirected to a loopback, private or other special-use address (RFC 6890), where a feed on a public address may not send delegate; the redirect was not followed.' };
  }
  return target;
}

/** The URL's host as addresses: an IP address as it is, a localhost name as loopback, any other name resolved once. */
async function addressesOf(url: URL, resolve: ResolveHost, signal: AbortSignal): Promise<ResolvedAddress[]> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) !== 0) return [resolvedAddress(host)!];
  if (isAnyLoopbackHost(url.hostname) || /(^|\.)localhost\.?$/i.test(host)) return [...LOOPBACK];
  const answers = await Promise.race([resolve(host), aborted(signal)]);
  return answers.flatMap((a) => resolvedAddress(a) ?? []);
}

/** A promise that rejects when `signal` aborts: raced against what might not heed the signal itself. */
export function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}
