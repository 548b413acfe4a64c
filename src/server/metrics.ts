import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AdmissionRequest, GroupVersionKind, WebhookPhase } from '../api/types.js';
import type { RuleSet } from '../rules/types.js';

/** Why an admission call was not answered with a review (gitops_guard_admission_rejected_total). */
export type RejectReason = 'too_large' | 'deadline' | 'timeout' | 'connection_limit' | 'bad_connection';

/** The two memory budgets of admission calls: bodies as received, and their parsed reviews. */
export type MemoryPool = 'bodies' | 'parsing';

/** What the admission path reports while it runs; gauges are read at scrape time. */
export interface AdmissionLoad {
  inFlight(): number;
  waiting(): number;
  reservedBytes(pool: MemoryPool): number;
  budgetBytes(pool: MemoryPool): number;
  readsWaiting(): number;
}

/** All gitops-guard metrics, on a registry of their own so tests can create as many servers as they like. */
export interface Metrics {
  registry: Registry;
  admissionDuration: Histogram<'webhook' | 'operation' | 'kind' | 'verdict'>;
  ruleResults: Counter<'rule' | 'action' | 'mode' | 'result'>;
  auditFindings: Counter<'rule' | 'action' | 'finding'>;
  errors: Counter<'type'>;
  rulesReloadSuccess: Gauge;
  rulesReloads: Counter<'result'>;
  rulesLoaded: Gauge;
  certificateExpirySeconds: Gauge;
  /** The gauge is computed at scrape time from the certificate in use. */
  setCertificateNotAfter(notAfter: Date): void;
  certificateReloads: Counter<'result'>;
  /** Calls refused or dropped before a review could be answered, by reason. */
  rejected: Counter<'reason'>;
  /** Answers written after the API server's timeout for the call had passed (it had failed open already). */
  late: Counter<'webhook'>;
  /** Connects the in-flight/waiting/memory gauges to the running server. */
  setAdmissionLoad(load: AdmissionLoad): void;
}

/**
 * The `kind` label of admission metrics: the kinds the rules name (a bounded set from the rules
 * file), everything else `other`. Copying the body's kind would let any caller create series
 * without bound.
 */
export function kindLabel(ruleSet: RuleSet, kind: GroupVersionKind): string {
  let kinds = SELECTED_KINDS.get(ruleSet);
  if (!kinds) {
    kinds = new Set(ruleSet.rules.flatMap((rule) => rule.match.kinds.filter((k) => k.kind !== '*').map((k) => `${k.group}/${k.kind}`)));
    SELECTED_KINDS.set(ruleSet, kinds);
  }
  return kinds.has(`${kind.group}/${kind.kind}`) || kinds.has(`*/${kind.kind}`) ? kind.kind : 'other';
}

const SELECTED_KINDS = new WeakMap<RuleSet, Set<string>>();

type DurationSeries = ReturnType<Metrics['admissionDuration']['labels']>;
const DURATION_SERIES = new WeakMap<Metrics, Map<string, DurationSeries>>();

/**
 * Observes one admission's duration. The series of each label combination is looked up once
 * and kept: prom-client otherwise sorts and hashes the four labels on every call. Every label is
 * bounded (webhook, operation and verdict are fixed sets, `kind` is kindLabel's), so is the map.
 */
export function observeAdmission(metrics: Metrics, ruleSet: RuleSet, phase: WebhookPhase, request: AdmissionRequest, verdict: string, seconds: number): void {
  const kind = kindLabel(ruleSet, request.kind);
  let series = DURATION_SERIES.get(metrics);
  if (!series) DURATION_SERIES.set(metrics, (series = new Map()));
  const key = `${phase} ${request.operation} ${kind} ${verdict}`;
  let child = series.get(key);
  if (!child) series.set(key, (child = metrics.admissionDuration.labels({ webhook: phase, operation: request.operation, kind, verdict })));
  child.observe(seconds);
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'gitops_guard_' });
  const registers = [registry];
  let notAfter: Date | undefined;
  let load: AdmissionLoad | undefined;
  const loadGauge = (name: string, help: string, read: (l: AdmissionLoad) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        if (load) this.set(read(load));
      },
    });
  const poolGauge = (name: string, help: string, read: (l: AdmissionLoad, pool: MemoryPool) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['pool'],
      registers,
      collect() {
        if (!load) return;
        for (const pool of ['bodies', 'parsing'] as const) this.set({ pool }, read(load, pool));
      },
    });
  loadGauge('gitops_guard_admission_in_flight', 'Admission calls being read, parsed, evaluated or answered.', (l) => l.inFlight());
  loadGauge('gitops_guard_admission_waiting', 'Admission calls waiting for memory budget (bodies unread) or for the large-review parse slot.', (l) => l.waiting());
  poolGauge('gitops_guard_admission_memory_reserved_bytes', 'Memory reserved by admission calls in flight: bodies as received, and their parsed reviews (estimated).', (l, pool) => l.reservedBytes(pool));
  poolGauge('gitops_guard_admission_memory_budget_bytes', 'The memory budgets of admission calls in flight, per pool.', (l, pool) => l.budgetBytes(pool));
  loadGauge('gitops_guard_kube_reads_waiting', 'ConfigMap/Secret reads waiting for a connection to the API server.', (l) => l.readsWaiting());
  return {
    setCertificateNotAfter(value: Date) {
      notAfter = value;
    },
    setAdmissionLoad(value: AdmissionLoad) {
      load = value;
    },
    rejected: new Counter({
      name: 'gitops_guard_admission_rejected_total',
      help: 'Admission calls refused or dropped before a review was answered (too_large, deadline, timeout, connection_limit, bad_connection).',
      labelNames: ['reason'],
      registers,
    }),
    late: new Counter({
      name: 'gitops_guard_admission_late_total',
      help: "Admission answers written after the API server's timeout for the call had passed.",
      labelNames: ['webhook'],
      registers,
    }),
    registry,
    admissionDuration: new Histogram({
      name: 'gitops_guard_admission_duration_seconds',
      help: 'Time to answer an AdmissionReview, by webhook, operation, kind and verdict.',
      labelNames: ['webhook', 'operation', 'kind', 'verdict'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    ruleResults: new Counter({
      name: 'gitops_guard_rule_results_total',
      help: 'Rule evaluations by rule, action, mode and result (skipped, noop, mutated, denied, error).',
      labelNames: ['rule', 'action', 'mode', 'result'],
      registers,
    }),
    auditFindings: new Counter({
      name: 'gitops_guard_audit_findings_total',
      help: 'What audit-mode rules would have done (patch, deny, error) but did not.',
      labelNames: ['rule', 'action', 'finding'],
      registers,
    }),
    errors: new Counter({
      name: 'gitops_guard_errors_total',
      help: 'Errors by type (bad_request, unauthenticated, rule_error, aborted, internal, cert_reload, rules_reload).',
      labelNames: ['type'],
      registers,
    }),
    rulesReloadSuccess: new Gauge({
      name: 'gitops_guard_rules_last_reload_success',
      help: '1 when the last rules (re)load succeeded, 0 when the file was invalid and the last good rules are in use.',
      registers,
    }),
    rulesReloads: new Counter({
      name: 'gitops_guard_rules_reloads_total',
      help: 'Rules file reloads by result.',
      labelNames: ['result'],
      registers,
    }),
    rulesLoaded: new Gauge({ name: 'gitops_guard_rules_loaded', help: 'Number of rules in use.', registers }),
    certificateExpirySeconds: new Gauge({
      name: 'gitops_guard_certificate_expiry_seconds',
      help: 'Seconds until the serving certificate expires (negative once expired).',
      registers,
      collect() {
        if (notAfter) this.set((notAfter.getTime() - Date.now()) / 1000);
      },
    }),
    certificateReloads: new Counter({
      name: 'gitops_guard_certificate_reloads_total',
      help: 'Serving certificate reloads by result.',
      labelNames: ['result'],
      registers,
    }),
  };
}
