import { readFileSync } from 'node:fs';
import { RuleSetError } from '../rules/load.js';
import { CredentialsError } from '../server/tls.js';
import { runAudit } from './audit.js';
import { runCerts, certsHelp } from './certs.js';
import { UsageError, type CliIo } from './flags.js';
import { runServe, serveHelp } from './serve.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const HELP = `gitops-guard ${VERSION}: a Kubernetes admission webhook that keeps GitOps clusters honest.

Usage: gitops-guard <command> [options]

Commands:
  serve      Run the admission webhook server (HTTPS)
  certs      Generate a CA and serving certificate for the webhook Service
  audit      Dry-run the rules over rendered manifests (for CI)

Run "gitops-guard <command> --help" for a command's options.

${serveHelp}
${certsHelp}`;

/** Returns the exit code, or null when a long-running command keeps the process alive. */
export async function main(argv: string[], io: CliIo): Promise<number | null> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve': {
        const result = await runServe(rest, io);
        return typeof result === 'number' ? result : null;
      }
      case 'controller': return await import('./controller.js').then(async ({ runController }) => { const result = await runController(rest, io); return typeof result === 'number' ? result : null; });
      case 'certs':
        return runCerts(rest, io);
      case 'audit':
        return runAudit(rest, io);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        io.stdout.write(HELP);
        return command === undefined ? 2 : 0;
      case '--version':
        io.stdout.write(`${VERSION}\n`);
        return 0;
      default:
        throw new UsageError(`unknown command "${command}" (expected serve, certs or audit)`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`gitops-guard: ${error.message}\n`);
      return 2;
    }
    if (error instanceof RuleSetError || error instanceof CredentialsError || isOneLineStartupError(error)) {
      for (const line of error.message.split('; ')) io.stderr.write(`gitops-guard: ${line}\n`);
      return 1;
    }
    throw error;
  }
}

function isOneLineStartupError(error: unknown): error is Error {
  return error instanceof Error && ['ChecksumKeyError', 'KubeConfigError'].includes(error.name) || (error as NodeJS.ErrnoException)?.code === 'EADDRINUSE';
}

