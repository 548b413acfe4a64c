import { describe, expect, it } from 'vitest';
import { parseOptions } from '../bench/options.js';

/** The bench's command line: bad values get a clear error instead of a run that cannot finish. */
describe('bench options', () => {
  it.each([
    [['--log-level', 'warn'], /--log-level must be info, debug or trace/],
    [['--log-level', 'silent'], /--log-level must be info, debug or trace/],
    [['--scenarios', 'owner,nope'], /unknown scenario "nope"/],
    [['--concurrency', '0'], /--concurrency must be a number >= 1/],
    [['--duration-s', 'soon'], /--duration-s must be a number >= 0.1/],
  ])('%j is refused', (argv, message) => {
    expect(() => parseOptions(argv)).toThrow(message);
  });

  it.each(['info', 'debug', 'trace'])('--log-level %s is taken (the start-up line is written)', (level) => {
    expect(parseOptions(['--log-level', level])).toMatchObject({ logLevel: level });
  });

  it('defaults to info, as deployed', () => {
    expect(parseOptions([])).toMatchObject({ logLevel: 'info', baseline: true, pin: true });
  });
});
