import { describe, expect, it } from 'vitest';
import { CallAbort, signalOf } from './call-abort.js';

describe('CallAbort', () => {
  it('calls each listener once on abort, not the ones removed, and keeps the first reason', () => {
    const call = new CallAbort();
    const calls: string[] = [];
    const kept = (): void => void calls.push('kept');
    const removed = (): void => void calls.push('removed');
    call.addEventListener('abort', kept, { once: true });
    call.addEventListener('abort', removed, { once: true });
    call.removeEventListener('abort', removed);
    expect(call.aborted).toBe(false);
    call.abort('deadline');
    call.abort('closed');
    expect(calls).toEqual(['kept']);
    expect(call).toMatchObject({ aborted: true, reason: 'deadline' });
    // After the abort nothing is registered: callers check `aborted` first.
    call.addEventListener('abort', kept);
    call.abort('again');
    expect(calls).toEqual(['kept']);
  });

  it('makes a real AbortSignal only when asked, aborted with the same reason before or after', () => {
    const early = new CallAbort();
    const signal = early.signal;
    expect(early.signal).toBe(signal);
    const seen: unknown[] = [];
    signal.addEventListener('abort', () => seen.push(signal.reason));
    early.abort('closed');
    expect(seen).toEqual(['closed']);

    const late = new CallAbort();
    late.abort('deadline');
    expect(late.signal.aborted).toBe(true);
    expect(late.signal.reason).toBe('deadline');
  });

  it('signalOf gives the AbortSignal of either kind', () => {
    const controller = new AbortController();
    expect(signalOf(controller.signal)).toBe(controller.signal);
    const call = new CallAbort();
    expect(signalOf(call)).toBe(call.signal);
  });
});
