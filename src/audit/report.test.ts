import { describe, expect, it } from 'vitest';
import type { PhaseResult } from '../rules/result.js';
import type { RuleSet } from '../rules/types.js';
import type { AuditResult, ObjectResult, RenderingResult } from './audit.js';
import { AUDIT_KEY_NOTE, REDACTED, redactSecretPatch, toJsonReport, writeJsonReport } from './report-json.js';
import { renderTable } from './report-table.js';

const ANSI = /\u001b\[/;

const ruleSet: RuleSet = {
  apiVersion: 'gitops-guard.dev/v1alpha1',
  kind: 'RuleSet',
  rules: [
    { name: 'stamp', match: { kinds: [], operations: ['CREATE'], scope: '*' }, action: { type: 'stampConfigChecksum', params: {} }, mode: 'enforce', onError: 'deny' },
  ],
};

function phaseResult(phase: PhaseResult['phase'], partial: Partial<PhaseResult>): PhaseResult {
  return { phase, allowed: true, patch: [], denials: [], warnings: [], auditAnnotations: {}, results: [], ...partial };
}

function rendering(partial: Partial<RenderingResult>): RenderingResult {
  return {
    index: 0,
    source: { file: 'app/all.yaml', line: 3 },
    owner: null,
    operation: 'CREATE',
    oldObject: 'none',
    allowed: true,
    patch: [],
    phases: [],
    checksums: [],
    configSources: [],
    notes: [],
    ...partial,
  };
}

function object(partial: Partial<ObjectResult>): ObjectResult {
  return {
    key: 'k',
    apiVersion: 'v1',
    group: '',
    version: 'v1',
    kind: 'ConfigMap',
    name: 'x',
    namespace: 'ns',
    scope: 'Namespaced',
    scopeKnown: true,
    renderings: [rendering({})],
    ...partial,
  };
}

function result(objects: ObjectResult[], partial: Partial<AuditResult['summary']> = {}): AuditResult {
  return {
    namespace: 'default',
    stats: { files: 1, documents: objects.length, objects: objects.length, skipped: { empty: 0, notKubernetes: 0 } },
    inputErrors: [],
    objects,
    duplicates: [],
    summary: {
      exitCode: 0, files: 1, documents: 1, objects: objects.length, distinctObjects: objects.length, skipped: { empty: 0, notKubernetes: 0 },
      inputErrors: 0, mutated: 0, denied: 0, auditFindings: 0, warnings: 0, ruleErrors: 0, duplicates: { error: 0, warning: 0 },
      checksums: { stamped: 0, current: 0, failed: 0 }, ...partial,
    },
  };
}

describe('redactSecretPatch', () => {
  it('hides values under data/stringData/binaryData, keeping keys, and leaves other paths alone', () => {
    expect(
      redactSecretPatch([
        { op: 'add', path: '/data/password', value: 'c2VjcmV0' },
        { op: 'replace', path: '/stringData', value: { token: 'plain' } },
        { op: 'add', path: '', value: { kind: 'Secret', data: { a: 'b' }, metadata: { name: 's' } } },
        { op: 'add', path: '/metadata/annotations/x', value: 'visible' },
        { op: 'remove', path: '/data/old' },
      ]),
    ).toEqual([
      { op: 'add', path: '/data/password', value: REDACTED },
      { op: 'replace', path: '/stringData', value: { token: REDACTED } },
      { op: 'add', path: '', value: { kind: 'Secret', data: { a: REDACTED }, metadata: { name: 's' } } },
      { op: 'add', path: '/metadata/annotations/x', value: 'visible' },
      { op: 'remove', path: '/data/old' },
    ]);
  });
});

describe('toJsonReport', () => {
  const secretPatch = [{ op: 'add' as const, path: '/stringData/token', value: 'hunter2' }];
  const secret = object({
    kind: 'Secret',
    renderings: [
      rendering({
        patch: secretPatch,
        phases: [
          phaseResult('mutate', { results: [{ rule: 'r', action: 'a', mode: 'audit', result: 'mutated', patch: secretPatch }] }),
        ],
      }),
    ],
  });
  const failing = object({
    kind: 'Deployment',
    group: 'apps',
    renderings: [
      rendering({
        allowed: false,
        phases: [
          phaseResult('mutate', {
            allowed: false,
            results: [{ rule: 'stamp', action: 'stampConfigChecksum', mode: 'enforce', result: 'error', reason: 'cannot read Secret ns/s' }],
          }),
        ],
      }),
    ],
  });

  it('never prints Secret data, in the combined patch or per rule', () => {
    const report = toJsonReport(result([secret]), { ruleSet, checksumKey: 'audit' });
    const text = JSON.stringify(report);
    expect(text).not.toContain('hunter2');
    expect(report.objects[0]!.renderings[0]!.mutations).toEqual([
      { phase: 'mutate', rule: 'r', action: 'a', mode: 'audit', patch: [{ op: 'add', path: '/stringData/token', value: REDACTED }] },
    ]);
  });

  it("reports rule errors with the rule's onError, and the audit-key note only for the audit key", () => {
    const report = toJsonReport(result([failing]), { ruleSet, checksumKey: 'audit' });
    expect(report.objects[0]!.renderings[0]!.errors).toEqual([
      { phase: 'mutate', rule: 'stamp', action: 'stampConfigChecksum', mode: 'enforce', message: 'cannot read Secret ns/s', onError: 'deny' },
    ]);
    expect(report.checksumKey).toEqual({ source: 'audit', note: AUDIT_KEY_NOTE });
    expect(toJsonReport(result([]), { ruleSet, checksumKey: 'file' }).checksumKey).toEqual({ source: 'file' });
  });

  it('writes the same document in chunks as JSON.stringify would', async () => {
    for (const objects of [[], [secret, failing]]) {
      const report = toJsonReport(result(objects), { ruleSet, checksumKey: 'audit' });
      const chunks: string[] = [];
      await writeJsonReport(report, (chunk) => void chunks.push(chunk));
      expect(chunks.length).toBe(objects.length + 2);
      expect(JSON.parse(chunks.join(''))).toEqual(JSON.parse(JSON.stringify(report)));
    }
  });
});

describe('renderTable', () => {
  const denied = object({
    kind: 'ClusterRole',
    group: 'rbac.authorization.k8s.io',
    namespace: undefined,
    scope: 'Cluster',
    renderings: [
      rendering({ owner: 'argocd:a', app: 'a', patch: [{ op: 'add', path: '/metadata/annotations', value: { owner: 'argocd:a' } }] }),
      rendering({
        owner: 'argocd:b',
        app: 'b',
        operation: 'UPDATE',
        oldObject: 'input',
        allowed: false,
        phases: [
          phaseResult('validate', { allowed: false, results: [{ rule: 'deny-duplicate-owner', action: 'denyDuplicateOwner', mode: 'enforce', result: 'denied', denial: 'ClusterRole/x is owned by argocd:a' }] }),
        ],
      }),
    ],
  });
  const quiet = object({ name: 'quiet' });

  it('groups findings by object, lists quiet objects only as a count, and has no colour unless asked', () => {
    const report = toJsonReport(result([denied, quiet], { exitCode: 1, denied: 1, objects: 3 }), { ruleSet, checksumKey: 'audit' });
    const table = renderTable(report, { color: false });
    expect(table).not.toMatch(ANSI);
    expect(table).toContain('ClusterRole.rbac.authorization.k8s.io x\n');
    expect(table).toContain('  app/all.yaml:3 [app b, owner argocd:b] UPDATE over the earlier rendering -> DENIED');
    expect(table).toContain('    DENY deny-duplicate-owner: ClusterRole/x is owned by argocd:a');
    expect(table).not.toContain('ConfigMap ns/quiet');
    expect(table).toContain('1 object with nothing to report not listed');
    expect(table).toMatch(/Result: 3 objects, 0 mutated, 1 denied, 0 duplicate owners -> exit 1\n$/);
    expect(renderTable(report, { color: false, all: true })).toContain('ConfigMap ns/quiet');
    expect(renderTable(report, { color: true })).toMatch(ANSI);
  });
});
