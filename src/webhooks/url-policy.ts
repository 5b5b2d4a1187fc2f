import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Where webhook deliveries may go. By default only public unicast addresses over https;
 * `allowedCidrs` (WEBHOOK_ALLOWED_CIDRS) lets chosen ranges through — over http too — and
 * `allowHttp` (WEBHOOK_ALLOW_HTTP) drops the https rule, never the address rule.
 */
export type UrlPolicy = Readonly<{ allowedCidrs: readonly string[]; allowHttp: boolean }>;

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** IPv6 global unicast (RFC 4291 §2.4): anything outside it is local, special or unassigned. */
const GLOBAL_UNICAST_V6 = ipaddr.IPv6.parseCIDR('2000::/3');
/** The well-known NAT64 prefix (RFC 6052): the IPv4 destination is the last 32 bits. */
const NAT64_WELL_KNOWN = ipaddr.IPv6.parseCIDR('64:ff9b::/96');
const HTTPS_REQUIRED = 'the URL must use https (http only for addresses in the allowed CIDRs)';

/** Parses WEBHOOK_ALLOWED_CIDRS ("127.0.0.0/8,::1/128") — throws on a bad entry. */
export function parseCidrs(value: string): string[] {
  const entries = value
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  return parseRanges(entries).map(([address, bits]) => `${address.toString()}/${bits}`);
}

/** CIDRs (or single addresses) as ranges; IPv4 only in plain dotted-quad form. */
function parseRanges(entries: readonly string[]): Range[] {
  return entries.map((entry) => {
    const cidr = entry.includes('/') ? entry : `${entry}/${isIP(entry) === 6 ? 128 : 32}`;
    if (ipaddr.IPv4.isValidCIDRFourPartDecimal(cidr)) return ipaddr.IPv4.parseCIDR(cidr);
    if (ipaddr.IPv6.isValidCIDR(cidr)) return ipaddr.IPv6.parseCIDR(cidr);
    throw new Error(`not a CIDR range: '${entry}' (expected e.g. 127.0.0.0/8 or ::1/128)`);
  });
}

/**
 * The special-purpose range an address is in ('loopback', 'private', 'linkLocal', …, as named by
 * ipaddr.js), or null for a public unicast address. IPv6 forms that carry an IPv4 address are
 * judged by that address: IPv4-mapped (::ffff:a.b.c.d, which the OS connects to over IPv4), NAT64
 * 64:ff9b::/96 and 6to4 2002::/16. Everything else outside 2000::/3 is refused, IPv4-compatible
 * ::a.b.c.d included.
 */
export function specialRange(address: string): string | null {
  if (!ipaddr.isValid(address)) return 'not an IP address';
  const ip = ipaddr.parse(address);
  return ip.kind() === 'ipv4' ? specialRangeV4(ip as ipaddr.IPv4) : specialRangeV6(ip as ipaddr.IPv6);
}

function specialRangeV4(ip: ipaddr.IPv4): string | null {
  const range = ip.range();
  return range === 'unicast' ? null : range;
}

function specialRangeV6(ip: ipaddr.IPv6): string | null {
  const range = ip.range();
  if (range === 'ipv4Mapped') return specialRangeV4(ip.toIPv4Address());
  if (ip.match(NAT64_WELL_KNOWN)) return embedded('NAT64', ipv4At(ip, 6));
  if (range === '6to4') return embedded('6to4', ipv4At(ip, 1));
  if (range !== 'unicast') return range;
  return ip.match(GLOBAL_UNICAST_V6) ? null : 'not global unicast';
}

/** The IPv4 address in two 16-bit parts of an IPv6 address, starting at `part`. */
function ipv4At(ip: ipaddr.IPv6, part: number): ipaddr.IPv4 {
  const high = ip.parts[part] ?? 0;
  const low = ip.parts[part + 1] ?? 0;
  return new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
}

function embedded(form: string, ipv4: ipaddr.IPv4): string | null {
  const range = specialRangeV4(ipv4);
  return range === null ? null : `${form} of ${range} ${ipv4.toString()}`;
}

/** Inside one of the policy's allowed ranges (an IPv4-mapped address as its IPv4 address). */
export function isAllowedAddress(address: string, policy: UrlPolicy): boolean {
  if (!ipaddr.isValid(address)) return false;
  const ip = ipaddr.process(address);
  return parseRanges(policy.allowedCidrs).some(
    ([network, bits]) => network.kind() === ip.kind() && ip.match(network, bits),
  );
}

/** A special-purpose address that the policy does not explicitly allow. */
export function isForbiddenAddress(address: string, policy: UrlPolicy): boolean {
  return !isAllowedAddress(address, policy) && specialRange(address) !== null;
}

/**
 * Why a connection to `address` for a URL of `protocol` ('http:' or 'https:') is refused — the
 * special range it is in, or the https rule — or null if it may go ahead. This is the connect-time
 * decision, made on every resolved address.
 */
export function destinationRefusal(address: string, protocol: string, policy: UrlPolicy): string | null {
  if (isAllowedAddress(address, policy)) return null;
  const range = specialRange(address);
  if (range !== null) return range;
  if (protocol !== 'https:' && !policy.allowHttp) return HTTPS_REQUIRED;
  return null;
}

/**
 * Creation-time check of a subscription URL: returns null if acceptable, else a human reason.
 * Static only — no DNS: a name is accepted here and its addresses are checked at connect time, so
 * http with a name needs `allowHttp` (whether it resolves into `allowedCidrs` is not known yet).
 * IP literals in any notation are caught because WHATWG URL parsing canonicalises them first
 * (`http://0x7f.1/`, `http://2130706433/` and `http://127.1/` all have hostname 127.0.0.1).
 */
export function checkWebhookUrl(url: string, policy: UrlPolicy): string | null {
  if (!URL.canParse(url)) return 'not a valid URL';
  const parsed = new URL(url);
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return 'the URL must use https';
  if (parsed.username !== '' || parsed.password !== '') return 'the URL must not contain credentials';
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  if (isIP(host) === 0) return parsed.protocol === 'http:' && !policy.allowHttp ? HTTPS_REQUIRED : null;
  const refusal = destinationRefusal(host, parsed.protocol, policy);
  if (refusal === null || refusal === HTTPS_REQUIRED) return refusal;
  return `the address ${host} is not allowed (${refusal})`;
}
