import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LeaseConflictError, type LeaseClient, type LeaseRecord, type LeaseSpec } from '../kube/leases.js';
import { LeaderElector } from './leader.js';

/** An in-memory Lease with resourceVersion semantics, and a switch to make the API unreachable. */
class FakeLease implements LeaseClient {
  record: LeaseRecord | null = null;
  private version = 0;
  down = false;
  writes = 0;

  async get(): Promise<LeaseRecord | null> {
    if (this.down) throw new Error('ECONNREFUSED');
    return this.record && { ...this.record };
  }
  async create(spec: LeaseSpec): Promise<LeaseRecord> {
    if (this.down) throw new Error('ECONNREFUSED');
    if (this.record) throw new LeaseConflictError('exists');
    this.writes++;
    this.record = { ...spec, resourceVersion: String(++this.version) };
    return { ...this.record };
  }
  async replace(spec: LeaseSpec, resourceVersion: string): Promise<LeaseRecord> {
    if (this.down) throw new Error('ECONNREFUSED');
    if (!this.record || this.record.resourceVersion !== resourceVersion) throw new LeaseConflictError('stale');
    this.writes++;
    this.record = { ...spec, resourceVersion: String(++this.version) };
    return { ...this.record };
  }
}

function candidate(lease: LeaseClient, identity: string) {
  const log: string[] = [];
  let signal: AbortSignal | undefined;
  const elector = new LeaderElector(lease, {
    identity,
    leaseDurationMs: 1000,
    renewDeadlineMs: 700,
    retryPeriodMs: 100,
    onStartedLeading: (s) => {
      signal = s;
      log.push('started');
    },
    onStoppedLeading: () => log.push('stopped'),
  });
  return { elector, log, signal: () => signal };
}

describe('LeaderElector', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('exactly one of two candidates leads; the other takes over only after the lease expires', async () => {
    const lease = new FakeLease();
    const a = candidate(lease, 'a');
    const b = candidate(lease, 'b');
    a.elector.start();
    await vi.advanceTimersByTimeAsync(10);
    b.elector.start();
    await vi.advanceTimersByTimeAsync(500);
    expect([a.elector.isLeader(), b.elector.isLeader()]).toEqual([true, false]);
    expect(lease.record?.holderIdentity).toBe('a');
    expect(b.elector.leader).toBe('a');

    // a dies without releasing: b waits a full lease duration from the last renewal it saw.
    await a.elector.stop({ release: false });
    expect(a.log).toEqual(['started', 'stopped']);
    await vi.advanceTimersByTimeAsync(800);
    expect(b.elector.isLeader()).toBe(false);
    await vi.advanceTimersByTimeAsync(400);
    expect(b.elector.isLeader()).toBe(true);
    expect(lease.record).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    await b.elector.stop();
  });

  it('a normal stop releases the lease so the next candidate takes over at once', async () => {
    const lease = new FakeLease();
    const a = candidate(lease, 'a');
    const b = candidate(lease, 'b');
    a.elector.start();
    await vi.advanceTimersByTimeAsync(50);
    b.elector.start();
    await vi.advanceTimersByTimeAsync(300);
    await a.elector.stop();
    expect(lease.record?.holderIdentity).toBe('');
    await vi.advanceTimersByTimeAsync(150);
    expect(b.elector.isLeader()).toBe(true);
    await b.elector.stop();
  });

  it('stops leading at once when another holder is observed, aborting the leader signal', async () => {
    const lease = new FakeLease();
    const a = candidate(lease, 'a');
    a.elector.start();
    await vi.advanceTimersByTimeAsync(50);
    expect(a.elector.isLeader()).toBe(true);
    const signal = a.signal()!;
    lease.record = { ...lease.record!, holderIdentity: 'intruder', resourceVersion: '999' };
    await vi.advanceTimersByTimeAsync(100);
    expect(a.elector.isLeader()).toBe(false);
    expect(signal.aborted).toBe(true);
    expect(a.log).toEqual(['started', 'stopped']);
    await a.elector.stop();
  });

  it('gives up leadership when it cannot renew within the renew deadline', async () => {
    const lease = new FakeLease();
    const a = candidate(lease, 'a');
    a.elector.start();
    await vi.advanceTimersByTimeAsync(50);
    expect(a.elector.isLeader()).toBe(true);
    lease.down = true;
    await vi.advanceTimersByTimeAsync(600);
    expect(a.elector.isLeader()).toBe(true);
    await vi.advanceTimersByTimeAsync(150);
    expect(a.elector.isLeader()).toBe(false);
    expect(a.signal()!.aborted).toBe(true);
    // Back again: it wins the (still its own) lease again.
    lease.down = false;
    await vi.advanceTimersByTimeAsync(200);
    expect(a.elector.isLeader()).toBe(true);
    expect(a.log).toEqual(['started', 'stopped', 'started']);
    await a.elector.stop();
  });

  it('two candidates racing for a missing lease: the create conflict makes exactly one win', async () => {
    const lease = new FakeLease();
    const a = candidate(lease, 'a');
    const b = candidate(lease, 'b');
    a.elector.start();
    b.elector.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect([a.elector.isLeader(), b.elector.isLeader()].filter(Boolean)).toHaveLength(1);
    await a.elector.stop();
    await b.elector.stop();
  });
});
