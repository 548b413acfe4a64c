import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { LevelWithSilent } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { createRegistry } from '../actions/registry.js';
import { CONTROLLER_DEFAULTS, RolloutController } from '../controller/controller.js';
import { readinessReport } from '../controller/kinds.js';
import { KubeConfigError, loadKubeConfig } from '../kube/kubeconfig.js';
import { loadRuleSetFile } from '../rules/load.js';
import { RuleStore } from '../rules/store.js';
import { createLogger, LOG_LEVELS } from '../server/logger.js';
import { watchFiles } from '../util/file-watch.js';
import { DEFAULT_CHECKSUM_KEY_PATH, requireNoStampingWithoutKey, startupChecksumKey } from './checksum-key.js';
import { helpText, integerFlag, parseFlags, UsageError, type CliIo, type FlagSpecs } from './flags.js';
import { DEFAULT_RULES_PATH } from '../rules/default-rules.js';
import { REPORTS_SETTINGS, type ReportsSetting } from '../scan/report-writer.js';

const flags: FlagSpecs = {
  kubeconfig: { type: 'string', env: 'GITOPS_GUARD_KUBECONFIG', description: 'kubeconfig file (default: in-cluster, then KUBECONFIG)' },
  namespaces: { type: 'string', env: 'GITOPS_GUARD_NAMESPACES', description: 'Comma-separated namespaces to watch (default: all namespaces)' },
  rules: { type: 'string', env: 'GITOPS_GUARD_RULES', description: 'Rules file (YAML); the stamping rule selects the workloads; re-read on change (default: the shipped default rules)' },
  'checksum-key': { type: 'string', env: 'GITOPS_GUARD_CHECKSUM_KEY', default: DEFAULT_CHECKSUM_KEY_PATH, description: 'HMAC key file for config checksums: the webhook\'s key (needed only when the rules stamp checksums)' },
  'resync-interval-ms': { type: 'string', env: 'GITOPS_GUARD_RESYNC_INTERVAL_MS', default: String(CONTROLLER_DEFAULTS.resyncIntervalMs), description: 'How often the leader compares every workload again (0: never)' },
  'coalesce-ms': { type: 'string', env: 'GITOPS_GUARD_COALESCE_MS', default: String(CONTROLLER_DEFAULTS.coalesceMs), description: 'Quiet period that merges a burst of changes into one rollout' },
  'max-delay-ms': { type: 'string', env: 'GITOPS_GUARD_MAX_DELAY_MS', default: String(CONTROLLER_DEFAULTS.maxDelayMs), description: 'Longest wait after the first change of a burst' },
  concurrency: { type: 'string', env: 'GITOPS_GUARD_CONCURRENCY', default: String(CONTROLLER_DEFAULTS.concurrency), description: 'Workloads reconciled at the same time' },
  'lease-name': { type: 'string', env: 'GITOPS_GUARD_LEASE_NAME', default: 'gitops-guard-controller', description: 'Leader-election Lease name' },
  'lease-namespace': { type: 'string', env: 'POD_NAMESPACE', default: 'gitops-guard', description: 'Leader-election Lease namespace' },
  'lease-duration-ms': { type: 'string', env: 'GITOPS_GUARD_LEASE_DURATION_MS', default: String(CONTROLLER_DEFAULTS.leaseDurationMs), description: 'How long a lease holds without renewal' },
  'renew-deadline-ms': { type: 'string', env: 'GITOPS_GUARD_RENEW_DEADLINE_MS', default: String(CONTROLLER_DEFAULTS.renewDeadlineMs), description: 'The leader stops acting when it has not renewed for this long' },
  'retry-period-ms': { type: 'string', env: 'GITOPS_GUARD_RETRY_PERIOD_MS', default: String(CONTROLLER_DEFAULTS.retryPeriodMs), description: 'Time between lease acquire/renew attempts' },
  identity: { type: 'string', env: 'HOSTNAME', description: 'This replica\'s identity in the Lease and in Events (default: the host name)' },
  username: { type: 'string', env: 'GITOPS_GUARD_CONTROLLER_USERNAME', default: CONTROLLER_DEFAULTS.username, description: 'User the stamping rule is matched as (rules with userInfo)' },
  mode: { type: 'string', env: 'GITOPS_GUARD_MODE', default: 'enforce', description: 'enforce: patch; audit: compute and log what would be patched, never write (match the webhook\'s mode)' },
  'stamp-unstamped': { type: 'boolean', env: 'GITOPS_GUARD_STAMP_UNSTAMPED', description: 'Also stamp selected workloads that carry no checksum yet (rolls each of them once)' },
  rollouts: { type: 'string', env: 'GITOPS_GUARD_ROLLOUTS', default: 'auto', description: 'Watch Argo Rollouts: auto (while discovery lists rollouts in argoproj.io/v1alpha1; never blocks readiness), true (required) or false' },
  'discovery-interval-ms': { type: 'string', env: 'GITOPS_GUARD_DISCOVERY_INTERVAL_MS', default: String(CONTROLLER_DEFAULTS.discoveryIntervalMs), description: 'How often discovery is asked again which workload kinds are served, to watch kinds installed (or stop watching kinds removed) at run time (0: only at start-up)' },
  'scan-interval-ms': { type: 'string', env: 'GITOPS_GUARD_SCAN_INTERVAL_MS', default: String(CONTROLLER_DEFAULTS.scanIntervalMs), description: 'How often the leader scans the cluster and writes policy reports (also after relevant changes); 0: no cluster scan, no reports' },
  'scan-coalesce-ms': { type: 'string', env: 'GITOPS_GUARD_SCAN_COALESCE_MS', default: String(CONTROLLER_DEFAULTS.scanCoalesceMs), description: 'Quiet period after a relevant change before the scan runs (a burst is one scan, at most 5 times this after the first change)' },
  reports: { type: 'string', env: 'GITOPS_GUARD_REPORTS', default: 'auto', description: `Policy reports to write: ${REPORTS_SETTINGS.join(', ')} (auto: wgpolicyk8s.io when served, else openreports.io)` },
  'metrics-port': { type: 'string', env: 'GITOPS_GUARD_METRICS_PORT', default: '8080', description: 'Plain HTTP port for /metrics, /healthz and /readyz (0: any free port)' },
  'metrics-host': { type: 'string', env: 'GITOPS_GUARD_METRICS_HOST', description: 'Address to bind the metrics port (all interfaces when unset)' },
  'log-level': { type: 'string', env: 'GITOPS_GUARD_LOG_LEVEL', default: 'info', description: `Log level (${LOG_LEVELS.join(', ')})` },
  'reload-interval-ms': { type: 'string', env: 'GITOPS_GUARD_RELOAD_INTERVAL_MS', default: '2000', description: 'How often the rules file is checked for changes' },
  help: { type: 'boolean', short: 'h', description: 'Show this help' },
};

export const controllerHelp = helpText(
  'gitops-guard controller [options]',
  'Runs the rollout controller: rolls workloads whose consumed ConfigMaps/Secrets changed, with the webhook\'s checksum;\n' +
    'its leader also scans the cluster and keeps policy reports current (docs/scan.md).',
  flags,
);

export interface ControllerCliConfig {
  kubeconfigPath?: string;
  namespaces?: string[];
  rulesPath: string;
  checksumKeyPath: string;
  coalesceMs: number;
  resyncIntervalMs: number;
  maxDelayMs: number;
  concurrency: number;
  leaseName: string;
  leaseNamespace: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  identity: string;
  username: string;
  rollouts: 'auto' | boolean;
  discoveryIntervalMs: number;
  /** 0: no cluster scan. */
  scanIntervalMs: number;
  scanCoalesceMs: number;
  reports: ReportsSetting;
  mode: 'enforce' | 'audit';
  stampUnstamped: boolean;
  metricsPort: number;
  metricsHost?: string;
  logLevel: LevelWithSilent;
  reloadIntervalMs: number;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function parseControllerConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ControllerCliConfig | 'help' {
  const { values, positionals } = parseFlags(argv, flags, env);
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const logLevel = String(values['log-level']) as LevelWithSilent;
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  let namespaces: string[] | undefined;
  if (typeof values.namespaces === 'string' && values.namespaces.trim() !== '') {
    namespaces = [...new Set(values.namespaces.split(',').map((n) => n.trim()).filter(Boolean))].sort();
    for (const namespace of namespaces) if (!DNS_LABEL.test(namespace)) throw new UsageError(`--namespaces: "${namespace}" is not a namespace name`);
  }
  const rollouts = String(values.rollouts);
  if (!['auto', 'true', 'false'].includes(rollouts)) throw new UsageError('--rollouts must be auto, true or false');
  const mode = String(values.mode);
  if (mode !== 'enforce' && mode !== 'audit') throw new UsageError(`--mode must be enforce or audit, got "${mode}"`);
  const reports = String(values.reports) as ReportsSetting;
  if (!REPORTS_SETTINGS.includes(reports)) throw new UsageError(`--reports must be one of ${REPORTS_SETTINGS.join(', ')}, got "${reports}"`);
  const leaseNamespace = String(values['lease-namespace']);
  if (!DNS_LABEL.test(leaseNamespace)) throw new UsageError(`--lease-namespace: "${leaseNamespace}" is not a namespace name`);
  const identity = (values.identity as string | undefined) || hostname();
  const config: ControllerCliConfig = {
    kubeconfigPath: values.kubeconfig as string | undefined,
    namespaces,
    rulesPath: (values.rules as string | undefined) ?? DEFAULT_RULES_PATH,
    checksumKeyPath: String(values['checksum-key']),
    coalesceMs: integerFlag(values['coalesce-ms'], 'coalesce-ms', 0, 600_000),
    resyncIntervalMs: integerFlag(values['resync-interval-ms'], 'resync-interval-ms', 0, 86_400_000),
    maxDelayMs: integerFlag(values['max-delay-ms'], 'max-delay-ms', 0, 3_600_000),
    concurrency: integerFlag(values.concurrency, 'concurrency', 1, 64),
    leaseName: String(values['lease-name']),
    leaseNamespace,
    leaseDurationMs: integerFlag(values['lease-duration-ms'], 'lease-duration-ms', 1000, 600_000),
    renewDeadlineMs: integerFlag(values['renew-deadline-ms'], 'renew-deadline-ms', 500, 600_000),
    retryPeriodMs: integerFlag(values['retry-period-ms'], 'retry-period-ms', 50, 600_000),
    identity,
    username: String(values.username),
    rollouts: rollouts === 'auto' ? 'auto' : rollouts === 'true',
    discoveryIntervalMs: integerFlag(values['discovery-interval-ms'], 'discovery-interval-ms', 0, 86_400_000),
    scanIntervalMs: integerFlag(values['scan-interval-ms'], 'scan-interval-ms', 0, 86_400_000),
    scanCoalesceMs: integerFlag(values['scan-coalesce-ms'], 'scan-coalesce-ms', 0, 3_600_000),
    reports,
    mode,
    stampUnstamped: values['stamp-unstamped'] === true,
    metricsPort: integerFlag(values['metrics-port'], 'metrics-port', 0, 65535),
    metricsHost: values['metrics-host'] as string | undefined,
    logLevel,
    reloadIntervalMs: integerFlag(values['reload-interval-ms'], 'reload-interval-ms', 50, 3_600_000),
  };
  if (config.maxDelayMs < config.coalesceMs) throw new UsageError('--max-delay-ms must be at least --coalesce-ms');
  if (!(config.retryPeriodMs < config.renewDeadlineMs && config.renewDeadlineMs < config.leaseDurationMs)) {
    throw new UsageError('--retry-period-ms < --renew-deadline-ms < --lease-duration-ms is required');
  }
  if (!DNS_LABEL.test(config.leaseName)) throw new UsageError(`--lease-name: "${config.leaseName}" is not a valid name`);
  return config;
}

export interface RunningController {
  controller: RolloutController;
  /** The metrics port actually bound. */
  port: number;
  shutdown(): Promise<void>;
}

/** Starts the controller and its metrics endpoint; SIGTERM/SIGINT stop it (releasing the lease). */
export async function runController(argv: string[], io: CliIo, options: { handleSignals?: boolean } = {}): Promise<RunningController | number> {
  const config = parseControllerConfig(argv);
  if (config === 'help') {
    io.stdout.write(controllerHelp);
    return 0;
  }
  const actions = createRegistry();
  const keyWarnings: string[] = [];
  const checksumKey = startupChecksumKey(config.checksumKeyPath, loadRuleSetFile(config.rulesPath, actions), (warning) => keyWarnings.push(warning));
  const logger = createLogger(config.logLevel).child({ component: 'controller' });
  for (const warning of keyWarnings) logger.warn(warning);
  if (!checksumKey) logger.info({ checksumKey: config.checksumKeyPath }, 'no checksum key: the rules stamp no config checksums, so no workload is rolled (a reload that adds a stamping rule is refused until restarted with a key)');
  const rules = new RuleStore(config.rulesPath, actions, logger, undefined, checksumKey ? undefined : requireNoStampingWithoutKey(config.checksumKeyPath));
  const kubeConfig = loadKubeConfig(config.kubeconfigPath);
  if (!kubeConfig) throw new KubeConfigError('the controller needs a Kubernetes API: not in a cluster and no kubeconfig found');

  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'gitops_guard_controller_' });
  const controller = new RolloutController({
    kubeConfig,
    namespaces: config.namespaces,
    rules: () => rules.current,
    checksumKey,
    identity: config.identity,
    leaseName: config.leaseName,
    leaseNamespace: config.leaseNamespace,
    leaseDurationMs: config.leaseDurationMs,
    renewDeadlineMs: config.renewDeadlineMs,
    retryPeriodMs: config.retryPeriodMs,
    coalesceMs: config.coalesceMs,
    resyncIntervalMs: config.resyncIntervalMs,
    maxDelayMs: config.maxDelayMs,
    concurrency: config.concurrency,
    username: config.username,
    rollouts: config.rollouts,
    discoveryIntervalMs: config.discoveryIntervalMs,
    ...(config.scanIntervalMs > 0 ? { scan: { intervalMs: config.scanIntervalMs, coalesceMs: config.scanCoalesceMs, reports: config.reports } } : {}),
    dryRun: config.mode === 'audit',
    stampUnstamped: config.stampUnstamped,
    registry,
    logger,
  });

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (code: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET') return reply(405, 'method not allowed\n');
    if (path === '/healthz') return reply(200, 'ok\n');
    // Which kinds are watched and which are not, and why: the status code is what probes read.
    if (path === '/readyz') return reply(controller.ready ? 200 : 503, readinessReport(controller.ready, controller.kindStatus()));
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => reply(200, text, registry.contentType),
        () => reply(500, 'metrics unavailable\n'),
      );
      return;
    }
    reply(404, 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.metricsPort, config.metricsHost, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ port, mode: config.mode, kubernetesApi: kubeConfig.getCurrentCluster()?.server ?? 'configured', identity: config.identity }, 'controller metrics listening');
  const stopRulesWatch = watchFiles([config.rulesPath], config.reloadIntervalMs, () => rules.reload());

  await controller.start();

  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> =>
    (stopping ??= (async () => {
      stopRulesWatch();
      await controller.stop({ release: true });
      await closeServer(server);
      logger.info('controller stopped');
    })());
  if (options.handleSignals ?? true) {
    const onSignal = (signal: string) => {
      logger.info({ signal }, 'signal received');
      void shutdown().then(() => process.exit(0));
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  }
  return { controller, port, shutdown };
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
