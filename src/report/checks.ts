import type { Severity } from './finding.js';

/**
 * The built-in checks of a cluster scan, by name. Their `check`/`rule` pairs are part of the
 * interface: they become the reports' `policy`/`rule`, the `check`/`rule` labels of
 * `gitops_guard_scan_findings`, and the shipped alerts select on them
 * (manifests/components/monitoring/prometheus-rule.yaml). Rename one and the alerts go quiet.
 *
 * Findings from the rules file (what each rule would do to a live object) use the rule's name as
 * `check` and its action type as `rule`, with category `Rules`.
 */
export interface CheckDefinition {
  check: string;
  rule: string;
  category: string;
  /** The severity of a failing finding of this rule. */
  severity: Severity;
  /** What a failing finding means, in a few words (docs and table legends). */
  title: string;
}

export const CHECKS = {
  /** An object that two or more Argo CD Applications claim (their `status.resources` or its tracking metadata). */
  sharedObject: {
    check: 'single-owner',
    rule: 'shared-object',
    category: 'Ownership',
    severity: 'high',
    title: 'claimed by two or more Argo CD Applications',
  },
  /** The recorded `gitops-guard.dev/owner` differs from the owner its tracking metadata names now. */
  ownerConflict: {
    check: 'single-owner',
    rule: 'owner-conflict',
    category: 'Ownership',
    severity: 'high',
    title: 'recorded owner differs from the current owner (its next sync would be denied in enforce mode)',
  },
  /** The stamped config checksum differs from the checksum of what the workload consumes now. */
  staleChecksum: {
    check: 'config-checksum',
    rule: 'stale-checksum',
    category: 'Configuration',
    severity: 'medium',
    title: 'pods run older ConfigMap/Secret content than the cluster holds',
  },
  /** A workload the stamping rule selects that carries no checksum at all. */
  missingChecksum: {
    check: 'config-checksum',
    rule: 'missing-checksum',
    category: 'Configuration',
    severity: 'low',
    title: 'selected by the stamping rule but carries no config checksum',
  },
  /** A ConfigMap/Secret a workload requires does not exist. */
  missingReference: {
    check: 'config-checksum',
    rule: 'missing-reference',
    category: 'Configuration',
    severity: 'medium',
    title: 'requires a ConfigMap or Secret that does not exist',
  },
  /** A list or discovery call the scan could not make (forbidden, unavailable), or an object it could not examine. */
  scanError: {
    check: 'gitops-guard',
    rule: 'scan-error',
    category: 'Scan',
    severity: 'high',
    title: 'a list the scan needs failed (e.g. forbidden), or an object could not be examined',
  },
  /** Objects the rules select that a scan cannot list (a kind pattern such as `*`): a gap in its coverage. */
  notScanned: {
    check: 'gitops-guard',
    rule: 'not-scanned',
    category: 'Scan',
    severity: 'info',
    title: 'kinds the rules select by pattern, which the scan does not list',
  },
  /** Written by the report builder itself when a report had to leave results out (see bound.ts). */
  reportTruncated: {
    check: 'gitops-guard',
    rule: 'report-truncated',
    category: 'Report',
    severity: 'info',
    title: 'the report leaves results out to stay under the API server size limit',
  },
} as const satisfies Record<string, CheckDefinition>;

/** Category of findings from the rules file. */
export const RULES_CATEGORY = 'Rules';
