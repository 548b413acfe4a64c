import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CoalescingQueue } from './queue.js';

describe('CoalescingQueue', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  function recording(queue: CoalescingQueue<string>, work = async () => {}) {
    const runs: { key: string; reasons: string[]; at: number }[] = [];
    const start = Date.now();
    queue.start(async (key, reasons) => {
      runs.push({ key, reasons: [...reasons].sort(), at: Date.now() - start });
      await work();
    });
    return runs;
  }

  it('merges a burst of adds for one key into one run, after the quiet period', async () => {
    const queue = new CoalescingQueue<string>({ coalesceMs: 100, maxDelayMs: 1000, concurrency: 2 });
    const runs = recording(queue);
    for (const name of ['a', 'b', 'c', 'd', 'e']) {
      queue.add('web', `ConfigMap ${name}`);
      await vi.advanceTimersByTimeAsync(30);
    }
    expect(queue.depth).toBe(1);
    expect(runs).toEqual([]);
    await vi.advanceTimersByTimeAsync(100);
    expect(runs).toEqual([{ key: 'web', reasons: ['ConfigMap a', 'ConfigMap b', 'ConfigMap c', 'ConfigMap d', 'ConfigMap e'], at: 220 }]);
    expect(queue.depth).toBe(0);
  });

  it('never waits longer than maxDelayMs, however long the burst', async () => {
    const queue = new CoalescingQueue<string>({ coalesceMs: 100, maxDelayMs: 300, concurrency: 1 });
    const runs = recording(queue);
    for (let i = 0; i < 20; i++) {
      queue.add('web', 'x');
      await vi.advanceTimersByTimeAsync(50);
    }
    // Adds every 50 ms from 0 to 950: a run at most every 300 ms.
    expect(runs.map((r) => r.at)).toEqual([300, 600, 900]);
  });

  it('does not run a key twice at once: an add during the run queues one more run afterwards', async () => {
    const queue = new CoalescingQueue<string>({ coalesceMs: 10, maxDelayMs: 100, concurrency: 4 });
    let release!: () => void;
    const runs = recording(queue, () => new Promise<void>((resolve) => (release = resolve)));
    queue.add('web', 'first');
    await vi.advanceTimersByTimeAsync(10);
    expect(runs).toHaveLength(1);
    queue.add('web', 'second');
    queue.add('web', 'third');
    await vi.advanceTimersByTimeAsync(50);
    expect(runs).toHaveLength(1);
    expect(queue.depth).toBe(1);
    release();
    await vi.advanceTimersByTimeAsync(20);
    expect(runs.map((r) => r.reasons)).toEqual([['first'], ['second', 'third']]);
  });

  it('keeps keys while paused, drops them on clear, and honours concurrency', async () => {
    const queue = new CoalescingQueue<string>({ coalesceMs: 10, maxDelayMs: 100, concurrency: 2 });
    queue.add('a');
    queue.add('b');
    queue.add('c');
    expect(queue.depth).toBe(3);
    const releases: (() => void)[] = [];
    const runs = recording(queue, () => new Promise<void>((resolve) => releases.push(resolve)));
    await vi.advanceTimersByTimeAsync(10);
    expect(runs.map((r) => r.key)).toEqual(['a', 'b']);
    expect(queue.active).toBe(2);
    releases.shift()!();
    await vi.advanceTimersByTimeAsync(1);
    expect(runs.map((r) => r.key)).toEqual(['a', 'b', 'c']);
    queue.pause();
    queue.add('d');
    await vi.advanceTimersByTimeAsync(100);
    expect(runs).toHaveLength(3);
    queue.clear();
    expect(queue.depth).toBe(0);
    for (const release of releases) release();
    await vi.advanceTimersByTimeAsync(1);
    await queue.idle();
  });

  it('retries with the delay given, and a failing handler does not stop the queue', async () => {
    const queue = new CoalescingQueue<string>({ coalesceMs: 10, maxDelayMs: 100, concurrency: 1 });
    const seen: number[] = [];
    queue.start(async () => {
      seen.push(Date.now());
      if (seen.length === 1) {
        queue.add('web', 'retry', 500);
        throw new Error('boom');
      }
    });
    const start = Date.now();
    queue.add('web');
    await vi.advanceTimersByTimeAsync(1000);
    expect(seen.map((t) => t - start)).toEqual([10, 510]);
  });

  it('owns retries: a failing key comes back after a back-off that doubles, with its reasons, until it succeeds', async () => {
    const retries: [string, string, number][] = [];
    const queue = new CoalescingQueue<string>({
      coalesceMs: 10,
      maxDelayMs: 100,
      concurrency: 1,
      retryBaseMs: 100,
      maxRetryMs: 300,
      onRetry: (key, error, retryInMs) => retries.push([key, (error as Error).message, retryInMs]),
    });
    let failuresLeft = 4;
    const runs: { at: number; reasons: string[] }[] = [];
    const start = Date.now();
    queue.start(async (_key, reasons) => {
      runs.push({ at: Date.now() - start, reasons: [...reasons].sort() });
      if (failuresLeft-- > 0) throw new Error('API unavailable');
    });
    queue.add('web', 'ConfigMap a');
    queue.add('web', 'Secret b');
    await vi.advanceTimersByTimeAsync(2000);
    // Runs at 10, then 100, 200, 300 (capped), 300 ms after each failure; the fifth succeeds.
    expect(runs.map((r) => r.at)).toEqual([10, 110, 310, 610, 910]);
    expect(runs.every((r) => r.reasons.join() === 'ConfigMap a,Secret b')).toBe(true);
    expect(retries).toEqual([
      ['web', 'API unavailable', 100],
      ['web', 'API unavailable', 200],
      ['web', 'API unavailable', 300],
      ['web', 'API unavailable', 300],
    ]);
    expect(queue.depth).toBe(0);

    // A success resets the back-off: the next failure waits the base delay again.
    failuresLeft = 1;
    queue.add('web', 'again');
    await vi.advanceTimersByTimeAsync(1000);
    expect(retries.at(-1)).toEqual(['web', 'API unavailable', 100]);
  });

  it('requeues a key that asks for it after its own delay, with its reasons, without counting a failure', async () => {
    const retries: number[] = [];
    const queue = new CoalescingQueue<string>({ coalesceMs: 10, maxDelayMs: 100, concurrency: 1, retryBaseMs: 1000, onRetry: (_k, _e, ms) => retries.push(ms) });
    const runs: { at: number; reasons: string[] }[] = [];
    const start = Date.now();
    queue.start(async (_key, reasons) => {
      runs.push({ at: Date.now() - start, reasons: [...reasons] });
      return runs.length === 1 ? { requeueAfterMs: 250 } : undefined;
    });
    queue.add('web', 'ConfigMap a');
    await vi.advanceTimersByTimeAsync(1000);
    expect(runs).toEqual([
      { at: 10, reasons: ['ConfigMap a'] },
      { at: 260, reasons: ['ConfigMap a'] },
    ]);
    expect(retries).toEqual([]);
  });

  it('forgets a key: its waiting retry is dropped', async () => {
    const queue = new CoalescingQueue<string>({ coalesceMs: 10, maxDelayMs: 100, concurrency: 1, retryBaseMs: 100 });
    let runs = 0;
    queue.start(async () => {
      runs++;
      throw new Error('boom');
    });
    queue.add('web');
    await vi.advanceTimersByTimeAsync(20);
    expect(runs).toBe(1);
    expect(queue.depth).toBe(1);
    queue.forget('web');
    expect(queue.depth).toBe(0);
    await vi.advanceTimersByTimeAsync(1000);
    expect(runs).toBe(1);
    await queue.idle();
  });
});
