import { readFileSync } from 'node:fs';
import { ConfigurationError } from '../util/errors.js';
import { UsageError, type CliIo } from './flags.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const HELP = `gitops-guard ${VERSION}: a Kubernetes admission webhook that keeps GitOps clusters honest.

Usage: gitops-guard <command> [options]

Commands:
  serve         Run the admission webhook server (HTTPS)
  certs         Generate a CA and serving certificate for the webhook Service
  checksum-key  Create the HMAC key for config checksums (once per cluster)
  audit         Dry-run the rules over rendered manifests (for CI)
  scan          Report shared objects, owner conflicts, stale workloads and rule verdicts of a live cluster

  controller    Roll workloads whose consumed ConfigMaps/Secrets changed (leader-elected)

Run "gitops-guard <command> --help" for a command's options and their environment variables.
`;

/** Returns the exit code, or null when a long-running command keeps the process alive. */
export async function main(argv: string[], io: CliIo): Promise<number | null> {
  const [command, ...rest] = argv;
  try {
    // Commands load lazily: `audit` in CI should not pay for the Kubernetes client the server needs.
    switch (command) {
      case 'serve': {
        const result = await (await import('./serve.js')).runServe(rest, io);
        return typeof result === 'number' ? result : null;
      }
      case 'controller': {
        const result = await (await import('./controller.js')).runController(rest, io);
        return typeof result === 'number' ? result : null;
      }
      case 'certs':
        return (await import('./certs.js')).runCerts(rest, io);
      case 'checksum-key':
        return (await import('./checksum-key.js')).runChecksumKey(rest, io);
      case 'audit':
        return (await import('./audit.js')).runAudit(rest, io);
      case 'scan':
        return (await import('./scan.js')).runScanCommand(rest, io);
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
        throw new UsageError(`unknown command "${command}" (expected serve, certs, checksum-key, audit, scan or controller)`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`gitops-guard: ${error.message}\n`);
      return 2;
    }
    // Rules, certificates, the checksum key, a kubeconfig, a file it will not write, a busy port.
    if (error instanceof ConfigurationError || (error as NodeJS.ErrnoException | null)?.code === 'EADDRINUSE') {
      for (const line of (error as Error).message.split('; ')) io.stderr.write(`gitops-guard: ${line}\n`);
      return 1;
    }
    throw error;
  }
}

