import type { Logger } from 'pino';
import type { LeaseClient, LeaseRecord, LeaseSpec } from '../kube/leases.js';

export interface LeaderElectionOptions {
  identity: string;
  /** How long a lease holds without renewal (non-holders wait this long after the last change they saw). */
  leaseDurationMs: number;
  /** The holder gives up leadership when it has not renewed for this long (must be < leaseDurationMs). */
  renewDeadlineMs: number;
  /** Time between attempts to acquire or renew. */
  retryPeriodMs: number;
  /** Called when this replica becomes the leader; `signal` aborts the moment leadership is lost. */
  onStartedLeading(signal: AbortSignal): void;
  /** Called synchronously the moment leadership is lost (or given up on stop). */
  onStoppedLeading(): void;
  /** Called whenever another identity is seen holding the lease. */
  onNewLeader?(identity: string): void;
  logger?: Logger;
}

function nowIso(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '000Z');
}

/**
 * Lease-based leader election, like client-go's: expiry is judged by the local clock from the
 * moment a change of the lease was last observed (never by comparing clocks across replicas);
 * writes use the lease's resourceVersion, so two candidates cannot both win.
 */
export class LeaderElector {
  private leading = false;
  private stopped = true;
  private timer: NodeJS.Timeout | undefined;
  private attempt: Promise<void> | undefined;
  private leaderAbort: AbortController | undefined;
  private requestAbort = new AbortController();
  /** Last lease we saw and when we saw it change. */
  private observed: LeaseRecord | null = null;
  private observedAt = 0;
  private lastRenewAt = 0;
  private lastLeader: string | undefined;

  constructor(
    private readonly client: LeaseClient,
    private readonly options: LeaderElectionOptions,
  ) {
    if (!(options.renewDeadlineMs < options.leaseDurationMs)) throw new Error('renewDeadlineMs must be less than leaseDurationMs');
    if (!(options.retryPeriodMs < options.renewDeadlineMs)) throw new Error('retryPeriodMs must be less than renewDeadlineMs');
  }

  /**
   * True only while this replica holds a lease it renewed within the renew deadline: checked
   * again right before every write the controller makes.
   */
  isLeader(): boolean {
    if (this.leading && Date.now() - this.lastRenewAt > this.options.renewDeadlineMs) this.lose('renew deadline passed');
    return this.leading;
  }

  get identity(): string {
    return this.options.identity;
  }

  /** Identity of the holder last observed (possibly this replica). */
  get leader(): string | undefined {
    return this.lastLeader;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.requestAbort = new AbortController();
    this.tick(0);
  }

  /**
   * Stops campaigning. `release: true` (a normal shutdown) clears the holder so another replica
   * takes over at once; `release: false` simulates a crash: the lease simply stops being renewed.
   */
  async stop({ release = true }: { release?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.requestAbort.abort();
    await this.attempt?.catch(() => undefined);
    const wasLeading = this.leading;
    if (this.leading) this.lose('stopped');
    if (release && wasLeading && this.observed && this.observed.holderIdentity === this.options.identity) {
      try {
        await this.client.replace(
          { ...this.observed, holderIdentity: '', leaseDurationSeconds: 1, renewTime: nowIso(Date.now()) },
          this.observed.resourceVersion,
        );
      } catch (error) {
        this.options.logger?.warn({ err: errorName(error) }, 'could not release the leader lease; it expires on its own');
      }
    }
  }

  private tick(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.attempt = this.tryAcquireOrRenew()
        .catch((error: unknown) => {
          if (!this.stopped) this.options.logger?.debug({ err: errorName(error) }, 'leader election attempt failed');
        })
        .finally(() => {
          this.attempt = undefined;
          this.isLeader(); // gives up leadership once the renew deadline has passed
          this.tick(this.options.retryPeriodMs);
        });
    }, delayMs);
    this.timer.unref?.();
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const signal = this.requestAbort.signal;
    const now = Date.now();
    const me = this.options.identity;
    const spec = (previous: LeaseRecord | null): LeaseSpec => ({
      holderIdentity: me,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.options.leaseDurationMs / 1000)),
      acquireTime: previous && previous.holderIdentity === me && previous.acquireTime ? previous.acquireTime : nowIso(now),
      renewTime: nowIso(now),
      leaseTransitions: previous ? previous.leaseTransitions + (previous.holderIdentity === me ? 0 : 1) : 0,
    });

    const current = await this.client.get(signal);
    if (this.stopped) return;
    if (current === null) {
      const created = await this.client.create(spec(null), signal);
      this.won(created, now);
      return;
    }
    if (!this.observed || this.observed.resourceVersion !== current.resourceVersion) {
      this.observed = current;
      this.observedAt = now;
    }
    const holder = current.holderIdentity;
    if (holder && holder !== me) {
      this.noteLeader(holder);
      if (this.leading) this.lose(`lease taken by ${holder}`);
      const duration = Math.max(current.leaseDurationSeconds * 1000, 0);
      if (now < this.observedAt + duration) return; // held and not expired
    }
    const renewed = await this.client.replace(spec(current), current.resourceVersion, signal);
    if (this.stopped) return;
    this.won(renewed, now);
  }

  private won(record: LeaseRecord, at: number): void {
    this.observed = record;
    this.observedAt = at;
    this.lastRenewAt = at;
    this.noteLeader(this.options.identity);
    if (!this.leading && !this.stopped) {
      this.leading = true;
      this.leaderAbort = new AbortController();
      this.options.logger?.info({ identity: this.options.identity }, 'became the leader');
      this.options.onStartedLeading(this.leaderAbort.signal);
    }
  }

  private noteLeader(identity: string): void {
    if (identity !== this.lastLeader) {
      this.lastLeader = identity;
      if (identity !== this.options.identity) this.options.onNewLeader?.(identity);
    }
  }

  private lose(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.leaderAbort?.abort(new Error(`leadership lost: ${why}`));
    this.leaderAbort = undefined;
    this.options.logger?.warn({ identity: this.options.identity, why }, 'stopped leading');
    this.options.onStoppedLeading();
  }
}

function errorName(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}`.slice(0, 200) : typeof error;
}
