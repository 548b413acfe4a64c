/**
 * A memory budget shared by every admission request in flight, across all connections: each
 * request reserves what its body and parsed review will cost before it is read and parsed, and
 * waits (its socket unread, so TCP pushes back on the sender) while the budget is used up.
 * Bodies that can never fit are refused at once. Small requests (ordinary workloads, RBAC
 * objects) keep a share of the budget that large ones cannot take, so a burst of big CRD
 * updates slows the big ones down and not everything else.
 */

export class BudgetExceededError extends Error {
  override readonly name = 'BudgetExceededError';
}

export interface Reservation {
  /** Bytes currently reserved. */
  readonly bytes: number;
  /** True when the request counts as large (see MemoryBudget.isLarge). */
  readonly large: boolean;
  /** Grows or shrinks the reservation to `bytes`, waiting while the budget is used up. */
  resize(bytes: number, signal: AbortSignal): Promise<void>;
  /** Gives everything back; safe to call more than once. */
  release(): void;
}

interface Waiter {
  reservation: BudgetReservation;
  bytes: number;
  resolve: () => void;
  reject: (error: unknown) => void;
  signal: AbortSignal;
  onAbort: () => void;
}

class BudgetReservation implements Reservation {
  bytes = 0;
  large = false;
  released = false;

  constructor(private readonly budget: MemoryBudget) {}

  resize(bytes: number, signal: AbortSignal): Promise<void> {
    return this.budget.resizeReservation(this, bytes, signal);
  }

  release(): void {
    this.budget.releaseReservation(this);
  }
}

export interface MemoryBudgetOptions {
  /** Total bytes of request memory in flight. */
  capacityBytes: number;
  /** Share of the capacity only small requests may use. */
  smallReserveBytes: number;
  /** A request whose reservation is above this is large. */
  largeThresholdBytes: number;
}

export class MemoryBudget {
  readonly capacityBytes: number;
  readonly smallReserveBytes: number;
  readonly largeThresholdBytes: number;
  private usedBytes = 0;
  private readonly queue: Waiter[] = [];

  constructor(options: MemoryBudgetOptions) {
    if (options.smallReserveBytes >= options.capacityBytes) throw new Error('the small-request reserve must be below the capacity');
    this.capacityBytes = options.capacityBytes;
    this.smallReserveBytes = options.smallReserveBytes;
    this.largeThresholdBytes = options.largeThresholdBytes;
  }

  /** Bytes reserved right now. */
  get used(): number {
    return this.usedBytes;
  }

  /** Requests waiting for budget right now. */
  get waiting(): number {
    return this.queue.length;
  }

  isLarge(bytes: number): boolean {
    return bytes > this.largeThresholdBytes;
  }

  /** The largest reservation a request of this size class can ever get. */
  maxFor(bytes: number): number {
    return this.isLarge(bytes) ? this.capacityBytes - this.smallReserveBytes : this.capacityBytes;
  }

  /** Reserves `bytes`, waiting in line while the budget is used up; rejects with `signal`'s reason. */
  async reserve(bytes: number, signal: AbortSignal): Promise<Reservation> {
    const reservation = new BudgetReservation(this);
    await this.resizeReservation(reservation, bytes, signal);
    return reservation;
  }

  /**
   * The reservation at once when `bytes` fit now and nobody is waiting (what `reserve` would
   * grant without waiting), else undefined: the caller then waits with `reserve`. Ordinary
   * requests pass without a promise or an abort listener.
   */
  tryReserve(bytes: number): Reservation | undefined {
    if (this.queue.length > 0 || bytes > this.maxFor(bytes) || !this.fits(bytes, bytes)) return undefined;
    const reservation = new BudgetReservation(this);
    this.grant(reservation, bytes);
    return reservation;
  }

  /** Reservation.resize (reservations call back into their budget). */
  resizeReservation(reservation: BudgetReservation, bytes: number, signal: AbortSignal): Promise<void> {
    if (reservation.released) return Promise.reject(new Error('reservation already released'));
    if (bytes > this.maxFor(bytes)) {
      return Promise.reject(new BudgetExceededError(`needs ${mib(bytes)} MiB, more than the ${mib(this.maxFor(bytes))} MiB a request may use`));
    }
    const delta = bytes - reservation.bytes;
    if (delta <= 0) {
      this.usedBytes += delta;
      reservation.bytes = bytes;
      reservation.large = this.isLarge(bytes);
      this.pump();
      return Promise.resolve();
    }
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        reservation,
        bytes,
        resolve,
        reject,
        signal,
        onAbort: () => {
          const index = this.queue.indexOf(waiter);
          if (index !== -1) this.queue.splice(index, 1);
          reject(signal.reason);
          this.pump();
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.queue.push(waiter);
      this.pump();
    });
  }

  private fits(delta: number, total: number): boolean {
    const limit = this.isLarge(total) ? this.capacityBytes - this.smallReserveBytes : this.capacityBytes;
    return this.usedBytes + delta <= limit;
  }

  private grant(reservation: BudgetReservation, bytes: number): void {
    this.usedBytes += bytes - reservation.bytes;
    reservation.bytes = bytes;
    reservation.large = this.isLarge(bytes);
  }

  /** Reservation.release. */
  releaseReservation(reservation: BudgetReservation): void {
    if (reservation.released) return;
    reservation.released = true;
    this.usedBytes -= reservation.bytes;
    reservation.bytes = 0;
    for (const waiter of this.queue.filter((w) => w.reservation === reservation)) {
      this.queue.splice(this.queue.indexOf(waiter), 1);
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.reject(new Error('reservation released'));
    }
    this.pump();
  }

  /**
   * Grants waiters in arrival order. Large waiters never overtake each other (a big body is not
   * starved by a stream of slightly smaller ones); small ones pass a large one that does not fit.
   */
  private pump(): void {
    let largeBlocked = false;
    for (let i = 0; i < this.queue.length; ) {
      const waiter = this.queue[i]!;
      const large = this.isLarge(waiter.bytes);
      const delta = waiter.bytes - waiter.reservation.bytes;
      if ((large && largeBlocked) || !this.fits(delta, waiter.bytes)) {
        if (large) largeBlocked = true;
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      this.grant(waiter.reservation, waiter.bytes);
      waiter.resolve();
    }
  }
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
