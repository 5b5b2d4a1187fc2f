/**
 * Wakes a polling loop early. A notify that arrives while the loop is busy is remembered (one
 * flag, not a count: the next pass takes whatever is there), so the loop never sleeps past work.
 */
export type WakeSignal = Readonly<{
  notify(): void;
  /** Resolves after `timeoutMs`, or at once when notified since the last wait. */
  wait(timeoutMs: number): Promise<void>;
}>;

export function createWakeSignal(): WakeSignal {
  let pending = false;
  let wakeUp: (() => void) | undefined;
  return {
    notify() {
      pending = true;
      wakeUp?.();
    },
    async wait(timeoutMs) {
      if (!pending) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, timeoutMs);
          wakeUp = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wakeUp = undefined;
      }
      pending = false;
    },
  };
}
