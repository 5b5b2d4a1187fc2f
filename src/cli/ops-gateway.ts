/**
 * The gateway's operator API as the ops CLI calls it: the same HTTP routes the operator console
 * calls, with an operator key, so a command does exactly what the console's button does (the
 * checks, the audit, the problem answers) and needs no database access of its own.
 */

/** A problem+json answer (RFC 9457) as the gateway sends it. */
export type Problem = Readonly<{ status: number; code: string; detail: string; [extension: string]: unknown }>;

export type GatewayAnswer =
  | Readonly<{ ok: true; status: number; body: unknown }>
  | Readonly<{ ok: false; problem: Problem }>;

export type Gateway = Readonly<{
  url: URL;
  operatorKey: string;
  /** How long one call may take; the gateway answers these in milliseconds. */
  timeoutMs?: number;
}>;

/** The gateway could not be asked at all (refused connection, DNS, timeout). */
export class GatewayUnreachable extends Error {
  override name = 'GatewayUnreachable';
}

/**
 * POST `path` (its ids already URI-encoded) with an optional JSON body. A 2xx is the answer; any
 * other status is a refusal, as the gateway's problem or, from something in between that is not
 * the gateway (a proxy's HTML page), a problem made from the status.
 */
export async function postToGateway(gateway: Gateway, path: string, body?: unknown): Promise<GatewayAnswer> {
  let response: Response;
  try {
    response = await fetch(new URL(path, gateway.url), {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${gateway.operatorKey}`,
        Accept: 'application/json, application/problem+json',
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(gateway.timeoutMs ?? 30_000),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (error as Error).message;
    throw new GatewayUnreachable(`cannot reach the gateway at ${gateway.url.origin}: ${reason}`, { cause: error });
  }
  const text = await response.text();
  const parsed = parseJson(text);
  if (response.ok) return { ok: true, status: response.status, body: parsed };
  const problem = parsed as Partial<Problem> | undefined;
  if (problem && typeof problem.code === 'string') {
    return {
      ok: false,
      problem: { ...problem, status: response.status, code: problem.code, detail: String(problem.detail ?? '') },
    };
  }
  return {
    ok: false,
    problem: { status: response.status, code: 'http_error', detail: `HTTP ${response.status} ${response.statusText}` },
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
