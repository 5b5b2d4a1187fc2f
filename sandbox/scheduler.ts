/**
 * The sandbox's delayed work (M-Pesa settlements and callbacks): `cancelAll()` clears every pending
 * timer and aborts `signal`, which in-flight callback deliveries listen to, so that reset() and
 * stop() leave nothing running.
 */
export class Scheduler {
  #timers = new Set<NodeJS.Timeout>();
  #controller = new AbortController();
  #closed = false;
  readonly #onError: (error: unknown) => void;

  constructor(onError: (error: unknown) => void) {
    this.#onError = onError;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Runs `work` after `delayMs`, handing it the signal that cancels it (check it between steps). */
  after(delayMs: number, work: (signal: AbortSignal) => void | Promise<void>): void {
    if (this.#closed) return;
    const signal = this.#controller.signal;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      Promise.resolve(signal)
        .then(work)
        .catch((error: unknown) => this.#onError(error));
    }, delayMs);
    this.#timers.add(timer);
  }

  cancelAll(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#controller.abort();
    this.#controller = new AbortController();
  }

  /** Cancels everything and refuses new work: the sandbox is stopping. */
  close(): void {
    this.#closed = true;
    this.cancelAll();
  }
}
