// Which IP addresses are not one host on the public Internet: the IANA
// special-purpose registries (RFC 6890 and its updates), reserved IPv6 space,
// and loopback. Shared by the fetches that must not be aimed at this machine or
// its network: client metadata documents (src/authz/client-document-fetch.ts)
// and the redirects of calendar feeds (src/calendar/feed-redirects.ts).
import { BlockList, isIP } from 'node:net';

type Subnet = readonly [network: string, prefix: number];

/**
 * The IANA IPv4 Special-Purpose Address Registry (RFC 6890 and its updates), whole: the draft's SSRF section says
 * "special-use IP addresses as defined in RFC 6890", so the entries marked globally reachable (AS112, AMT) are in
 * too. And multicast (RFC 5771), which is no one host.
 */
const SPECIAL_USE_V4: readonly Subnet[] = [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.31.196.0', 24], ['192.52.193.0', 24], ['192.88.99.0', 24],
  ['192.168.0.0', 16], ['192.175.48.0', 24], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24],
  ['224.0.0.0', 4], ['240.0.0.0', 4],
];

/**
 * The IANA IPv6 Special-Purpose Address Registry (RFC 6890 and its updates), whole, and the ranges that hold an IPv4
 * address (IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, IPv4-translated ::ffff:0:0:0/96, NAT64 64:ff9b::/96
 * and 64:ff9b:1::/48, 6to4 2002::/16, Teredo in 2001::/23): each can reach the IPv4 address behind it, and a
 * document has no reason to be served from one, so they are refused whole rather than unwrapped. Site-local
 * fec0::/10 (deprecated, RFC 3879, still routed inside some networks) and multicast too.
 */
const SPECIAL_USE_V6: readonly Subnet[] = [
  ['::', 96], ['::ffff:0:0', 96], ['::ffff:0:0:0', 96], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64],
  ['100:0:0:1::', 64], ['2001::', 23], ['2001:db8::', 32], ['2002::', 16], ['2620:4f:8000::', 48], ['3fff::', 20],
  ['5f00::', 16], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
];

/** IANA's IPv6 Address Space: only 2000::/3 is global unicast; all else is reserved, so no public host is there. */
const GLOBAL_UNICAST_V6: readonly Subnet[] = [['2000::', 3]];

/** What the draft's development exception allows: loopback (127.0.0.0/8, ::1), nothing else special-use. */
const LOOPBACK_V4: readonly Subnet[] = [['127.0.0.0', 8]];
const LOOPBACK_V6: readonly Subnet[] = [['::1', 128]];

/**
 * One family's rules in a list of its own, checked only with addresses of that family: a BlockList holding both
 * matches an IPv4 address against IPv6 rules in its IPv4-mapped form, so ::ffff:0:0/96 matched every IPv4 address.
 */
function familyList(subnets: readonly Subnet[], family: 'ipv4' | 'ipv6'): (address: string) => boolean {
  const list = new BlockList();
  for (const [network, prefix] of subnets) list.addSubnet(network, prefix, family);
  return (address) => list.check(address, family);
}

const inSpecialUseV4 = familyList(SPECIAL_USE_V4, 'ipv4');
const inSpecialUseV6 = familyList(SPECIAL_USE_V6, 'ipv6');
const inGlobalUnicastV6 = familyList(GLOBAL_UNICAST_V6, 'ipv6');
const inLoopbackV4 = familyList(LOOPBACK_V4, 'ipv4');
const inLoopbackV6 = familyList(LOOPBACK_V6, 'ipv6');

/** 4 or 6 for an IP address; undefined for anything else, and for an IPv6 address with a zone (link-local by nature). */
function ipFamily(address: string): 4 | 6 | undefined {
  const family = isIP(address);
  if (family === 4) return 4;
  return family === 6 && !address.includes('%') ? 6 : undefined;
}

/** True unless `address` is an IP address of one host on the public Internet. */
export function isSpecialUseAddress(address: string): boolean {
  const family = ipFamily(address);
  if (family === 4) return inSpecialUseV4(address);
  if (family === 6) return !inGlobalUnicastV6(address) || inSpecialUseV6(address);
  return true;
}

/** Whether `address` is an IP address of this machine's loopback (127.0.0.0/8, ::1). */
export function isLoopbackAddress(address: string): boolean {
  const family = ipFamily(address);
  return family === 4 ? inLoopbackV4(address) : family === 6 && inLoopbackV6(address);
}
