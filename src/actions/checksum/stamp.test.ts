import { describe, expect, it } from 'vitest';
import type { ConfigChecksum } from './compute.js';
import { PodTemplateError } from './pod-template.js';
import { canStamp, decideStamp, stampedChecksum, type StampDecision } from './stamp.js';

const A = 'gitops-guard.dev/config-checksum';
const NOW = `v2:${'a'.repeat(64)}`;
const OLD = `v2:${'b'.repeat(64)}`;
const V1 = `v1:${'c'.repeat(64)}`;
const computed = (value: string | null, missing: ConfigChecksum['missing'] = []): ConfigChecksum => ({ value, references: [], missing });

describe('the checksum stamp decision (webhook and controller alike)', () => {
  it.each<[string, string | undefined, ConfigChecksum, StampDecision]>([
    ['nothing stamped yet: stamp', undefined, computed(NOW), { kind: 'stamp', checksum: NOW, warnings: [] }],
    ['the right value: in sync', NOW, computed(NOW), { kind: 'in-sync', checksum: NOW, warnings: [] }],
    ['an outdated value it wrote: stamp', OLD, computed(NOW), { kind: 'stamp', checksum: NOW, warnings: [] }],
    ['a v1 value it wrote: replaced by v2', V1, computed(NOW), { kind: 'stamp', checksum: NOW, warnings: [] }],
    ['no configuration consumed, none stamped: in sync', undefined, computed(null), { kind: 'in-sync', checksum: null, warnings: [] }],
    ['no configuration consumed any more: remove its value', OLD, computed(null), { kind: 'remove', warnings: [] }],
  ])('%s', (_, stamped, now, decision) => {
    expect(canStamp(stamped)).toBe(true);
    expect(decideStamp(A, stamped, now, 'shop')).toEqual(decision);
  });

  it('warns for every required object or key that does not exist, whatever it decides', () => {
    const missing: ConfigChecksum['missing'] = [{ kind: 'Secret', name: 'db' }, { kind: 'ConfigMap', name: 'settings', key: 'mode' }];
    const warnings = ['Secret shop/db not found: pods will not start until it exists', 'ConfigMap shop/settings has no key mode: pods will not start until it exists'];
    expect(decideStamp(A, undefined, computed(NOW, missing), 'shop')).toEqual({ kind: 'stamp', checksum: NOW, warnings });
    expect(decideStamp(A, NOW, computed(NOW, missing), 'shop')).toEqual({ kind: 'in-sync', checksum: NOW, warnings });
  });

  it.each(['set-by-hand', 'v2:short', `V2:${'a'.repeat(64)}`, ''])('leaves a value someone else wrote (%j) alone, without needing a checksum', (value) => {
    expect(canStamp(value)).toBe(false);
    expect(decideStamp(A, value, null, 'shop')).toEqual({ kind: 'foreign', warnings: [`pod template annotation ${A} was not written by gitops-guard; checksum not stamped`] });
  });

  it('refuses to decide for a value it may write without the computed checksum (a programming error)', () => {
    expect(() => decideStamp(A, OLD, null, 'shop')).toThrow(/needs the computed checksum/);
  });
});

describe('stampedChecksum: the one place the pod-template annotation is read', () => {
  it.each<[string, Record<string, unknown>, string | undefined]>([
    ['the value', { metadata: { annotations: { [A]: NOW, other: 'x' } } }, NOW],
    ['no metadata', {}, undefined],
    ['no annotations', { metadata: { labels: {} } }, undefined],
    ['null annotations', { metadata: { annotations: null } }, undefined],
    ['a value that is not a string', { metadata: { annotations: { [A]: 5 } } }, undefined],
    ['an inherited key', { metadata: { annotations: Object.create({ [A]: NOW }) } }, undefined],
  ])('%s', (_, template, value) => {
    expect(stampedChecksum(template, A)).toBe(value);
  });

  it.each([
    ['metadata is not an object', { metadata: 'x' }, 'pod template metadata is not an object'],
    ['annotations are not a map', { metadata: { annotations: ['x'] } }, 'pod template annotations are not a map'],
  ])('throws a PodTemplateError when %s', (_, template, message) => {
    expect(() => stampedChecksum(template, A)).toThrow(PodTemplateError);
    expect(() => stampedChecksum(template, A)).toThrow(message);
  });
});
