/**
 * A coalescing work queue keyed by workload. Adding a key that is already waiting merges the two
 * (their reasons are united) and pushes its due time back by `coalesceMs`, but never past
 * `maxDelayMs` after the first add, so a burst of changes (an Argo CD sync writing five
 * ConfigMaps) is processed once, within a bounded delay. A key is never processed twice at the
 * same time: adding it while it is being processed queues it again for afterwards.
 *
 * The queue owns retries, like client-go's rate-limited work queue: a handler that fails is
 * tried again after a back-off that doubles with each failure of that key in a row; one that
 * succeeds resets it and may ask to be run again after a delay of its own (`requeueAfterMs`).
 * Either way the key keeps the reasons of its run.
 */

export interface QueueOptions<K = unknown> {
  /** Quiet period: a key is processed once no add for it has come for this long. */
  coalesceMs: number;
  /** Upper bound on the wait after the first add, however long the burst. */
  maxDelayMs: number;
  /** Keys processed at the same time. */
  concurrency: number;
  /** First retry after a failed run (default 1 s); it doubles with each failure in a row. */
  retryBaseMs?: number;
  /** Longest wait between retries (default 5 minutes). */
  maxRetryMs?: number;
  /** Told of every failed run and how long until it is tried again (logs, metrics). */
  onRetry?: (key: K, error: unknown, retryInMs: number) => void;
}

/** What a successful run may ask for: to be run again after this long (with the same reasons). */
export interface QueueResult {
  requeueAfterMs?: number;
}

/** Resolves when the key is done (or wants a requeue); rejects to be retried with back-off. */
export type QueueHandler<K> = (key: K, reasons: ReadonlySet<string>) => Promise<QueueResult | void>;

export const DEFAULT_RETRY_BASE_MS = 1_000;
export const DEFAULT_MAX_RETRY_MS = 300_000;

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
  /** Failures in a row, per key: the back-off of its next retry. */
  private readonly failures = new Map<K, number>();
  private handler: QueueHandler<K> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Number.POSITIVE_INFINITY;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(private readonly options: QueueOptions<K>) {
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
    this.enqueue(key, reason ? [reason] : [], delayMs);
  }

  private enqueue(key: K, reasons: Iterable<string>, delayMs: number): void {
    const now = Date.now();
    if (this.processing.has(key)) {
      const entry = this.again.get(key) ?? { reasons: new Set<string>(), delayMs };
      for (const reason of reasons) entry.reasons.add(reason);
      entry.delayMs = Math.min(entry.delayMs, delayMs);
      this.again.set(key, entry);
      return;
    }
    const existing = this.waiting.get(key);
    if (existing) {
      for (const reason of reasons) existing.reasons.add(reason);
      existing.due = Math.min(Math.max(existing.due, now + delayMs), existing.first + this.options.maxDelayMs);
    } else {
      this.waiting.set(key, { first: now, due: now + delayMs, reasons: new Set(reasons) });
    }
    this.schedule();
  }

  /** Drops a key: waiting runs and its failure count (the workload is gone). A run in progress finishes. */
  forget(key: K): void {
    this.waiting.delete(key);
    this.again.delete(key);
    this.failures.delete(key);
    this.notifyIdle();
  }

  /** The back-off of the next retry after `failures` failures in a row. */
  private backoffMs(failures: number): number {
    const base = this.options.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
    return Math.min(base * 2 ** (failures - 1), this.options.maxRetryMs ?? DEFAULT_MAX_RETRY_MS);
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

  /** Drops every waiting key (and every failure count). */
  clear(): void {
    this.waiting.clear();
    this.again.clear();
    this.failures.clear();
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
        .then(
          (result): number | undefined => {
            this.failures.delete(key);
            return result?.requeueAfterMs;
          },
          (error: unknown): number => {
            const failures = (this.failures.get(key) ?? 0) + 1;
            this.failures.set(key, failures);
            const retryInMs = this.backoffMs(failures);
            try {
              this.options.onRetry?.(key, error, retryInMs);
            } catch {
              // an observer's failure must not stop the queue
            }
            return retryInMs;
          },
        )
        .then((retryInMs) => {
          this.processing.delete(key);
          // A run that asked to come back, or failed, comes back with its reasons; adds made
          // while it ran join it, and the sooner of the two delays wins.
          const again = this.again.get(key);
          this.again.delete(key);
          if (retryInMs !== undefined || again) {
            const reasons = new Set([...(retryInMs !== undefined ? entry.reasons : []), ...(again?.reasons ?? [])]);
            this.enqueue(key, reasons, Math.min(retryInMs ?? Number.POSITIVE_INFINITY, again?.delayMs ?? Number.POSITIVE_INFINITY));
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
