import { MAX_PROPERTIES } from './size.js';

/**
 * A finding: one thing a check found out about one object (or about the scan itself). It is the
 * common currency of everything that reports on a live cluster: the policy reports
 * (wgpolicyk8s.io, openreports.io), the CLI table and JSON, and the scan metrics. Pure data, no I/O.
 *
 * Findings hold names and short explanations only. Secret values, and anything derived from
 * them that could be compared or guessed (a checksum over Secret data, an existence hint about a
 * Secret key), never go into a finding: reports are readable by far more people than Secrets.
 */

/** What the policy report APIs call a result; the same five values in both APIs. */
export const RESULTS = ['pass', 'fail', 'warn', 'error', 'skip'] as const;
export type FindingResult = (typeof RESULTS)[number];

/** Severities both report APIs accept (wgpolicyk8s.io v1alpha2 and openreports.io v1alpha1). */
export const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** The object a finding is about, as the reports' `resources[]` name it. */
export interface ResourceRef {
  /** e.g. `rbac.authorization.k8s.io/v1`, `v1`. */
  apiVersion: string;
  kind: string;
  /** Absent for cluster-scoped objects: their findings go to the cluster-wide report. */
  namespace?: string;
  name: string;
  /** The live object's uid, when the finding is about a live object. */
  uid?: string;
}

export interface Finding {
  /**
   * The check that produced it: a built-in check (see `CHECKS` in checks.ts) or the name of a
   * rule from the rules file. Becomes the report's `policy` and the metrics' `check` label, so
   * it must come from a bounded set, never from object data.
   */
  check: string;
  /** The rule within the check (a built-in rule name, or a rules-file rule's action). Bounded like `check`. */
  rule: string;
  result: FindingResult;
  severity?: Severity;
  /** A short grouping word, e.g. `Ownership`, `Configuration`. */
  category?: string;
  /** What is wrong and what to do about it, for a person. May name objects; never Secret values. */
  message: string;
  /** Absent for findings about the scan itself (e.g. a list the scan was not allowed to make). */
  resource?: ResourceRef;
  /**
   * Details as strings: claiming applications, owners, the stamped and the current checksum of a
   * workload that consumes no Secret, ... Keys are short identifiers (`apps`, `owner`).
   */
  properties?: Readonly<Record<string, string>>;
}

/** Order of urgency: what a bounded report keeps first and a table lists first. */
export const RESULT_PRIORITY: Readonly<Record<FindingResult, number>> = { error: 0, fail: 1, warn: 2, skip: 3, pass: 4 };
export const SEVERITY_PRIORITY: Readonly<Record<Severity, number>> = { critical: 0, high: 1, medium: 2, low: 3, info: 4 };

/** Counts by result, the shape of both report APIs' `summary`. */
export type ResultCounts = Record<FindingResult, number>;

export function countResults(findings: Iterable<Pick<Finding, 'result'>>): ResultCounts {
  const counts: ResultCounts = { pass: 0, fail: 0, warn: 0, error: 0, skip: 0 };
  for (const finding of findings) counts[finding.result]++;
  return counts;
}

/** Failing findings make a scan exit with 1, like `audit`: errors and failures (warnings do not). */
export function isFailing(finding: Pick<Finding, 'result'>): boolean {
  return finding.result === 'fail' || finding.result === 'error';
}

const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,252}$/;

/**
 * Throws when a finding breaks the model's rules. Findings are built by gitops-guard's own checks,
 * so a bad one is a programming error: it is refused loudly rather than written into a report
 * that the API server would reject (or, worse, accept with a label value made of object data).
 */
export function assertValidFinding(finding: Finding): void {
  const where = `finding ${JSON.stringify(finding.check)}/${JSON.stringify(finding.rule)}`;
  if (typeof finding.check !== 'string' || !IDENTIFIER.test(finding.check)) throw new TypeError(`${where}: check must be a short identifier`);
  if (typeof finding.rule !== 'string' || !IDENTIFIER.test(finding.rule)) throw new TypeError(`${where}: rule must be a short identifier`);
  if (!(RESULTS as readonly string[]).includes(finding.result)) throw new TypeError(`${where}: result must be one of ${RESULTS.join(', ')}`);
  if (finding.severity !== undefined && !(SEVERITIES as readonly string[]).includes(finding.severity)) {
    throw new TypeError(`${where}: severity must be one of ${SEVERITIES.join(', ')}`);
  }
  if (typeof finding.message !== 'string' || finding.message.trim() === '') throw new TypeError(`${where}: message must say what to do`);
  if (finding.category !== undefined && typeof finding.category !== 'string') throw new TypeError(`${where}: category must be a string`);
  const resource = finding.resource;
  if (resource !== undefined) {
    for (const field of ['apiVersion', 'kind', 'name'] as const) {
      if (typeof resource[field] !== 'string' || resource[field] === '') throw new TypeError(`${where}: resource.${field} must be a non-empty string`);
    }
    for (const field of ['namespace', 'uid'] as const) {
      if (resource[field] !== undefined && (typeof resource[field] !== 'string' || resource[field] === '')) {
        throw new TypeError(`${where}: resource.${field} must be a non-empty string when set`);
      }
    }
  }
  const properties = Object.entries(finding.properties ?? {});
  if (properties.length > MAX_PROPERTIES) throw new TypeError(`${where}: at most ${MAX_PROPERTIES} properties`);
  for (const [key, value] of properties) {
    if (!IDENTIFIER.test(key)) throw new TypeError(`${where}: property key ${JSON.stringify(key)} must be a short identifier`);
    if (typeof value !== 'string') throw new TypeError(`${where}: property ${key} must be a string`);
  }
}
