/**
 * A cancel switch for one API request. An AbortSignal does the same, but each one is an
 * EventTarget with listener bookkeeping, and the webhook makes one per read: three per checksum
 * admission, on top of the admission's own. One handler at a time is all a request needs.
 */
export class Cancellation {
  private handler: (() => void) | undefined;
  private done = false;

  get cancelled(): boolean {
    return this.done;
  }

  /** `handler` runs when cancelled (at once if already); it replaces the previous one; undefined clears it. */
  onCancel(handler: (() => void) | undefined): void {
    this.handler = handler;
    if (this.done && handler) {
      this.handler = undefined;
      handler();
    }
  }

  cancel(): void {
    if (this.done) return;
    this.done = true;
    const handler = this.handler;
    this.handler = undefined;
    handler?.();
  }

  /** Cancelled when `signal` aborts (the listener is removed by `detach`). */
  static following(signal: AbortSignal): { cancellation: Cancellation; detach: () => void } {
    const cancellation = new Cancellation();
    if (signal.aborted) {
      cancellation.cancel();
      return { cancellation, detach: () => undefined };
    }
    const onAbort = (): void => cancellation.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    return { cancellation, detach: () => signal.removeEventListener('abort', onAbort) };
  }
}
