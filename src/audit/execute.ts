import type { KubeObject } from '../api/types.js';
import type { KubeReader } from '../kube/reader.js';
import { admit, type EngineDeps } from '../rules/engine.js';
import type { PhaseResult } from '../rules/result.js';
import { BundleReader, CachingReader, type ConfigLookup } from './bundle-reader.js';
import { applyOnto } from './live.js';
import type { AuditPlan, PlannedObject, PlannedRendering } from './plan.js';
import { buildRequest } from './request.js';
import type { AuditOptions, ChecksumFinding, OldObjectSource } from './types.js';

/**
 * Executing an audit plan: every rendering goes through the webhook's own engine as the admission
 * request the API server would send (`admit`: mutate, patch, validate). Renderings of the same
 * object are applied in input order, so the second owner's apply is an UPDATE over the first
 * owner's admitted object — exactly what the validating webhook would see in the cluster.
 */

const READ_TIMEOUT_MS = 10_000;

function uniqueLookups(lookups: readonly ConfigLookup[]): ConfigLookup[] {
  const seen = new Map<string, ConfigLookup>();
  for (const lookup of lookups) {
    const key = `${lookup.kind}/${lookup.namespace}/${lookup.name}`;
    if (!seen.has(key)) seen.set(key, lookup);
  }
  return [...seen.values()];
}

/** The checksums the mutating phase's stampConfigChecksum rules computed, as they reported them. */
export function checksumFindings(mutate: PhaseResult): ChecksumFinding[] {
  const findings: ChecksumFinding[] = [];
  for (const result of mutate.results) {
    const details = result.details;
    if (details?.action !== 'stampConfigChecksum') continue;
    const base = { rule: result.rule, mode: result.mode, annotation: details.annotation };
    if (result.result === 'error') {
      findings.push({ ...base, status: 'failed', ...(result.reason ? { reason: result.reason } : {}) });
    } else if (result.result === 'mutated') {
      findings.push(details.decision === 'remove' || details.checksum == null ? { ...base, status: 'removed' } : { ...base, status: 'stamped', value: details.checksum });
    } else if (result.result === 'noop' && details.stamped !== undefined) {
      findings.push({ ...base, status: 'current', value: details.stamped });
    }
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

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The live object an existing object's first rendering is applied over (null: none, or it could not be read). */
async function readLive(entry: PlannedObject, options: AuditOptions, notes: string[]): Promise<KubeObject | null> {
  if (!options.cluster || !entry.identity) return null;
  const { gvk, gvr } = entry.renderings[0]!.placement;
  try {
    return await withTimeout(
      options.cluster.objects.read(
        {
          apiVersion: gvk.group ? `${gvk.group}/${gvk.version}` : gvk.version,
          kind: gvk.kind,
          plural: gvr.resource,
          name: entry.identity.name,
          ...(entry.identity.namespace ? { namespace: entry.identity.namespace } : {}),
        },
        options.signal,
      ),
      READ_TIMEOUT_MS,
    );
  } catch (error) {
    notes.push(`live object could not be read (${error instanceof Error ? error.message : String(error)}); audited as CREATE`);
    return null;
  }
}

export async function executePlan(plan: AuditPlan, options: AuditOptions): Promise<void> {
  const clusterConfigs = options.cluster ? new CachingReader(options.cluster.configs) : undefined;
  const signal = options.signal ?? new AbortController().signal;

  const admitRendering = async (rendering: PlannedRendering, object: KubeObject, operation: 'CREATE' | 'UPDATE', oldObject: KubeObject | null, configs: KubeReader | undefined) => {
    const request = buildRequest({ ...rendering.placement, object }, { index: rendering.index, operation, oldObject, ...(options.userInfo ? { userInfo: options.userInfo } : {}) });
    const reader = new BundleReader(plan.bundle, configs, rendering.app);
    const deps: EngineDeps = { registry: options.registry, kube: reader, settings: options.settings, logger: options.logger, ...(options.modeOverride ? { modeOverride: options.modeOverride } : {}) };
    return { admission: await admit({ ...request, object }, options.ruleSet, deps, signal), lookups: reader.lookups };
  };

  const chain = async (entry: PlannedObject): Promise<void> => {
    const liveNotes: string[] = [];
    const live = await readLive(entry, options, liveNotes);
    let current: { object: KubeObject; from: OldObjectSource } | null = live ? { object: live, from: 'cluster' } : null;
    const first = entry.renderings[0];
    for (const rendering of entry.renderings) {
      const operation = current ? 'UPDATE' : 'CREATE';
      const object = current ? applyOnto(current.object, rendering.placement.object) : rendering.placement.object;
      const { admission, lookups } = await admitRendering(rendering, object, operation, current?.object ?? null, clusterConfigs);
      const notes = [...rendering.notes, ...(rendering === first ? liveNotes : [])];
      for (const problem of plan.bundleNotes.get(entry.result.key) ?? []) {
        notes.push(`${problem.message}: the API server would reject this ${problem.kind}; the key is left out of checksums`);
      }
      entry.result.renderings.push({
        index: rendering.index,
        source: rendering.source,
        ...(rendering.app !== undefined ? { app: rendering.app } : {}),
        owner: rendering.owner,
        operation,
        oldObject: current?.from ?? 'none',
        allowed: admission.allowed,
        patch: admission.patch,
        phases: admission.phases,
        checksums: checksumFindings(admission.phases[0]!),
        configSources: uniqueLookups(lookups),
        notes,
      });
      if (admission.allowed) current = { object: admission.object, from: 'input' };
    }
  };

  await pool(plan.objects, options.cluster ? options.concurrency ?? 8 : 1, chain);
}
