import { describe, expect, it } from 'vitest';
import { admissionTiming, answerReserveMs, parseGoDuration } from './deadline.js';

describe('admission deadline', () => {
  it('reads the Go durations the API server puts on the URL', () => {
    expect(parseGoDuration('5s')).toBe(5000);
    expect(parseGoDuration('1m0s')).toBe(60_000);
    expect(parseGoDuration('2.5s')).toBe(2500);
    expect(parseGoDuration('300ms')).toBe(300);
    expect(parseGoDuration('1h2m3s')).toBe(3_723_000);
    for (const bad of ['', '5', 's', '5 s', '-5s', '5sx', 'NaNs', '1e3s', 'x'.repeat(50)]) expect(parseGoDuration(bad), bad).toBeNull();
  });

  it('derives the deadline from ?timeout=, capped by the largest webhook timeout, less the time to answer', () => {
    expect(admissionTiming('/mutate?timeout=3s', 5000)).toEqual({ timeoutMs: 3000, budgetMs: 2700, fromQuery: true });
    expect(admissionTiming('/mutate?timeout=5s', 5000)).toEqual({ timeoutMs: 5000, budgetMs: 4500, fromQuery: true });
    // A longer timeout than any webhook configures cannot be the API server's: capped.
    expect(admissionTiming('/validate?timeout=30s', 5000)).toEqual({ timeoutMs: 5000, budgetMs: 4500, fromQuery: true });
    expect(admissionTiming('/validate?x=1&timeout=1s', 5000)).toEqual({ timeoutMs: 1000, budgetMs: 900, fromQuery: true });
    // Missing or unusable: the cap.
    for (const url of ['/mutate', '/mutate?timeout=', '/mutate?timeout=soon', '/mutate?timeout=0s', '/mutate?timeout=%ZZ', undefined]) {
      expect(admissionTiming(url, 5000), String(url)).toEqual({ timeoutMs: 5000, budgetMs: 4500, fromQuery: false });
    }
  });

  it('keeps back 10% of the timeout (100-500 ms) for the answer', () => {
    expect(answerReserveMs(1000)).toBe(100);
    expect(answerReserveMs(500)).toBe(100);
    expect(answerReserveMs(3000)).toBe(300);
    expect(answerReserveMs(30_000)).toBe(500);
  });
});
