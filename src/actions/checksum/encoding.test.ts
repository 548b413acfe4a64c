import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { encodeV2, ENCODING_HEADER_V2, hmacV2, checksumV2, isChecksumValue, namespaceKey, type SourceSnapshot } from './encoding.js';

/** The worked example of docs/config-checksum.md. Changing any constant is a breaking change. */
export const GOLDEN_NAMESPACE = 'shop';
export const GOLDEN_KEY = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'ascii');
export const GOLDEN_SOURCES: SourceSnapshot[] = [
  { kind: 'Secret', name: 'tls', keys: 'all', content: null },
  { kind: 'Secret', name: 'db', keys: new Set(['password']), content: new Map([['username', Buffer.from('app')]]) },
  { kind: 'ConfigMap', name: 'app-config', keys: 'all', content: new Map([['LOG_LEVEL', Buffer.from('debug')]]) },
];
const GOLDEN_MESSAGE_HEX =
  '6769746f70732d67756172642f636f6e6669672d636865636b73756d2f76320a' +
  '00000009436f6e6669674d61700000000a6170702d636f6e666967000000000200000009436f6e6669674d61700000000a6170702d636f6e66696700000009' +
  '4c4f475f4c4556454c01000000056465627567000000065365637265740000000264620000000002000000065365637265740000000264620000000870617373' +
  '776f7264000000000653656372657400000003746c730000000003';
const GOLDEN_NAMESPACE_KEY_HEX = '9e76247110b9788e8cf4126e8a62329e1d0323723fd81d21f163549b24a5d48c';
export const GOLDEN_CHECKSUM = 'v2:b01ee8f4513bab2d97ce9925575594b31afd3ce68b47e8746510713b846b2a0e';

const DOC = fileURLToPath(new URL('../../../docs/config-checksum.md', import.meta.url));
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

const cm = (name: string, data: Record<string, string | Buffer>, keys: SourceSnapshot['keys'] = 'all'): SourceSnapshot => ({
  kind: 'ConfigMap',
  name,
  keys,
  content: new Map(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)])),
});
const key = Buffer.alloc(32, 1);
const NS = 'apps';
const sum = (sources: SourceSnapshot[], k: Buffer = key) => checksumV2(k, NS, sources);

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

describe('v2 encoding', () => {
  it('produces the golden message, namespace key and checksum of the documented example', () => {
    expect(encodeV2(GOLDEN_SOURCES).toString('hex')).toBe(GOLDEN_MESSAGE_HEX);
    expect(namespaceKey(GOLDEN_KEY, GOLDEN_NAMESPACE).toString('hex')).toBe(GOLDEN_NAMESPACE_KEY_HEX);
    expect(checksumV2(GOLDEN_KEY, GOLDEN_NAMESPACE, GOLDEN_SOURCES)).toBe(GOLDEN_CHECKSUM);
  });

  it('starts with the 32-byte ASCII header and nothing else when no source is given', () => {
    expect(Buffer.byteLength(ENCODING_HEADER_V2, 'ascii')).toBe(32);
    expect(encodeV2([]).toString('latin1')).toBe('gitops-guard/config-checksum/v2\n');
  });

  it('binds the namespace: the same content in another namespace has an unrelated checksum', () => {
    const values = ['shop', 'shop-staging', 'shops', 'Shop', 'pohs'].map((ns) => checksumV2(GOLDEN_KEY, ns, GOLDEN_SOURCES));
    expect(new Set(values).size).toBe(values.length);
    // A checksum is a plain HMAC under the namespace key: nothing of the cluster key is used directly.
    const message = encodeV2(GOLDEN_SOURCES);
    expect(createHmac('sha256', GOLDEN_KEY).update(message).digest('hex')).not.toBe(GOLDEN_CHECKSUM.slice(3));
    expect(createHmac('sha256', namespaceKey(GOLDEN_KEY, 'shop')).update(message).digest('hex')).toBe(GOLDEN_CHECKSUM.slice(3));
    expect(() => namespaceKey(GOLDEN_KEY, '')).toThrow(/namespace/);
  });

  it('does not depend on the order of sources, keys or key sets', () => {
    const a = cm('a', { x: '1', y: '2', z: '3' });
    const b: SourceSnapshot = { kind: 'Secret', name: 'b', keys: new Set(['q', 'p']), content: new Map([['p', Buffer.from('1')], ['q', Buffer.from('2')]]) };
    const c: SourceSnapshot = { kind: 'Secret', name: 'c', keys: 'all', content: null };
    const reference = sum([a, b, c]);
    for (const order of permutations([a, b, c])) expect(sum(order)).toBe(reference);
    const aReordered = cm('a', { z: '3', x: '1', y: '2' });
    const bReordered: SourceSnapshot = { ...b, keys: new Set(['p', 'q']), content: new Map([['q', Buffer.from('2')], ['p', Buffer.from('1')]]) };
    expect(sum([bReordered, c, aReordered])).toBe(reference);
  });

  it('sorts by UTF-8 bytes: upper case before lower case, ASCII before multi-byte', () => {
    const message = encodeV2([cm('n', { 'é': '1', a: '2', B: '3' })]);
    const at = (field: string) => {
      const bytes = Buffer.from(field, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length);
      const index = message.indexOf(Buffer.concat([length, bytes, Buffer.of(0x01)]));
      expect(index).toBeGreaterThan(0);
      return index;
    };
    expect(at('B')).toBeLessThan(at('a'));
    expect(at('a')).toBeLessThan(at('é'));
    const kinds = encodeV2([{ kind: 'Secret', name: 'x', keys: 'all', content: null }, cm('x', {})]).toString('latin1');
    expect(kinds.indexOf('ConfigMap')).toBeLessThan(kinds.indexOf('Secret'));
  });

  it('tells apart every state a consumed key or object can be in', () => {
    const states: SourceSnapshot[] = [
      { kind: 'ConfigMap', name: 'x', keys: new Set(['k']), content: null },
      { kind: 'ConfigMap', name: 'x', keys: new Set(['k']), content: new Map() },
      { kind: 'ConfigMap', name: 'x', keys: new Set(['k']), content: new Map([['k', Buffer.alloc(0)]]) },
      { kind: 'ConfigMap', name: 'x', keys: new Set(['k']), content: new Map([['k', Buffer.from([0])]]) },
      { kind: 'ConfigMap', name: 'x', keys: 'all', content: new Map() },
      { kind: 'Secret', name: 'x', keys: 'all', content: new Map() },
    ];
    const values = states.map((s) => sum([s]));
    // key absent in a present object vs absent object vs empty value vs a NUL byte: all different
    expect(new Set(values.slice(0, 4)).size).toBe(4);
    // an existing empty ConfigMap is not the same as a missing one, nor as the same-named Secret
    expect(values[4]).not.toBe(values[0]);
    expect(values[5]).not.toBe(values[4]);
    expect(values.every((v) => v !== sum([]))).toBe(true);
  });

  it('keeps field boundaries: bytes cannot move between name, key and value', () => {
    const one = sum([cm('ab', { c: 'd' })]);
    const two = sum([cm('a', { bc: 'd' })]);
    const three = sum([cm('ab', { cd: '' })]);
    expect(new Set([one, two, three]).size).toBe(3);
  });

  it('hashes only consumed keys when a key set is given', () => {
    const consumed = new Set(['used']);
    const base = sum([cm('shared', { used: 'v1', other: 'x' }, consumed)]);
    expect(sum([cm('shared', { used: 'v1', other: 'changed' }, consumed)])).toBe(base);
    expect(sum([cm('shared', { used: 'v1' }, consumed)])).toBe(base);
    expect(sum([cm('shared', { used: 'v2', other: 'x' }, consumed)])).not.toBe(base);
  });

  it('hashes raw bytes, so binary values and encodings matter', () => {
    expect(sum([cm('b', { k: Buffer.from([0xff, 0x00]) })])).not.toBe(sum([cm('b', { k: Buffer.from([0xff]) })]));
    expect(sum([cm('b', { k: 'é' })])).not.toBe(sum([cm('b', { k: Buffer.from('é', 'latin1') })]));
  });

  it('depends on the key', () => {
    expect(sum(GOLDEN_SOURCES, Buffer.alloc(32, 2))).not.toBe(sum(GOLDEN_SOURCES));
    expect(() => hmacV2(Buffer.alloc(0), NS, encodeV2([]))).toThrow(/empty/);
  });

  it('refuses the same object twice and empty keys', () => {
    expect(() => encodeV2([cm('a', {}), cm('a', { x: '1' })])).toThrow(/ConfigMap a is listed twice/);
    expect(() => encodeV2([cm('a', { '': 'x' })])).toThrow(/empty key/);
  });

  it('recognises values it writes, and the v1 values it wrote before', () => {
    expect(isChecksumValue(GOLDEN_CHECKSUM)).toBe(true);
    expect(isChecksumValue('v1:d69ade89403666f615bc7019d93bf97fbd73e0771337701113af564376997f18')).toBe(true);
    expect(isChecksumValue('v12:' + 'a'.repeat(64))).toBe(true);
    for (const other of ['', 'abc', 'v1:' + 'A'.repeat(64), 'v1:' + 'a'.repeat(63), 'v0:' + 'a'.repeat(64), 'sha256:' + 'a'.repeat(64)]) {
      expect(isChecksumValue(other)).toBe(false);
    }
  });
});

describe.skipIf(!hasOpenssl)('v2 checksum against openssl', () => {
  it('the documented shell commands reproduce the golden checksum', () => {
    const doc = readFileSync(DOC, 'utf8');
    const block = /<!-- golden-example -->\s*```sh\n([\s\S]*?)```/.exec(doc);
    expect(block, 'docs/config-checksum.md has a golden example block').not.toBeNull();
    const output = execFileSync('sh', ['-c', block![1]!], { encoding: 'utf8' });
    const hex = /= ([0-9a-f]{64})\s*$/.exec(output)?.[1];
    expect(`v2:${hex}`).toBe(GOLDEN_CHECKSUM);
    expect(doc).toContain(GOLDEN_CHECKSUM);
    expect(doc).toContain(hex!);
  });

  it('openssl agrees on arbitrary binary content', () => {
    const dir = mkdtempSync(join(tmpdir(), 'checksum-openssl-'));
    try {
      const sources: SourceSnapshot[] = [
        { kind: 'Secret', name: 'bin', keys: 'all', content: new Map([['blob', Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7) % 256))]]) },
        cm('text', { 'config.yaml': 'a: 1\nb: "ü"\n', missing: 'x' }, new Set(['config.yaml', 'absent'])),
      ];
      const asciiKey = 'f'.repeat(64);
      writeFileSync(join(dir, 'message'), encodeV2(sources));
      const derived = execFileSync(
        'openssl',
        ['kdf', '-keylen', '32', '-kdfopt', 'digest:SHA256', '-kdfopt', `key:${asciiKey}`, '-kdfopt', 'salt:gitops-guard/config-checksum/v2', '-kdfopt', 'info:team-a', 'HKDF'],
        { encoding: 'utf8' },
      );
      const hexKey = derived.trim().replace(/:/g, '').toLowerCase();
      const output = execFileSync('openssl', ['dgst', '-sha256', '-mac', 'HMAC', '-macopt', `hexkey:${hexKey}`, join(dir, 'message')], { encoding: 'utf8' });
      expect(`v2:${/= ([0-9a-f]{64})\s*$/.exec(output)?.[1]}`).toBe(checksumV2(Buffer.from(asciiKey), 'team-a', sources));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
