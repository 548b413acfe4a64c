import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { LevelWithSilent } from 'pino';
import { generateChecksumKey } from '../actions/checksum/key.js';
import { createRegistry } from '../actions/registry.js';
import { getHeapStatistics } from 'node:v8';
import { ClientNodeReader, DEFAULT_READ_CONNECTIONS } from '../kube/client-node-reader.js';
import { loadKubeConfig } from '../kube/kubeconfig.js';
import { UnavailableKubeReader, type KubeReader } from '../kube/reader.js';
import { DEFAULT_RULES_PATH } from '../rules/default-rules.js';
import { loadRuleSetFile } from '../rules/load.js';
import { createLogger, LOG_LEVELS } from '../server/logger.js';
import { DEFAULT_MAX_TIMEOUT_MS } from '../server/admission-endpoint.js';
import { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS, startServer, type RunningServer } from '../server/server.js';
import { writeFileNoFollow } from '../util/private-file.js';
import { DEFAULT_CHECKSUM_KEY_PATH, requireNoStampingWithoutKey, startupChecksumKey } from './checksum-key.js';
import { helpText, integerFlag, parseFlags, UsageError, type CliIo, type FlagSpecs } from './flags.js';

const flags: FlagSpecs = {
  port: { type: 'string', env: 'GITOPS_GUARD_PORT', default: '8443', description: 'HTTPS port' },
  host: { type: 'string', env: 'GITOPS_GUARD_HOST', description: 'Address to bind (all interfaces when unset)' },
  'tls-cert': { type: 'string', env: 'GITOPS_GUARD_TLS_CERT', default: 'certs/tls.crt', description: 'Serving certificate (PEM); re-read on change' },
  'tls-key': { type: 'string', env: 'GITOPS_GUARD_TLS_KEY', default: 'certs/tls.key', description: 'Serving key (PEM); re-read on change' },
  'client-ca': { type: 'string', env: 'GITOPS_GUARD_CLIENT_CA', description: 'CA bundle (PEM): /mutate and /validate answer only callers with a client certificate it issued (the API server); re-read on change' },
  rules: { type: 'string', env: 'GITOPS_GUARD_RULES', description: 'Rules file (YAML); re-read on change (default: the shipped default rules)' },
  mode: { type: 'string', env: 'GITOPS_GUARD_MODE', default: 'enforce', description: 'enforce: each rule\'s own mode; audit: every rule in audit mode' },
  kubeconfig: { type: 'string', env: 'GITOPS_GUARD_KUBECONFIG', description: 'kubeconfig file (default: in-cluster, then KUBECONFIG)' },
  'checksum-key': { type: 'string', env: 'GITOPS_GUARD_CHECKSUM_KEY', default: DEFAULT_CHECKSUM_KEY_PATH, description: 'HMAC key file for config checksums (create one with `gitops-guard checksum-key`); needed only when the rules stamp checksums' },
  'log-level': { type: 'string', env: 'GITOPS_GUARD_LOG_LEVEL', default: 'info', description: `Log level (${LOG_LEVELS.join(', ')})` },
  'reload-interval-ms': { type: 'string', env: 'GITOPS_GUARD_RELOAD_INTERVAL_MS', default: '2000', description: 'How often certificate and rules files are checked for changes' },
  'shutdown-delay-ms': { type: 'string', env: 'GITOPS_GUARD_SHUTDOWN_DELAY_MS', default: '5000', description: 'On SIGTERM, keep serving this long after readiness turns false, answering with Connection: close (time for endpoints to drop the pod)' },
  'drain-timeout-ms': { type: 'string', env: 'GITOPS_GUARD_DRAIN_TIMEOUT_MS', default: '10000', description: 'On SIGTERM, after the delay: longest wait for in-flight requests (exit code 1 if any had to be cut)' },
  'webhook-timeout-seconds': { type: 'string', env: 'GITOPS_GUARD_WEBHOOK_TIMEOUT_SECONDS', default: String(DEFAULT_MAX_TIMEOUT_MS / 1000), description: 'Largest timeoutSeconds of the webhook configurations: caps the API server\'s ?timeout=, and bounds the TLS handshake, headers and body' },
  'memory-budget-mib': { type: 'string', env: 'GITOPS_GUARD_MEMORY_BUDGET_MIB', description: 'Memory for admission requests in flight (bodies and parsed reviews, estimated); beyond it requests wait unread (default: a quarter of the V8 heap limit)' },
  'max-connections': { type: 'string', env: 'GITOPS_GUARD_MAX_CONNECTIONS', default: String(DEFAULT_MAX_CONNECTIONS), description: 'Open connections at most; further connections are closed at once' },
  'idle-timeout-ms': { type: 'string', env: 'GITOPS_GUARD_IDLE_TIMEOUT_MS', default: String(DEFAULT_IDLE_TIMEOUT_MS), description: 'Close a kept-alive connection after this long without a request' },
  'api-connections': { type: 'string', env: 'GITOPS_GUARD_API_CONNECTIONS', default: String(DEFAULT_READ_CONNECTIONS), description: 'Connections to the Kubernetes API for ConfigMap/Secret reads; more reads wait for one' },
  'dev-certs': { type: 'boolean', env: 'GITOPS_GUARD_DEV_CERTS', description: 'Generate development certificates and checksum key when missing' },
  help: { type: 'boolean', short: 'h', description: 'Show this help' },
};

export const serveHelp = helpText('gitops-guard serve [options]', 'Runs the admission webhook server (HTTPS).', flags);

export interface ServeConfig {
  port: number;
  host?: string;
  tlsCertPath: string;
  tlsKeyPath: string;
  clientCaPath?: string;
  rulesPath: string;
  mode: 'enforce' | 'audit';
  kubeconfigPath?: string;
  checksumKeyPath: string;
  logLevel: LevelWithSilent;
  reloadIntervalMs: number;
  shutdownDelayMs: number;
  drainTimeoutMs: number;
  webhookTimeoutMs: number;
  memoryBudgetBytes: number;
  maxConnections: number;
  idleTimeoutMs: number;
  apiConnections: number;
  devCerts: boolean;
}

/** The default memory budget: a quarter of the heap limit (NODE_OPTIONS=--max-old-space-size sets it). */
export function defaultMemoryBudgetBytes(heapLimitBytes = getHeapStatistics().heap_size_limit): number {
  return Math.floor(heapLimitBytes / 4);
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
    ...(values['client-ca'] !== undefined ? { clientCaPath: String(values['client-ca']) } : {}),
    rulesPath: (values.rules as string | undefined) ?? DEFAULT_RULES_PATH,
    mode,
    kubeconfigPath: values.kubeconfig as string | undefined,
    checksumKeyPath: String(values['checksum-key']),
    logLevel,
    reloadIntervalMs: integerFlag(values['reload-interval-ms'], 'reload-interval-ms', 50, 3_600_000),
    shutdownDelayMs: integerFlag(values['shutdown-delay-ms'], 'shutdown-delay-ms', 0, 600_000),
    drainTimeoutMs: integerFlag(values['drain-timeout-ms'], 'drain-timeout-ms', 0, 600_000),
    // The API server allows timeoutSeconds from 1 to 30.
    webhookTimeoutMs: integerFlag(values['webhook-timeout-seconds'], 'webhook-timeout-seconds', 1, 30) * 1000,
    memoryBudgetBytes:
      values['memory-budget-mib'] === undefined ? defaultMemoryBudgetBytes() : integerFlag(values['memory-budget-mib'], 'memory-budget-mib', 8, 65_536) * 1024 * 1024,
    maxConnections: integerFlag(values['max-connections'], 'max-connections', 1, 1_000_000),
    idleTimeoutMs: integerFlag(values['idle-timeout-ms'], 'idle-timeout-ms', 1000, 3_600_000),
    apiConnections: integerFlag(values['api-connections'], 'api-connections', 1, 10_000),
    devCerts: values['dev-certs'] === true,
  };
}

/**
 * `npm start` on a fresh machine: certificates for localhost and a checksum key, once. The
 * certificate code (node-forge) loads only here: a deployed server never generates certificates.
 */
async function ensureDevelopmentFiles(config: ServeConfig, io: CliIo): Promise<void> {
  if (!existsSync(config.tlsCertPath) || !existsSync(config.tlsKeyPath)) {
    const { generateCertificates, writeCertificates } = await import('../certs/generate.js');
    const certs = generateCertificates({ service: 'gitops-guard', namespace: 'gitops-guard', days: 30, development: true });
    const dir = dirname(config.tlsCertPath);
    const written = writeCertificates(dir, certs);
    if (written.certPath !== config.tlsCertPath || written.keyPath !== config.tlsKeyPath) {
      throw new UsageError('--dev-certs needs --tls-cert and --tls-key named tls.crt and tls.key in one directory');
    }
    io.stderr.write(`generated development certificates in ${dir} (CA: ${written.caPath})\n`);
  }
  if (!existsSync(config.checksumKeyPath)) {
    mkdirSync(dirname(config.checksumKeyPath), { recursive: true });
    writeFileNoFollow(config.checksumKeyPath, `${generateChecksumKey()}\n`, 0o600);
    io.stderr.write(`generated development checksum key ${config.checksumKeyPath}\n`);
  }
}

function kubeReaderFor(config: ServeConfig): { kube: KubeReader; description: string } {
  const kubeConfig = loadKubeConfig(config.kubeconfigPath);
  if (!kubeConfig) {
    return { kube: new UnavailableKubeReader('no Kubernetes API configured (not in a cluster, no kubeconfig)'), description: 'none' };
  }
  return { kube: new ClientNodeReader(kubeConfig, { maxConnections: config.apiConnections }), description: kubeConfig.getCurrentCluster()?.server ?? 'configured' };
}

/** Starts the server and wires SIGTERM/SIGINT to a graceful shutdown. Resolves once listening. */
export async function runServe(argv: string[], io: CliIo): Promise<RunningServer | number> {
  const config = parseServeConfig(argv);
  if (config === 'help') {
    io.stdout.write(serveHelp);
    return 0;
  }
  if (config.devCerts) await ensureDevelopmentFiles(config, io);
  // The key is needed only when the rules stamp checksums; startServer then checks certificates
  // and the rules (again: a later reload must not add a stamping rule a missing key cannot serve).
  const registry = createRegistry();
  const keyWarnings: string[] = [];
  const checksumKey = startupChecksumKey(config.checksumKeyPath, loadRuleSetFile(config.rulesPath, registry), (warning) => keyWarnings.push(warning));
  const logger = createLogger(config.logLevel);
  for (const warning of keyWarnings) logger.warn(warning);
  if (!checksumKey) logger.info({ checksumKey: config.checksumKeyPath }, 'no checksum key: the rules stamp no config checksums (a reload that adds a stamping rule is refused until restarted with a key)');
  const { kube, description } = kubeReaderFor(config);
  logger.info({ kubernetesApi: description }, 'kubernetes reads');
  const running = await startServer({
    port: config.port,
    host: config.host,
    tlsCertPath: config.tlsCertPath,
    tlsKeyPath: config.tlsKeyPath,
    clientCaPath: config.clientCaPath,
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
    maxTimeoutMs: config.webhookTimeoutMs,
    memoryBudgetBytes: config.memoryBudgetBytes,
    maxConnections: config.maxConnections,
    idleTimeoutMs: config.idleTimeoutMs,
  });
  const stop = (signal: string) => {
    logger.info({ signal }, 'signal received');
    // A drain that had to cut requests is a failed shutdown: say so in the exit code.
    void running.shutdown().then(({ cut }) => process.exit(cut > 0 ? 1 : 0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return running;
}
