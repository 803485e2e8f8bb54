import { BlockList, isIP } from 'node:net';

/**
 * Where the publication host may be sent by a difusor. A difusor is run by a third party and the
 * publication host sits inside the institute's network: whatever a difusor answers must not make this
 * host fetch an address of the difusor's choosing (an administration panel, a metadata service).
 *
 * Redirects: followed only to the origin of the difusor's public_url (scheme, host and port), from
 * http to https on the same host (port 443, or the same port number), or to a host the registry lists
 * for that difusor under redirect_hosts (a CDN in front of it). Never to anything but http(s).
 *
 * Addresses: a DNS name is refused when it resolves to a loopback, private, link-local, unspecified or
 * metadata address, checked on the answer actually connected to. An IP address written in the registry
 * (public_url's host, or an entry of redirect_hosts) is taken as given, private or not: the operator
 * wrote it (a lab, an internal mirror), a difusor cannot; so is "localhost" answering loopback (this host
 * resolves it itself, RFC 6761). An internal mirror known only by a DNS name is refused: name it by its address.
 */

export interface RedirectScope {
  /** The difusor's public_url: its origin is home. */
  home: string;
  /** Hosts the registry lists for this difusor (redirect_hosts), any port, http or https. */
  redirectHosts?: readonly string[];
}

export type RedirectVerdict = { follow: true } | { follow: false; why: string };

/** Redirects followed for one request before it counts as a loop. */
export const MAX_REDIRECTS = 5;

/** How a refused target is named: its host (and port when not the scheme's default), never a path or query. */
export function describeTarget(url: URL): string {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `a ${url.protocol} address`;
  return url.host || '(no host)';
}

/** A host as compared: lower case, IPv6 without its brackets, no trailing dot. */
export function normalHost(host: string): string {
  return host.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
}

export function redirectVerdict(to: URL, scope: RedirectScope): RedirectVerdict {
  const refused = (): RedirectVerdict => ({ follow: false, why: `sends visitors to ${describeTarget(to)}` });
  if (to.protocol !== 'http:' && to.protocol !== 'https:') return refused();
  if (to.username || to.password) return refused();
  const home = new URL(scope.home);
  if (to.origin === home.origin) return { follow: true };
  const sameHost = normalHost(to.hostname) === normalHost(home.hostname);
  // A browser's upgrade: http://host[:p]/ to https://host/ or https://host:p/.
  if (sameHost && home.protocol === 'http:' && to.protocol === 'https:' && (to.port === '' || to.port === (home.port || '80'))) return { follow: true };
  if ((scope.redirectHosts ?? []).some((h) => normalHost(h) === normalHost(to.hostname))) return { follow: true };
  return refused();
}

const inside = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  // Shared address space (carrier-grade NAT): not on the Internet either.
  ['100.64.0.0', 10],
] as const) {
  inside.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
] as const) {
  inside.addSubnet(net, bits, 'ipv6');
}

/** Loopback, private, link-local (metadata services live at 169.254.169.254), unspecified; IPv4-mapped IPv6 too. */
export function isInternalAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return inside.check(address, 'ipv4');
  if (family !== 6) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return inside.check(mapped[1] as string, 'ipv4');
  // ::ffff:7f00:1 is 127.0.0.1 written in hex.
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (hexMapped) {
    const [hi, lo] = [parseInt(hexMapped[1] as string, 16), parseInt(hexMapped[2] as string, 16)];
    return inside.check(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, 'ipv4');
  }
  return inside.check(address, 'ipv6');
}

/** "localhost" and names below it: resolved by this host to loopback (RFC 6761), never by anyone's DNS. */
export function isLocalhostName(host: string): boolean {
  const name = normalHost(host);
  return name === 'localhost' || name.endsWith('.localhost');
}

export function isLoopbackAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const v4 = mapped ? (mapped[1] as string) : address;
  return (isIP(v4) === 4 && v4.startsWith('127.')) || address === '::1';
}
