/**
 * A coalescing work queue keyed by workload. Adding a key that is already waiting merges the two
 * (their reasons are united) and pushes its due time back by `coalesceMs`, but never past
 * `maxDelayMs` after the first add, so a burst of changes (an Argo CD sync writing five
 * ConfigMaps) is processed once, within a bounded delay. A key is never processed twice at the
 * same time: adding it while it is being processed queues it again for afterwards.
 */

export interface QueueOptions {
  /** Quiet period: a key is processed once no add for it has come for this long. */
  coalesceMs: number;
  /** Upper bound on the wait after the first add, however long the burst. */
  maxDelayMs: number;
  /** Keys processed at the same time. */
  concurrency: number;
}

export type QueueHandler<K> = (key: K, reasons: ReadonlySet<string>) => Promise<void>;

interface Waiting {
  first: number;
  due: number;
  reasons: Set<string>;
}

export class CoalescingQueue<K> {
  private readonly waiting = new Map<K, Waiting>();
  private readonly processing = new Set<K>();
  /** Adds for keys being processed: queued again when they finish. */
  private readonly again = new Map<K, { reasons: Set<string>; delayMs: number }>();
  private handler: QueueHandler<K> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Number.POSITIVE_INFINITY;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(private readonly options: QueueOptions) {
    if (options.maxDelayMs < options.coalesceMs) throw new Error('maxDelayMs must be at least coalesceMs');
  }

  /** Keys waiting (or due) but not being processed. */
  get depth(): number {
    return this.waiting.size + this.again.size;
  }

  get active(): number {
    return this.processing.size;
  }

  get running(): boolean {
    return this.handler !== undefined;
  }

  /**
   * Queues `key`; `reason` (e.g. `ConfigMap app-config`) is handed to the handler with every other
   * reason merged into the same run. `delayMs` replaces the coalescing delay (used for retries).
   */
  add(key: K, reason?: string, delayMs = this.options.coalesceMs): void {
    const now = Date.now();
    if (this.processing.has(key)) {
      const entry = this.again.get(key) ?? { reasons: new Set<string>(), delayMs };
      if (reason) entry.reasons.add(reason);
      entry.delayMs = Math.min(entry.delayMs, delayMs);
      this.again.set(key, entry);
      return;
    }
    const existing = this.waiting.get(key);
    if (existing) {
      if (reason) existing.reasons.add(reason);
      existing.due = Math.min(Math.max(existing.due, now + delayMs), existing.first + this.options.maxDelayMs);
    } else {
      this.waiting.set(key, { first: now, due: now + delayMs, reasons: new Set(reason ? [reason] : []) });
    }
    this.schedule();
  }

  /** Starts (or resumes) handing due keys to `handler`. */
  start(handler: QueueHandler<K>): void {
    this.handler = handler;
    this.schedule();
  }

  /** Stops handing out keys at once (keys being processed finish on their own); waiting keys stay. */
  pause(): void {
    this.handler = undefined;
    this.clearTimer();
  }

  /** Drops every waiting key. */
  clear(): void {
    this.waiting.clear();
    this.again.clear();
    this.clearTimer();
    this.notifyIdle();
  }

  /** Resolves when nothing is waiting or being processed. */
  idle(): Promise<void> {
    if (this.depth === 0 && this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Number.POSITIVE_INFINITY;
  }

  private schedule(): void {
    if (!this.handler) return;
    this.dispatch();
    if (this.processing.size >= this.options.concurrency) return;
    let next = Number.POSITIVE_INFINITY;
    for (const [key, entry] of this.waiting) if (!this.processing.has(key)) next = Math.min(next, entry.due);
    if (next === Number.POSITIVE_INFINITY || next >= this.timerDue) return;
    this.clearTimer();
    this.timerDue = next;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDue = Number.POSITIVE_INFINITY;
      this.schedule();
    }, Math.max(0, next - Date.now()));
    this.timer.unref?.();
  }

  private dispatch(): void {
    const now = Date.now();
    const due = [...this.waiting].filter(([, entry]) => entry.due <= now).sort(([, a], [, b]) => a.due - b.due);
    for (const [key, entry] of due) {
      const handler = this.handler;
      if (!handler || this.processing.size >= this.options.concurrency) return;
      this.waiting.delete(key);
      this.processing.add(key);
      void Promise.resolve()
        .then(() => handler(key, entry.reasons))
        .catch(() => undefined)
        .finally(() => {
          this.processing.delete(key);
          const again = this.again.get(key);
          if (again) {
            this.again.delete(key);
            for (const reason of again.reasons.size > 0 ? again.reasons : [undefined]) this.add(key, reason, again.delayMs);
          }
          this.schedule();
          this.notifyIdle();
        });
    }
  }

  private notifyIdle(): void {
    if (this.depth === 0 && this.processing.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
