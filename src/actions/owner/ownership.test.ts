import { describe, expect, it } from 'vitest';
import { createRegistry } from '../registry.js';
import { applyPatch } from '../patch.js';
import { evaluate, type EngineDeps } from '../../rules/engine.js';
import { parseRuleSet } from '../../rules/load.js';
import { UnavailableKubeReader } from '../../kube/reader.js';
import { createLogger } from '../../server/logger.js';
import type { KubeObject } from '../../api/types.js';
import type { RuleMode } from '../../rules/types.js';
import { requestFor, withMeta } from '../../../test/support/review.js';

const registry = createRegistry();

function rules(mode: RuleMode = 'enforce') {
  return parseRuleSet(
    `apiVersion: gitops-guard.dev/v1alpha1
kind: RuleSet
rules:
  - name: tag-owner
    match: { kinds: [{ group: rbac.authorization.k8s.io, kind: ClusterRoleBinding }] }
    action: { type: tagOwner }
  - name: deny-duplicate-owner
    match: { kinds: [{ group: rbac.authorization.k8s.io, kind: ClusterRoleBinding }], operations: [UPDATE] }
    action: { type: denyDuplicateOwner }
    mode: ${mode}
`,
    'test',
    registry,
  );
}

const deps: EngineDeps = { registry, kube: new UnavailableKubeReader('none'), settings: {}, logger: createLogger('silent') };

const rendered: KubeObject = {
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRoleBinding',
  metadata: { name: 'airflow-pre-checker-binding' },
  roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'airflow-pre-checker' },
  subjects: [{ kind: 'ServiceAccount', name: 'airflow-pre-checker', namespace: 'airflow' }],
};

const byLabel = (app: string) => withMeta(rendered, { labels: { 'app.kubernetes.io/instance': app } });
const byAnnotation = (app: string) =>
  withMeta(rendered, { annotations: { 'argocd.argoproj.io/tracking-id': `${app}:rbac.authorization.k8s.io/ClusterRoleBinding:airflow/airflow-pre-checker-binding` } });

/** A person with kubectl, as opposed to the GitOps controller that applies every team's manifests. */
const PERSON = 'jane@example.com';

/** What the API server does: mutate, apply the patch, validate the final object. */
async function admit(object: KubeObject, oldObject: KubeObject | null, mode: RuleMode = 'enforce', username?: string) {
  const ruleSet = rules(mode);
  const operation = oldObject ? 'UPDATE' : 'CREATE';
  const options = { operation, oldObject, ...(username ? { username } : {}) } as const;
  const mutation = await evaluate(requestFor(object, options), 'mutate', ruleSet, deps);
  const final = applyPatch(object, mutation.patch);
  // Idempotency: the patched object, sent again, needs no further patch.
  const again = await evaluate(requestFor(final, options), 'mutate', ruleSet, deps);
  expect(again.patch).toEqual([]);
  const validation = await evaluate(requestFor(final, options), 'validate', ruleSet, deps);
  return { mutation, validation, final };
}

/** A client-side apply keeps labels and annotations the new manifest does not mention (like the owner record). */
function applyOver(live: KubeObject, incoming: KubeObject): KubeObject {
  return withMeta(incoming, {
    labels: { ...live.metadata?.labels, ...incoming.metadata?.labels },
    annotations: { ...live.metadata?.annotations, ...incoming.metadata?.annotations },
  });
}

describe('the airflow-pre-checker-binding worked example', () => {
  for (const [tracking, render] of [['label tracking', byLabel], ['annotation tracking', byAnnotation]] as const) {
    describe(tracking, () => {
      it('records the first app as owner and denies the second app, naming both', async () => {
        const first = await admit(render('pdp-dev-airflow'), null);
        expect(first.validation.allowed).toBe(true);
        expect(first.final.metadata?.annotations?.['gitops-guard.dev/owner']).toBe('argocd:pdp-dev-airflow');
        expect(first.final.metadata?.labels?.['app.kubernetes.io/instance']).toBe('pdp-dev-airflow');

        const live = first.final;
        const second = await admit(applyOver(live, render('smartdq-dev-airflow')), live);
        expect(second.mutation.patch).toEqual([]);
        expect(second.validation.allowed).toBe(false);
        const [message] = second.validation.denials;
        expect(message).toContain('ClusterRoleBinding/airflow-pre-checker-binding is owned by argocd:pdp-dev-airflow');
        expect(message).toContain('argocd:smartdq-dev-airflow may not take it over');
        expect(message).toContain(
          'kubectl annotate clusterrolebindings.rbac.authorization.k8s.io airflow-pre-checker-binding gitops-guard.dev/handover-to=argocd:smartdq-dev-airflow',
        );
        expect(second.validation.auditAnnotations['deny-duplicate-owner.duplicate-owner']).toBe(
          'argocd:pdp-dev-airflow vs argocd:smartdq-dev-airflow',
        );
      });

      it('allows the second app with an [audit] warning in audit mode', async () => {
        const live = (await admit(render('pdp-dev-airflow'), null)).final;
        const second = await admit(applyOver(live, render('smartdq-dev-airflow')), live, 'audit');
        expect(second.validation.allowed).toBe(true);
        expect(second.validation.warnings).toHaveLength(1);
        expect(second.validation.warnings[0]).toMatch(/^\[audit\] rule deny-duplicate-owner would deny: ClusterRoleBinding\/airflow-pre-checker-binding is owned by argocd:pdp-dev-airflow/);
        expect(second.validation.auditAnnotations['deny-duplicate-owner.would-deny']).toContain('argocd:smartdq-dev-airflow');
      });

      it('lets the second app take over after a handover, and switches the record', async () => {
        const created = (await admit(render('pdp-dev-airflow'), null)).final;
        // The current owner's team annotates the live object (a person's update: owner unchanged, allowed).
        const annotated = withMeta(created, { annotations: { 'gitops-guard.dev/handover-to': 'argocd:smartdq-dev-airflow' } });
        const handoverEdit = await admit(annotated, created, 'enforce', PERSON);
        expect(handoverEdit.validation.allowed).toBe(true);
        expect(handoverEdit.validation.auditAnnotations['deny-duplicate-owner.handover-offered']).toBe(
          `argocd:pdp-dev-airflow -> argocd:smartdq-dev-airflow by ${PERSON}`,
        );
        const live = handoverEdit.final;

        const second = await admit(applyOver(live, render('smartdq-dev-airflow')), live);
        expect(second.validation.allowed).toBe(true);
        expect(second.final.metadata?.annotations?.['gitops-guard.dev/owner']).toBe('argocd:smartdq-dev-airflow');
        expect(second.final.metadata?.annotations?.['gitops-guard.dev/handover-to']).toBeUndefined();
        const by = 'by system:serviceaccount:argocd:argocd-application-controller';
        expect(second.mutation.auditAnnotations['tag-owner.handover']).toBe(`argocd:pdp-dev-airflow -> argocd:smartdq-dev-airflow ${by}`);
        expect(second.validation.auditAnnotations['deny-duplicate-owner.handover']).toBe(`argocd:pdp-dev-airflow -> argocd:smartdq-dev-airflow ${by}`);

        // From now on the previous owner is the intruder.
        const back = await admit(applyOver(second.final, render('pdp-dev-airflow')), second.final);
        expect(back.validation.allowed).toBe(false);
        expect(back.validation.denials[0]).toContain('owned by argocd:smartdq-dev-airflow');
      });
    });
  }

  it('passes updates that do not change the owner (kubectl edit, controllers)', async () => {
    const live = (await admit(byLabel('pdp-dev-airflow'), null)).final;
    const edited = structuredClone(live);
    (edited.subjects as unknown[]).push({ kind: 'User', name: 'jane' });
    const result = await admit(edited, live);
    expect(result.validation.allowed).toBe(true);
    expect(result.mutation.patch).toEqual([]);
    const untracked = withMeta(rendered, { annotations: live.metadata!.annotations! });
    expect((await admit(untracked, live)).validation.allowed).toBe(true);
  });

  it('judges objects that predate gitops-guard by the owner their tracking names', async () => {
    const legacy = byLabel('pdp-dev-airflow');
    const result = await admit(byLabel('smartdq-dev-airflow'), legacy);
    expect(result.validation.allowed).toBe(false);
    expect(result.validation.denials[0]).toContain('owned by argocd:pdp-dev-airflow');
  });

  it('restores the live owner record when an update drops the annotation (replace, server-side apply)', async () => {
    const live = (await admit(byLabel('pdp-dev-airflow'), null)).final;
    const replaced = await admit(byLabel('pdp-dev-airflow'), live);
    expect(replaced.final.metadata?.annotations?.['gitops-guard.dev/owner']).toBe('argocd:pdp-dev-airflow');
    const intruder = await admit(byLabel('smartdq-dev-airflow'), live);
    expect(intruder.final.metadata?.annotations?.['gitops-guard.dev/owner']).toBe('argocd:pdp-dev-airflow');
    expect(intruder.validation.allowed).toBe(false);
  });
});

describe('tagOwner', () => {
  it('never overwrites a label the user set, and warns when it disagrees', async () => {
    const helmRendered = withMeta(rendered, {
      labels: { 'app.kubernetes.io/instance': 'chart-default' },
      annotations: { 'meta.helm.sh/release-name': 'airflow', 'meta.helm.sh/release-namespace': 'data' },
    });
    const { mutation, final } = await admit(helmRendered, null);
    expect(final.metadata?.labels?.['app.kubernetes.io/instance']).toBe('chart-default');
    expect(final.metadata?.annotations?.['gitops-guard.dev/owner']).toBe('helm:data/airflow');
    expect(mutation.warnings).toEqual(['gitops-guard: label app.kubernetes.io/instance=chart-default disagrees with owner helm:data/airflow; left unchanged']);
  });

  it('leaves objects without a resolvable owner alone', async () => {
    const { mutation } = await admit(rendered, null);
    expect(mutation.patch).toEqual([]);
    expect(mutation.results.find((r) => r.rule === 'tag-owner')?.result).toBe('noop');
  });

  it('does not set a label value Kubernetes would reject', async () => {
    const longApp = 'a'.repeat(70);
    const { final } = await admit(withMeta(rendered, { annotations: { 'meta.helm.sh/release-name': longApp, 'meta.helm.sh/release-namespace': 'x' } }), null);
    expect(final.metadata?.annotations?.['gitops-guard.dev/owner']).toBe(`helm:x/${longApp}`);
    expect(final.metadata?.labels).toBeUndefined();
  });
});
