import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { LevelWithSilent } from 'pino';
import { generateChecksumKey } from '../actions/checksum/key.js';
import { createRegistry } from '../actions/registry.js';
import { generateCertificates, writeCertificates } from '../certs/generate.js';
import { ClientNodeReader } from '../kube/client-node-reader.js';
import { loadKubeConfig } from '../kube/kubeconfig.js';
import { UnavailableKubeReader, type KubeReader } from '../kube/reader.js';
import { DEFAULT_RULES_PATH } from '../rules/default-rules.js';
import { loadRuleSetFile } from '../rules/load.js';
import { createLogger, LOG_LEVELS } from '../server/logger.js';
import { startServer, type RunningServer } from '../server/server.js';
import { DEFAULT_CHECKSUM_KEY_PATH, requireNoStampingWithoutKey, startupChecksumKey } from './checksum-key.js';
import { helpText, integerFlag, parseFlags, UsageError, type CliIo, type FlagSpecs } from './flags.js';

const flags: FlagSpecs = {
  port: { type: 'string', env: 'GITOPS_GUARD_PORT', default: '8443', description: 'HTTPS port' },
  host: { type: 'string', env: 'GITOPS_GUARD_HOST', description: 'Address to bind (all interfaces when unset)' },
  'tls-cert': { type: 'string', env: 'GITOPS_GUARD_TLS_CERT', default: 'certs/tls.crt', description: 'Serving certificate (PEM); re-read on change' },
  'tls-key': { type: 'string', env: 'GITOPS_GUARD_TLS_KEY', default: 'certs/tls.key', description: 'Serving key (PEM); re-read on change' },
  rules: { type: 'string', env: 'GITOPS_GUARD_RULES', description: 'Rules file (YAML); re-read on change (default: the shipped default rules)' },
  mode: { type: 'string', env: 'GITOPS_GUARD_MODE', default: 'enforce', description: 'enforce: each rule\'s own mode; audit: every rule in audit mode' },
  kubeconfig: { type: 'string', env: 'GITOPS_GUARD_KUBECONFIG', description: 'kubeconfig file (default: in-cluster, then KUBECONFIG)' },
  'checksum-key': { type: 'string', env: 'GITOPS_GUARD_CHECKSUM_KEY', default: DEFAULT_CHECKSUM_KEY_PATH, description: 'HMAC key file for config checksums (create one with `gitops-guard checksum-key`); needed only when the rules stamp checksums' },
  'log-level': { type: 'string', env: 'GITOPS_GUARD_LOG_LEVEL', default: 'info', description: `Log level (${LOG_LEVELS.join(', ')})` },
  'reload-interval-ms': { type: 'string', env: 'GITOPS_GUARD_RELOAD_INTERVAL_MS', default: '2000', description: 'How often certificate and rules files are checked for changes' },
  'shutdown-delay-ms': { type: 'string', env: 'GITOPS_GUARD_SHUTDOWN_DELAY_MS', default: '0', description: 'On SIGTERM, keep serving this long after readiness turns false' },
  'drain-timeout-ms': { type: 'string', env: 'GITOPS_GUARD_DRAIN_TIMEOUT_MS', default: '10000', description: 'On SIGTERM, longest wait for in-flight requests' },
  'dev-certs': { type: 'boolean', env: 'GITOPS_GUARD_DEV_CERTS', description: 'Generate development certificates and checksum key when missing' },
  help: { type: 'boolean', short: 'h', description: 'Show this help' },
};

export const serveHelp = helpText('gitops-guard serve [options]', 'Runs the admission webhook server (HTTPS).', flags);

export interface ServeConfig {
  port: number;
  host?: string;
  tlsCertPath: string;
  tlsKeyPath: string;
  rulesPath: string;
  mode: 'enforce' | 'audit';
  kubeconfigPath?: string;
  checksumKeyPath: string;
  logLevel: LevelWithSilent;
  reloadIntervalMs: number;
  shutdownDelayMs: number;
  drainTimeoutMs: number;
  devCerts: boolean;
}

export function parseServeConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeConfig | 'help' {
  const { values, positionals } = parseFlags(argv, flags, env);
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const mode = String(values.mode);
  if (mode !== 'enforce' && mode !== 'audit') throw new UsageError(`--mode must be enforce or audit, got "${mode}"`);
  const logLevel = String(values['log-level']) as LevelWithSilent;
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  return {
    port: integerFlag(values.port, 'port', 0, 65535),
    host: values.host as string | undefined,
    tlsCertPath: String(values['tls-cert']),
    tlsKeyPath: String(values['tls-key']),
    rulesPath: (values.rules as string | undefined) ?? DEFAULT_RULES_PATH,
    mode,
    kubeconfigPath: values.kubeconfig as string | undefined,
    checksumKeyPath: String(values['checksum-key']),
    logLevel,
    reloadIntervalMs: integerFlag(values['reload-interval-ms'], 'reload-interval-ms', 50, 3_600_000),
    shutdownDelayMs: integerFlag(values['shutdown-delay-ms'], 'shutdown-delay-ms', 0, 600_000),
    drainTimeoutMs: integerFlag(values['drain-timeout-ms'], 'drain-timeout-ms', 0, 600_000),
    devCerts: values['dev-certs'] === true,
  };
}

/** `npm start` on a fresh machine: certificates for localhost and a checksum key, once. */
function ensureDevelopmentFiles(config: ServeConfig, io: CliIo): void {
  if (!existsSync(config.tlsCertPath) || !existsSync(config.tlsKeyPath)) {
    const certs = generateCertificates({ service: 'gitops-guard', namespace: 'gitops-guard', days: 30, extraDnsNames: ['localhost'], extraIps: ['127.0.0.1'] });
    const dir = dirname(config.tlsCertPath);
    const written = writeCertificates(dir, certs);
    if (written.certPath !== config.tlsCertPath || written.keyPath !== config.tlsKeyPath) {
      throw new UsageError('--dev-certs needs --tls-cert and --tls-key named tls.crt and tls.key in one directory');
    }
    io.stderr.write(`generated development certificates in ${dir} (CA: ${written.caPath})\n`);
  }
  if (!existsSync(config.checksumKeyPath)) {
    mkdirSync(dirname(config.checksumKeyPath), { recursive: true });
    writeFileSync(config.checksumKeyPath, `${generateChecksumKey()}\n`, { mode: 0o600 });
    io.stderr.write(`generated development checksum key ${config.checksumKeyPath}\n`);
  }
}

function kubeReaderFor(config: ServeConfig): { kube: KubeReader; description: string } {
  const kubeConfig = loadKubeConfig(config.kubeconfigPath);
  if (!kubeConfig) {
    return { kube: new UnavailableKubeReader('no Kubernetes API configured (not in a cluster, no kubeconfig)'), description: 'none' };
  }
  return { kube: new ClientNodeReader(kubeConfig), description: kubeConfig.getCurrentCluster()?.server ?? 'configured' };
}

/** Starts the server and wires SIGTERM/SIGINT to a graceful shutdown. Resolves once listening. */
export async function runServe(argv: string[], io: CliIo): Promise<RunningServer | number> {
  const config = parseServeConfig(argv);
  if (config === 'help') {
    io.stdout.write(serveHelp);
    return 0;
  }
  if (config.devCerts) ensureDevelopmentFiles(config, io);
  // The key is needed only when the rules stamp checksums; startServer then checks certificates
  // and the rules (again: a later reload must not add a stamping rule a missing key cannot serve).
  const registry = createRegistry();
  const checksumKey = startupChecksumKey(config.checksumKeyPath, loadRuleSetFile(config.rulesPath, registry));
  const logger = createLogger(config.logLevel);
  if (!checksumKey) logger.info({ checksumKey: config.checksumKeyPath }, 'no checksum key: the rules stamp no config checksums (a reload that adds a stamping rule is refused until restarted with a key)');
  const { kube, description } = kubeReaderFor(config);
  logger.info({ kubernetesApi: description }, 'kubernetes reads');
  const running = await startServer({
    port: config.port,
    host: config.host,
    tlsCertPath: config.tlsCertPath,
    tlsKeyPath: config.tlsKeyPath,
    rulesPath: config.rulesPath,
    modeOverride: config.mode === 'audit' ? 'audit' : undefined,
    kube,
    registry,
    settings: { checksumKey },
    checkRules: checksumKey ? undefined : requireNoStampingWithoutKey(config.checksumKeyPath),
    logger,
    reloadIntervalMs: config.reloadIntervalMs,
    shutdownDelayMs: config.shutdownDelayMs,
    drainTimeoutMs: config.drainTimeoutMs,
  });
  const stop = (signal: string) => {
    logger.info({ signal }, 'signal received');
    void running.shutdown().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return running;
}
