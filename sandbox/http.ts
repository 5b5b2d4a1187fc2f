import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Directive } from './scripts.ts';
import type { Fault, Switches } from './switches.ts';

export type Provider = 'stripe' | 'mpesa';
export type RequestKind = 'charge' | 'status' | 'token' | 'query';

/** What a handler answers: a JSON body with a status and extra headers. */
export type Reply = Readonly<{ status: number; body: unknown; headers?: Readonly<Record<string, string>> }>;

export type SandboxRequest = Readonly<{
  method: string;
  url: URL;
  headers: IncomingHttpHeaders;
  body: string;
  /** The capture groups of the route's path pattern. */
  params: readonly string[];
}>;

export type HandlerContext = Readonly<{
  /** This request's id, in the provider's format (Stripe's Request-Id, Daraja's requestId). */
  requestId: string;
  /**
   * Waits the configured latency, once per request. The sandbox waits it before answering anyway;
   * a handler calls it itself to choose what happens during it (Stripe holds its idempotency lock).
   */
  pause(): Promise<void>;
  /** A scripted outcome for this request (scripts.ts): what to do where the provider may choose. */
  directive: Directive;
  /** Act on the request, then answer it with a 500 (a fault after processing). */
  serverErrorAfterProcessing: boolean;
}>;

export type Route = Readonly<{
  method: 'GET' | 'POST';
  path: RegExp;
  kind: RequestKind;
  handle(request: SandboxRequest, context: HandlerContext): Reply | Promise<Reply>;
}>;

/** One provider's API as the sandbox serves it. */
export type ProviderApi = Readonly<{
  provider: Provider;
  /** Paths under these prefixes belong to this provider. */
  prefixes: readonly string[];
  routes: readonly Route[];
  newRequestId(): string;
  /** Headers on every response (Stripe: Request-Id). */
  headers(requestId: string): Record<string, string>;
  /** The answer to a request that got an error or rate-limit fault, in the provider's own shape. */
  faultReply(fault: Extract<Fault, 'error' | 'rate_limit'>, requestId: string, switches: Readonly<Switches>): Reply;
  /** A path under the prefixes that no route serves. */
  notFound(method: string, path: string, requestId: string): Reply;
  /** The answer to a request whose credentials are refused (401), in the provider's own shape. */
  unauthorized(requestId: string): Reply;
  /** What a request carries that a script may be keyed by (scripts.ts): order id, description, phone. */
  scriptKeysOf(request: SandboxRequest): Array<string | null | undefined>;
  /** Forgets every payment, key and pending callback (tokens stay valid). */
  reset(): void;
}>;

export function findRoute(
  routes: readonly Route[],
  method: string,
  path: string,
): { route: Route; params: string[] } | null {
  for (const route of routes) {
    const match = route.method === method ? route.path.exec(path) : null;
    if (match) return { route, params: match.slice(1).map((group) => safeDecode(group ?? '')) };
  }
  return null;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export class BodyTooLargeError extends Error {}

/** The request body as text; bodies over `limitBytes` (1 MiB) are refused. */
export async function readBody(request: IncomingMessage, limitBytes = 1 << 20): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) throw new BodyTooLargeError(`request body over ${limitBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function sendJson(response: ServerResponse, reply: Reply, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(reply.body);
  response.writeHead(reply.status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
    ...headers,
    ...reply.headers,
  });
  response.end(text);
}

/** The credentials of an `Authorization: <scheme> <credentials>` header, or null. */
export function authorization(headers: IncomingHttpHeaders, scheme: 'Bearer' | 'Basic'): string | null {
  const match = /^(\S+)\s+(\S+)$/.exec(headers.authorization ?? '');
  return match && match[1]!.toLowerCase() === scheme.toLowerCase() ? match[2]! : null;
}
