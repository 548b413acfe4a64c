import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { createRegistry } from '../../src/actions/registry.js';
import type { ActionSettings } from '../../src/actions/types.js';
import { UnavailableKubeReader, type KubeReader } from '../../src/kube/reader.js';
import { loadRuleSetFile } from '../../src/rules/load.js';
import type { RuleMode, RuleSet } from '../../src/rules/types.js';
import { createApp } from '../../src/server/app.js';
import { createLogger } from '../../src/server/logger.js';
import { createMetrics, type Metrics } from '../../src/server/metrics.js';

export const DEFAULT_RULES = fileURLToPath(new URL('../../rules/default-rules.yaml', import.meta.url));

/** A logger whose every line is kept, so tests can assert on (and grep) what was logged. */
export function capturingLogger(level: 'info' | 'debug' = 'info'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: createLogger(level, sink), lines };
}

export interface TestAppOptions {
  ruleSet?: RuleSet;
  kube?: KubeReader;
  settings?: ActionSettings;
  modeOverride?: RuleMode;
  ready?: () => boolean;
}

export function testApp(options: TestAppOptions = {}): { app: ReturnType<typeof createApp>; metrics: Metrics; lines: string[] } {
  const registry = createRegistry();
  const ruleSet = options.ruleSet ?? loadRuleSetFile(DEFAULT_RULES, registry);
  const { logger, lines } = capturingLogger();
  const metrics = createMetrics({ defaultMetrics: false });
  const app = createApp({
    registry,
    kube: options.kube ?? new UnavailableKubeReader('no cluster in this test'),
    settings: options.settings ?? { checksumKey: Buffer.alloc(32, 7) },
    logger,
    metrics,
    modeOverride: options.modeOverride,
    rules: () => ruleSet,
    isReady: options.ready ?? (() => true),
  });
  return { app, metrics, lines };
}
