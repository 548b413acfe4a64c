import { createHash } from 'node:crypto';
import type { KubeObject } from '../api/types.js';
import type { ObjectApplier } from '../kube/apply.js';
import type { DiscoveredResource } from '../kube/discovery.js';
import type { ListableResource, ObjectLister } from '../kube/list.js';
import {
  buildReports,
  MANAGED_BY_LABEL,
  REPORT_APIS,
  REPORT_NAME,
  REPORT_SOURCE,
  SERVER_SIDE_APPLY_REPORT_MAX_BYTES,
  type Finding,
  type PolicyReport,
  type ReportFormat,
} from '../report/index.js';

/**
 * Keeps the cluster's policy reports current with a scan's findings (the rollout controller's
 * leader calls it after every scan): one cluster-wide report and one report per namespace, all
 * named `gitops-guard`, written with server-side apply under gitops-guard's own field manager.
 *
 * - Only report APIs the cluster serves are written, decided per resource by discovery:
 *   `auto` writes `wgpolicyk8s.io/v1alpha2` when it is served (what Policy Reporter and
 *   `kubectl get policyreports` read today), else `openreports.io/v1alpha1`, else nothing.
 * - Every report is the whole truth of one scan: results of objects that are gone are simply not
 *   in it, and a namespace where nothing is left keeps an empty report (its results cleared).
 * - A report never exceeds SERVER_SIDE_APPLY_REPORT_MAX_BYTES: results beyond it are left out
 *   with a note (docs/reports.md#size).
 * - A report whose results did not change is not written: its digest (of everything but the
 *   timestamps) is kept in an annotation, read back with a metadata-only list. Timestamps thus
 *   say when a report's results last changed.
 *
 * RBAC: REPORT_VERBS on the report kinds; nothing else.
 */

export type ReportsSetting = 'auto' | 'wgpolicyk8s' | 'openreports' | 'off';
export const REPORTS_SETTINGS: readonly ReportsSetting[] = ['auto', 'wgpolicyk8s', 'openreports', 'off'];

/** The field manager of gitops-guard's report writes. */
export const REPORT_FIELD_MANAGER = 'gitops-guard-controller';
/** Where a written report keeps the digest of its content (without timestamps). */
export const REPORT_DIGEST_ANNOTATION = 'gitops-guard.dev/report-digest';

export interface ReportWriterDeps {
  discovery: { resourceTypes(group: string, version: string, signal?: AbortSignal): Promise<DiscoveredResource[] | null> };
  lister: ObjectLister;
  applier: ObjectApplier;
}

export interface WriteReportsOptions {
  setting: ReportsSetting;
  findings: readonly Finding[];
  /** When the scan ran: the results' timestamp. */
  now: Date;
  /** The namespaces the scan covered (all when absent): reports elsewhere are left alone. */
  namespaces?: readonly string[];
  signal?: AbortSignal;
}

export interface WriteReportsResult {
  /** The API written, or null with the reason. */
  format: ReportFormat | null;
  why?: string;
  written: number;
  unchanged: number;
  /** Reports that could not be written, and why (status and reason only). */
  failed: { report: string; error: string }[];
}

/**
 * What writing a report kind takes: list (the reports written before, to clear and to skip),
 * patch (server-side apply) and create (an apply that creates the report is also authorized as a
 * create). A kind the cluster serves without all three is not written; RBAC grants exactly these.
 */
export const REPORT_VERBS = ['list', 'create', 'patch'] as const;

const FORMAT_OF: Record<Exclude<ReportsSetting, 'off' | 'auto'>, ReportFormat> = { wgpolicyk8s: 'policyreport', openreports: 'openreports' };

interface ServedReports {
  format: ReportFormat;
  namespaced?: ListableResource;
  cluster?: ListableResource;
}

async function served(deps: ReportWriterDeps, format: ReportFormat, signal?: AbortSignal): Promise<ServedReports | null> {
  const api = REPORT_APIS[format];
  const [group, version] = api.apiVersion.split('/') as [string, string];
  const resources = await deps.discovery.resourceTypes(group, version, signal);
  const find = (kind: string): ListableResource | undefined => {
    const r = resources?.find((x) => x.kind === kind && REPORT_VERBS.every((v) => x.verbs.has(v)));
    return r && { group, version, kind: r.kind, plural: r.plural, namespaced: r.namespaced };
  };
  const namespaced = find(api.namespacedKind);
  const cluster = find(api.clusterKind);
  if (!namespaced && !cluster) return null;
  return { format, ...(namespaced ? { namespaced } : {}), ...(cluster ? { cluster } : {}) };
}

/** sha256 of the report without its timestamps: what decides whether it must be written again. */
export function reportDigest(report: PolicyReport): string {
  const timeless = { ...report, results: report.results.map(({ timestamp: _timestamp, ...rest }) => rest) };
  return createHash('sha256').update(JSON.stringify(timeless)).digest('hex');
}

const why = (error: unknown) => (error instanceof Error ? error.message : String(error));

export async function writeReports(deps: ReportWriterDeps, options: WriteReportsOptions): Promise<WriteReportsResult> {
  const result: WriteReportsResult = { format: null, written: 0, unchanged: 0, failed: [] };
  if (options.setting === 'off') return { ...result, why: 'reports are turned off (--reports off)' };
  const candidates: ReportFormat[] = options.setting === 'auto' ? ['policyreport', 'openreports'] : [FORMAT_OF[options.setting]];
  let target: ServedReports | null = null;
  for (const format of candidates) {
    target = await served(deps, format, options.signal);
    if (target) break;
  }
  if (!target) {
    const apis = candidates.map((f) => REPORT_APIS[f].apiVersion).join(' or ');
    return { ...result, why: `the cluster serves no report API (${apis}): install the CRDs to get reports` };
  }
  result.format = target.format;

  // The reports gitops-guard wrote before, with their digests: to clear those with nothing left and skip unchanged ones.
  const existing = new Map<string, string | undefined>();
  const clusterScope = '';
  const read = async (resource: ListableResource, namespace?: string) => {
    for await (const page of deps.lister.pages(resource, { labelSelector: `${MANAGED_BY_LABEL}=${REPORT_SOURCE}`, metadataOnly: true, ...(namespace ? { namespace } : {}), ...(options.signal ? { signal: options.signal } : {}) })) {
      for (const report of page.items) {
        if (report.metadata?.name !== REPORT_NAME) continue;
        existing.set(resource.namespaced ? (report.metadata.namespace ?? '') : clusterScope, report.metadata.annotations?.[REPORT_DIGEST_ANNOTATION]);
      }
    }
  };
  try {
    if (target.cluster) await read(target.cluster);
    if (target.namespaced) for (const namespace of options.namespaces ?? [undefined]) await read(target.namespaced, namespace);
  } catch (error) {
    if (options.signal?.aborted) throw error;
    // Without the list, reports of namespaces with nothing left are not cleared this time; the rest is written.
    result.failed.push({ report: `list of ${target.namespaced?.plural ?? target.cluster!.plural}`, error: why(error) });
  }

  const reports = buildReports(options.findings, {
    format: target.format,
    now: options.now,
    namespaces: [...existing.keys()].filter((scope) => scope !== clusterScope),
    maxBytes: SERVER_SIDE_APPLY_REPORT_MAX_BYTES,
  });
  for (const report of reports) {
    const namespace = report.metadata.namespace;
    const resource = namespace === undefined ? target.cluster : target.namespaced;
    if (!resource) continue; // the cluster serves only the other kind
    const digest = reportDigest(report);
    if (existing.get(namespace ?? clusterScope) === digest) {
      result.unchanged++;
      continue;
    }
    const object: KubeObject = { ...report, metadata: { ...report.metadata, annotations: { [REPORT_DIGEST_ANNOTATION]: digest } } };
    const name = `${report.kind}${namespace ? ` ${namespace}/` : '/'}${REPORT_NAME}`;
    try {
      await deps.applier.apply(
        { apiVersion: report.apiVersion, kind: report.kind, plural: resource.plural, name: REPORT_NAME, ...(namespace ? { namespace } : {}) },
        object,
        { fieldManager: REPORT_FIELD_MANAGER, force: true, ...(options.signal ? { signal: options.signal } : {}) },
      );
      result.written++;
    } catch (error) {
      if (options.signal?.aborted) throw error;
      result.failed.push({ report: name, error: why(error) });
    }
  }
  return result;
}
