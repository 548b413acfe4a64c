import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'gitops_guard_' });
  const registers = [registry];
  let notAfter: Date | undefined;
  return {
    setCertificateNotAfter(value: Date) {
      notAfter = value;
    },
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
      help: 'Errors by type (bad_request, unauthenticated, rule_error, internal, cert_reload, rules_reload).',
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
