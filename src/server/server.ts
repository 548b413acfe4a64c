import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ActionSettings } from '../actions/types.js';
import { createRegistry, type ActionRegistry } from '../actions/registry.js';
import type { KubeReader } from '../kube/reader.js';
import { RuleStore } from '../rules/store.js';
import type { RuleProblem } from '../rules/load.js';
import type { RuleMode, RuleSet } from '../rules/types.js';
import { watchFiles } from '../util/file-watch.js';
import { createApp } from './app.js';
import { createMetrics, type Metrics } from './metrics.js';
import { loadServingCredentials, secureContextOptions, TLS_MIN_VERSION } from './tls.js';

export interface ServerOptions {
  port: number;
  host?: string;
  tlsCertPath: string;
  tlsKeyPath: string;
  rulesPath: string;
  modeOverride?: RuleMode;
  kube: KubeReader;
  settings: ActionSettings;
  logger: Logger;
  registry?: ActionRegistry;
  metrics?: Metrics;
  /** Refuses rule sets this process cannot run (see RuleStore), at start-up and at every reload. */
  checkRules?: (ruleSet: RuleSet) => RuleProblem[];
  /** How often certificate and rules files are checked for changes. */
  reloadIntervalMs?: number;
  /** After readiness turns false on shutdown, keep serving this long so endpoints drop us first. */
  shutdownDelayMs?: number;
  /** Longest wait for in-flight requests on shutdown. */
  drainTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export interface RunningServer {
  server: Server;
  port: number;
  metrics: Metrics;
  rules: RuleStore;
  isReady(): boolean;
  /** Stops readiness, stops accepting connections, lets in-flight requests finish (bounded). */
  shutdown(): Promise<void>;
}

/** Loads certificates and rules (throwing a clear error if either is bad), then listens. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { logger } = options;
  const metrics = options.metrics ?? createMetrics();
  const registry = options.registry ?? createRegistry();
  const credentials = loadServingCredentials(options.tlsCertPath, options.tlsKeyPath);
  const rules = new RuleStore(options.rulesPath, registry, logger, (ok, ruleSet) => {
    metrics.rulesReloadSuccess.set(ok ? 1 : 0);
    metrics.rulesReloads.inc({ result: ok ? 'success' : 'failure' });
    if (!ok) metrics.errors.inc({ type: 'rules_reload' });
    metrics.rulesLoaded.set(ruleSet.rules.length);
  }, options.checkRules);
  metrics.setCertificateNotAfter(credentials.notAfter);

  let shuttingDown = false;
  const isReady = () => !shuttingDown;
  const app = createApp({
    registry,
    kube: options.kube,
    settings: options.settings,
    logger,
    modeOverride: options.modeOverride,
    metrics,
    rules: () => rules.current,
    isReady,
    requestTimeoutMs: options.requestTimeoutMs,
  });

  const server = createServer({ ...secureContextOptions(credentials), minVersion: TLS_MIN_VERSION }, app);
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  server.on('tlsClientError', (error) => logger.debug({ err: error.message }, 'TLS handshake failed'));

  const reloadIntervalMs = options.reloadIntervalMs ?? 2000;
  const stopCertWatch = watchFiles([options.tlsCertPath, options.tlsKeyPath], reloadIntervalMs, () => {
    try {
      const next = loadServingCredentials(options.tlsCertPath, options.tlsKeyPath);
      // New handshakes use the new pair; established connections keep theirs, nothing is dropped.
      server.setSecureContext(secureContextOptions(next));
      metrics.setCertificateNotAfter(next.notAfter);
      metrics.certificateReloads.inc({ result: 'success' });
      logger.info({ notAfter: next.notAfter.toISOString() }, 'serving certificate reloaded');
    } catch (error) {
      // A half-written rotation (new cert, old key) is expected for a moment; the next poll retries.
      metrics.certificateReloads.inc({ result: 'failure' });
      metrics.errors.inc({ type: 'cert_reload' });
      logger.warn({ err: (error as Error).message }, 'serving certificate reload failed; keeping the current one');
    }
  });
  const stopRulesWatch = watchFiles([options.rulesPath], reloadIntervalMs, () => rules.reload());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ port, rules: rules.current.rules.map((r) => r.name), mode: options.modeOverride ?? 'per-rule' }, 'gitops-guard serving');

  let shutdownPromise: Promise<void> | undefined;
  const shutdown = () =>
    (shutdownPromise ??= (async () => {
      shuttingDown = true;
      stopCertWatch();
      stopRulesWatch();
      logger.info({ shutdownDelayMs: options.shutdownDelayMs ?? 0 }, 'shutting down: readiness off');
      await delay(options.shutdownDelayMs ?? 0);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const drainTimeoutMs = options.drainTimeoutMs ?? 10_000;
      const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
      const forced = delay(drainTimeoutMs).then(() => 'timeout' as const);
      const outcome = await Promise.race([closed.then(() => 'drained' as const), forced]);
      clearInterval(idleSweep);
      if (outcome === 'timeout') {
        logger.warn({ drainTimeoutMs }, 'in-flight requests did not finish in time; closing connections');
        server.closeAllConnections();
        await closed;
      }
      logger.info('shut down');
    })());

  return { server, port, metrics, rules, isReady, shutdown };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
