import { describe, expect, it } from 'vitest';
import { Lane } from './lane.js';

describe('Lane', () => {
  it('runs one holder at a time in arrival order, with a turn of the event loop between holders', async () => {
    const lane = new Lane();
    const never = new AbortController().signal;
    const order: string[] = [];
    // What a holder leaves for the event loop (here: a setImmediate) runs before the next holder.
    const runs = ['a', 'b', 'c'].map((name) =>
      lane.run(never, () => {
        order.push(name);
        setImmediate(() => order.push(`after ${name}`));
      }),
    );
    expect(lane.waiting).toBe(2);
    await Promise.all(runs);
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['a', 'after a', 'b', 'after b', 'c', 'after c']);
    expect(lane.waiting).toBe(0);
  });

  it('drops a waiter whose signal aborts', async () => {
    const lane = new Lane();
    const never = new AbortController().signal;
    const controller = new AbortController();
    const first = lane.run(never, () => 1);
    const second = lane.run(controller.signal, () => 2);
    controller.abort(new Error('deadline'));
    await expect(second).rejects.toThrow('deadline');
    expect(await first).toBe(1);
    expect(await lane.run(never, () => 3)).toBe(3);
  });
});
