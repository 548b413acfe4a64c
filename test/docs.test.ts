import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { createRegistry } from '../src/actions/registry.js';
import { generateClientCertificates, webhookKubeconfig } from '../src/certs/generate.js';
import { buildObjects } from './support/kustomize.js';
import type { AdmissionReview, KubeObject } from '../src/api/types.js';
import { parseRuleSet } from '../src/rules/load.js';
import { ruleSetSchema } from '../src/rules/schema.js';
import { WEBHOOK_PATHS } from '../src/server/app.js';
import { createMetrics } from '../src/server/metrics.js';
import { createControllerMetrics } from '../src/controller/metrics.js';
import { testApp } from './support/app.js';
import { applyResponsePatch, reviewFor } from './support/review.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const doc = (name: string) => readFileSync(join(ROOT, 'docs', name), 'utf8');

/** Fenced code blocks of one language. */
function fenced(markdown: string, language: string): string[] {
  return [...markdown.matchAll(new RegExp('^```' + language + '\\n([\\s\\S]*?)^```$', 'gm'))].map((m) => m[1]!);
}

// ---------------------------------------------------------------------------------------------
// docs/rules.md against ruleSetSchema()

type Schema = {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  default?: unknown;
  properties?: Record<string, Schema>;
  items?: Schema;
  oneOf?: Schema[];
};

/** Every field path of the schema, e.g. `rules[].match.kinds[].group`; action params are separate. */
function schemaFields(schema: Schema, prefix = ''): Map<string, Schema> {
  const fields = new Map<string, Schema>();
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    const path = prefix ? `${prefix}.${name}` : name;
    fields.set(path, child);
    if (path.endsWith('action.params')) continue;
    for (const [p, s] of schemaFields(child, path)) fields.set(p, s);
  }
  if (schema.items) for (const [p, s] of schemaFields(schema.items, `${prefix}[]`)) fields.set(p, s);
  // The action branches (one per registered action) share their field names: `type`, `params`.
  for (const branch of schema.oneOf ?? []) {
    for (const [name, child] of Object.entries(branch.properties ?? {})) {
      const path = `${prefix}.${name}`;
      if (!fields.has(path)) fields.set(path, child);
    }
  }
  return fields;
}

interface Row {
  path: string;
  type: string;
  default: string;
  line: string;
}

/** Rows `| \`path\` | type | default | description |` of the tables in `markdown`. */
function tableRows(markdown: string): Row[] {
  return markdown
    .split('\n')
    .filter((line) => /^\| `[^`]+` \|/.test(line))
    .map((line) => {
      const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
      return { path: cells[0]!.replace(/^`|`$/g, ''), type: cells[1]!, default: cells[2]!, line };
    });
}

/** The part of `markdown` under a heading, up to the next heading of the same or a higher level. */
function sections(markdown: string, level: number): Map<string, string> {
  const result = new Map<string, string>();
  const hashes = '#'.repeat(level);
  const parts = markdown.split(new RegExp(`^(?=#{1,${level}} )`, 'm'));
  for (const part of parts) {
    const heading = new RegExp(`^${hashes} (.+)\\n`).exec(part);
    if (heading) result.set(heading[1]!.trim(), part);
  }
  return result;
}

function checkRow(row: Row | undefined, path: string, schema: Schema): void {
  expect(row, `docs/rules.md documents \`${path}\``).toBeDefined();
  const expectedDefault = schema.default === undefined ? '—' : `\`${JSON.stringify(schema.default)}\``;
  expect(row!.default, `default of ${path}`).toBe(expectedDefault);
  const values = schema.const !== undefined ? [schema.const] : (schema.enum ?? schema.items?.enum);
  for (const value of values ?? []) expect(row!.type, `${path} lists ${String(value)}`).toContain(`\`${String(value)}\``);
  if (schema.const !== undefined) expect(row!.type).toMatch(/^const /);
  else if (schema.enum) expect(row!.type).toMatch(/^one of /);
  else expect(row!.type.split(' ')[0], `type of ${path}`).toBe(schema.type);
}

describe('docs/rules.md', () => {
  const markdown = doc('rules.md');
  const registry = createRegistry();

  it('documents every RuleSet field with its type, default and allowed values, and nothing else', () => {
    const fields = schemaFields(ruleSetSchema(registry) as Schema);
    const rows = tableRows(markdown.split('\n## Actions')[0]!);
    expect(rows.map((r) => r.path).sort()).toEqual([...fields.keys()].sort());
    for (const [path, schema] of fields) checkRow(rows.find((r) => r.path === path), path, schema);
    // The action type list names every registered action.
    const actionRow = rows.find((r) => r.path === 'rules[].action.type')!;
    for (const name of registry.keys()) expect(actionRow.line).toContain(`\`${name}\``);
  });

  it('documents every action, in its webhook phase, with every parameter', () => {
    const actions = [...sections(markdown, 3)].filter(([heading]) => /^`\w+` \((mutate|validate)\)$/.test(heading));
    expect(actions.map(([heading]) => heading).sort()).toEqual([...registry.values()].map((a) => `\`${a.name}\` (${a.phase})`).sort());
    for (const [heading, text] of actions) {
      const action = registry.get(/^`(\w+)`/.exec(heading)![1]!)!;
      const fields = schemaFields(action.paramsSchema as Schema, 'params');
      const rows = tableRows(text);
      expect(rows.map((r) => r.path).sort(), action.name).toEqual([...fields.keys()].sort());
      for (const [path, schema] of fields) checkRow(rows.find((r) => r.path === path), `${action.name} ${path}`, schema);
    }
  });

  it('has examples that load as they are, covering every action', () => {
    const examples = fenced(markdown, 'yaml').filter((block) => /^kind: RuleSet$/m.test(block));
    expect(examples.length).toBeGreaterThanOrEqual(3);
    const used = new Set<string>();
    examples.forEach((example, i) => {
      const ruleSet = parseRuleSet(example, `docs/rules.md example ${i + 1}`, registry);
      for (const rule of ruleSet.rules) used.add(rule.action.type);
    });
    expect([...used].sort()).toEqual([...registry.keys()].sort());
  });
});

// ---------------------------------------------------------------------------------------------

const VALIDATING_WEBHOOK = (() => {
  const config = parse(readFileSync(join(ROOT, 'manifests', 'base', 'validating-webhook.yaml'), 'utf8')) as { webhooks: { name: string }[] };
  expect(config.webhooks).toHaveLength(1);
  return config.webhooks[0]!.name;
})();

async function admit(app: ReturnType<typeof testApp>['app'], phase: 'mutate' | 'validate', review: AdmissionReview) {
  const answer = await request(app).post(WEBHOOK_PATHS[phase]).set('content-type', 'application/json').send(review);
  expect(answer.status).toBe(200);
  return answer.body.response as { allowed: boolean; patch?: string; status?: { message: string } };
}

/** What kubectl prints after `Error from server (Forbidden): ` for a denial by the validating webhook. */
const denialLine = (message: string) => `admission webhook "${VALIDATING_WEBHOOK}" denied the request: ${message}`;

describe('docs/install.md', () => {
  const markdown = doc('install.md');

  it('shows the duplicate-owner denial exactly as the server words it', async () => {
    // The walkthrough: one ClusterRole applied with Argo CD label tracking for team-a, then
    // re-applied by team-b. Objects as the API server would send them after `kubectl apply`.
    const { app } = testApp();
    const yamlBlocks = fenced(markdown, 'yaml');
    const roles = yamlBlocks
      .flatMap((block) => parseAllDocuments(block).map((d) => d.toJS() as KubeObject))
      .filter((o) => o?.kind === 'ClusterRole' && o.metadata?.name === 'gitops-guard-demo');
    expect(roles.map((r) => r.metadata!.labels!['app.kubernetes.io/instance'])).toEqual(['team-a', 'team-b']);
    const created = await admit(app, 'mutate', reviewFor(roles[0]!));
    const live = applyResponsePatch(roles[0]!, created.patch);
    expect(live.metadata!.annotations!['gitops-guard.dev/owner']).toBe('argocd:team-a');
    // kubectl apply (client side) merges the new labels into the live object.
    const incoming = structuredClone(live);
    incoming.metadata!.labels = { ...incoming.metadata!.labels, ...roles[1]!.metadata!.labels };
    const mutated = await admit(app, 'mutate', reviewFor(incoming, { operation: 'UPDATE', oldObject: live }));
    const final = applyResponsePatch(incoming, mutated.patch);
    const verdict = await admit(app, 'validate', reviewFor(final, { operation: 'UPDATE', oldObject: live }));
    expect(verdict.allowed).toBe(false);
    expect(markdown).toContain(denialLine(verdict.status!.message));
  });

  it('shows an AdmissionConfiguration that gives both webhook plugins the kubeconfig `certs --client` writes', () => {
    const block = /<!-- admission-configuration -->\s*```yaml\n([\s\S]*?)```/.exec(markdown)?.[1];
    expect(block, 'the admission-configuration block').toBeDefined();
    const config = parse(block!) as { apiVersion: string; kind: string; plugins: { name: string; configuration: { apiVersion: string; kind: string; kubeConfigFile: string } }[] };
    expect(config).toMatchObject({ apiVersion: 'apiserver.config.k8s.io/v1', kind: 'AdmissionConfiguration' });
    expect(config.plugins.map((p) => p.name).sort()).toEqual(['MutatingAdmissionWebhook', 'ValidatingAdmissionWebhook']);
    for (const plugin of config.plugins) {
      expect(plugin.configuration).toMatchObject({ apiVersion: 'apiserver.config.k8s.io/v1', kind: 'WebhookAdmissionConfiguration' });
      expect(markdown, 'the text says where the kubeconfig goes').toContain(`to \`${plugin.configuration.kubeConfigFile}\``);
    }
    // The kubeconfig names the user after the Service the webhook configurations call (port 443).
    const client = generateClientCertificates({ service: 'gitops-guard', namespace: 'gitops-guard', days: 1 });
    const kubeconfig = parse(webhookKubeconfig('gitops-guard', 'gitops-guard', client)) as { users: { name: string }[] };
    const service = (parse(readFileSync(join(ROOT, 'manifests', 'base', 'validating-webhook.yaml'), 'utf8')) as { webhooks: { clientConfig: { service: { name: string; namespace: string; port: number } } }[] }).webhooks[0]!.clientConfig.service;
    expect(service.port).toBe(443);
    expect(kubeconfig.users.map((u) => u.name)).toEqual([`${service.name}.${service.namespace}.svc`]);
    expect(markdown).toContain(`\`${service.name}.${service.namespace}.svc\``);
  });

  it('narrows the NetworkPolicy with the documented patch, changing nothing else', () => {
    const block = /<!-- networkpolicy-patch -->\s*```yaml\n([\s\S]*?)```/.exec(markdown)?.[1];
    expect(block, 'the networkpolicy-patch block').toBeDefined();
    const dir = join(ROOT, '.tmp', `docs-networkpolicy-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    try {
      const overlay = join(ROOT, 'manifests', 'overlays', 'enforce-client-auth');
      writeFileSync(join(dir, 'kustomization.yaml'), block!.replace('../../vendor/gitops-guard/manifests/overlays/enforce-client-auth', relative(dir, overlay)));
      const patched = buildObjects(dir);
      const original = buildObjects(overlay);
      const policy = (list: KubeObject[]) => list.find((o) => o.kind === 'NetworkPolicy' && o.metadata?.name === 'gitops-guard') as any;
      expect(policy(patched).spec.ingress).toEqual([
        {
          from: [
            { ipBlock: { cidr: '10.0.0.10/32' } },
            { ipBlock: { cidr: '10.0.0.11/32' } },
            { ipBlock: { cidr: '10.0.0.12/32' } },
            { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
          ],
          ports: policy(original).spec.ingress[0].ports,
        },
      ]);
      expect(patched.filter((o) => o.kind !== 'NetworkPolicy')).toEqual(original.filter((o) => o.kind !== 'NetworkPolicy'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refers only to files and kustomizations that exist', () => {
    for (const [, path] of markdown.matchAll(/\b((?:manifests|hack|docs|rules)\/[\w./-]*[\w/])/g)) {
      expect(existsSync(join(ROOT, path!)), path).toBe(true);
    }
    const kustomizations = [...markdown.matchAll(/kubectl (?:apply|delete|kustomize) (?:--server-side )?-k (manifests[\w./-]*[\w/])/g)].map((m) => m[1]!);
    expect(kustomizations.length).toBeGreaterThan(0);
    for (const dir of kustomizations) expect(existsSync(join(ROOT, dir, 'kustomization.yaml')), dir).toBe(true);
  });
});

describe('docs/argocd.md', () => {
  const markdown = doc('argocd.md');

  it('shows the denied sync message for the Airflow example exactly as the server words it', async () => {
    const { app } = testApp();
    const review = JSON.parse(readFileSync(join(ROOT, 'examples', 'clusterrolebinding-second-owner.json'), 'utf8')) as AdmissionReview;
    const verdict = await admit(app, 'validate', review);
    expect(verdict.allowed).toBe(false);
    expect(markdown).toContain(denialLine(verdict.status!.message));
  });

  it('covers the interactions the issue lists', () => {
    for (const topic of ['IncludeMutationWebhook=true', 'ServerSideDiff=true', 'SharedResourceWarning', 'resourceTrackingMethod', 'sync-wave', 'webserverSecretKeySecretName', 'ServerSideApply=true']) {
      expect(markdown, topic).toContain(topic);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('docs/operations.md', () => {
  const markdown = doc('operations.md');
  const registered = async () => (await createMetrics({ defaultMetrics: false }).registry.getMetricsAsJSON()).map((m) => m.name);
  const controllerRegistered = async () => {
    const registry = new Registry();
    createControllerMetrics(registry, () => 0);
    return (await registry.getMetricsAsJSON()).map((m) => m.name);
  };

  it('documents every gitops-guard metric, and names no metric that does not exist', async () => {
    const names = await registered();
    expect(names.length).toBeGreaterThan(5);
    for (const name of names) expect(markdown, name).toContain(`\`${name}\``);
    // The controller's metrics are documented in controller.md; operations.md may name them too.
    const known = [...names, ...(await controllerRegistered())];
    const mentioned = new Set([...markdown.matchAll(/\bgitops_guard_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')));
    const defaults = /^gitops_guard_(process_|nodejs_)/;
    for (const name of mentioned) if (!defaults.test(name)) expect(known, `docs/operations.md names ${name}`).toContain(name);
  });

  it('documents every alert the monitoring component ships, and no other, and they alert on certificate expiry and failed rule reloads', () => {
    const rule = parse(readFileSync(join(ROOT, 'manifests', 'components', 'monitoring', 'prometheus-rule.yaml'), 'utf8')) as { spec: { groups: { rules: { alert: string; expr: string }[] }[] } };
    const alerts = rule.spec.groups.flatMap((g) => g.rules);
    const alertsSection = sections(markdown, 3).get('Alerts')!;
    const documented = [...alertsSection.matchAll(/^\| `(\w+)` \|/gm)].map((m) => m[1]!);
    expect(documented.sort()).toEqual(alerts.map((a) => a.alert).sort());
    const exprs = alerts.map((a) => a.expr.replace(/\s+/g, ' ')).join('\n');
    expect(exprs).toContain('(gitops_guard_certificate_expiry_seconds) < 14 * 24 * 3600');
    expect(exprs).toContain('(gitops_guard_rules_last_reload_success) == 0');
  });

  it('shows how to add the monitoring component (test/monitoring.test.ts renders its patch)', () => {
    const section = sections(markdown, 2).get('Monitoring component')!;
    expect(section).toContain('  - ../../components/monitoring');
    for (const path of section.match(/\bmanifests\/[\w./-]*[\w/]/g) ?? []) expect(existsSync(join(ROOT, path)), path).toBe(true);
  });

  it('states the failure policies the manifests ship', () => {
    const adr = readFileSync(join(ROOT, 'docs', 'adr', '0003-webhook-failure-policies.md'), 'utf8');
    for (const file of ['mutating-webhook.yaml', 'validating-webhook.yaml']) {
      const config = parse(readFileSync(join(ROOT, 'manifests', 'base', file), 'utf8')) as { webhooks: { name: string; failurePolicy: string; timeoutSeconds: number }[] };
      for (const webhook of config.webhooks) {
        const row = `| \`${webhook.name}\` | \`${webhook.failurePolicy}\` | ${webhook.timeoutSeconds} s |`;
        expect(markdown, row).toContain(row);
        expect(adr, webhook.name).toContain(webhook.name);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// docs/controller.md against the controller's flags and metrics

describe('docs/controller.md', () => {
  const controllerDoc = doc('controller.md');

  it('documents every controller flag with its environment variable, and every controller metric', async () => {
    const { controllerHelp } = await import('../src/cli/controller.js');
    const flags = [...controllerHelp.matchAll(/^ {2}(?:-\w, )?(--[\w-]+)(?: VALUE)?\s+.*?(?:\(env (\w+)|$)/gm)].map((m) => [m[1]!, m[2]] as const);
    expect(flags.length).toBeGreaterThan(20);
    for (const [flag, env] of flags) {
      if (flag === '--help') continue;
      expect(controllerDoc, flag).toContain(`\`${flag}\``);
      if (env) expect(controllerDoc, env).toContain(`\`${env}\``);
    }
    const { Registry } = await import('prom-client');
    const { createControllerMetrics } = await import('../src/controller/metrics.js');
    const registry = new Registry();
    createControllerMetrics(registry, () => 0);
    for (const metric of await registry.getMetricsAsJSON()) expect(controllerDoc, metric.name).toContain(`\`${metric.name}\``);
  });
});

describe('docs/scan.md', () => {
  const scanDoc = doc('scan.md');

  it('documents every flag of gitops-guard scan, the controller\'s scan flags, every exit code and every report setting', async () => {
    const { scanHelp } = await import('../src/cli/scan.js');
    const flags = [...scanHelp.matchAll(/^ {2}(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]!).filter((f) => f !== '--help');
    expect(flags.length).toBeGreaterThan(5);
    for (const flag of flags) expect(scanDoc, flag).toMatch(new RegExp(`^\\| \`${flag}\` \\|`, 'm'));
    for (const flag of ['--scan-interval-ms', '--scan-coalesce-ms', '--reports']) expect(scanDoc, flag).toMatch(new RegExp(`^\\| \`${flag}\` \\|`, 'm'));
    for (const code of [0, 1, 2]) expect(scanDoc).toMatch(new RegExp(`^\\| ${code} \\|`, 'm'));
    const { REPORTS_SETTINGS } = await import('../src/scan/report-writer.js');
    for (const setting of REPORTS_SETTINGS) expect(scanDoc, setting).toContain(`\`${setting}\``);
  });

  it('lists exactly the controller\'s ClusterRole rules for the scan', () => {
    const rbac = parseAllDocuments(readFileSync(join(ROOT, 'manifests', 'components', 'controller', 'rbac.yaml'), 'utf8')).map((d) => d.toJS() as any);
    const role = rbac.find((o) => o.kind === 'ClusterRole');
    const rows = scanDoc.split('\n## RBAC')[1]!.split('\n## ')[0]!.split('\n').filter((line) => /^\| `/.test(line)).map((line) => line.split('|').slice(1, -1).map((c) => c.trim()));
    const documented = rows.map((r) => `${r[0]} ${r[1]} ${r[2]}`.replace(/`/g, ''));
    const scanRules = role.rules.filter((r: any) => !(r.apiGroups[0] === '' || (r.apiGroups[0] === 'apps') || r.apiGroups[0] === 'batch' || r.resources.includes('rollouts')));
    expect(documented).toEqual(scanRules.map((r: any) => `${r.apiGroups.join(', ')} ${r.resources.join(', ')} ${r.verbs.join(', ')}`));
  });
});

// ---------------------------------------------------------------------------------------------

describe('docs/performance.md', () => {
  it("justifies the resources the overlays really render (NODE_OPTIONS, request, limit)", () => {
    const markdown = doc('performance.md');
    for (const [overlay, name] of [['enforce', 'gitops-guard'], ['controller', 'gitops-guard-controller']] as const) {
      const profile = containerProfileOf(overlay, name);
      const row = markdown.split('\n').find((line) => line.startsWith(`| \`${name}\``));
      expect(row, `a row for ${name}`).toBeDefined();
      const cells = row!.split('|').map((cell) => cell.trim());
      expect(cells[2], `${name} NODE_OPTIONS`).toBe(`\`${profile.nodeOptions}\``);
      expect(cells[5], `${name} request`).toBe(profile.request);
      expect(cells[6], `${name} limit`).toBe(profile.limit);
    }
  });
});

function containerProfileOf(overlay: string, deployment: string): { nodeOptions: string; request: string; limit: string } {
  const found = buildObjects(join(ROOT, 'manifests', 'overlays', overlay)).find((o) => o.kind === 'Deployment' && o.metadata?.name === deployment) as any;
  const container = found.spec.template.spec.containers[0];
  return {
    nodeOptions: container.env.find((e: { name: string }) => e.name === 'NODE_OPTIONS').value,
    request: container.resources.requests.memory,
    limit: container.resources.limits.memory,
  };
}
