import { AsyncLocalStorage } from 'node:async_hooks';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildConnector, type Dispatcher, Pool, request } from 'undici';
import type { CallKind, CallTicket, ProviderCalls } from '../domain/provider.ts';

/**
 * HTTP to one provider, with the rate gate taken at the last moment. The gate is judged where the
 * provider counts — when a request arrives — so a grant is worth what happens between it and the
 * request's bytes leaving, and every call must spend the same time there:
 *
 * 1. The grant is asked for once the request is built: inside the fetch given to the Stripe SDK
 *    (after its own work, which on its first call includes running `uname` for its user agent),
 *    and in M-Pesa's `send` (whose body is signed when the grant comes).
 * 2. On a warm connection: a pool of keep-alive connections per provider origin, plus one spare
 *    connected ahead of need and handed to undici whenever it opens a connection, so that a cold or
 *    reset connection costs its connect (TCP, TLS) before the grant. At start each instance also
 *    rehearses a request up to the moment it would be written, so that its first call runs warm code.
 * 3. In the ticket's send window: not before `sendAfter`, not after `sendBy` (src/db/rate-gate.ts
 *    sendTiming: 10 ms after the grant, within a quarter of the margin). A request that cannot leave
 *    in time (a stalled event loop, a connection that had to be made after all) is refused before a
 *    byte is written — just before undici writes it, in its onRequestStart — and the grant is given
 *    back for a new one (ProviderCalls.restart).
 *
 * Measured (bench:gate, 3 instances, 2 cores; 60 calls a phase), grant → arrival at the sandbox
 * before this module: 20-135 ms for an instance's first call, up to 178 ms on new connections to a
 * provider slow to take them, up to 172 ms with every core busy, and the sandbox saw 3 calls within
 * a second 1-12 times a phase; after it, 10-30 ms (35 ms at most, every core busy), and never.
 *
 * Each provider call is one request: a second request in the same call (an SDK retrying on its own)
 * is refused, never sent ungated.
 */
export type ProviderHttp = Readonly<{
  /** A `fetch` for an SDK (Stripe's createFetchHttpClient): each request must run inside `GatedCall.run`. */
  fetch: typeof fetch;
  /** A provider call: the gate slot its one request will take, recorded through `calls`. */
  call(calls: ProviderCalls, kind: CallKind, idempotencyKey?: string): GatedCall;
  /** Closes the pool and the spare connection. */
  close(): Promise<void>;
}>;

export interface GatedCall {
  /** Runs `work` (e.g. an SDK method) with this call as the context of the one request it makes through `fetch`. */
  run<T>(work: () => Promise<T>): Promise<T>;
  /**
   * Sends the call's one request: a warm connection, then the grant, then `perform` with a dispatcher
   * that refuses to write on a stale grant. `perform` runs again (after a new grant) if it did.
   */
  send<T>(perform: (dispatcher: Dispatcher) => Promise<T>): Promise<T>;
  /** The grant the request went out on; if no request reached the gate (the work failed before), one taken now. */
  ticket(): Promise<CallTicket>;
  /** performance.now() when the request got its grant (or when `ticket()` took one): latency is measured from it. */
  startedAt(): number;
}

export type ProviderHttpConfig = Readonly<{
  /** The provider's origin, e.g. https://api.stripe.com; every request of this instance goes there. */
  origin: string;
  /** Timeout of one request, from its grant (a timeout is an unknown outcome for the caller). */
  timeoutMs: number;
}>;

/**
 * A connection that was never used is replaced after this long: well under the minute that servers
 * and load balancers commonly give a new connection to send its first request, so that the spare is
 * never closed by the provider just as a request goes out on it.
 */
const SPARE_MAX_AGE_MS = 20_000;
/** A spare closed sooner than this is not replaced until a call needs one. */
const SPARE_MIN_LIFE_MS = 1_000;

export function createProviderHttp(config: ProviderHttpConfig): ProviderHttp {
  const origin = new URL(config.origin);
  // HTTP/1.1: one request per connection at a time, written by undici's client-h1 right after
  // onRequestStart (what the freshness check relies on). Two calls a second need nothing more.
  const spare = new SpareConnection(origin, buildConnector({ allowH2: false }));
  const pool = new Pool(origin.origin, { allowH2: false, connect: spare.connector });
  const context = new AsyncLocalStorage<Call>();
  void rehearse(origin);

  class Call implements GatedCall {
    readonly #calls: ProviderCalls;
    readonly #kind: CallKind;
    readonly #idempotencyKey: string | undefined;
    #ticket: CallTicket | null = null;
    #startedAt = Number.NaN;
    #sent = false;
    /** The gate (the database) failed: the call fails with it, as if `calls.start` had thrown. */
    #gateError: unknown = null;

    constructor(calls: ProviderCalls, kind: CallKind, idempotencyKey: string | undefined) {
      this.#calls = calls;
      this.#kind = kind;
      this.#idempotencyKey = idempotencyKey;
    }

    run<T>(work: () => Promise<T>): Promise<T> {
      return context.run(this, work);
    }

    async send<T>(perform: (dispatcher: Dispatcher) => Promise<T>): Promise<T> {
      if (this.#sent) throw new Error('a provider call makes one request (an SDK must not retry on its own)');
      this.#sent = true;
      for (;;) {
        await spare.ready();
        try {
          this.#ticket = this.#ticket
            ? await this.#calls.restart(this.#ticket)
            : await this.#calls.start(this.#kind, this.#idempotencyKey);
        } catch (error) {
          this.#gateError = error;
          throw error;
        }
        await waitUntil(this.#ticket.sendAfter);
        this.#startedAt = performance.now();
        const fresh = new FreshGrant(this.#ticket.sendBy);
        try {
          return await perform(pool.compose(fresh.interceptor));
        } catch (error) {
          // Refused before a byte was written: nothing reached the provider. Ask again.
          if (fresh.refused) continue;
          throw error;
        }
      }
    }

    async ticket(): Promise<CallTicket> {
      if (this.#gateError !== null) throw this.#gateError;
      if (!this.#ticket) {
        // The work failed before its request reached the gate: the call is still recorded (its
        // slot is simply unused), so that every provider call has its attempt row.
        this.#ticket = await this.#calls.start(this.#kind, this.#idempotencyKey);
        this.#startedAt = performance.now();
      }
      return this.#ticket;
    }

    startedAt(): number {
      return this.#startedAt;
    }
  }

  /**
   * fetch for an SDK, on undici's `request`: a string body is written by the same synchronous call
   * that passes the freshness check (undici's fetch would stream it, a few more steps later: up to
   * 41 ms on an instance's first call, measured). The answer is read in full (provider answers are
   * small JSON) under the request's timeout, then handed over as a Response. Failures look as
   * undici's fetch makes them (TypeError 'fetch failed' with the cause; the abort reason on a
   * timeout), which is what SDKs classify.
   */
  const gatedFetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const call = context.getStore();
    if (!call) return Promise.reject(new Error('a provider request outside a gated call (GatedCall.run)'));
    if (typeof input !== 'string' && !(input instanceof URL)) {
      return Promise.reject(new Error('provider fetch takes a URL and an init, not a Request'));
    }
    return call.send(async (dispatcher) => {
      // The SDK's own signal is its timeout, which runs from the method call and so would count the
      // wait at the gate: it is ignored, and the same timeout runs from the grant instead.
      const signal = abortAfter(config.timeoutMs);
      try {
        const answer = await request(input, {
          dispatcher,
          method: (init?.method ?? 'GET') as Dispatcher.HttpMethod,
          headers: headerPairs(init?.headers),
          body: init?.body === undefined || init.body === null ? undefined : (init.body as string),
          signal,
        });
        const text = guardJsonObject(await answer.body.text());
        const headers = new Headers();
        for (const [name, value] of Object.entries(answer.headers)) {
          for (const one of Array.isArray(value) ? value : [value ?? '']) headers.append(name, one);
        }
        return new Response(NULL_BODY_STATUSES.has(answer.statusCode) ? null : (text ?? BAD_BODY), {
          status: text === null ? 502 : answer.statusCode,
          headers,
        });
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        throw new TypeError('fetch failed', { cause: error });
      }
    });
  };

  return {
    fetch: gatedFetch as typeof fetch,
    call: (calls, kind, idempotencyKey) => new Call(calls, kind, idempotencyKey),
    async close() {
      spare.close();
      await pool.close();
    },
  };
}

/**
 * Runs a request through undici's whole path once, up to the moment it would be written, and
 * refuses it there — on a connection of its own, so nothing reaches the provider but a connection
 * opened and closed. The code an instance runs for its first request is compiled now, not between
 * a grant and a request (measured: 34-45 ms on an instance's first call, against ~1 ms after).
 */
async function rehearse(origin: URL): Promise<void> {
  const pool = new Pool(origin.origin, { allowH2: false, connections: 1 });
  try {
    await request(origin, {
      dispatcher: pool.compose(new FreshGrant(Number.POSITIVE_INFINITY, true).interceptor),
      method: 'POST',
      headers: headerPairs([['content-type', 'application/x-www-form-urlencoded']]),
      body: 'rehearsal=1',
      signal: abortAfter(10_000),
    });
  } catch {
    // Refused, as meant (or the provider is unreachable: the first call will find out).
  } finally {
    await pool.destroy();
  }
}

/** Resolves at `time` (performance.now()) or just after: timers have millisecond steps. */
async function waitUntil(time: number): Promise<void> {
  for (let left = time - performance.now(); left > 0; left = time - performance.now()) {
    await sleep(Math.ceil(left));
  }
}

/**
 * stripe-node parses any JSON body and then reads fields off it: a body that is JSON but not an
 * object (`"x"`, `null`, `[]` — a proxy's or a broken provider's) makes it throw outside its
 * promise, an unhandled rejection that ends the process. Such a body becomes a 502 api_error (an
 * unknown outcome: the provider may have acted). Returns null for it, the text otherwise.
 */
function guardJsonObject(text: string): string | null {
  const trimmed = text.trimStart();
  if (trimmed === '' || trimmed.startsWith('{')) return text;
  try {
    JSON.parse(trimmed);
  } catch {
    return text; // not JSON at all: the SDK reports that itself, as an error it can handle
  }
  return null;
}

const BAD_BODY = JSON.stringify({
  error: { type: 'api_error', message: 'The provider answered with a JSON body that is not an object.' },
});

/** Statuses whose responses have no body (a Response refuses one). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/** fetch's header forms as undici request takes them: pairs flattened into a list. */
function headerPairs(headers: RequestInit['headers']): string[] {
  const pairs =
    headers instanceof Headers ? [...headers] : Array.isArray(headers) ? headers : Object.entries(headers ?? {});
  return pairs.flatMap(([name, value]) => [String(name), String(value)]);
}

/**
 * A signal that aborts after `ms` with an AbortError: an SDK built on fetch (Stripe's) reads an
 * AbortError as its own timeout ("Request aborted due to timeout being reached"). Its timer does
 * not keep the process alive.
 */
function abortAfter(ms: number): AbortSignal {
  const controller = new AbortController();
  setTimeout(() => controller.abort(new DOMException('The provider request timed out.', 'AbortError')), ms).unref();
  return controller.signal;
}

/**
 * Refuses to let a request be written once its grant has gone stale: when it is dispatched, and
 * again in the handler's onRequestStart, which undici calls synchronously just before it writes the
 * request to the socket (client-h1 writeH1); a string body is written in that same call. Either way
 * the request fails with StaleGrantError, unwritten, and `refused` says so.
 */
class FreshGrant {
  refused = false;
  readonly #sendBy: number;
  readonly #rehearsal: boolean;

  constructor(sendBy: number, rehearsal = false) {
    this.#sendBy = sendBy;
    this.#rehearsal = rehearsal;
  }

  /** Already stale when dispatched (a late timer): refused before undici sees it, its connection untouched. */
  readonly interceptor: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (options, handler) => {
    const lateMs = performance.now() - this.#sendBy;
    if (lateMs > 0) {
      this.refused = true;
      handler.onResponseError?.(null as unknown as Dispatcher.DispatchController, new StaleGrantError(lateMs));
      return true;
    }
    return dispatch(options, this.#wrap(handler));
  };

  #wrap(handler: Dispatcher.DispatchHandler): Dispatcher.DispatchHandler {
    return {
      // Gone stale since (a connection made after all, a stalled loop): refused unwritten. Thrown,
      // not aborted: undici fails the request and leaves the connection open for the next one
      // (client-h1 writeH1 catches it), where an abort would also close the connection.
      onRequestStart: (controller, context) => {
        const lateMs = performance.now() - this.#sendBy;
        if (lateMs > 0 || this.#rehearsal) {
          this.refused = true;
          throw new StaleGrantError(lateMs);
        }
        handler.onRequestStart?.(controller, context);
      },
      onRequestUpgrade: (...args) => handler.onRequestUpgrade?.(...args),
      onResponseStart: (...args) => handler.onResponseStart?.(...args),
      onResponseData: (...args) => handler.onResponseData?.(...args),
      onResponseEnd: (...args) => handler.onResponseEnd?.(...args),
      onResponseError: (...args) => handler.onResponseError?.(...args),
      onResponseStarted: () => handler.onResponseStarted?.(),
      onBodySent: (chunk) => handler.onBodySent?.(chunk),
      onRequestSent: () => handler.onRequestSent?.(),
    };
  }
}

export class StaleGrantError extends Error {
  constructor(lateMs: number) {
    super(`not sent: the request would have left ${lateMs.toFixed(1)} ms after its rate-gate grant expired`);
    this.name = 'StaleGrantError';
  }
}

/**
 * One connection to the origin made ahead of need, handed to undici when it opens a connection
 * (undici's `connect` option), and replaced at once in the background. Requests then go out on a
 * kept-alive connection or on this one: a connect (TCP, TLS) happens before a grant, not after it.
 */
class SpareConnection {
  readonly #connect: buildConnector.connector;
  readonly #options: buildConnector.Options;
  #socket: Socket | null = null;
  #connectedAt = 0;
  #connecting: Promise<void> | null = null;
  #replaceTimer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(origin: URL, connect: buildConnector.connector) {
    this.#connect = connect;
    // What undici's Client passes its connector for this origin.
    this.#options = {
      host: origin.host,
      hostname: origin.hostname.replace(/^\[(.*)\]$/, '$1'),
      protocol: origin.protocol,
      port: origin.port,
    };
    // Connected from the start: an instance's first call finds it ready.
    void this.ready();
  }

  /** undici's connector: the spare if it is still open (a new one is made behind it), else a connection of its own. */
  readonly connector: buildConnector.connector = (options, callback) => {
    const socket = this.#take();
    void this.ready();
    // Called back in a microtask, as a real connect would be: undici ignores a resume requested
    // from inside its own resume (client.js), so a synchronous answer would leave the request queued.
    if (socket) queueMicrotask(() => callback(null, socket));
    else this.#connect(options, callback);
  };

  /** Resolves once a spare is connected, or could not be (the request then connects itself, and fails if it must). */
  ready(): Promise<void> {
    if (this.#closed || this.#socket) return Promise.resolve();
    this.#connecting ??= new Promise<void>((resolve) => {
      this.#connect(this.#options, (error, socket) => {
        this.#connecting = null;
        if (error || !socket) return resolve();
        if (this.#closed) {
          socket.destroy();
          return resolve();
        }
        this.#keep(socket);
        resolve();
      });
    });
    return this.#connecting;
  }

  close(): void {
    this.#closed = true;
    this.#take()?.destroy();
  }

  #keep(socket: Socket): void {
    this.#socket = socket;
    this.#connectedAt = performance.now();
    // While it waits: closed by the provider, or too old, it is dropped and replaced; it does not
    // keep the process alive.
    socket.on('error', this.#onGone).on('close', this.#onGone).on('end', this.#onGone);
    socket.unref();
    this.#replaceTimer = setTimeout(this.#onGone, SPARE_MAX_AGE_MS).unref();
  }

  #onGone = (): void => {
    const lived = performance.now() - this.#connectedAt;
    this.#take()?.destroy();
    // Replaced at once, unless the provider closes new connections as soon as they open: then the
    // next call's ready() makes one, rather than a loop of connections.
    if (lived >= SPARE_MIN_LIFE_MS) void this.ready();
  };

  /** The spare, still open, with our listeners removed: from now on it is undici's. */
  #take(): Socket | null {
    const socket = this.#socket;
    this.#socket = null;
    if (this.#replaceTimer) clearTimeout(this.#replaceTimer);
    this.#replaceTimer = null;
    if (!socket) return null;
    socket.off('error', this.#onGone).off('close', this.#onGone).off('end', this.#onGone);
    socket.ref();
    if (socket.destroyed || !socket.writable || performance.now() - this.#connectedAt > SPARE_MAX_AGE_MS) {
      socket.destroy();
      return null;
    }
    return socket;
  }
}
