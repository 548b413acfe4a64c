import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ChecksumKeyError, generateChecksumKey, loadChecksumKey } from '../actions/checksum/key.js';
import type { RuleProblem } from '../rules/load.js';
import type { RuleSet } from '../rules/types.js';
import { helpText, parseFlags, UsageError, type CliIo, type FlagSpecs } from './flags.js';

/** Where `serve` and `controller` look for the key without `--checksum-key`. */
export const DEFAULT_CHECKSUM_KEY_PATH = 'certs/checksum.key';

const STAMPING_ACTION = 'stampConfigChecksum';

const flags: FlagSpecs = {
  out: { type: 'string', default: DEFAULT_CHECKSUM_KEY_PATH, description: 'File to create (mode 0600; never overwritten), or - for standard output' },
  help: { type: 'boolean', short: 'h', description: 'Show this help' },
};

export const checksumKeyHelp = helpText(
  'gitops-guard checksum-key [--out FILE]',
  'Creates the HMAC key for config checksums: 64 hex characters (256 random bits), the format\n' +
    '`serve --checksum-key` and `controller --checksum-key` read. Create it once per cluster and give\n' +
    'every webhook replica and the controller the same key: a new key changes every checksum and\n' +
    'rolls every stamped workload once, so an existing file is never replaced.',
  flags,
);

/** How to get a key, for messages: the command that creates one and the flag that passes it. */
export function createKeyHint(path: string): string {
  return `create one with: gitops-guard checksum-key --out ${path}, then pass it with --checksum-key ${path} (env GITOPS_GUARD_CHECKSUM_KEY)`;
}

/** `gitops-guard checksum-key`: writes a new key, refusing to replace one. */
export function runChecksumKey(argv: string[], io: CliIo): number {
  const { values, positionals } = parseFlags(argv, flags, {});
  if (values.help) {
    io.stdout.write(checksumKeyHelp);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const out = String(values.out);
  if (out === '') throw new UsageError('--out must name a file (or - for standard output)');
  const key = `${generateChecksumKey()}\n`;
  if (out === '-') {
    io.stdout.write(key);
    return 0;
  }
  mkdirSync(dirname(out), { recursive: true, mode: 0o700 });
  try {
    // Exclusive create: an existing key (or anything else at that path, a symlink included) is kept.
    writeFileSync(out, key, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'write error';
    if (code === 'EEXIST') {
      throw new ChecksumKeyError(`${out} already exists and is kept: a new key changes every checksum and rolls every stamped workload; remove the file first to replace it on purpose`);
    }
    throw new ChecksumKeyError(`cannot write checksum key file ${out}: ${code}`);
  }
  io.stderr.write(`wrote checksum key ${out}; use it for every webhook replica and the controller: --checksum-key ${out}\n`);
  return 0;
}

/** The names of the rules that stamp checksums (and so need the key), in any mode. */
export function stampingRules(ruleSet: RuleSet): string[] {
  return ruleSet.rules.filter((rule) => rule.action.type === STAMPING_ACTION).map((rule) => rule.name);
}

/**
 * The checksum key `serve` and `controller` start with. Needed only when the rules stamp
 * checksums: then a missing file is an error that says how to create one. Without a stamping
 * rule, an existing file is still read (a rules reload that adds one can use it) and a missing
 * one is fine. Never generated here: two replicas with different keys would roll every workload
 * on each apply.
 */
export function startupChecksumKey(path: string, ruleSet: RuleSet, warn?: (message: string) => void): Buffer | undefined {
  const stamping = stampingRules(ruleSet);
  if (!existsSync(path)) {
    if (stamping.length === 0) return undefined;
    throw new ChecksumKeyError(
      `cannot read checksum key file ${path}: ENOENT; ` +
        `${stamping.length === 1 ? `rule ${stamping[0]} stamps` : `rules ${stamping.join(', ')} stamp`} config checksums, which needs a key shared by every webhook replica and the controller; ` +
        createKeyHint(path),
    );
  }
  return loadChecksumKey(path, warn);
}

/**
 * A rules check for a process that runs without a key: rule sets that stamp checksums are
 * refused (at a reload, the last good rules stay in use) with a message that says what to do.
 */
export function requireNoStampingWithoutKey(path: string): (ruleSet: RuleSet) => RuleProblem[] {
  return (ruleSet) =>
    ruleSet.rules.flatMap((rule, index) =>
      rule.action.type === STAMPING_ACTION
        ? [
            {
              path: `/rules/${index}/action/type`,
              message: `${STAMPING_ACTION} needs a checksum key, and this process started without one (${path} did not exist): ${createKeyHint(path)}, and restart`,
            },
          ]
        : [],
    );
}
