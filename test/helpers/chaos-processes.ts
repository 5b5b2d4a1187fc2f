import { spawn } from 'node:child_process';
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { type GatewayProcess, startGatewayProcess } from './gateway-process.ts';
import { SandboxClient } from './sandbox-client.ts';
import { waitFor } from './wait.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** What happened to the fleet, in order: the timeline the report prints. */
export type FleetEvent = Readonly<{
  atMs: number;
  slot: number;
  type: 'started' | 'killed' | 'start_failed' | 'crashed';
  detail?: string;
}>;

/**
 * The provider sandbox in a process of its own (`node sandbox/main.ts`), like a real provider:
 * its arrival stamps (`atMs`) are taken on its own event loop, not on the busy test process's.
 */
export async function startSandboxProcess(t: Test): Promise<SandboxClient & { output: string[] }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['sandbox/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', SANDBOX_HOST: '127.0.0.1', SANDBOX_PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const client = new SandboxClient(`http://127.0.0.1:${port}`);
  await waitFor(
    'the sandbox to answer',
    async () => {
      if (child.exitCode !== null) throw new Error(`sandbox exited (${child.exitCode}): ${output.join('')}`);
      return (await fetch(`${client.url}/__admin/switches`).catch(() => null))?.ok === true;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  await probeProviderApi(client.url);
  // The probe is in the request log: start the run from an empty log and ledger.
  await client.reset();
  return Object.assign(client, { output });
}

/**
 * One provider request straight to the sandbox (Stripe's retrieve of an id that does not exist:
 * 404): a sandbox that does not serve its provider routes would otherwise show up as every order
 * stuck, blamed on the gateways.
 */
async function probeProviderApi(url: string): Promise<void> {
  const response = await fetch(`${url}/v1/payment_intents/pi_chaos_probe`, {
    headers: { authorization: 'Bearer sk_test_chaos_probe' },
    signal: AbortSignal.timeout(5_000),
  }).catch((error: unknown) => {
    throw new Error(`the sandbox does not answer provider requests (GET /v1/payment_intents/...): ${error}`);
  });
  await response.arrayBuffer();
  if (response.status !== 404) {
    throw new Error(`the sandbox answered its probe with ${response.status}, expected 404`);
  }
}

type Slot = {
  readonly index: number;
  readonly port: number;
  process: GatewayProcess | null;
  state: 'up' | 'down' | 'starting';
  /** Set before we kill it, so that its exit is not taken for a crash. */
  killing: boolean;
  starting: Promise<void> | null;
};

/**
 * N gateway processes (`node src/main.ts`) on one database, each on a fixed port of its own, so a
 * restarted instance comes back at the same address (and one that is down refuses connections
 * there, as a real host would). An instance that exits without being killed is a crash: it is
 * recorded and started again.
 */
export class GatewayFleet {
  readonly events: FleetEvent[] = [];
  readonly #t: Test;
  readonly #env: Record<string, string>;
  readonly #slots: Slot[];
  readonly #originMs: number;
  #closed = false;

  private constructor(t: Test, env: Record<string, string>, ports: number[], originMs: number) {
    this.#t = t;
    this.#env = env;
    this.#originMs = originMs;
    this.#slots = ports.map((port, index) => ({
      index,
      port,
      process: null,
      state: 'down',
      killing: false,
      starting: null,
    }));
  }

  static async create(t: Test, size: number, env: Record<string, string>, originMs: number): Promise<GatewayFleet> {
    const ports: number[] = [];
    while (ports.length < size) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    return new GatewayFleet(t, env, ports, originMs);
  }

  get size(): number {
    return this.#slots.length;
  }

  url(index: number): string {
    return `http://127.0.0.1:${this.#slot(index).port}`;
  }

  ports(): number[] {
    return this.#slots.map((slot) => slot.port);
  }

  upSlots(): number[] {
    return this.#slots.filter((slot) => slot.state === 'up').map((slot) => slot.index);
  }

  /** Starts the instance in the background; resolves when it listens (retrying a failed start until `deadlineMs`). */
  start(index: number, deadlineMs = Date.now() + 90_000): Promise<void> {
    const slot = this.#slot(index);
    if (slot.starting) return slot.starting;
    if (slot.state === 'up') return Promise.resolve();
    slot.state = 'starting';
    slot.starting = this.#startUntil(slot, deadlineMs).finally(() => {
      slot.starting = null;
    });
    return slot.starting;
  }

  async startAll(): Promise<void> {
    await Promise.all(this.#slots.map((slot) => this.start(slot.index)));
  }

  /** Every instance up (waits for those starting, starts those down). */
  async healAll(deadlineMs: number): Promise<void> {
    await Promise.all(this.#slots.map((slot) => this.start(slot.index, deadlineMs)));
  }

  /** kill -9; resolves once the process is gone. */
  async kill(index: number): Promise<void> {
    const slot = this.#slot(index);
    const running = slot.process;
    if (!running || slot.state !== 'up') return;
    slot.killing = true;
    slot.state = 'down';
    running.child.kill('SIGKILL');
    await running.exited;
    slot.process = null;
    slot.killing = false;
    this.#record(index, 'killed');
  }

  /** No more restarts; every process killed. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(
      this.#slots.map(async (slot) => {
        slot.killing = true;
        await slot.starting?.catch(() => {});
        slot.process?.child.kill('SIGKILL');
        await slot.process?.exited;
      }),
    );
  }

  async #startUntil(slot: Slot, deadlineMs: number): Promise<void> {
    for (;;) {
      if (this.#closed) return;
      try {
        const started = await startGatewayProcess(this.#t, { ...this.#env, PORT: String(slot.port) });
        if (this.#closed) {
          started.child.kill('SIGKILL');
          return;
        }
        slot.process = started;
        slot.state = 'up';
        this.#record(slot.index, 'started');
        void started.exited.then((code) => this.#onExit(slot, started, code));
        return;
      } catch (error) {
        this.#record(slot.index, 'start_failed', tail(String((error as Error).message), 6));
        if (Date.now() > deadlineMs) {
          slot.state = 'down';
          throw error;
        }
        // A failed start is retried as a supervisor (systemd, Kubernetes) would, a second later.
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
  }

  #onExit(slot: Slot, exitedProcess: GatewayProcess, code: number | null): void {
    if (slot.process !== exitedProcess || slot.killing || this.#closed) return;
    slot.process = null;
    slot.state = 'down';
    this.#record(slot.index, 'crashed', `exit code ${code}; last lines:\n${exitedProcess.output.slice(-6).join('\n')}`);
    void this.start(slot.index).catch(() => {});
  }

  #record(slot: number, type: FleetEvent['type'], detail?: string): void {
    this.events.push({ atMs: Date.now() - this.#originMs, slot, type, ...(detail ? { detail } : {}) });
  }

  #slot(index: number): Slot {
    const slot = this.#slots[index];
    if (!slot) throw new Error(`no gateway slot ${index}`);
    return slot;
  }
}

/** A port free right now on 127.0.0.1 (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createTcpServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function tail(text: string, lines: number): string {
  return text.split('\n').slice(-lines).join('\n');
}

export type ForwardedRequest = Readonly<{ atMs: number; path: string; instance: number | null; status: number }>;

/**
 * PUBLIC_BASE_URL for every instance: what a load balancer in front of them would be. A request
 * (Safaricom's callback) goes to the next instance that accepts the connection; refused ones are
 * skipped, and with none up it answers 502. It does not retry an answer: a callback an instance
 * answered with an error is lost, as Daraja makes one attempt.
 */
export async function startLoadBalancer(t: Test, ports: () => number[]) {
  const forwarded: ForwardedRequest[] = [];
  let next = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const candidates = ports();
      const first = next++;
      for (let i = 0; i < candidates.length; i++) {
        const index = (first + i) % candidates.length;
        const answer = await forward(
          candidates[index] as number,
          req.method ?? 'GET',
          req.url ?? '/',
          req.headers,
          body,
        );
        if (answer === 'refused') continue;
        forwarded.push({ atMs: Date.now(), path: req.url ?? '/', instance: index, status: answer.status });
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body);
        return;
      }
      forwarded.push({ atMs: Date.now(), path: req.url ?? '/', instance: null, status: 502 });
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('no instance is up');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${port}`, forwarded };
}

type Forwarded = { status: number; headers: IncomingHttpHeaders; body: Buffer };

function forward(
  port: number,
  method: string,
  path: string,
  headers: IncomingHttpHeaders,
  body: Buffer,
): Promise<Forwarded | 'refused'> {
  return new Promise((resolve) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method, path, headers: { ...headers, host: `127.0.0.1:${port}` }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', () => resolve({ status: 502, headers: {}, body: Buffer.from('upstream failed') }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('upstream timeout')));
    req.on('error', (error: NodeJS.ErrnoException) =>
      resolve(
        error.code === 'ECONNREFUSED' ? 'refused' : { status: 502, headers: {}, body: Buffer.from(error.message) },
      ),
    );
    req.end(body);
  });
}
