import { describe, expect, it } from 'vitest';
import { Slots } from './slots.js';

describe('Slots', () => {
  it('hands out at most `size` slots, the rest in arrival order as slots come back', async () => {
    const slots = new Slots(2);
    const a = await slots.acquire();
    const b = await slots.acquire();
    const order: string[] = [];
    const c = slots.acquire().then((release) => (order.push('c'), release));
    const d = slots.acquire().then((release) => (order.push('d'), release));
    expect(slots.waiting).toBe(2);
    expect(slots.busy).toBe(2);
    a();
    a(); // a second release gives nothing back twice
    (await c)();
    b();
    (await d)();
    expect(order).toEqual(['c', 'd']);
    expect(slots.busy).toBe(0);
  });

  it('stops waiting when the signal aborts', async () => {
    const slots = new Slots(1);
    const held = await slots.acquire();
    const controller = new AbortController();
    const waiting = slots.acquire(controller.signal);
    controller.abort(new Error('admission deadline'));
    await expect(waiting).rejects.toThrow('admission deadline');
    expect(slots.waiting).toBe(0);
    held();
    expect(slots.busy).toBe(0);
  });

  it('tryAcquire takes a free slot without waiting, and none while one is free but others wait in line', async () => {
    const slots = new Slots(1);
    const first = slots.tryAcquire();
    expect(first).toBeTypeOf('function');
    expect(slots.tryAcquire()).toBeUndefined();
    const queued = slots.acquire();
    first!();
    // The freed slot went to the caller in line, not to whoever asks next.
    expect(slots.tryAcquire()).toBeUndefined();
    (await queued)();
    expect(slots.busy).toBe(0);
    expect(slots.tryAcquire()).toBeTypeOf('function');
  });
});
