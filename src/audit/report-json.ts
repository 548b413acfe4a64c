import type { Operation as PatchOperation } from 'fast-json-patch';
import type { RuleMode, RuleSet } from '../rules/types.js';
import type { AuditResult, ChecksumFinding, ObjectResult, RenderingResult } from './types.js';
import type { ConfigLookup } from './bundle-reader.js';
import type { DuplicateFinding } from './duplicates.js';

/**
 * The audit as JSON (schema docs/audit-output.schema.json, `version: 1`): what CI reads, and what
 * the table for people (report-table.ts) is rendered from. Secret data never appears: patch values
 * touching a Secret's data are redacted, and checksums over Secrets under the public audit key
 * are not shown.
 */

export const REPORT_VERSION = 1;
export const REDACTED = '[redacted]';

export type ChecksumKeySource = 'audit' | 'file';

export interface ReportContext {
  ruleSet: RuleSet;
  checksumKey: ChecksumKeySource;
}

export const AUDIT_KEY_NOTE =
  'config checksums are computed with the built-in audit key (32 zero bytes): they are deterministic but differ ' +
  "from the cluster's, and checksums over Secrets are not shown (the key is public); pass --checksum-key with the " +
  "cluster's key file to get the cluster's values";

/** Why a rendering's checksums are `[redacted]`. */
export const SECRET_CHECKSUM_NOTE =
  'checksum not shown: it covers a Secret and was computed with the built-in audit key, which is public, so anyone ' +
  "could test guesses of the Secret's values against it offline; pass --checksum-key to see the cluster's value";

export interface JsonFinding {
  phase: 'mutate' | 'validate';
  rule: string;
  action: string;
  mode: RuleMode;
}

export interface JsonRendering {
  file: string;
  line: number;
  app?: string;
  owner: string | null;
  operation: 'CREATE' | 'UPDATE';
  oldObject: 'none' | 'cluster' | 'input';
  allowed: boolean;
  patch: PatchOperation[];
  mutations: (JsonFinding & { patch: PatchOperation[] })[];
  denials: (JsonFinding & { message: string })[];
  warnings: (JsonFinding & { message: string })[];
  errors: (JsonFinding & { message: string; onError: 'allow' | 'deny' })[];
  checksums: ChecksumFinding[];
  configSources: ConfigLookup[];
  notes: string[];
}

export interface JsonObject {
  apiVersion: string;
  group: string;
  kind: string;
  name: string | null;
  namespace?: string;
  scope: 'Cluster' | 'Namespaced';
  scopeKnown: boolean;
  duplicate: { severity: 'error' | 'warning'; owners: string[]; message: string } | null;
  renderings: JsonRendering[];
}

export interface JsonDuplicate {
  group: string;
  kind: string;
  namespace?: string;
  name: string;
  scope: 'Cluster' | 'Namespaced';
  severity: 'error' | 'warning';
  owners: string[];
  renderings: { file: string; line: number; app?: string; owner: string | null }[];
  message: string;
}

export interface JsonReport {
  version: typeof REPORT_VERSION;
  kind: 'GitopsGuardAudit';
  exitCode: 0 | 1 | 2;
  namespace: string;
  cluster: string | null;
  checksumKey: { source: ChecksumKeySource; note?: string };
  summary: AuditResult['summary'];
  inputErrors: AuditResult['inputErrors'];
  duplicates: JsonDuplicate[];
  objects: JsonObject[];
}

function isSecret(object: ObjectResult): boolean {
  return object.group === '' && object.kind === 'Secret';
}

const SECRET_FIELDS = ['data', 'stringData', 'binaryData'];

function redactMap(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return REDACTED;
  return Object.fromEntries(Object.keys(value).map((key) => [key, REDACTED]));
}

/** Patch values on a Secret's data are replaced; keys stay visible, so a change is still reported. */
export function redactSecretPatch(ops: readonly PatchOperation[]): PatchOperation[] {
  return ops.map((op) => {
    if (!('value' in op)) return op;
    const segments = op.path.split('/').slice(1);
    if (segments.length === 0 || op.path === '') {
      const value = op.value as Record<string, unknown> | null;
      if (typeof value !== 'object' || value === null) return { ...op, value: REDACTED };
      const copy: Record<string, unknown> = { ...value };
      for (const field of SECRET_FIELDS) if (field in copy) copy[field] = redactMap(copy[field]);
      return { ...op, value: copy } as PatchOperation;
    }
    if (SECRET_FIELDS.includes(segments[0]!)) {
      return { ...op, value: segments.length === 1 ? redactMap(op.value) : REDACTED } as PatchOperation;
    }
    return op;
  });
}

/**
 * Checksums that must not be printed: computed under the public audit key over a Secret, they
 * would be a brute-force oracle for the Secret's values. Under the cluster's key (--checksum-key)
 * they are the very values the cluster stamps, readable by whoever can read the workload.
 */
function secretChecksumsUnderPublicKey(rendering: RenderingResult, context: ReportContext): ReadonlySet<string> {
  if (context.checksumKey !== 'audit' || !rendering.configSources.some((source) => source.kind === 'Secret')) return new Set();
  return new Set(rendering.checksums.flatMap((checksum) => (checksum.value === undefined ? [] : [checksum.value])));
}

/** `value` with every string in `hidden` replaced by REDACTED, at any depth. */
function withoutValues(value: unknown, hidden: ReadonlySet<string>): unknown {
  if (typeof value === 'string') return hidden.has(value) ? REDACTED : value;
  if (Array.isArray(value)) return value.map((item) => withoutValues(item, hidden));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, withoutValues(item, hidden)]));
  }
  return value;
}

function onErrorOf(ruleSet: RuleSet, rule: string): 'allow' | 'deny' {
  return ruleSet.rules.find((r) => r.name === rule)?.onError ?? 'allow';
}

function jsonRendering(object: ObjectResult, rendering: RenderingResult, context: ReportContext): JsonRendering {
  const hidden = secretChecksumsUnderPublicKey(rendering, context);
  const hideChecksums = (ops: readonly PatchOperation[]) => (hidden.size === 0 ? [...ops] : (withoutValues(ops, hidden) as PatchOperation[]));
  const redact = isSecret(object) ? redactSecretPatch : hideChecksums;
  const out: JsonRendering = {
    file: rendering.source.file,
    line: rendering.source.line,
    ...(rendering.app !== undefined ? { app: rendering.app } : {}),
    owner: rendering.owner,
    operation: rendering.operation,
    oldObject: rendering.oldObject,
    allowed: rendering.allowed,
    patch: redact(rendering.patch),
    mutations: [],
    denials: [],
    warnings: [],
    errors: [],
    checksums: rendering.checksums.map((checksum) => (checksum.value !== undefined && hidden.has(checksum.value) ? { ...checksum, value: REDACTED } : checksum)),
    configSources: rendering.configSources,
    notes: hidden.size > 0 ? [...rendering.notes, SECRET_CHECKSUM_NOTE] : rendering.notes,
  };
  for (const { phase, results } of rendering.phases) {
    for (const result of results) {
      const base: JsonFinding = { phase, rule: result.rule, action: result.action, mode: result.mode };
      if (result.patch && result.patch.length > 0) out.mutations.push({ ...base, patch: redact(result.patch) });
      if (result.denial) out.denials.push({ ...base, message: result.denial });
      for (const message of result.warnings ?? []) out.warnings.push({ ...base, message });
      if (result.result === 'error') {
        out.errors.push({ ...base, message: result.reason ?? 'error', onError: onErrorOf(context.ruleSet, result.rule) });
      }
    }
  }
  return out;
}

function jsonDuplicate(duplicate: DuplicateFinding): JsonDuplicate {
  return {
    group: duplicate.identity.group,
    kind: duplicate.identity.kind,
    ...(duplicate.identity.namespace !== undefined ? { namespace: duplicate.identity.namespace } : {}),
    name: duplicate.identity.name,
    scope: duplicate.scope,
    severity: duplicate.severity,
    owners: duplicate.owners,
    renderings: duplicate.renderings.map((r) => ({
      file: r.source.file,
      line: r.source.line,
      ...(r.app !== undefined ? { app: r.app } : {}),
      owner: r.owner,
    })),
    message: duplicate.message,
  };
}

export function toJsonReport(result: AuditResult, context: ReportContext): JsonReport {
  return {
    version: REPORT_VERSION,
    kind: 'GitopsGuardAudit',
    exitCode: result.summary.exitCode,
    namespace: result.namespace,
    cluster: result.cluster ?? null,
    checksumKey: { source: context.checksumKey, ...(context.checksumKey === 'audit' ? { note: AUDIT_KEY_NOTE } : {}) },
    summary: result.summary,
    inputErrors: result.inputErrors,
    duplicates: result.duplicates.map(jsonDuplicate),
    objects: result.objects.map((object) => ({
      apiVersion: object.apiVersion,
      group: object.group,
      kind: object.kind,
      name: object.name ?? null,
      ...(object.namespace !== undefined ? { namespace: object.namespace } : {}),
      scope: object.scope,
      scopeKnown: object.scopeKnown,
      duplicate: object.duplicate
        ? { severity: object.duplicate.severity, owners: object.duplicate.owners, message: object.duplicate.message }
        : null,
      renderings: object.renderings.map((rendering) => jsonRendering(object, rendering, context)),
    })),
  };
}

/** Writes the JSON report in chunks (one object per write) so a large report is never one giant string. */
export async function writeJsonReport(report: JsonReport, write: (text: string) => Promise<void> | void): Promise<void> {
  const { objects, ...head } = report;
  const headText = JSON.stringify(head, null, 2);
  await write(`${headText.slice(0, -2)},\n  "objects": [`);
  for (let i = 0; i < objects.length; i++) {
    const body = JSON.stringify(objects[i], null, 2).replace(/\n/g, '\n    ');
    await write(`${i === 0 ? '' : ','}\n    ${body}`);
  }
  await write(objects.length > 0 ? '\n  ]\n}\n' : ']\n}\n');
}
