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
});
