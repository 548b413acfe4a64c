import { describe, expect, it } from 'vitest';
import { capturingLogger } from '../../test/support/app.js';

describe('createLogger', () => {
  it('redacts ConfigMap/Secret payloads wherever object bodies are logged', () => {
    const { logger, lines } = capturingLogger('debug');
    logger.debug({ object: { kind: 'ConfigMap', data: { password: 'hunter2' }, binaryData: { b: 'aHVudGVyMg==' } }, oldObject: { stringData: { p: 'hunter2' } } }, 'body');
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain('hunter2');
    expect(lines[0]).not.toContain('aHVudGVyMg==');
    expect(JSON.parse(lines[0]!)).toMatchObject({ object: { kind: 'ConfigMap', data: '[redacted]', binaryData: '[redacted]' }, oldObject: { stringData: '[redacted]' }, level: 'debug' });
  });

  it('stamps every line with the ISO time of its millisecond, as pino\'s isoTime does', async () => {
    const { logger, lines } = capturingLogger('info');
    const before = Date.now();
    logger.info('one');
    logger.info('two');
    await new Promise((resolve) => setTimeout(resolve, 5));
    logger.info('three');
    const after = Date.now();
    const times = lines.map((line) => (JSON.parse(line) as { time: string }).time);
    expect(times).toHaveLength(3);
    for (const time of times) {
      expect(time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      expect(Date.parse(time)).toBeGreaterThanOrEqual(before);
      expect(Date.parse(time)).toBeLessThanOrEqual(after);
    }
    // A later millisecond is a new time, not the one remembered.
    expect(Date.parse(times[2]!)).toBeGreaterThanOrEqual(Date.parse(times[0]!) + 5);
  });
});
