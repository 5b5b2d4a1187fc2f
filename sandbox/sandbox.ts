import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { handleAdmin } from './admin.ts';
import { shapeConnections } from './connections.ts';
import { BodyTooLargeError, findRoute, type ProviderApi, type Reply, readBody, sendJson } from './http.ts';
import { Ledger, type LedgerEntry } from './ledger.ts';
import { createMpesaApi } from './mpesa.ts';
import { RequestLog, type RequestRecord } from './request-log.ts';
import { Scheduler } from './scheduler.ts';
import { type Directive, type ScriptedOutcome, Scripts, type ScriptUse } from './scripts.ts';
import { createStripeApi } from './stripe.ts';
import { DEFAULT_SWITCHES, type Fault, mergeSwitches, type Switches, takeFault } from './switches.ts';

export type { LedgerEntry } from './ledger.ts';
export type { RequestRecord } from './request-log.ts';
export type { ScriptedOutcome, ScriptUse } from './scripts.ts';
export type { Switches } from './switches.ts';

export type SandboxOptions = {
  /** 0 (the default) takes a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  switches?: Partial<Switches>;
  /** Receives one object per event (request answered, callback delivered, ...). Default: nothing. */
  log?: (line: object) => void;
};

export type Sandbox = {
  url: string;
  port: number;
  ledger(): LedgerEntry[];
  requests(): RequestRecord[];
  /** Merges switches; throws on an invalid or unknown one. */
  setSwitches(switches: Partial<Switches>): void;
  /** The outcomes of a payment's next provider requests, by a key they carry (scripts.ts). */
  script(key: string, outcomes: readonly ScriptedOutcome[]): void;
  /** What is still scripted under a key. */
  scripted(key: string): ScriptedOutcome[];
  /** Every scripted outcome taken so far, in order. */
  scriptsUsed(): ScriptUse[];
  /** Drops the next scripted outcome under a key, if it is `expected`, without a request. */
  skipScripted(key: string, expected: ScriptedOutcome): boolean;
  /** Default switches, an empty ledger and request log, no pending callbacks. */
  reset(): void;
  /** Closes every connection (held ones too) and cancels pending callbacks. */
  stop(): Promise<void>;
};

/**
 * The provider sandbox: Stripe's PaymentIntents and M-Pesa Daraja's STK push, as far as our adapters
 * use them, on one HTTP server, with switches for faults and a ledger of what was charged.
 */
export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const log = options.log ?? (() => {});
  let switches = mergeSwitches(DEFAULT_SWITCHES, options.switches ?? {});
  const ledger = new Ledger();
  const requestLog = new RequestLog();
  const scripts = new Scripts();
  const scheduler = new Scheduler((error) => log({ msg: 'sandbox task failed', error: String(error) }));
  const stopping = new AbortController();
  const providerDeps = { ledger, switches: () => switches, random: Math.random };
  const apis: readonly ProviderApi[] = [
    createStripeApi(providerDeps),
    createMpesaApi({ ...providerDeps, scheduler, log }),
  ];

  const setSwitches = (patch: unknown) => {
    switches = mergeSwitches(switches, patch);
  };
  const reset = () => {
    switches = mergeSwitches(DEFAULT_SWITCHES, {});
    ledger.clear();
    requestLog.clear();
    scripts.clear();
    scheduler.cancelAll();
    for (const api of apis) api.reset();
  };
  const admin = { switches: () => switches, setSwitches, reset, ledger, requests: () => requestLog.list(), scripts };

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const method = request.method ?? 'GET';
    const url = new URL(request.url ?? '/', 'http://sandbox.invalid');
    if (url.pathname.startsWith('/__admin/')) {
      sendJson(response, handleAdmin(method, url, await readBody(request), admin));
      return;
    }
    const api = apis.find((a) => a.prefixes.some((p) => url.pathname === p || url.pathname.startsWith(`${p}/`)));
    if (!api) {
      sendJson(response, { status: 404, body: { error: `nothing here: ${method} ${url.pathname}` } });
      return;
    }
    const requestId = api.newRequestId();
    const found = findRoute(api.routes, method, url.pathname);
    if (!found) {
      sendJson(response, api.notFound(method, url.pathname, requestId), api.headers(requestId));
      return;
    }

    const atMs = Date.now();
    const record = requestLog.add({
      at: new Date(atMs).toISOString(),
      atMs,
      method,
      path: url.pathname,
      provider: api.provider,
      kind: found.route.kind,
      fault: null,
      status: null,
      connection: connectionOf(request.socket),
      idempotencyKey: request.headers['idempotency-key']?.toString() ?? null,
    });
    const fault = takeFault(switches, url.pathname);
    record.fault = fault;
    const logLine = { msg: 'provider request', method, path: url.pathname, requestId, fault };
    if (fault === 'timeout') {
      // Never answered: the socket stays open until the client gives up or stop() closes it.
      request.resume();
      log(logLine);
      return;
    }

    const body = await readBody(request);
    const sandboxRequest = { method, url, headers: request.headers, body, params: found.params };
    const scripted = fault === null ? scripts.take(api.scriptKeysOf(sandboxRequest), url.pathname) : null;
    record.scripted = scripted;
    if (scripted === 'timeout' || scripted === 'refused') {
      // timeout: never answered, never acted on. refused: a connection cannot be refused once it
      // is open (tests refuse connections in front of the sandbox); the nearest is cutting it unanswered.
      if (scripted === 'refused') request.socket.destroy();
      log({ ...logLine, scripted });
      return;
    }
    let paused: Promise<void> | undefined;
    const pause = () => {
      paused ??= switches.latencyMs > 0 ? delay(switches.latencyMs, undefined, { signal: stopping.signal }) : undefined;
      return paused ?? Promise.resolve();
    };
    const serverError = fault === 'error' || scripted === '5xx';
    const afterProcessing = serverError && api.provider === 'stripe' && switches.stripeErrorsAfterProcessing;
    const refusal = afterProcessing
      ? null
      : isRefusal(fault)
        ? fault
        : scripted === '5xx'
          ? 'error'
          : scripted === '429'
            ? 'rate_limit'
            : null;
    const reply: Reply = refusal
      ? api.faultReply(refusal, requestId, switches)
      : scripted === '401'
        ? api.unauthorized(requestId)
        : await found.route.handle(sandboxRequest, {
            requestId,
            pause,
            directive: directiveOf(scripted),
            serverErrorAfterProcessing: afterProcessing,
          });
    await pause();
    if (fault === 'lost' || scripted === 'lost') {
      // Processed in full (a charge is in the ledger, an idempotent result saved), never answered.
      request.socket.destroy();
      log(logLine);
      return;
    }
    sendJson(response, reply, api.headers(requestId));
    record.status = reply.status;
    log({ ...logLine, status: reply.status });
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (stopping.signal.aborted) return;
      if (error instanceof BodyTooLargeError && !response.headersSent) {
        sendJson(response, { status: 413, body: { error: error.message } });
        return;
      }
      log({ msg: 'sandbox request failed', error: String((error as Error)?.stack ?? error) });
      if (response.headersSent) response.destroy();
      else sendJson(response, { status: 500, body: { error: 'the sandbox failed; see its log' } });
    });
  });

  const connectionOf = shapeConnections(server, () => switches);

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= new Promise<void>((resolve, reject) => {
      scheduler.close();
      stopping.abort();
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
    return stopped;
  };

  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    ledger: () => ledger.list(),
    requests: () => requestLog.list(),
    setSwitches,
    script: (key, outcomes) => scripts.set(key, outcomes),
    scripted: (key) => scripts.pending(key),
    scriptsUsed: () => scripts.used(),
    skipScripted: (key, expected) => scripts.skip(key, expected),
    reset,
    stop,
  };
}

/** What a scripted outcome asks of the provider's handler (a lost answer is acted on as usual). */
function directiveOf(scripted: ScriptedOutcome | null): Directive {
  if (scripted === 'success' || scripted === 'decline' || scripted === 'pending' || scripted === 'not_found') {
    return scripted;
  }
  return null;
}

function isRefusal(fault: Fault | null): fault is 'error' | 'rate_limit' {
  return fault === 'error' || fault === 'rate_limit';
}
