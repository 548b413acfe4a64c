import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { toKubeApiError } from './api-error.js';
import { configContent, decodeConfigData } from './config-data.js';
import { failureReason, KubeApiError, KubeReadError, statusReason } from './errors.js';

describe('statusReason: the one Status parser', () => {
  it.each<[string, unknown, string | undefined]>([
    ['a Status as text', '{"kind":"Status","reason":"Forbidden","message":"secrets \\"db\\" is forbidden: top-secret"}', 'Forbidden'],
    ['a parsed Status', { kind: 'Status', reason: 'Expired', code: 410 }, 'Expired'],
    ['a body that is not a Status', { kind: 'ConfigMap', reason: 'Forbidden' }, undefined],
    ['text that is not JSON', '<html>502 Bad Gateway</html>', undefined],
    ['a reason that is not one word (may quote data)', { kind: 'Status', reason: 'Forbidden: password=hunter2' }, undefined],
    ['an overlong reason', { kind: 'Status', reason: 'A'.repeat(41) }, undefined],
    ['nothing', undefined, undefined],
  ])('%s', (_, body, reason) => {
    expect(statusReason(body)).toBe(reason);
  });
});

describe('KubeApiError: the one error type', () => {
  it.each([
    [401, 'unauthorized'],
    [403, 'forbidden'],
    [404, 'not-found'],
    [409, 'conflict'],
    [408, 'timeout'],
    [504, 'timeout'],
    [410, 'server'],
    [500, 'server'],
    [503, 'server'],
  ] as const)('HTTP %i is %s', (status, reason) => {
    expect(failureReason(status)).toBe(reason);
    expect(KubeApiError.fromStatus(status)).toMatchObject({ reason, httpStatus: status, detail: `HTTP ${status}`, message: `HTTP ${status}` });
  });

  it('names the status and its Status reason, and a read names the object, never body text', () => {
    expect(KubeApiError.fromStatus(403, 'Forbidden').message).toBe('HTTP 403 Forbidden');
    const read = new KubeReadError({ kind: 'Secret', namespace: 'shop', name: 'db' }, 'forbidden', 'Forbidden', 403);
    expect(read).toBeInstanceOf(KubeApiError);
    expect(read.message).toBe('Secret shop/db: forbidden (HTTP 403): Forbidden');
  });
});

describe('toKubeApiError: client-node failures translated at the adapter boundary', () => {
  it.each<[string, unknown, Partial<KubeApiError>, AbortSignal?]>([
    ['an ApiException with a Status body', new ApiException(409, 'Conflict', { kind: 'Status', reason: 'AlreadyExists', message: 'leases "x" already exists' }, {}), { reason: 'conflict', httpStatus: 409, message: 'HTTP 409 AlreadyExists' }],
    ['an ApiException with a body that is not a Status', new ApiException(502, 'Bad Gateway', '<html>secret-ish</html>', {}), { reason: 'server', httpStatus: 502, message: 'HTTP 502' }],
    ["a Watch's error", Object.assign(new Error('Forbidden'), { statusCode: 403 }), { reason: 'forbidden', httpStatus: 403, message: 'HTTP 403' }],
    ['a transport failure', Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { code: 'ECONNREFUSED' }), { reason: 'unavailable', message: 'ECONNREFUSED' }],
    ['a request its signal aborted', new Error('The operation was aborted'), { reason: 'timeout', message: 'request aborted' }, AbortSignal.abort()],
    ['anything else (its class name only)', new TypeError('body: {"password":"hunter2"}'), { reason: 'server', message: 'unexpected TypeError' }],
  ])('%s', (_, error, expected, signal) => {
    const translated = toKubeApiError(error, signal);
    expect(translated).toBeInstanceOf(KubeApiError);
    expect(translated).toMatchObject(expected);
    expect(translated.message).not.toMatch(/secret|hunter2|already exists|10\.0\.0\.1/);
  });

  it('passes a KubeApiError through unchanged', () => {
    const error = KubeApiError.fromStatus(404);
    expect(toKubeApiError(error)).toBe(error);
  });
});

describe('ConfigMap and Secret data: one decoder for the API and for manifests', () => {
  const b64 = (text: string) => Buffer.from(text).toString('base64');

  it('accepts base64 broken over lines (a YAML block scalar in a manifest)', () => {
    const wrapped = `${b64('x'.repeat(60)).slice(0, 40)}\n${b64('x'.repeat(60)).slice(40)}`;
    expect(decodeConfigData('Secret', { data: { k: wrapped } }).content.get('k')?.toString()).toBe('x'.repeat(60));
  });

  it('refuses a ConfigMap key in both data and binaryData, taking neither value', () => {
    const { content, problems } = decodeConfigData('ConfigMap', { data: { a: 'text', b: 'kept' }, binaryData: { a: b64('bytes') } });
    expect([...content.keys()]).toEqual(['b']);
    expect(problems).toEqual(['binaryData.a: key in both data and binaryData']);
  });

  it('an answer from the API with any problem is a read failure, naming the field and key only', () => {
    const ref = { kind: 'Secret' as const, namespace: 'shop', name: 'db' };
    let error: unknown;
    try {
      configContent(ref, { data: { password: 'not base64 hunter2!' } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KubeReadError);
    expect(error).toMatchObject({ reason: 'server', message: 'Secret shop/db: server: malformed data: data.password is not valid base64' });
    expect(String(error)).not.toContain('hunter2');
  });
});
