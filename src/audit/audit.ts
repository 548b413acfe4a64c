import type { Operation as PatchOperation } from 'fast-json-patch';
import type { KubeObject } from '../admission/types.js';
import { applyPatch } from '../actions/patch.js';
import { locatePodTemplate } from '../actions/checksum/pod-template.js';
import type { KubeReader } from '../kube/reader.js';
import { evaluate, type Evaluation, type RuleResult } from '../rules/engine.js';
import { BundleReader, CachingReader, ConfigBundle, type BundleProblem, type ConfigLookup } from './bundle-reader.js';
import {
  findDuplicates,
  ownerOf,
  ownerResolutionFor,
  stampArgocdTracking,
  type Rendering,
} from './duplicates.js';
import { collectInput, type InputProblem, type SourceLocation } from './input.js';
import { applyOnto } from './live.js';
import {
  buildRequest,
  identityKey,
  KindCatalog,
  place,
  type ObjectIdentityKey,
  type Placement,
} from './request.js';

export type * from './types.js';
import type { AuditOptions, AuditResult, AuditSummary, ChecksumFinding, ObjectResult, OldObjectSource, PhaseResult } from './types.js';

/**
 * The offline audit: every rendered object goes through the webhook's own rule engine and
 * actions, phase by phase, as the admission request the API server would send. Objects rendered
 * more than once are "applied" in input order, so the second owner's apply is an UPDATE over the
 * first owner's admitted object — exactly what the validating webhook would see in the cluster.
 */

interface PlannedRendering {
  index: number;
  source: SourceLocation;
  app?: string;
  owner: string | null;
  placement: Placement;
  notes: string[];
}

interface PlannedObject {
  result: ObjectResult;
  identity: ObjectIdentityKey | null;
  renderings: PlannedRendering[];
}

const READ_TIMEOUT_MS = 10_000;

/** Runs the webhook's two phases for one request, as the API server does: mutate, patch, validate. */
async function admit(
  planned: PlannedRendering,
  object: KubeObject,
  operation: 'CREATE' | 'UPDATE',
  oldObject: KubeObject | null,
  options: AuditOptions,
  bundle: ConfigBundle,
  clusterConfigs: KubeReader | undefined,
): Promise<{ phases: PhaseResult[]; allowed: boolean; patch: PatchOperation[]; admitted: KubeObject; lookups: ConfigLookup[] }> {
  const request = buildRequest(
    { ...planned.placement, object },
    { index: planned.index, operation, oldObject, ...(options.userInfo ? { userInfo: options.userInfo } : {}) },
  );
  const reader = new BundleReader(bundle, clusterConfigs, planned.app);
  const deps = {
    registry: options.registry,
    kube: reader,
    settings: options.settings,
    logger: options.logger,
    ...(options.modeOverride ? { modeOverride: options.modeOverride } : {}),
  };
  const signal = options.signal ?? new AbortController().signal;
  const phases: PhaseResult[] = [];
  const mutate = await evaluate(request, 'mutate', options.ruleSet, deps, signal);
  phases.push({ phase: 'mutate', evaluation: mutate });
  let admitted = object;
  let allowed = mutate.allowed;
  if (mutate.allowed) {
    admitted = applyPatch(object, mutate.patch);
    const validate = await evaluate({ ...request, object: admitted }, 'validate', options.ruleSet, deps, signal);
    phases.push({ phase: 'validate', evaluation: validate });
    allowed = validate.allowed;
  }
  return { phases, allowed, patch: mutate.patch, admitted, lookups: reader.lookups };
}

function uniqueLookups(lookups: readonly ConfigLookup[]): ConfigLookup[] {
  const seen = new Map<string, ConfigLookup>();
  for (const lookup of lookups) {
    const key = `${lookup.kind}/${lookup.namespace}/${lookup.name}`;
    if (!seen.has(key)) seen.set(key, lookup);
  }
  return [...seen.values()];
}

function podTemplateAnnotation(object: KubeObject, annotation: string): string | undefined {
  try {
    const template = locatePodTemplate(object)?.template;
    const metadata = template?.metadata;
    const annotations =
      metadata && typeof metadata === 'object' ? (metadata as { annotations?: unknown }).annotations : undefined;
    if (!annotations || typeof annotations !== 'object') return undefined;
    const value = (annotations as Record<string, unknown>)[annotation];
    return Object.prototype.hasOwnProperty.call(annotations, annotation) && typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Checksums as the checksum rules computed them: the mutate phase's results are replayed the
 * way the engine applied them (enforce patches carry forward, audit patches do not), and the
 * configured pod-template annotation is read from what each checksum rule produced.
 */
function checksumFindings(object: KubeObject, mutate: Evaluation, checksumRules: ReadonlyMap<string, string>): ChecksumFinding[] {
  const findings: ChecksumFinding[] = [];
  if (!mutate.results.some((r) => checksumRules.has(r.rule) && r.result !== 'skipped')) return findings;
  let working = object;
  for (const result of mutate.results) {
    const annotation = checksumRules.get(result.rule);
    let candidate = working;
    if (result.patch && result.patch.length > 0) {
      try {
        candidate = applyPatch(working, result.patch);
      } catch {
        candidate = working;
      }
    }
    if (annotation !== undefined) {
      const base = { rule: result.rule, mode: result.mode, annotation };
      if (result.result === 'error') {
        findings.push({ ...base, status: 'failed', ...(result.reason ? { reason: result.reason } : {}) });
      } else if (result.result === 'mutated') {
        const value = podTemplateAnnotation(candidate, annotation);
        findings.push(value === undefined ? { ...base, status: 'removed' } : { ...base, status: 'stamped', value });
      } else if (result.result === 'noop') {
        const value = podTemplateAnnotation(candidate, annotation);
        if (value !== undefined) findings.push({ ...base, status: 'current', value });
      }
    }
    if (result.mode === 'enforce') working = candidate;
  }
  return findings;
}

async function pool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await work(item);
    }
  });
  await Promise.all(workers);
}

function countResults(results: readonly RuleResult[], predicate: (r: RuleResult) => boolean): number {
  return results.reduce((n, r) => n + (predicate(r) ? 1 : 0), 0);
}

export function exitCodeFor(summary: Omit<AuditSummary, 'exitCode'>): 0 | 1 | 2 {
  if (summary.denied > 0 || summary.duplicates.error > 0) return 1;
  if (summary.inputErrors > 0 || summary.objects === 0) return 2;
  return 0;
}

export async function runAuditCore(options: AuditOptions): Promise<AuditResult> {
  const input = await collectInput(options.inputs, options.stdin ? { stdin: options.stdin } : {});
  const inputErrors: InputProblem[] = [...input.problems];

  // Kinds defined by CRDs in the same input get their real scope and plural.
  const catalog = new KindCatalog();
  for (const { object } of input.objects) {
    if (object.kind === 'CustomResourceDefinition' && String(object.apiVersion).startsWith('apiextensions.k8s.io/')) {
      catalog.addCrd(object);
    }
  }

  const resolution = ownerResolutionFor(options.ruleSet);
  const bundle = new ConfigBundle();
  const planned = new Map<string, PlannedObject>();
  const renderings: Rendering[] = [];

  for (const item of input.objects) {
    let placement = place(item.object, catalog, options.namespace);
    const { gvk } = placement;
    const notes: string[] = [];
    if (!placement.scopeKnown) {
      notes.push(`${gvk.kind} (${gvk.group || 'core'}) is not a known kind and no CRD for it is in the input; assumed namespaced`);
    }
    const identity: ObjectIdentityKey | null = placement.name
      ? { group: gvk.group, kind: gvk.kind, name: placement.name, ...(placement.namespace ? { namespace: placement.namespace } : {}) }
      : null;
    if (item.app !== undefined && identity) {
      placement = { ...placement, object: stampArgocdTracking(placement.object, item.app, identity, options.namespace) };
    }
    if (!identity) notes.push('metadata.generateName only: every apply creates a new object');
    // An --app owns what is under its path whatever the rules' owner sources say; other objects
    // are owned by whatever their tracking fields name, read the way the webhook reads them.
    const owner = !identity ? null : item.app !== undefined ? `argocd:${item.app}` : ownerOf(placement.object, identity, resolution);
    bundle.add(placement.object, item.app);

    const key = identity ? identityKey(identity) : `#${item.index}`;
    let entry = planned.get(key);
    if (!entry) {
      entry = {
        identity,
        renderings: [],
        result: {
          key,
          apiVersion: item.object.apiVersion ?? '',
          group: gvk.group,
          version: gvk.version,
          kind: gvk.kind,
          ...(placement.name !== undefined ? { name: placement.name } : {}),
          ...(placement.namespace !== undefined ? { namespace: placement.namespace } : {}),
          scope: placement.namespace !== undefined ? 'Namespaced' : 'Cluster',
          scopeKnown: placement.scopeKnown,
          renderings: [],
        },
      };
      planned.set(key, entry);
    }
    const plannedRendering: PlannedRendering = {
      index: item.index,
      source: item.source,
      ...(item.app !== undefined ? { app: item.app } : {}),
      owner,
      placement,
      notes,
    };
    entry.renderings.push(plannedRendering);
    if (identity) {
      renderings.push({
        key,
        identity,
        namespaced: placement.namespace !== undefined,
        source: item.source,
        ...(item.app !== undefined ? { app: item.app } : {}),
        owner,
      });
    }
  }

  const bundleNotes = new Map<string, BundleProblem[]>();
  for (const problem of bundle.problems) {
    const key = identityKey({ group: '', kind: problem.kind, namespace: problem.namespace, name: problem.name });
    bundleNotes.set(key, [...(bundleNotes.get(key) ?? []), problem]);
  }

  const checksumRules = new Map<string, string>();
  for (const rule of options.ruleSet.rules) {
    if (rule.action.type === 'stampConfigChecksum') {
      const annotation = rule.action.params.annotation;
      checksumRules.set(rule.name, typeof annotation === 'string' ? annotation : 'gitops-guard.dev/config-checksum');
    }
  }

  const clusterConfigs = options.cluster ? new CachingReader(options.cluster.configs) : undefined;

  const chain = async (entry: PlannedObject): Promise<void> => {
    let current: { object: KubeObject; from: OldObjectSource } | null = null;
    const first = entry.renderings[0]!;
    const liveNotes: string[] = [];
    if (options.cluster && entry.identity) {
      const { gvk } = first.placement;
      try {
        const live = await withTimeout(
          options.cluster.objects.read(
            {
              apiVersion: gvk.group ? `${gvk.group}/${gvk.version}` : gvk.version,
              kind: gvk.kind,
              plural: first.placement.gvr.resource,
              name: entry.identity.name,
              ...(entry.identity.namespace ? { namespace: entry.identity.namespace } : {}),
            },
            options.signal,
          ),
          READ_TIMEOUT_MS,
        );
        if (live) current = { object: live, from: 'cluster' };
      } catch (error) {
        liveNotes.push(
          `live object could not be read (${error instanceof Error ? error.message : String(error)}); audited as CREATE`,
        );
      }
    }
    for (const rendering of entry.renderings) {
      const operation = current ? 'UPDATE' : 'CREATE';
      const object = current ? applyOnto(current.object, rendering.placement.object) : rendering.placement.object;
      const outcome = await admit(rendering, object, operation, current?.object ?? null, options, bundle, clusterConfigs);
      const mutate = outcome.phases[0]!.evaluation;
      const notes = [...rendering.notes, ...(rendering === first ? liveNotes : [])];
      for (const problem of bundleNotes.get(entry.result.key) ?? []) {
        notes.push(`${problem.message}: the API server would reject this ${problem.kind}; the key is left out of checksums`);
      }
      entry.result.renderings.push({
        index: rendering.index,
        source: rendering.source,
        ...(rendering.app !== undefined ? { app: rendering.app } : {}),
        owner: rendering.owner,
        operation,
        oldObject: current?.from ?? 'none',
        allowed: outcome.allowed,
        patch: outcome.patch,
        phases: outcome.phases,
        checksums: checksumFindings(object, mutate, checksumRules),
        configSources: uniqueLookups(outcome.lookups),
        notes,
      });
      if (outcome.allowed) current = { object: outcome.admitted, from: 'input' };
    }
  };

  const entries = [...planned.values()];
  await pool(entries, options.cluster ? options.concurrency ?? 8 : 1, chain);

  const duplicates = findDuplicates(renderings);
  for (const duplicate of duplicates) {
    const entry = planned.get(duplicate.key);
    if (entry) entry.result.duplicate = duplicate;
  }

  const objects = entries.map((e) => e.result);
  const all = objects.flatMap((o) => o.renderings);
  const results = all.flatMap((r) => r.phases.flatMap((p) => p.evaluation.results));
  const partial: Omit<AuditSummary, 'exitCode'> = {
    files: input.stats.files,
    documents: input.stats.documents,
    objects: all.length,
    distinctObjects: objects.length,
    skipped: { ...input.stats.skipped },
    inputErrors: inputErrors.length,
    mutated: all.filter((r) => r.patch.length > 0).length,
    denied: all.filter((r) => !r.allowed).length,
    auditFindings: countResults(results, (r) => r.mode === 'audit' && (r.result === 'mutated' || r.result === 'denied')),
    warnings: results.reduce((n, r) => n + (r.warnings?.length ?? 0), 0),
    ruleErrors: countResults(results, (r) => r.result === 'error'),
    duplicates: {
      error: duplicates.filter((d) => d.severity === 'error').length,
      warning: duplicates.filter((d) => d.severity === 'warning').length,
    },
    checksums: {
      stamped: all.reduce((n, r) => n + r.checksums.filter((c) => c.status === 'stamped').length, 0),
      current: all.reduce((n, r) => n + r.checksums.filter((c) => c.status === 'current').length, 0),
      failed: all.reduce((n, r) => n + r.checksums.filter((c) => c.status === 'failed').length, 0),
    },
  };
  if (input.problems.length === 0 && input.objects.length === 0) {
    inputErrors.push({ file: options.inputs.map((i) => (i.path === '-' ? '<stdin>' : i.path)).join(', '), message: 'no Kubernetes objects found in the input' });
    partial.inputErrors = inputErrors.length;
  }
  return {
    namespace: options.namespace,
    ...(options.cluster ? { cluster: options.cluster.description } : {}),
    stats: input.stats,
    inputErrors,
    objects,
    duplicates,
    summary: { ...partial, exitCode: exitCodeFor(partial) },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
