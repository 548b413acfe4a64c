import { describe, expect, it } from 'vitest';
import { KubeReadError } from '../../kube/errors.js';
import type { KubeReader, ObjectRef, ReadOptions, ReadResult } from '../../kube/reader.js';
import { ConfigReadError, readConfigSources, refKey } from './read.js';
import { rejectionOf } from '../../../test/support/rejection.js';

type Script = (ref: ObjectRef, options: ReadOptions) => Promise<ReadResult>;

/** A KubeReader (the seam the action reads through) whose answers the test scripts. */
class ScriptedReader implements KubeReader {
  readonly calls: { ref: ObjectRef; options: ReadOptions; at: number }[] = [];
  readonly abortedSignals: string[] = [];
  constructor(private readonly script: Script) {}
  readConfigSource(ref: ObjectRef, options: ReadOptions): Promise<ReadResult> {
    this.calls.push({ ref, options, at: performance.now() });
    options.signal?.addEventListener('abort', () => this.abortedSignals.push(ref.name));
    return this.script(ref, options);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const found = (data: Record<string, string>): ReadResult => ({ found: true, content: new Map(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)])) });
const limits = { timeoutMs: 1000, readTimeoutMs: 800 };

const rejection = (promise: Promise<unknown>): Promise<ConfigReadError> => rejectionOf(promise, ConfigReadError);

describe('readConfigSources', () => {
  it('reads each distinct object once, all at the same time', async () => {
    const reader = new ScriptedReader(async (ref) => {
      await sleep(100);
      return ref.name === 'gone' ? { found: false } : found({ k: ref.name });
    });
    const started = performance.now();
    const result = await readConfigSources(
      [
        { kind: 'ConfigMap', name: 'a' },
        { kind: 'Secret', name: 'a' },
        { kind: 'ConfigMap', name: 'a' },
        { kind: 'ConfigMap', name: 'b' },
        { kind: 'Secret', name: 'gone' },
      ],
      'ns',
      reader,
      limits,
    );
    expect(performance.now() - started).toBeLessThan(250);
    expect(reader.calls.map((c) => `${c.ref.kind}/${c.ref.namespace}/${c.ref.name}`)).toEqual([
      'ConfigMap/ns/a',
      'Secret/ns/a',
      'ConfigMap/ns/b',
      'Secret/ns/gone',
    ]);
    expect(result.get(refKey('Secret', 'gone'))).toBeNull();
    expect(result.get(refKey('ConfigMap', 'b'))?.get('k')).toEqual(Buffer.from('b'));
    expect(result.size).toBe(4);
  });

  it('handles many references without listener-leak warnings', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const reader = new ScriptedReader(async (_ref, { signal }) => {
        signal?.addEventListener('abort', () => {});
        await sleep(5);
        return found({});
      });
      const refs = Array.from({ length: 40 }, (_, i) => ({ kind: 'Secret' as const, name: `s${i}` }));
      expect((await readConfigSources(refs, 'ns', reader, limits)).size).toBe(40);
      await sleep(10);
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('passes the per-read timeout, capped by the deadline, and a signal', async () => {
    const reader = new ScriptedReader(async () => found({}));
    await readConfigSources([{ kind: 'ConfigMap', name: 'a' }], 'ns', reader, { timeoutMs: 300, readTimeoutMs: 800 });
    await readConfigSources([{ kind: 'ConfigMap', name: 'a' }], 'ns', reader, { timeoutMs: 2000, readTimeoutMs: 700 });
    expect(reader.calls.map((c) => c.options.timeoutMs)).toEqual([300, 700]);
    expect(reader.calls[0]?.options.signal).toBeInstanceOf(AbortSignal);
  });

  it('reads nothing for no references', async () => {
    const reader = new ScriptedReader(async () => found({}));
    expect((await readConfigSources([], 'ns', reader, limits)).size).toBe(0);
    expect(reader.calls).toHaveLength(0);
  });

  it('fails as soon as one read fails and cancels the others', async () => {
    const reader = new ScriptedReader(async (ref, { signal }) => {
      if (ref.name === 'denied') throw new KubeReadError(ref, 'forbidden', 'Forbidden', 403);
      await new Promise((resolve) => signal?.addEventListener('abort', resolve));
      return found({});
    });
    const started = performance.now();
    const error = await rejection(
      readConfigSources([{ kind: 'ConfigMap', name: 'slow' }, { kind: 'Secret', name: 'denied' }], 'ns', reader, limits),
    );
    expect(performance.now() - started).toBeLessThan(200);
    expect(error.message).toBe('cannot read Secret ns/denied: forbidden (HTTP 403), gitops-guard needs get on secrets');
    expect(error).toMatchObject({ reason: 'forbidden', httpStatus: 403, ref: { kind: 'Secret', namespace: 'ns', name: 'denied' } });
    expect(reader.abortedSignals).toContain('slow');
  });

  it('gives each failure class its own message', async () => {
    const cases: [KubeReadError['reason'], string, number | undefined, string][] = [
      ['forbidden', 'Forbidden', 403, 'forbidden (HTTP 403), gitops-guard needs get on configmaps'],
      ['unauthorized', 'HTTP 401', 401, "unauthorized (HTTP 401), API server rejected gitops-guard's credentials"],
      ['timeout', 'no answer within 800 ms', undefined, 'timed out after 800 ms'],
      ['timeout', 'Timeout', 504, 'API server timed out (HTTP 504)'],
      ['unavailable', 'ECONNREFUSED', undefined, 'API server unreachable (ECONNREFUSED)'],
      ['server', 'InternalError', 500, 'API server error (HTTP 500): InternalError'],
    ];
    const messages = new Set<string>();
    for (const [reason, detail, status, expected] of cases) {
      const reader = new ScriptedReader(async (ref) => {
        throw new KubeReadError(ref, reason, detail, status);
      });
      const error = await rejection(readConfigSources([{ kind: 'ConfigMap', name: 'cfg' }], 'ns', reader, limits));
      expect(error.message).toBe(`cannot read ConfigMap ns/cfg: ${expected}`);
      expect(error.reason).toBe(reason);
      messages.add(error.message);
    }
    expect(messages.size).toBe(cases.length);
  });

  it('stops at the overall deadline even if the reader ignores its signal, naming an outstanding object', async () => {
    const reader = new ScriptedReader(async (ref) => {
      if (ref.name === 'fast') return found({});
      return new Promise<ReadResult>(() => {});
    });
    const started = performance.now();
    const error = await rejection(
      readConfigSources([{ kind: 'ConfigMap', name: 'fast' }, { kind: 'Secret', name: 'stuck' }], 'ns', reader, { timeoutMs: 150, readTimeoutMs: 1000 }),
    );
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(400);
    expect(error.message).toBe('cannot read Secret ns/stuck: no answer within the 150 ms checksum deadline');
    expect(error.reason).toBe('deadline');
    expect(reader.abortedSignals).toContain('stuck');
  });

  it('stops when the admission request is abandoned', async () => {
    const reader = new ScriptedReader(() => new Promise<ReadResult>(() => {}));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const error = await rejection(readConfigSources([{ kind: 'ConfigMap', name: 'x' }], 'ns', reader, { ...limits, signal: controller.signal }));
    expect(error.reason).toBe('aborted');
    expect(error.message).toMatch(/abandoned/);

    const before = reader.calls.length;
    const already = await rejection(readConfigSources([{ kind: 'ConfigMap', name: 'x' }], 'ns', reader, { ...limits, signal: controller.signal }));
    expect(already.reason).toBe('aborted');
    expect(reader.calls).toHaveLength(before);
  });

  it('never repeats the text of foreign errors, which may quote response bodies', async () => {
    const thrower = new ScriptedReader(() => {
      throw new TypeError('body was {"data":{"password":"aHVudGVyMg=="}}');
    });
    const error = await rejection(readConfigSources([{ kind: 'Secret', name: 's' }], 'ns', thrower, limits));
    expect(error.message).toBe('cannot read Secret ns/s: unexpected TypeError');
    const rejecter = new ScriptedReader(async () => {
      throw new Error('password=hunter2');
    });
    expect((await rejection(readConfigSources([{ kind: 'Secret', name: 's' }], 'ns', rejecter, limits))).message).not.toContain('hunter2');
  });
});
