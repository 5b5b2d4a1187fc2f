import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { destinationRefusal, parseCidrs, type UrlPolicy } from './url-policy.ts';

export { checkWebhookUrl, isForbiddenAddress, parseCidrs, type UrlPolicy } from './url-policy.ts';

/** undici's own default connect timeout. */
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** The error thrown (as the cause of undici's error, or directly) when a destination is refused. */
export class ForbiddenDestinationError extends Error {
  readonly code = 'ERR_FORBIDDEN_DESTINATION';
  readonly address: string;
  /**
   * What a merchant may read (a delivery's lastError, the test event's answer): the host they
   * gave and why it is refused, without the address it resolved to — the resolved address of a
   * name inside our network is ours, not theirs to map.
   */
  readonly publicMessage: string;

  constructor(host: string, address: string, reason: string) {
    super(`refusing to connect to ${host === address ? host : `${host} (${address})`}: ${reason}`);
    this.name = 'ForbiddenDestinationError';
    this.address = address;
    this.publicMessage = `refusing to connect to ${host}: ${reason}`;
  }
}

/** The ForbiddenDestinationError in an error's cause chain, if there is one. */
export function forbiddenDestination(error: unknown): ForbiddenDestinationError | null {
  for (let current = error, depth = 0; current instanceof Error && depth < 10; current = current.cause, depth++) {
    if (current instanceof ForbiddenDestinationError) return current;
  }
  return null;
}

/** True if an error (or its cause chain) is a ForbiddenDestinationError. */
export function isForbiddenDestination(error: unknown): boolean {
  return forbiddenDestination(error) !== null;
}

/**
 * An undici Dispatcher (Agent) for webhook deliveries. Its connector resolves the host, refuses the
 * connection if any resolved address is forbidden by the policy (see destinationRefusal), then
 * connects to a checked address itself — never to the name again, so a DNS answer that changes
 * between check and connect (rebinding) cannot slip through. TLS still verifies the certificate
 * against the original name, which is also sent as SNI. A plain Agent follows no redirects (undici
 * only does with the redirect interceptor) and uses no proxy.
 */
export function createSafeDispatcher(policy: UrlPolicy, options: { connectTimeoutMs?: number } = {}): Dispatcher {
  parseCidrs(policy.allowedCidrs.join(',')); // fail at start-up, not on the first delivery
  const connectTo = buildConnector({ timeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS });
  const connect: buildConnector.connector = (target, callback) => {
    checkedAddresses(target.hostname, target.protocol, policy)
      .then((addresses) => connectToFirst(connectTo, target, addresses, callback))
      .catch((error: Error) => callback(error, null));
  };
  return new Agent({ connect });
}

/** Every address the host resolves to, or a ForbiddenDestinationError if any one is refused. */
async function checkedAddresses(host: string, protocol: string, policy: UrlPolicy): Promise<string[]> {
  const resolved = await lookup(host, { all: true });
  for (const { address } of resolved) {
    const refusal = destinationRefusal(address, protocol, policy);
    if (refusal !== null) throw new ForbiddenDestinationError(host, address, refusal);
  }
  return resolved.map(({ address }) => address);
}

/** Tries the checked addresses in resolver order until one connects; the last error otherwise. */
function connectToFirst(
  connectTo: buildConnector.connector,
  target: buildConnector.Options,
  addresses: string[],
  callback: buildConnector.Callback,
): void {
  const [address, ...rest] = addresses;
  if (address === undefined) {
    callback(new Error(`no address for ${target.hostname}`), null);
    return;
  }
  const servername = target.protocol === 'https:' && isIP(target.hostname) === 0 ? target.hostname : undefined;
  connectTo({ ...target, hostname: address, servername: target.servername || servername }, (error, socket) => {
    if (error && rest.length > 0) connectToFirst(connectTo, target, rest, callback);
    else if (error) callback(error, null);
    else callback(null, socket);
  });
}
