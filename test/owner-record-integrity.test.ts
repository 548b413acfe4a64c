import { describe, expect, it } from 'vitest';
import { createRegistry } from '../src/actions/registry.js';
import type { KubeObject } from '../src/api/types.js';
import { UnavailableKubeReader } from '../src/kube/reader.js';
import { evaluate } from '../src/rules/engine.js';
import { parseRuleSet } from '../src/rules/load.js';
import { called, OWNERS_VALIDATE, shippedRulesText, write } from './support/owner-admission.js';
import { capturingLogger } from './support/app.js';
import { requestFor, withMeta } from './support/review.js';

/**
 * The owner record (`gitops-guard.dev/owner`) can be changed only through the handover flow.
 * Each attack from the security review runs here the way the API server would run it: the
 * shipped webhook configurations' matchConditions decide (in CEL) whether gitops-guard is called
 * at all, the mutating webhook's patch is applied, then the validating webhook judges the final
 * object, all with the shipped default rules.
 */

const registry = createRegistry();
const ARGOCD = 'system:serviceaccount:argocd:argocd-application-controller';
const FLUX = 'system:serviceaccount:flux-system:kustomize-controller';
const PERSON = 'jane@example.com';

const role = (labels: Record<string, string> = {}, annotations: Record<string, string> = {}): KubeObject => ({
  apiVersion: 'rbac.authorization.k8s.io/v1',
  kind: 'ClusterRole',
  metadata: { name: 'shared-reader', labels, annotations },
  rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }],
});
const by = (app: string) => role({ 'app.kubernetes.io/instance': app });
const ownerOf = (object: KubeObject) => object.metadata?.annotations?.['gitops-guard.dev/owner'];

/** team-a's object, as it lives in the cluster after its first sync. */
async function ownedByTeamA(): Promise<KubeObject> {
  const created = await write(by('team-a'), null);
  expect(created.allowed).toBe(true);
  expect(ownerOf(created.final)).toBe('argocd:team-a');
  return created.final;
}

/** A client-side apply keeps labels and annotations the new manifest does not mention. */
const applyOver = (live: KubeObject, incoming: KubeObject) =>
  withMeta(incoming, { labels: { ...live.metadata?.labels, ...incoming.metadata?.labels }, annotations: { ...live.metadata?.annotations, ...incoming.metadata?.annotations } });

describe('the owner record cannot be rewritten', () => {
  it('overwriting gitops-guard.dev/owner (keeping the owner\'s tracking) is denied, so the second sync cannot take over', async () => {
    const live = await ownedByTeamA();
    const rewritten = withMeta(live, { annotations: { 'gitops-guard.dev/owner': 'argocd:team-b' } });
    for (const username of [PERSON, ARGOCD]) {
      const step1 = await write(rewritten, live, { username });
      expect(step1.allowed, username).toBe(false);
      expect(step1.validate!.denials[0]).toBe(
        'ClusterRole/shared-reader is owned by argocd:team-a (gitops-guard.dev/owner); an update may not change it to argocd:team-b. ' +
          "Ownership moves only through a handover: argocd:team-a's team runs kubectl annotate clusterroles.rbac.authorization.k8s.io shared-reader gitops-guard.dev/handover-to=argocd:team-b, then the new owner applies it",
      );
      expect(step1.validate!.auditAnnotations['deny-duplicate-owner.owner-record']).toBe(`argocd:team-a -> argocd:team-b by ${username}`);
    }
    // And the would-be second step, the takeover sync, is the duplicate-owner denial it always was.
    expect((await write(applyOver(live, by('team-b')), live)).allowed).toBe(false);
  });

  it('stripping every label and annotation still reaches gitops-guard, which keeps the record; the takeover that follows is denied', async () => {
    const live = await ownedByTeamA();
    const stripped = structuredClone(live);
    delete stripped.metadata!.labels;
    delete stripped.metadata!.annotations;
    const step1 = await write(stripped, live, { username: PERSON });
    expect(step1.mutate, 'the mutating webhook is called').toBeDefined();
    expect(step1.allowed).toBe(true);
    expect(ownerOf(step1.final)).toBe('argocd:team-a');
    const step2 = await write(applyOver(step1.final, by('team-b')), step1.final);
    expect(step2.allowed).toBe(false);
    expect(step2.validate!.denials[0]).toContain('is owned by argocd:team-a; argocd:team-b may not take it over');
  });

  it('a mutating webhook ordered after gitops-guard that drops or rewrites the record is caught by the validating webhook', async () => {
    const live = await ownedByTeamA();
    const edit = withMeta(live, { labels: { tier: 'gold' } });
    const dropped = await write(edit, live, {
      username: PERSON,
      laterMutation: (o) => {
        const copy = structuredClone(o);
        delete copy.metadata!.annotations!['gitops-guard.dev/owner'];
        return copy;
      },
    });
    expect(dropped.allowed).toBe(false);
    expect(dropped.validate!.denials[0]).toContain('an update may not remove it');
    const rewritten = await write(edit, live, { username: PERSON, laterMutation: (o) => withMeta(o, { annotations: { 'gitops-guard.dev/owner': 'argocd:team-b' } }) });
    expect(rewritten.allowed).toBe(false);
    // Skipped only when neither side has labels or annotations, that is when there is no record to protect.
    const bare = { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'shared-reader' } };
    expect(called(OWNERS_VALIDATE, bare, bare, 'UPDATE', PERSON)).toBe(false);
    expect(called(OWNERS_VALIDATE, bare, live, 'UPDATE', PERSON)).toBe(true);
  });

  it('an update that drops only the record (kubectl replace, a new server-side apply manager) gets it back', async () => {
    const live = await ownedByTeamA();
    const replaced = await write(by('team-a'), live);
    expect(replaced.allowed).toBe(true);
    expect(ownerOf(replaced.final)).toBe('argocd:team-a');
  });

  it('a record nobody\'s tracking supports cannot be planted on an object without an owner', async () => {
    const unowned = role({}, { note: 'created by hand' });
    const planted = await write(withMeta(unowned, { annotations: { 'gitops-guard.dev/owner': 'argocd:team-b' } }), unowned, { username: PERSON });
    expect(planted.allowed).toBe(false);
    expect(planted.validate!.denials[0]).toBe(
      'ClusterRole/shared-reader: gitops-guard.dev/owner=argocd:team-b is not the owner its tracking fields name (none); the owner record is written by gitops-guard only',
    );
    // The first GitOps owner to adopt it is recorded as always.
    const adopted = await write(withMeta(unowned, { labels: { 'app.kubernetes.io/instance': 'team-b' } }), unowned);
    expect(adopted.allowed).toBe(true);
    expect(ownerOf(adopted.final)).toBe('argocd:team-b');
  });

  it('dry-run requests are judged the same way', async () => {
    const live = await ownedByTeamA();
    const attempt = await write(withMeta(live, { annotations: { 'gitops-guard.dev/owner': 'argocd:team-b' } }), live, { username: PERSON, dryRun: true });
    expect(attempt.allowed).toBe(false);
  });
});

describe('handover-to: who may offer an object', () => {
  it('a GitOps controller cannot: a team shipping the annotation in its rendering of another team\'s object is denied', async () => {
    const live = await ownedByTeamA();
    // team-b's app renders the object with team-a's tracking (an update "by the owner") plus the offer to itself.
    const sneaky = applyOver(live, withMeta(by('team-a'), { annotations: { 'gitops-guard.dev/handover-to': 'argocd:team-b' } }));
    for (const username of [ARGOCD, 'system:serviceaccount:openshift-gitops:openshift-gitops-argocd-application-controller', FLUX]) {
      const offered = await write(sneaky, live, { username });
      expect(offered.allowed, username).toBe(false);
      expect(offered.validate!.denials[0], username).toMatch(
        /^ClusterRole\/shared-reader: gitops-guard\.dev\/handover-to may not be set by this user \(.* matches system:serviceaccount:\*:.*, which may not set it\)/,
      );
    }
    // Nor when the object is created already offered.
    const created = await write(withMeta(by('team-a'), { annotations: { 'gitops-guard.dev/handover-to': 'argocd:team-b' } }), null);
    expect(created.allowed).toBe(false);
    expect(created.validate!.denials[0]).toContain('gitops-guard.dev/handover-to may not be set by this user');
  });

  it('a person can; the handover is recorded with who, from and to, in audit annotations and log lines', async () => {
    const live = await ownedByTeamA();
    const offer = await write(withMeta(live, { annotations: { 'gitops-guard.dev/handover-to': 'argocd:team-b' } }), live, { username: PERSON });
    expect(offer.allowed).toBe(true);
    expect(offer.validate!.auditAnnotations['deny-duplicate-owner.handover-offered']).toBe(`argocd:team-a -> argocd:team-b by ${PERSON}`);
    const offeredLine = offer.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'ownership handover offered');
    expect(offeredLine).toMatchObject({ level: 'info', from: 'argocd:team-a', to: 'argocd:team-b', by: PERSON, dryRun: false, object: 'ClusterRole/shared-reader' });

    const takeover = await write(applyOver(offer.final, by('team-b')), offer.final);
    expect(takeover.allowed).toBe(true);
    expect(ownerOf(takeover.final)).toBe('argocd:team-b');
    expect(takeover.final.metadata?.annotations?.['gitops-guard.dev/handover-to']).toBeUndefined();
    expect(takeover.validate!.auditAnnotations['deny-duplicate-owner.handover']).toBe(`argocd:team-a -> argocd:team-b by ${ARGOCD}`);
    const handedLine = takeover.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'ownership handed over');
    expect(handedLine).toMatchObject({ from: 'argocd:team-a', to: 'argocd:team-b', by: ARGOCD, object: 'ClusterRole/shared-reader' });
  });

  it('who may offer is configurable: only a platform group, and nobody else', async () => {
    const text = shippedRulesText().replace(
      '    action:\n      type: denyDuplicateOwner',
      '    action:\n      type: denyDuplicateOwner\n      params:\n        handoverAllowedUsers: []\n        handoverAllowedGroups: [platform-admins]',
    );
    const ruleSet = parseRuleSet(text, 'restricted', registry);
    const live = await ownedByTeamA();
    const offer = withMeta(live, { annotations: { 'gitops-guard.dev/handover-to': 'argocd:team-b' } });
    const jane = await write(offer, live, { username: PERSON, ruleSet });
    expect(jane.allowed).toBe(false);
    expect(jane.validate!.denials[0]).toContain(`${PERSON} is not among the users allowed to set it`);
    const mutate = await evaluate(requestFor(offer, { operation: 'UPDATE', oldObject: live, username: 'ops@example.com', groups: ['platform-admins'] }), 'validate', ruleSet, {
      registry,
      kube: new UnavailableKubeReader('none'),
      settings: {},
      logger: capturingLogger().logger,
    });
    expect(mutate.allowed).toBe(true);
  });
});

