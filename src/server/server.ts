import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { getHeapStatistics } from 'node:v8';
import type { Logger } from 'pino';
import type { ActionSettings } from '../actions/types.js';
import { createRegistry, type ActionRegistry } from '../actions/registry.js';
import type { KubeReader } from '../kube/reader.js';
import { RuleStore } from '../rules/store.js';
import type { RuleProblem } from '../rules/load.js';
import type { RuleMode, RuleSet } from '../rules/types.js';
import { watchFiles } from '../util/file-watch.js';
import { createApp } from './app.js';
import { connectionTimeouts, limitConnections } from './connections.js';
import { admissionBudgets, DEFAULT_MAX_TIMEOUT_MS, DEFAULT_MEMORY_BUDGET_BYTES } from './admission-endpoint.js';
import { createMetrics, type Metrics } from './metrics.js';
import { loadServingCredentials, secureContextOptions, serverTlsOptions } from './tls.js';

export interface ServerOptions {
  port: number;
  host?: string;
  tlsCertPath: string;
  tlsKeyPath: string;
  /** CA bundle client certificates must chain to; set, the admission endpoints require one. */
  clientCaPath?: string;
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
  /**
   * The largest `timeoutSeconds` of the webhook configurations, in ms (default 5000): caps each
   * call's `?timeout=` and sets the handshake, header and body timeouts.
   */
  maxTimeoutMs?: number;
  /** Memory budget for admission calls in flight (default 64 MiB). */
  memoryBudgetBytes?: number;
  /** Open connections at most (default 512); further connections are closed at once. */
  maxConnections?: number;
  /** A kept-alive connection idle this long is closed (default 30 s). */
  idleTimeoutMs?: number;
}

export interface ShutdownResult {
  /** Requests still in flight when the drain timeout passed, cut by closing their connections. */
  cut: number;
}

export interface RunningServer {
  server: Server;
  port: number;
  metrics: Metrics;
  rules: RuleStore;
  isReady(): boolean;
  /**
   * Turns readiness off, answers every further request with `Connection: close`, stops
   * listening after the shutdown delay and lets in-flight requests finish (bounded by the drain
   * timeout, after which they are cut).
   */
  shutdown(): Promise<ShutdownResult>;
}

export { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS } from './connections.js';

/** Loads certificates and rules (throwing a clear error if either is bad), then listens. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { logger } = options;
  const metrics = options.metrics ?? createMetrics();
  const registry = options.registry ?? createRegistry();
  const loadCredentials = () => loadServingCredentials(options.tlsCertPath, options.tlsKeyPath, options.clientCaPath);
  const credentials = loadCredentials();
  const rules = new RuleStore(options.rulesPath, registry, logger, (ok, ruleSet) => {
    metrics.rulesReloadSuccess.set(ok ? 1 : 0);
    metrics.rulesReloads.inc({ result: ok ? 'success' : 'failure' });
    if (!ok) metrics.errors.inc({ type: 'rules_reload' });
    metrics.rulesLoaded.set(ruleSet.rules.length);
  }, options.checkRules);
  metrics.setCertificateNotAfter(credentials.notAfter);

  let draining = false;
  const isReady = () => !draining;
  const maxTimeoutMs = options.maxTimeoutMs ?? DEFAULT_MAX_TIMEOUT_MS;
  const memoryBudgetBytes = options.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET_BYTES;
  const app = createApp({
    registry,
    kube: options.kube,
    settings: options.settings,
    logger,
    modeOverride: options.modeOverride,
    metrics,
    rules: () => rules.current,
    isReady,
    limits: { maxTimeoutMs, ...admissionBudgets(memoryBudgetBytes) },
    requireClientCertificate: options.clientCaPath !== undefined,
  });

  // Responses not finished yet: once draining starts, each gets `Connection: close`, so every
  // client moves to another replica after its next answer instead of having its connection cut.
  const active = new Set<ServerResponse>();
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    active.add(res);
    res.once('close', () => active.delete(res));
    if (draining) res.setHeader('connection', 'close');
    app(req, res);
  };

  const connectionLimits = { maxTimeoutMs, maxConnections: options.maxConnections, idleTimeoutMs: options.idleTimeoutMs };
  const server = createServer({ ...serverTlsOptions(credentials), ...connectionTimeouts(connectionLimits) }, listener);
  limitConnections(server, connectionLimits, metrics, logger);

  const reloadIntervalMs = options.reloadIntervalMs ?? 2000;
  const watched = [options.tlsCertPath, options.tlsKeyPath, ...(options.clientCaPath ? [options.clientCaPath] : [])];
  const stopCertWatch = watchFiles(watched, reloadIntervalMs, () => {
    try {
      const next = loadCredentials();
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
  logger.info(
    {
      port,
      rules: rules.current.rules.map((r) => r.name),
      mode: options.modeOverride ?? 'per-rule',
      clientAuth: options.clientCaPath !== undefined,
      maxTimeoutMs,
      memoryBudgetMiB: Math.round(memoryBudgetBytes / 1024 / 1024),
      heapLimitMiB: Math.round(getHeapStatistics().heap_size_limit / 1024 / 1024),
      maxConnections: server.maxConnections,
    },
    'gitops-guard serving',
  );

  let shutdownPromise: Promise<ShutdownResult> | undefined;
  const shutdown = () =>
    (shutdownPromise ??= (async () => {
      draining = true;
      for (const res of active) if (!res.headersSent) res.setHeader('connection', 'close');
      stopCertWatch();
      stopRulesWatch();
      const shutdownDelayMs = options.shutdownDelayMs ?? 0;
      logger.info({ shutdownDelayMs, inFlight: active.size }, 'shutting down: readiness off, answers close their connections');
      await delay(shutdownDelayMs);
      // Stops listening and closes connections idle right now (Node's close does that); the rest
      // close after their answer (`Connection: close`).
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const drainTimeoutMs = options.drainTimeoutMs ?? 10_000;
      logger.info({ inFlight: active.size, drainTimeoutMs }, 'stopped listening; draining in-flight requests');
      const outcome = await Promise.race([closed.then(() => 'drained' as const), delay(drainTimeoutMs).then(() => 'timeout' as const)]);
      let cut = 0;
      if (outcome === 'timeout') {
        cut = active.size;
        logger.warn({ drainTimeoutMs, cut }, 'in-flight requests did not finish in time; cutting their connections');
        server.closeAllConnections();
        await closed;
      }
      logger.info({ cut }, 'shut down');
      return { cut };
    })());

  return { server, port, metrics, rules, isReady, shutdown };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
