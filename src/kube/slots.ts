/**
 * A fixed number of slots handed out in arrival order. The reader holds one per request in
 * flight, sized to its connection pool, so a request that got a slot also has a connection: its
 * own timeout measures the API server, not the time spent queueing behind other reads.
 */
export class Slots {
  private free: number;
  private readonly queue: { resolve: () => void; reject: (reason: unknown) => void; signal?: AbortSignal; onAbort: () => void }[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`slots: size must be a positive integer, got ${size}`);
    this.free = size;
  }

  /** Callers waiting for a slot right now. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Slots in use right now. */
  get busy(): number {
    return this.size - this.free;
  }

  /** A slot now, without waiting (the function that gives it back), or undefined when none is free. */
  tryAcquire(): (() => void) | undefined {
    if (this.free === 0 || this.queue.length > 0) return undefined;
    this.free--;
    return this.releaser();
  }

  /** Waits for a slot; rejects with the signal's reason when it aborts first. Call the returned function once to give it back. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.free > 0 && this.queue.length === 0) {
      this.free--;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const entry = {
        resolve: () => resolve(this.releaser()),
        reject,
        signal,
        onAbort: () => {
          const index = this.queue.indexOf(entry);
          if (index !== -1) this.queue.splice(index, 1);
          reject(signal!.reason);
        },
      };
      signal?.addEventListener('abort', entry.onAbort, { once: true });
      this.queue.push(entry);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.queue.shift();
      if (next) {
        next.signal?.removeEventListener('abort', next.onAbort);
        next.resolve();
      } else {
        this.free++;
      }
    };
  }
}
