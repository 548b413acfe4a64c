/** Findings and the reports made of them (docs/reports.md). Pure: no I/O anywhere in this folder. */
export {
  RESULTS,
  SEVERITIES,
  RESULT_PRIORITY,
  SEVERITY_PRIORITY,
  assertValidFinding,
  countResults,
  isFailing,
  type Finding,
  type FindingResult,
  type ResourceRef,
  type ResultCounts,
  type Severity,
} from './finding.js';
export { CHECKS, RULES_CATEGORY, type CheckDefinition } from './checks.js';
export {
  buildReports,
  REPORT_APIS,
  REPORT_FORMATS,
  REPORT_NAME,
  REPORT_SOURCE,
  MANAGED_BY_LABEL,
  type BuildReportsOptions,
  type PolicyReport,
  type ReportFormat,
  type ReportResource,
  type ReportResult,
} from './policy-report.js';
export {
  apiJsonBytes,
  ANNOTATIONS_LIMIT_BYTES,
  DEFAULT_REPORT_MAX_BYTES,
  ETCD_LIMIT_BYTES,
  MAX_MESSAGE_CHARS,
  MAX_PROPERTIES,
  MAX_PROPERTY_CHARS,
  MIN_REPORT_MAX_BYTES,
  SERVER_SIDE_APPLY_REPORT_MAX_BYTES,
} from './size.js';
export { findingsJson, printable, renderFindingsTable, renderReports, sortFindings, toList, type Encoding, type FindingsJson, type FindingsTableOptions, type ReportList } from './render.js';
