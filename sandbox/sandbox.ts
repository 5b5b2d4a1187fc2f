import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { handleAdmin } from './admin.ts';
import { BodyTooLargeError, findRoute, type ProviderApi, type Reply, readBody, sendJson } from './http.ts';
import { Ledger, type LedgerEntry } from './ledger.ts';
import { createMpesaApi } from './mpesa.ts';
import { RequestLog, type RequestRecord } from './request-log.ts';
import { Scheduler } from './scheduler.ts';
import { createStripeApi } from './stripe.ts';
import { DEFAULT_SWITCHES, type Fault, mergeSwitches, type Switches, takeFault } from './switches.ts';

export type { LedgerEntry } from './ledger.ts';
export type { RequestRecord } from './request-log.ts';
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
    scheduler.cancelAll();
    for (const api of apis) api.reset();
  };
  const admin = { switches: () => switches, setSwitches, reset, ledger, requests: () => requestLog.list() };

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
    let paused: Promise<void> | undefined;
    const pause = () => {
      paused ??= switches.latencyMs > 0 ? delay(switches.latencyMs, undefined, { signal: stopping.signal }) : undefined;
      return paused ?? Promise.resolve();
    };
    const reply: Reply = isRefusal(fault)
      ? api.faultReply(fault, requestId, switches.retryAfterSeconds)
      : await found.route.handle(
          { method, url, headers: request.headers, body, params: found.params },
          { requestId, pause },
        );
    await pause();
    if (fault === 'lost') {
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
    reset,
    stop,
  };
}

function isRefusal(fault: Fault | null): fault is 'error' | 'rate_limit' {
  return fault === 'error' || fault === 'rate_limit';
}
