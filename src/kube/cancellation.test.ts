import { describe, expect, it } from 'vitest';
import { Cancellation } from './cancellation.js';

describe('Cancellation', () => {
  it('runs the current handler once when cancelled; a cleared or replaced handler does not run', () => {
    const cancellation = new Cancellation();
    const ran: string[] = [];
    cancellation.onCancel(() => ran.push('first'));
    cancellation.onCancel(() => ran.push('second'));
    cancellation.cancel();
    cancellation.cancel();
    expect(ran).toEqual(['second']);
    expect(cancellation.cancelled).toBe(true);

    const cleared = new Cancellation();
    cleared.onCancel(() => ran.push('cleared'));
    cleared.onCancel(undefined);
    cleared.cancel();
    expect(ran).toEqual(['second']);
  });

  it('a handler set after the cancel runs at once', () => {
    const cancellation = new Cancellation();
    cancellation.cancel();
    let ran = 0;
    cancellation.onCancel(() => ran++);
    expect(ran).toBe(1);
  });

  it('follows an AbortSignal until detached', () => {
    const controller = new AbortController();
    const { cancellation, detach } = Cancellation.following(controller.signal);
    controller.abort();
    expect(cancellation.cancelled).toBe(true);

    const later = new AbortController();
    const followed = Cancellation.following(later.signal);
    followed.detach();
    later.abort();
    expect(followed.cancellation.cancelled).toBe(false);

    const already = new AbortController();
    already.abort();
    expect(Cancellation.following(already.signal).cancellation.cancelled).toBe(true);
    detach();
  });
});
