import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { UsageError, type CliIo } from './flags.js';
import { parseCommandArgs, runSetup, SetupError, setupStep } from './setup.js';

class KeyProblem extends Error {}

function io(): CliIo & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return { stdin: new PassThrough(), stdout, stderr, out: () => out, err: () => err };
}

describe('parseCommandArgs', () => {
  it.each([
    { argv: ['--help'], parse: () => 'help' as const, code: 0, out: 'HELP', err: '' },
    { argv: ['--bad'], parse: () => { throw new UsageError('unknown flag --bad'); }, code: 2, out: '', err: 'gitops-guard scan: unknown flag --bad\n' },
  ])('ends with exit code $code for $argv', async ({ argv, parse, code, out, err }) => {
    const streams = io();
    expect(parseCommandArgs('scan', argv, parse, 'HELP', streams)).toBe(code);
    await new Promise((resolve) => setImmediate(resolve));
    expect(streams.out()).toBe(out);
    expect(streams.err()).toBe(err);
  });

  it('returns the parsed config, and lets a bug through with its stack', () => {
    expect(parseCommandArgs('scan', [], () => ({ format: 'json' }), 'HELP', io())).toEqual({ format: 'json' });
    expect(() => parseCommandArgs('scan', [], () => { throw new TypeError('bug'); }, 'HELP', io())).toThrow(TypeError);
  });
});

describe('setupStep and runSetup', () => {
  it('turns an expected error into one line on stderr and exit code 2', async () => {
    const streams = io();
    const code = await runSetup('audit', streams, () => setupStep(() => { throw new KeyProblem('key file too short'); }, KeyProblem));
    expect(code).toBe(2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(streams.err()).toBe('gitops-guard audit: key file too short\n');
  });

  it('returns the set-up value, and rethrows what is not the user\'s to fix', async () => {
    expect(await runSetup('audit', io(), async () => ({ ok: true }))).toEqual({ ok: true });
    expect(() => setupStep(() => { throw new RangeError('bug'); }, KeyProblem)).toThrow(RangeError);
    await expect(runSetup('audit', io(), () => { throw new RangeError('bug'); })).rejects.toThrow(RangeError);
    expect(setupStep(() => 7, KeyProblem)).toBe(7);
    expect(new SetupError('x').name).toBe('SetupError');
  });
});
