import { UsageError, type CliIo } from './flags.js';

/** A one-line problem that stops a command before it starts (exit code 2). */
export class SetupError extends Error {
  override readonly name = 'SetupError';
}

type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * Runs one set-up step (load the rules, the key, the kubeconfig). The errors listed in `expected`
 * are the user's to fix and become SetupError with their message; anything else is a bug and
 * keeps its stack.
 */
export function setupStep<T>(step: () => T, ...expected: ErrorClass[]): T {
  try {
    return step();
  } catch (error) {
    if (expected.some((kind) => error instanceof kind)) throw new SetupError((error as Error).message);
    throw error;
  }
}

/**
 * A command's flags, or the exit code it ends with before doing anything: 0 after printing its
 * help, 2 after a usage error (one line on stderr).
 */
export function parseCommandArgs<T extends object>(command: string, argv: string[], parse: (argv: string[]) => T | 'help', help: string, io: CliIo): T | number {
  let config: T | 'help';
  try {
    config = parse(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`gitops-guard ${command}: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (config === 'help') {
    io.stdout.write(help);
    return 0;
  }
  return config;
}

/** Runs a command's set-up: its value, or exit code 2 after writing the SetupError's one line on stderr. */
export async function runSetup<T extends object>(command: string, io: CliIo, setup: () => T | Promise<T>): Promise<T | number> {
  try {
    return await setup();
  } catch (error) {
    if (error instanceof SetupError) {
      io.stderr.write(`gitops-guard ${command}: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}
