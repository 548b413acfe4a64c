import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { corpusObject } from '../../test/support/corpus.js';
import { reviewFor } from '../../test/support/review.js';
import { JsonCostScanner } from './json-cost.js';

/**
 * The scanner's estimate must bound what V8 really allocates for JSON.parse, or the memory
 * budget lets through more than the heap holds. Measured in a fresh process with --expose-gc
 * (heap used after a full GC, before and after parsing).
 */
function parsedHeapBytes(bodies: Record<string, string>): Record<string, number> {
  const script = `
    const bodies = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
    const out = {};
    for (const [name, text] of Object.entries(bodies)) {
      gc(); gc();
      const before = process.memoryUsage().heapUsed;
      // Kept reachable, or the collector frees the value before it is measured.
      globalThis.kept = JSON.parse(text);
      gc(); gc();
      out[name] = process.memoryUsage().heapUsed - before;
      globalThis.kept = null;
    }
    process.stdout.write(JSON.stringify(out));
  `;
  const result = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=1024', '-e', script], { input: JSON.stringify(bodies), encoding: 'utf8', maxBuffer: 1 << 20 });
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Record<string, number>;
}

function estimate(text: string): number {
  const scanner = new JsonCostScanner();
  const bytes = Buffer.from(text);
  // In network-sized chunks, so strings and escapes straddle chunk boundaries.
  for (let i = 0; i < bytes.length; i += 16_384) scanner.feed(bytes.subarray(i, i + 16_384));
  expect(scanner.length).toBe(bytes.length);
  return scanner.parsedBytes;
}

const MiB = 1024 * 1024;
const crd = corpusObject('argocd-install.yaml', 'CustomResourceDefinition', 'applicationsets.argoproj.io');

describe('JsonCostScanner', () => {
  it('bounds the heap JSON.parse really takes, for hostile shapes and real reviews', () => {
    const n = 2 * MiB;
    const bodies: Record<string, string> = {
      'empty objects': `[${'{},'.repeat(n / 3)}{}]`,
      'empty arrays': `[${'[],'.repeat(n / 3)}[]]`,
      'unique keys': `{${Array.from({ length: n / 12 }, (_, i) => `"k${i}":1`).join(',')}}`,
      'small objects, unique keys': `[${Array.from({ length: n / 40 }, (_, i) => `{"a${i}":1,"b${i}":2,"c${i}":3}`).join(',')}]`,
      'one unique key per object': `[${Array.from({ length: n / 9 }, (_, i) => `{"${i.toString(36)}":1}`).join(',')}]`,
      'keys repeated past what is remembered': `[${Array.from({ length: n / 16 }, (_, i) => `{"k${i % 5000}":1}`).join(',')}]`,
      'short strings': `[${Array.from({ length: n / 10 }, (_, i) => `"s${i}"`).join(',')}]`,
      numbers: `[${Array.from({ length: n / 8 }, (_, i) => `${i}.5`).join(',')}]`,
      'deep nesting': `${'['.repeat(n / 2)}${']'.repeat(n / 2)}`,
      'escaped quotes in strings': JSON.stringify({ a: '"\\'.repeat(n / 4) }),
      'CRD UPDATE review': JSON.stringify(reviewFor(crd, { operation: 'UPDATE', oldObject: structuredClone(crd) })),
    };
    const actual = parsedHeapBytes(bodies);
    for (const [name, text] of Object.entries(bodies)) {
      expect(estimate(text), `${name}: estimate vs ${actual[name]} bytes measured`).toBeGreaterThanOrEqual(actual[name]!);
    }
    // Conservative, not absurd, for what the API server really sends (keys repeat).
    expect(estimate(bodies["CRD UPDATE review"]!)).toBeLessThan(4 * actual['CRD UPDATE review']!);
  }, 60_000);

  it('counts structure only outside strings, across chunk boundaries and escapes', () => {
    const structural = estimate('{"a":[1,2,{"b":"c"}]}');
    // Braces, brackets, colons and commas inside a string cost nothing beyond their bytes.
    const text = JSON.stringify({ a: '{[:,]}"\\{[' });
    const scanner = new JsonCostScanner();
    for (const byte of Buffer.from(text)) scanner.feed(Buffer.from([byte]));
    expect(scanner.parsedBytes).toBe(text.length + 72 + 112 + 24);
    expect(structural).toBeGreaterThan(Buffer.byteLength('{"a":[1,2,{"b":"c"}]}') + 3 * 64);
  });
});
