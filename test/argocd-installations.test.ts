import { describe, expect, it } from 'vitest';
import { createRegistry } from '../src/actions/registry.js';
import type { KubeObject } from '../src/api/types.js';
import { parseRuleSet } from '../src/rules/load.js';
import type { RuleSet } from '../src/rules/types.js';
import { shippedRulesText, write } from './support/owner-admission.js';
import { withMeta } from './support/review.js';

/**
 * Two Argo CD instances on one cluster (a hub managing it remotely and a local one, or two
 * teams' instances) with Applications of the same name. With an `installationID`, Argo CD writes
 * `argocd.argoproj.io/installation-id` next to the tracking id, and the owner becomes
 * `argocd:<installation>/<app>`; objects without it keep `argocd:<app>`.
 */

const registry = createRegistry();

const crd = (annotations: Record<string, string> = {}, labels: Record<string, string> = {}): KubeObject => ({
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.example.com', annotations, labels },
  spec: { group: 'example.com', names: { kind: 'Widget', plural: 'widgets' }, scope: 'Namespaced', versions: [] },
});
/** What an Argo CD with annotation tracking writes for app `guestbook` (destination namespace `apps`). */
const trackedBy = (installation?: string) =>
  crd({
    'argocd.argoproj.io/tracking-id': 'guestbook:apiextensions.k8s.io/CustomResourceDefinition:apps/widgets.example.com',
    ...(installation ? { 'argocd.argoproj.io/installation-id': installation } : {}),
  });
const ownerOf = (object: KubeObject) => object.metadata?.annotations?.['gitops-guard.dev/owner'];
const applyOver = (live: KubeObject, incoming: KubeObject) =>
  withMeta(incoming, { labels: { ...live.metadata?.labels, ...incoming.metadata?.labels }, annotations: { ...live.metadata?.annotations, ...incoming.metadata?.annotations } });

/** The shipped rules with extra owner parameters on both owner rules. */
function rulesWith(params: Record<string, string>): RuleSet {
  const lines = Object.entries(params).map(([key, value]) => `        ${key}: ${value}`).join('\n');
  const text = shippedRulesText()
    .replace('    action:\n      type: tagOwner', `    action:\n      type: tagOwner\n      params:\n${lines}`)
    .replace('    action:\n      type: denyDuplicateOwner', `    action:\n      type: denyDuplicateOwner\n      params:\n${lines}`);
  return parseRuleSet(text, 'rules with installation parameters', registry);
}

describe('two Argo CD installations with same-named apps', () => {
  it('are two owners: the second installation\'s app may not take over the first one\'s object', async () => {
    const created = await write(trackedBy('hub'), null);
    expect(ownerOf(created.final)).toBe('argocd:hub/guestbook');
    const local = await write(applyOver(created.final, trackedBy('local')), created.final);
    expect(local.allowed).toBe(false);
    expect(local.validate!.denials[0]).toContain('CustomResourceDefinition/widgets.example.com is owned by argocd:hub/guestbook; argocd:local/guestbook may not take it over');
    // The same installation's next sync is the owner, as always.
    expect((await write(applyOver(created.final, trackedBy('hub')), created.final)).allowed).toBe(true);
  });

  it('objects without an installation id keep today\'s owner, so nothing already recorded changes', async () => {
    const created = await write(trackedBy(), null);
    expect(ownerOf(created.final)).toBe('argocd:guestbook');
    expect((await write(applyOver(created.final, trackedBy()), created.final)).allowed).toBe(true);
    // An instance with an installation id is someone else, unless configured otherwise (below).
    expect((await write(applyOver(created.final, trackedBy('hub')), created.final)).allowed).toBe(false);
  });

  it('label tracking takes its installation name from argocdLabelInstallation', async () => {
    const ruleSet = rulesWith({ argocdLabelInstallation: 'local' });
    const labelled = crd({}, { 'app.kubernetes.io/instance': 'guestbook' });
    const created = await write(labelled, null, { ruleSet });
    expect(ownerOf(created.final)).toBe('argocd:local/guestbook');
    const hub = await write(applyOver(created.final, trackedBy('hub')), created.final, { ruleSet });
    expect(hub.allowed).toBe(false);
    expect(hub.validate!.denials[0]).toContain('is owned by argocd:local/guestbook; argocd:hub/guestbook may not take it over');
  });

  it('after an existing Argo CD gets an installation id, argocdLegacyInstallation moves its records once, and only its own', async () => {
    const before = await write(trackedBy(), null);
    expect(ownerOf(before.final)).toBe('argocd:guestbook');
    const ruleSet = rulesWith({ argocdLegacyInstallation: 'hub' });
    const hub = await write(applyOver(before.final, trackedBy('hub')), before.final, { ruleSet });
    expect(hub.allowed).toBe(true);
    expect(ownerOf(hub.final)).toBe('argocd:hub/guestbook');
    // From then on the record names the installation; the other instance's same-named app is still refused.
    const local = await write(applyOver(hub.final, trackedBy('local')), hub.final, { ruleSet });
    expect(local.allowed).toBe(false);
    expect(local.validate!.denials[0]).toContain('is owned by argocd:hub/guestbook; argocd:local/guestbook may not take it over');
    expect((await write(applyOver(before.final, trackedBy('local')), before.final, { ruleSet })).allowed).toBe(false);
  });
});
