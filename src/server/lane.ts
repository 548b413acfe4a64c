/**
 * One at a time, in arrival order, with a turn of the event loop between holders. Parsing a
 * megabyte-sized review blocks the event loop for tens of milliseconds; when twenty of them
 * finish arriving together, running their parses back to back would stall every other request
 * for seconds. Through the lane, each big parse is followed by whatever small requests arrived
 * meanwhile.
 */
export class Lane {
  private busy = false;
  private readonly queue: { start: () => void; reject: (reason: unknown) => void; signal: AbortSignal; onAbort: () => void }[] = [];

  /** Callers waiting for their turn right now. */
  get waiting(): number {
    return this.queue.length;
  }

  async run<T>(signal: AbortSignal, work: () => T): Promise<T> {
    await this.enter(signal);
    try {
      return work();
    } finally {
      this.leave();
    }
  }

  private enter(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const entry = {
        start: resolve,
        reject,
        signal,
        onAbort: () => {
          const index = this.queue.indexOf(entry);
          if (index !== -1) this.queue.splice(index, 1);
          reject(signal.reason);
        },
      };
      signal.addEventListener('abort', entry.onAbort, { once: true });
      this.queue.push(entry);
    });
  }

  private leave(): void {
    // The next holder starts after pending I/O callbacks have run (setImmediate runs after the poll phase).
    setImmediate(() => {
      const next = this.queue.shift();
      if (!next) {
        this.busy = false;
        return;
      }
      next.signal.removeEventListener('abort', next.onAbort);
      next.start();
    });
  }
}
