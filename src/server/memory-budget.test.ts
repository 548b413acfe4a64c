import { describe, expect, it } from 'vitest';
import { BudgetExceededError, MemoryBudget } from './memory-budget.js';

const never = new AbortController().signal;
const budget = () => new MemoryBudget({ capacityBytes: 100, smallReserveBytes: 20, largeThresholdBytes: 10 });
const settled = async (promise: Promise<unknown>) => {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return done;
};

describe('MemoryBudget', () => {
  it('tryReserve grants at once exactly what reserve would grant without waiting, and nothing past a waiting request', async () => {
    const b = budget();
    const first = b.tryReserve(50)!;
    expect(first).toMatchObject({ bytes: 50, large: true });
    expect(b.used).toBe(50);
    // Large requests may use 80 of the 100: 40 more would not fit now.
    expect(b.tryReserve(40)).toBeUndefined();
    expect(b.used).toBe(50);
    const small = b.tryReserve(8)!;
    expect(small).toMatchObject({ bytes: 8, large: false });
    // More than any request may use: refused here, and reserve says why.
    expect(b.tryReserve(200)).toBeUndefined();
    await expect(b.reserve(200, never)).rejects.toBeInstanceOf(BudgetExceededError);
    // Someone waits: a request that would fit does not overtake it.
    const waiting = b.reserve(40, never);
    expect(await settled(waiting)).toBe(false);
    expect(b.tryReserve(1)).toBeUndefined();
    first.release();
    expect((await waiting).bytes).toBe(40);
    // A granted reservation resizes and releases like one from reserve.
    await small.resize(12, never);
    expect(b.used).toBe(52);
    small.release();
    (await waiting).release();
    expect(b.used).toBe(0);
  });

  it('grants in arrival order while it fits, and makes the rest wait until memory is given back', async () => {
    const b = budget();
    const first = await b.reserve(50, never);
    const second = await b.reserve(30, never);
    expect(b.used).toBe(80);
    const third = b.reserve(30, never);
    expect(await settled(third)).toBe(false);
    expect(b.waiting).toBe(1);
    first.release();
    first.release(); // idempotent
    expect((await third).bytes).toBe(30);
    expect(b.used).toBe(60);
    second.release();
    (await third).release();
    expect(b.used).toBe(0);
  });

  it('keeps a share for small requests: large ones never take it, small ones pass a waiting large one', async () => {
    const b = budget();
    const large = await b.reserve(80, never);
    expect(large.large).toBe(true);
    // 80 of the 80 large requests may use: another large one waits, small ones still fit.
    const blocked = b.reserve(20, never);
    expect(await settled(blocked)).toBe(false);
    const small = await b.reserve(10, never);
    const small2 = await b.reserve(10, never);
    expect(b.used).toBe(100);
    large.release();
    expect((await blocked).bytes).toBe(20);
    small.release();
    small2.release();
  });

  it('never lets a smaller large request overtake a waiting larger one', async () => {
    const b = budget();
    const held = await b.reserve(70, never);
    const big = b.reserve(60, never);
    const medium = b.reserve(15, never);
    expect(await settled(medium)).toBe(false);
    held.release();
    expect((await big).bytes).toBe(60);
    expect((await medium).bytes).toBe(15);
  });

  it('refuses at once what can never fit, and stops waiting when the signal aborts', async () => {
    const b = budget();
    await expect(b.reserve(81, never)).rejects.toBeInstanceOf(BudgetExceededError);
    await expect(b.reserve(101, never)).rejects.toThrow(/needs 0\.0 MiB, more than the 0\.0 MiB a request may use/);
    const held = await b.reserve(80, never);
    const controller = new AbortController();
    const waiting = b.reserve(20, controller.signal);
    controller.abort(new Error('deadline'));
    await expect(waiting).rejects.toThrow('deadline');
    expect(b.waiting).toBe(0);
    expect(b.used).toBe(80);
    held.release();
  });

  it('grows and shrinks a reservation', async () => {
    const b = budget();
    const r = await b.reserve(5, never);
    expect(r.large).toBe(false);
    await r.resize(40, never);
    expect(r.large).toBe(true);
    expect(b.used).toBe(40);
    await r.resize(8, never);
    expect(b.used).toBe(8);
    r.release();
    expect(b.used).toBe(0);
  });
});
