// Group commit: concurrent requests that each need one short transaction are written together,
// several to a transaction, so that one commit (one WAL flush, one round trip per statement)
// serves many of them. Nothing waits for a batch to fill: an item goes at once when a slot is
// free, alone if it is alone; items queue only while `maxInFlight` batches are already running,
// and the next batch takes everything that queued meanwhile. So a lone request pays nothing, and
// under load the batches grow by themselves to what the database can absorb.

/** One item's own result: a batch may succeed for some items and fail for others. */
export type Settled<O> = Readonly<{ ok: true; value: O } | { ok: false; error: unknown }>;

export type BatcherOptions<I, O> = Readonly<{
  /** Most items in one batch. */
  maxBatch: number;
  /** Most batches running at once (each holds a database connection while it runs). */
  maxInFlight: number;
  /**
   * Items with the same key never share a batch: the later one goes in another batch, which may run
   * at the same time (for creates, the database then makes it wait for the first one's commit).
   */
  keyOf: (item: I) => string;
  /** Runs one batch; returns one result per item, in order. A throw fails every item with it. */
  run: (items: readonly I[]) => Promise<readonly Settled<O>[]>;
}>;

export type Batcher<I, O> = Readonly<{
  submit(item: I): Promise<O>;
  /** Items waiting for a slot, and batches running: for tests and metrics. */
  readonly queued: number;
  readonly inFlight: number;
}>;

type Waiting<I, O> = { item: I; resolve: (value: O) => void; reject: (error: unknown) => void };

export function createBatcher<I, O>(options: BatcherOptions<I, O>): Batcher<I, O> {
  if (!(options.maxBatch >= 1 && options.maxInFlight >= 1)) throw new Error('maxBatch and maxInFlight must be ≥ 1');
  let queue: Waiting<I, O>[] = [];
  let inFlight = 0;

  const startBatches = () => {
    while (inFlight < options.maxInFlight && queue.length > 0) {
      const batch: Waiting<I, O>[] = [];
      const keys = new Set<string>();
      const rest: Waiting<I, O>[] = [];
      for (const waiting of queue) {
        const key = options.keyOf(waiting.item);
        if (batch.length < options.maxBatch && !keys.has(key)) {
          keys.add(key);
          batch.push(waiting);
        } else {
          rest.push(waiting);
        }
      }
      queue = rest;
      inFlight++;
      void runBatch(batch).finally(() => {
        inFlight--;
        startBatches();
      });
    }
  };

  const runBatch = async (batch: readonly Waiting<I, O>[]) => {
    let results: readonly Settled<O>[];
    try {
      results = await options.run(batch.map((waiting) => waiting.item));
      if (results.length !== batch.length)
        throw new Error(`batch of ${batch.length} returned ${results.length} results`);
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
      return;
    }
    batch.forEach((waiting, i) => {
      const result = results[i] as Settled<O>;
      if (result.ok) waiting.resolve(result.value);
      else waiting.reject(result.error);
    });
  };

  return {
    submit: (item) =>
      new Promise<O>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        startBatches();
      }),
    get queued() {
      return queue.length;
    },
    get inFlight() {
      return inFlight;
    },
  };
}
