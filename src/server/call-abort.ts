/**
 * What ends one admission call early: its deadline timer, or the API server closing the
 * connection. Most calls end long before either and never wait on anything, so the AbortSignal
 * (an EventTarget, several microseconds to create and to listen on) is only made when something
 * needs one: a wait for memory, a Kubernetes read, the large-review lane. Until then listeners
 * are kept in a plain list. Speaks the part of AbortSignal's interface that receiveBody uses.
 */
export class CallAbort {
  aborted = false;
  reason: unknown = undefined;
  private controller: AbortController | undefined;
  private listeners: (() => void)[] | undefined;

  /** A real AbortSignal for this call, made on first use (already aborted if the call is). */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    for (const listener of listeners ?? []) listener();
    this.controller?.abort(reason);
  }

  /** Calls `listener` once when the call aborts (never when it already has: check `aborted` first). */
  addEventListener(_type: 'abort', listener: () => void, _options?: { once?: boolean }): void {
    if (!this.aborted) (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const index = this.listeners?.indexOf(listener) ?? -1;
    if (index !== -1) this.listeners!.splice(index, 1);
  }
}

/** An AbortSignal, or a CallAbort standing in for one. */
export type AbortSource = AbortSignal | CallAbort;

/** The real AbortSignal of an AbortSource. */
export function signalOf(source: AbortSource): AbortSignal {
  return source instanceof CallAbort ? source.signal : source;
}
