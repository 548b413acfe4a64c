import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as clientNode from '@kubernetes/client-node';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { createRegistry } from '../src/actions/registry.js';
import type { KubeObject, Operation, WebhookPhase } from '../src/api/types.js';
import { loadRuleSetFile, parseRuleSet } from '../src/rules/load.js';
import { WEBHOOK_PATHS } from '../src/server/app.js';
import { kustomizeBuild, kustomizeTool } from './support/kustomize.js';
import {
  CONTROLLER,
  CONTROLLER_OVERLAYS,
  MANIFESTS,
  MODE,
  OVERLAYS,
  type Overlay,
  ROOT,
  buildOverlays,
  containerOf,
  controllerContainerOf,
  controllerDeploymentOf,
  controllerPodSpecOf,
  deploymentOf,
  env,
  expectLockedDown,
  flag,
  hasController,
  objects,
  only,
  podSpecOf,
  selects,
  usesCertManager,
  usesClientAuth,
  webhookConfig,
} from './support/manifests.js';

beforeAll(buildOverlays);

// ---------------------------------------------------------------------------------------------

describe('kustomize builds', () => {
  it('uses a kustomize that supports components (kubectl kustomize or kustomize build, v5+)', () => {
    expect(kustomizeTool().version).toMatch(/v?[5-9]\.|v?\d{2,}\./);
  });

  it('ships exactly the documented overlays, and each renders the full install', () => {
    expect(readdirSync(join(MANIFESTS, 'overlays')).sort()).toEqual([...OVERLAYS].sort());
    const base = [
      'ClusterRole/gitops-guard',
      'ClusterRoleBinding/gitops-guard',
      'ConfigMap/gitops-guard-rules',
      'Deployment/gitops-guard',
      'MutatingWebhookConfiguration/gitops-guard',
      'Namespace/gitops-guard',
      'NetworkPolicy/gitops-guard',
      'PodDisruptionBudget/gitops-guard',
      'Service/gitops-guard',
      'ServiceAccount/gitops-guard',
      'ValidatingWebhookConfiguration/gitops-guard',
    ];
    const certManager = ['Certificate/gitops-guard-ca', 'Certificate/gitops-guard-tls', 'Issuer/gitops-guard-ca', 'Issuer/gitops-guard-selfsigned'];
    const controller = [
      'ClusterRole/gitops-guard-controller',
      'ClusterRoleBinding/gitops-guard-controller',
      'Deployment/gitops-guard-controller',
      'NetworkPolicy/gitops-guard-controller',
      'PodDisruptionBudget/gitops-guard-controller',
      'Role/gitops-guard-controller-leader-election',
      'RoleBinding/gitops-guard-controller-leader-election',
      'ServiceAccount/gitops-guard-controller',
      ...['cronjobs', 'daemonsets', 'deployments', 'reports', 'rollouts', 'statefulsets'].flatMap((r) => [
        `ValidatingAdmissionPolicy/gitops-guard-controller-${r}`,
        `ValidatingAdmissionPolicyBinding/gitops-guard-controller-${r}`,
      ]),
    ];
    for (const overlay of OVERLAYS) {
      const names = objects(overlay).map((o) => `${o.kind}/${o.metadata!.name!.replace(/^(gitops-guard-rules)-[a-z0-9]{10}$/, '$1')}`);
      expect(names.sort(), overlay).toEqual([...base, ...(usesCertManager(overlay) ? certManager : []), ...(hasController(overlay) ? controller : [])].sort());
    }
    // The controller overlay is the enforce install plus the controller, nothing changed.
    const enforce = new Map(objects('enforce').map((o) => [`${o.kind}/${o.metadata!.name}`, o]));
    for (const overlay of CONTROLLER_OVERLAYS) {
      const webhookPart = objects(overlay).filter((o) => !controller.includes(`${o.kind}/${o.metadata!.name}`));
      for (const object of webhookPart) expect(object, `${overlay}: ${object.kind}/${object.metadata!.name} as in enforce`).toEqual(enforce.get(`${object.kind}/${object.metadata!.name}`));
      expect(webhookPart).toHaveLength(enforce.size);
    }
  });

  it('`kubectl apply -k manifests/` installs the audit overlay (the recommended first rollout)', () => {
    expect(kustomizeBuild(MANIFESTS)).toBe(kustomizeBuild(join(MANIFESTS, 'overlays', 'audit')));
  });

  it('renders no Secret: the TLS Secret and the checksum key are created once, outside kustomize', () => {
    for (const overlay of OVERLAYS) {
      expect(objects(overlay).filter((o) => o.kind === 'Secret'), overlay).toEqual([]);
      const volumes = podSpecOf(overlay).volumes ?? [];
      const secrets = ['gitops-guard-checksum-key', ...(usesClientAuth(overlay) ? ['gitops-guard-client-ca'] : []), 'gitops-guard-tls'];
      expect(volumes.filter((v) => v.secret).map((v) => v.secret!.secretName).sort(), overlay).toEqual(secrets);
      // The controller needs the checksum key only (no TLS: plain-HTTP metrics, no webhook).
      if (hasController(overlay)) expect((controllerPodSpecOf(overlay).volumes ?? []).filter((v) => v.secret).map((v) => v.secret!.secretName)).toEqual(['gitops-guard-checksum-key']);
    }
    // Nothing random or generated per render: two builds are byte-identical.
    for (const overlay of OVERLAYS) expect(kustomizeBuild(join(MANIFESTS, 'overlays', overlay))).toBe(kustomizeBuild(join(MANIFESTS, 'overlays', overlay)));
  });

  it('runs the server in the mode the overlay is named after', () => {
    for (const overlay of OVERLAYS) {
      const container = containerOf(overlay);
      expect(env(container, 'GITOPS_GUARD_MODE'), overlay).toBe(MODE[overlay]);
      expect(flag(container, 'mode'), 'mode comes from the environment only').toBeUndefined();
      if (hasController(overlay)) {
        // The controller must not write where the webhook only audits: same mode (its default is enforce).
        const controller = controllerContainerOf(overlay);
        expect(flag(controller, 'mode')).toBeUndefined();
        expect(env(controller, 'GITOPS_GUARD_MODE') ?? 'enforce', `${overlay}: controller mode`).toBe(MODE[overlay]);
      }
    }
    const top = objects('top').find((o) => o.kind === 'Deployment') as any;
    expect(top.spec.template.spec.containers[0].env).toContainEqual({ name: 'GITOPS_GUARD_MODE', value: 'audit' });
  });

  it('tags the image with the package version (upgrade = bump both)', () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const overlay of OVERLAYS) {
      const image = containerOf(overlay).image;
      expect(image).toBe(`gitops-guard:${version}`);
      if (!hasController(overlay)) continue;
      // The component sets its own tag (the base's image setting does not reach it): same image,
      // same tag as the webhook, so an upgrade bumps both.
      const controllerImage = controllerContainerOf(overlay).image;
      expect(controllerImage, `${overlay}: controller image`).toBe(`gitops-guard:${version}`);
      const [name, tag] = controllerImage.split(':');
      expect(name).toBe(image.split(':')[0]);
      expect(tag, 'controller tag equals the webhook Deployment\'s tag').toBe(image.split(':')[1]);
    }
  });
});

// ---------------------------------------------------------------------------------------------

/** kubernetes-models module path for an apiVersion/kind, e.g. `kubernetes-models/apps/v1/Deployment`. */
function modelPath(apiVersion: string, kind: string): string {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

interface UpstreamModel {
  new (data: unknown): { validate(): void };
}

async function upstreamModel(apiVersion: string, kind: string): Promise<UpstreamModel | undefined> {
  try {
    const module = (await import(modelPath(apiVersion, kind))) as Record<string, UpstreamModel>;
    return module[kind];
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_PACKAGE_PATH_NOT_EXPORTED' || (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw error;
  }
}

/** Errors of the upstream (OpenAPI-derived) schema, as `path: message` lines. */
async function schemaErrors(object: KubeObject): Promise<string[]> {
  const Model = await upstreamModel(object.apiVersion!, object.kind!);
  if (!Model) throw new Error(`no upstream schema for ${object.apiVersion} ${object.kind}`);
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    return String((error as Error).message).split(/\n|, (?=data)/).filter(Boolean);
  }
}

type TypeMap = { baseName: string; type: string }[];

/**
 * Fields the Kubernetes API does not know, found with @kubernetes/client-node's generated type
 * map (also derived from the upstream OpenAPI). kubernetes-models' schemas allow unknown
 * fields; the API server (kubectl --validate=strict) does not, and a typo such as
 * `readinesProbe` would otherwise go unnoticed.
 */
function unknownFields(value: unknown, type: string, path: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return Array.isArray(value) ? value.flatMap((item, i) => unknownFields(item, array[1]!, `${path}/${i}`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return typeof value === 'object' ? Object.entries(value as object).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}/${k}`)) : [];
  const model = (clientNode as unknown as Record<string, { getAttributeTypeMap?: () => TypeMap }>)[type];
  if (!model?.getAttributeTypeMap || typeof value !== 'object' || Array.isArray(value)) return [];
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  return Object.entries(value as object).flatMap(([key, child]) => {
    const childType = fields.get(key);
    return childType === undefined ? [`${path}/${key}: unknown field`] : unknownFields(child, childType, `${path}/${key}`);
  });
}

function clientNodeType(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop()!;
  return `${version[0]!.toUpperCase()}${version.slice(1)}${kind}`;
}

/**
 * cert-manager.io/v1 is a CRD, so no upstream Kubernetes schema covers it. This is the part of
 * its API (cert-manager's documented Certificate and Issuer fields) that a typo could break.
 */
const goDuration = { type: 'string', pattern: '^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$' };
const objectMeta = {
  type: 'object',
  required: ['name', 'namespace'],
  properties: { name: { type: 'string', minLength: 1 }, namespace: { type: 'string', minLength: 1 }, labels: { type: 'object' }, annotations: { type: 'object' } },
  additionalProperties: false,
};
const issuerRef = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: { type: 'string', minLength: 1 }, kind: { enum: ['Issuer', 'ClusterIssuer'] }, group: { type: 'string' } },
};
const KEY_USAGES = [
  'signing', 'digital signature', 'content commitment', 'key encipherment', 'key agreement', 'data encipherment', 'cert sign',
  'crl sign', 'encipher only', 'decipher only', 'any', 'server auth', 'client auth', 'code signing', 'email protection', 's/mime',
  'ipsec end system', 'ipsec tunnel', 'ipsec user', 'timestamping', 'ocsp signing', 'microsoft sgc', 'netscape sgc',
];
const certManagerSchemas: Record<string, object> = {
  Certificate: {
    type: 'object',
    required: ['apiVersion', 'kind', 'metadata', 'spec'],
    additionalProperties: false,
    properties: {
      apiVersion: { const: 'cert-manager.io/v1' },
      kind: { const: 'Certificate' },
      metadata: objectMeta,
      spec: {
        type: 'object',
        required: ['secretName', 'issuerRef'],
        additionalProperties: false,
        properties: {
          secretName: { type: 'string', minLength: 1 },
          issuerRef,
          commonName: { type: 'string', maxLength: 64 },
          dnsNames: { type: 'array', items: { type: 'string', minLength: 1 } },
          ipAddresses: { type: 'array', items: { type: 'string' } },
          uris: { type: 'array', items: { type: 'string' } },
          emailAddresses: { type: 'array', items: { type: 'string' } },
          duration: goDuration,
          renewBefore: goDuration,
          renewBeforePercentage: { type: 'integer' },
          isCA: { type: 'boolean' },
          usages: { type: 'array', items: { enum: KEY_USAGES } },
          privateKey: {
            type: 'object',
            additionalProperties: false,
            properties: {
              algorithm: { enum: ['RSA', 'ECDSA', 'Ed25519'] },
              size: { type: 'integer' },
              encoding: { enum: ['PKCS1', 'PKCS8'] },
              rotationPolicy: { enum: ['Never', 'Always'] },
            },
          },
          subject: { type: 'object' },
          literalSubject: { type: 'string' },
          secretTemplate: { type: 'object' },
          keystores: { type: 'object' },
          revisionHistoryLimit: { type: 'integer' },
          additionalOutputFormats: { type: 'array' },
          encodeUsagesInRequest: { type: 'boolean' },
          nameConstraints: { type: 'object' },
          otherNames: { type: 'array' },
        },
      },
    },
  },
  Issuer: {
    type: 'object',
    required: ['apiVersion', 'kind', 'metadata', 'spec'],
    additionalProperties: false,
    properties: {
      apiVersion: { const: 'cert-manager.io/v1' },
      kind: { const: 'Issuer' },
      metadata: objectMeta,
      spec: {
        type: 'object',
        additionalProperties: false,
        minProperties: 1,
        maxProperties: 1,
        properties: {
          selfSigned: { type: 'object', additionalProperties: false, properties: { crlDistributionPoints: { type: 'array', items: { type: 'string' } } } },
          ca: {
            type: 'object',
            required: ['secretName'],
            additionalProperties: false,
            properties: {
              secretName: { type: 'string', minLength: 1 },
              crlDistributionPoints: { type: 'array', items: { type: 'string' } },
              ocspServers: { type: 'array', items: { type: 'string' } },
              issuingCertificateURLs: { type: 'array', items: { type: 'string' } },
            },
          },
          acme: { type: 'object' },
          vault: { type: 'object' },
          venafi: { type: 'object' },
        },
      },
    },
  },
};
const certManagerAjv = new Ajv({ allErrors: true, strict: true });
const certManagerValidators = Object.fromEntries(Object.entries(certManagerSchemas).map(([kind, schema]) => [kind, certManagerAjv.compile(schema)]));

async function validationErrors(object: KubeObject): Promise<string[]> {
  if (object.apiVersion === 'cert-manager.io/v1') {
    const validate = certManagerValidators[object.kind!];
    if (!validate) return [`no schema for cert-manager.io/v1 ${object.kind}`];
    return validate(object) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath}: ${e.message}`);
  }
  return [...(await schemaErrors(object)), ...unknownFields(object, clientNodeType(object.apiVersion!, object.kind!), '')];
}

describe('Kubernetes OpenAPI schema validation', () => {
  it('validates every rendered object: upstream schemas (kubernetes-models) plus unknown-field checks', async () => {
    const validatedUpstream = new Set<string>();
    const validatedLocally = new Set<string>();
    for (const overlay of OVERLAYS) {
      for (const object of objects(overlay)) {
        const id = `${object.apiVersion} ${object.kind}`;
        expect(await validationErrors(object), `${overlay}: ${id} ${object.metadata?.name}`).toEqual([]);
        (object.apiVersion === 'cert-manager.io/v1' ? validatedLocally : validatedUpstream).add(id);
      }
    }
    // The only kinds not checked against Kubernetes' own schemas are cert-manager's CRDs; they
    // are checked against the schema above instead.
    expect([...validatedLocally].sort()).toEqual(['cert-manager.io/v1 Certificate', 'cert-manager.io/v1 Issuer']);
    expect([...validatedUpstream].sort()).toEqual([
      'admissionregistration.k8s.io/v1 MutatingWebhookConfiguration',
      'admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy',
      'admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding',
      'admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration',
      'apps/v1 Deployment',
      'networking.k8s.io/v1 NetworkPolicy',
      'policy/v1 PodDisruptionBudget',
      'rbac.authorization.k8s.io/v1 ClusterRole',
      'rbac.authorization.k8s.io/v1 ClusterRoleBinding',
      'rbac.authorization.k8s.io/v1 Role',
      'rbac.authorization.k8s.io/v1 RoleBinding',
      'v1 ConfigMap',
      'v1 Namespace',
      'v1 Service',
      'v1 ServiceAccount',
    ]);
  });

  it('the validators catch wrong types, missing required fields and unknown fields', async () => {
    const deployment = structuredClone(deploymentOf('enforce'));
    deployment.spec.replicas = 'two';
    deployment.spec.template.spec.containers[0].readinesProbe = deployment.spec.template.spec.containers[0].readinessProbe;
    delete deployment.spec.selector;
    const errors = (await validationErrors(deployment)).join('\n');
    expect(errors).toMatch(/replicas/);
    expect(errors).toMatch(/selector/);
    expect(errors).toMatch(/readinesProbe: unknown field/);

    const webhook = structuredClone(webhookConfig('enforce', 'mutate'));
    (webhook.webhooks[0]!.matchConditions![0] as Record<string, unknown>)['expresion'] = 'true';
    (webhook.webhooks[0] as any).sideEffects = 7;
    const webhookErrors = (await validationErrors(webhook)).join('\n');
    expect(webhookErrors).toMatch(/expresion: unknown field/);
    expect(webhookErrors).toMatch(/sideEffects/);

    const certificate = structuredClone(only('enforce-cert-manager', 'Certificate', 'gitops-guard-tls'));
    certificate.spec.usages.push('server-auth');
    certificate.spec.renewBefor = '1h';
    expect((await validationErrors(certificate)).length).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------

describe('rules ConfigMap', () => {
  it('manifests/base/default-rules.yaml is a byte-identical copy of rules/default-rules.yaml', () => {
    const shipped = readFileSync(join(ROOT, 'rules', 'default-rules.yaml'), 'utf8');
    const copy = readFileSync(join(MANIFESTS, 'base', 'default-rules.yaml'), 'utf8');
    expect(copy === shipped, 'the copy drifted: run `cp rules/default-rules.yaml manifests/base/default-rules.yaml`').toBe(true);
  });

  it('the generated ConfigMap carries those rules and is the one the Deployment mounts at --rules', () => {
    const shipped = readFileSync(join(ROOT, 'rules', 'default-rules.yaml'), 'utf8');
    for (const overlay of OVERLAYS) {
      const rules = objects(overlay).find((o) => o.kind === 'ConfigMap')! as KubeObject & { data: Record<string, string> };
      expect(rules.metadata!.name, 'content-hashed name: a rules change rolls the Deployment').toMatch(/^gitops-guard-rules-[a-z0-9]{10}$/);
      expect(rules.metadata!.namespace).toBe(deploymentOf(overlay).metadata.namespace);
      expect(Object.keys(rules.data)).toEqual(['rules.yaml']);
      expect(rules.data['rules.yaml']).toBe(shipped);
      parseRuleSet(rules.data['rules.yaml']!, 'ConfigMap', createRegistry());

      const volume = podSpecOf(overlay).volumes!.find((v) => v.configMap)!;
      expect(volume.configMap!.name).toBe(rules.metadata!.name);
      const mount = containerOf(overlay).volumeMounts!.find((m) => m.name === volume.name)!;
      const path = volume.configMap!.items?.find((i) => i.key === 'rules.yaml')?.path ?? 'rules.yaml';
      expect(flag(containerOf(overlay), 'rules')).toBe(`${mount.mountPath}/${path}`);
      if (hasController(overlay)) {
        // The controller selects workloads with the webhook's stamping rule: the same ConfigMap.
        const controllerVolume = controllerPodSpecOf(overlay).volumes!.find((v) => v.configMap)!;
        expect(controllerVolume.configMap!.name).toBe(rules.metadata!.name);
        const controllerMount = controllerContainerOf(overlay).volumeMounts!.find((m) => m.name === controllerVolume.name)!;
        const controllerPath = controllerVolume.configMap!.items?.find((i) => i.key === 'rules.yaml')?.path ?? 'rules.yaml';
        expect(flag(controllerContainerOf(overlay), 'rules')).toBe(`${controllerMount.mountPath}/${controllerPath}`);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------

/** Kinds the default rules may name, with their REST resource and scope. */
const KINDS: Record<string, { resource: string; namespaced: boolean }> = {
  'apps/Deployment': { resource: 'deployments', namespaced: true },
  'apps/StatefulSet': { resource: 'statefulsets', namespaced: true },
  'apps/DaemonSet': { resource: 'daemonsets', namespaced: true },
  'batch/CronJob': { resource: 'cronjobs', namespaced: true },
  'argoproj.io/Rollout': { resource: 'rollouts', namespaced: true },
  'rbac.authorization.k8s.io/ClusterRole': { resource: 'clusterroles', namespaced: false },
  'rbac.authorization.k8s.io/ClusterRoleBinding': { resource: 'clusterrolebindings', namespaced: false },
  'apiextensions.k8s.io/CustomResourceDefinition': { resource: 'customresourcedefinitions', namespaced: false },
  'admissionregistration.k8s.io/MutatingWebhookConfiguration': { resource: 'mutatingwebhookconfigurations', namespaced: false },
  'admissionregistration.k8s.io/ValidatingWebhookConfiguration': { resource: 'validatingwebhookconfigurations', namespaced: false },
  'scheduling.k8s.io/PriorityClass': { resource: 'priorityclasses', namespaced: false },
  'storage.k8s.io/StorageClass': { resource: 'storageclasses', namespaced: false },
  'networking.k8s.io/IngressClass': { resource: 'ingressclasses', namespaced: false },
};

/**
 * The API server never calls admission webhooks for these (Kubernetes' own guard against
 * locking itself out); the default rules still name them for `gitops-guard audit`.
 */
const NEVER_SENT_TO_WEBHOOKS = new Set(['admissionregistration.k8s.io/MutatingWebhookConfiguration', 'admissionregistration.k8s.io/ValidatingWebhookConfiguration']);

type Coverage = `${WebhookPhase} ${string} ${string} ${Operation} ${'Namespaced' | 'Cluster'}`;

function requiredCoverage(): { required: Set<Coverage>; skipped: Set<string> } {
  const registry = createRegistry();
  const ruleSet = loadRuleSetFile(join(ROOT, 'rules', 'default-rules.yaml'), registry);
  const required = new Set<Coverage>();
  const skipped = new Set<string>();
  for (const rule of ruleSet.rules) {
    const phase = registry.get(rule.action.type)!.phase;
    for (const kind of rule.match.kinds) {
      const key = `${kind.group}/${kind.kind}`;
      expect(kind.group, `rule ${rule.name}: wildcard groups cannot be mapped to webhook rules`).not.toBe('*');
      const known = KINDS[key];
      expect(known, `rule ${rule.name}: add ${key} to the KINDS table (resource, scope) and to the webhook configuration`).toBeDefined();
      const scope = known!.namespaced ? 'Namespaced' : 'Cluster';
      if (rule.match.scope !== '*') expect(rule.match.scope, `rule ${rule.name} scope vs ${key}`).toBe(scope);
      if (NEVER_SENT_TO_WEBHOOKS.has(key)) {
        skipped.add(key);
        continue;
      }
      for (const operation of rule.match.operations) required.add(`${phase} ${kind.group} ${known!.resource} ${operation} ${scope}`);
    }
  }
  return { required, skipped };
}

function providedCoverage(overlay: Overlay): Set<Coverage> {
  const provided = new Set<Coverage>();
  for (const phase of ['mutate', 'validate'] as const) {
    for (const webhook of webhookConfig(overlay, phase).webhooks) {
      for (const rule of webhook.rules) {
        for (const list of [rule.apiGroups, rule.resources, rule.operations]) expect(list, `${webhook.name}: no wildcards`).not.toContain('*');
        expect(rule.scope, `${webhook.name}: explicit scope`).toMatch(/^(Namespaced|Cluster)$/);
        expect(rule.apiVersions).toEqual(['*']);
        for (const group of rule.apiGroups) {
          for (const resource of rule.resources) {
            expect(resource, `${webhook.name}: no subresources`).not.toContain('/');
            for (const operation of rule.operations) provided.add(`${phase} ${group} ${resource} ${operation as Operation} ${rule.scope as 'Cluster'}`);
          }
        }
      }
    }
  }
  return provided;
}

describe('webhook configurations', () => {
  it('cover exactly the kinds and operations the default rules act on, in the right webhook phase', () => {
    const { required, skipped } = requiredCoverage();
    expect([...skipped].sort()).toEqual([...NEVER_SENT_TO_WEBHOOKS].sort());
    for (const overlay of OVERLAYS) {
      const provided = providedCoverage(overlay);
      const missing = [...required].filter((c) => !provided.has(c));
      const extra = [...provided].filter((c) => !required.has(c));
      expect(missing, `${overlay}: rules act on these, but no webhook sends them`).toEqual([]);
      expect(extra, `${overlay}: webhooks send these, but no default rule acts on them`).toEqual([]);
    }
  });

  it('call the Service on its port and the server routes of their phase', () => {
    for (const overlay of OVERLAYS) {
      const service = only(overlay, 'Service', 'gitops-guard');
      const servicePort = service.spec.ports.find((p: { name: string }) => p.name === 'https');
      expect(service.spec.ports).toHaveLength(1);
      expect(servicePort.port).toBe(443);
      for (const phase of ['mutate', 'validate'] as const) {
        for (const webhook of webhookConfig(overlay, phase).webhooks) {
          expect(webhook.clientConfig.url, webhook.name).toBeUndefined();
          expect(webhook.clientConfig.service, webhook.name).toEqual({
            name: service.metadata.name,
            namespace: service.metadata.namespace,
            port: servicePort.port,
            path: WEBHOOK_PATHS[phase],
          });
          // caBundle comes from hack/install-certs.sh or cert-manager's injector, never from git.
          expect(webhook.clientConfig.caBundle, webhook.name).toBeUndefined();
        }
      }
    }
  });

  it('are safe: fail open, no side effects, v1 reviews, short timeouts, never gitops-guard or kube-system', () => {
    const { required } = requiredCoverage();
    const registry = createRegistry();
    const ruleSet = loadRuleSetFile(join(ROOT, 'rules', 'default-rules.yaml'), registry);
    for (const overlay of OVERLAYS) {
      const namespace = deploymentOf(overlay).metadata.namespace as string;
      const names = new Set<string>();
      for (const phase of ['mutate', 'validate'] as const) {
        const config = webhookConfig(overlay, phase);
        for (const webhook of config.webhooks) {
          names.add(webhook.name);
          expect(webhook.name).toMatch(new RegExp(`^[a-z]+\\.${phase}\\.gitops-guard\\.dev$`));
          expect(webhook.sideEffects).toBe('None');
          expect(webhook.admissionReviewVersions).toEqual(['v1']);
          expect(webhook.matchPolicy).toBe('Equivalent');
          // Mutation fails open; the validating webhook's choice is documented in ADR 0003.
          expect(webhook.failurePolicy).toBe('Ignore');
          expect(webhook.timeoutSeconds).toBeGreaterThanOrEqual(1);
          expect(webhook.timeoutSeconds).toBeLessThanOrEqual(5);
          if (phase === 'mutate') expect(webhook.reinvocationPolicy).toBe('IfNeeded');
          else expect(webhook.reinvocationPolicy).toBeUndefined();

          const namespaced = webhook.rules.some((r) => r.scope === 'Namespaced');
          expect(webhook.rules.every((r) => r.scope === webhook.rules[0]!.scope), `${webhook.name}: one scope per webhook`).toBe(true);
          if (namespaced) {
            expect(webhook.namespaceSelector?.matchExpressions).toContainEqual({
              key: 'kubernetes.io/metadata.name',
              operator: 'NotIn',
              values: expect.arrayContaining(['kube-system', namespace]),
            });
          } else {
            // namespaceSelector never excludes cluster-scoped objects; it would only mislead.
            expect(webhook.namespaceSelector).toBeUndefined();
          }

          // Every rule with a read deadline fits inside the timeout of the webhook that runs it.
          for (const rule of ruleSet.rules) {
            const timeoutMs = rule.action.params['timeoutMs'];
            if (typeof timeoutMs !== 'number' || registry.get(rule.action.type)!.phase !== phase) continue;
            const covers = webhook.rules.some((r) => rule.match.kinds.some((k) => r.apiGroups.includes(k.group) && r.resources.includes(KINDS[`${k.group}/${k.kind}`]!.resource)));
            if (covers) expect(timeoutMs + 1000, `${rule.name} deadline vs ${webhook.name} timeoutSeconds`).toBeLessThanOrEqual(webhook.timeoutSeconds! * 1000);
          }

          const conditionNames = (webhook.matchConditions ?? []).map((c) => c.name);
          expect(new Set(conditionNames).size).toBe(conditionNames.length);
          for (const condition of webhook.matchConditions ?? []) {
            expect(condition.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
            expect(KNOWN_MATCH_CONDITIONS[condition.name], `${webhook.name}: matchCondition ${condition.name} is documented in docs/operations.md`).toBe(condition.expression);
          }
        }
      }
      expect(names.size, 'webhook names are unique').toBe(3);
    }
    expect(required.size).toBeGreaterThan(0);
  });

  it('document every matchCondition expression verbatim in docs/operations.md', () => {
    const operations = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
    for (const [name, expression] of Object.entries(KNOWN_MATCH_CONDITIONS)) {
      expect(operations, name).toContain(name);
      expect(operations, name).toContain(expression);
    }
  });

  it('get their caBundle from cert-manager in the cert-manager overlays', () => {
    for (const overlay of OVERLAYS) {
      for (const phase of ['mutate', 'validate'] as const) {
        const annotation = webhookConfig(overlay, phase).metadata?.annotations?.['cert-manager.io/inject-ca-from'];
        if (!usesCertManager(overlay)) {
          expect(annotation, overlay).toBeUndefined();
          continue;
        }
        const [namespace, name] = annotation!.split('/');
        const certificate = only(overlay, 'Certificate', name);
        expect(certificate.metadata.namespace).toBe(namespace);
        const tlsVolume = podSpecOf(overlay).volumes!.find((v) => v.name === 'tls')!;
        expect(certificate.spec.secretName).toBe(tlsVolume.secret!.secretName);
        const service = only(overlay, 'Service', 'gitops-guard');
        expect(certificate.spec.dnsNames).toContain(`${service.metadata.name}.${service.metadata.namespace}.svc`);
        expect(certificate.spec.usages).toContain('server auth');
        // The serving certificate is issued by a CA Issuer, so renewals do not change caBundle.
        const issuer = only(overlay, 'Issuer', certificate.spec.issuerRef.name);
        const ca = only(overlay, 'Certificate', issuer.spec.ca.secretName);
        expect(ca.spec.isCA).toBe(true);
      }
    }
  });
});

const KUBE_CONTROLLERS = "!(request.userInfo.username.startsWith('system:serviceaccount:kube-system:') || request.userInfo.username == 'system:kube-controller-manager')";
const KNOWN_MATCH_CONDITIONS: Record<string, string> = {
  'not-kube-controller': KUBE_CONTROLLERS,
  'not-being-deleted': '!has(object.metadata.deletionTimestamp)',
  'has-tracking-metadata':
    'has(object.metadata.labels) || has(object.metadata.annotations) || (oldObject != null && (has(oldObject.metadata.labels) || has(oldObject.metadata.annotations)))',
};

// ---------------------------------------------------------------------------------------------

describe('Deployment, Service, PodDisruptionBudget, NetworkPolicy', () => {
  it('wire the Service port to the container port the server listens on', () => {
    for (const overlay of OVERLAYS) {
      const container = containerOf(overlay);
      const service = only(overlay, 'Service', 'gitops-guard');
      const [port] = service.spec.ports;
      const containerPort = container.ports!.find((p) => p.name === port.targetPort || p.containerPort === port.targetPort)!;
      expect(containerPort, 'Service targetPort names a container port').toBeDefined();
      expect(flag(container, 'port')).toBe(String(containerPort.containerPort));
      const policy = only(overlay, 'NetworkPolicy', 'gitops-guard');
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
      expect(policy.spec.ingress).toEqual([{ ports: [{ port: containerPort.containerPort, protocol: 'TCP' }] }]);
      const podLabels = deploymentOf(overlay).spec.template.metadata.labels;
      for (const selector of [service.spec.selector, policy.spec.podSelector.matchLabels, only(overlay, 'PodDisruptionBudget', 'gitops-guard').spec.selector.matchLabels, deploymentOf(overlay).spec.selector.matchLabels]) {
        expect(podLabels).toMatchObject(selector);
      }
      for (const probe of [container.readinessProbe!, container.livenessProbe!]) {
        expect(probe.httpGet!.scheme).toBe('HTTPS');
        expect([containerPort.name, containerPort.containerPort]).toContain(probe.httpGet!.port);
      }
      expect(container.readinessProbe!.httpGet!.path).toBe('/readyz');
      expect(container.livenessProbe!.httpGet!.path).toBe('/healthz');
    }
  });

  it('runs two spread replicas with requests, limits, a PDB and a graceful shutdown', () => {
    for (const overlay of OVERLAYS) {
      const deployment = deploymentOf(overlay);
      const spec = podSpecOf(overlay);
      const container = containerOf(overlay);
      expect(deployment.spec.replicas).toBe(2);
      expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
      expect(spec.affinity?.podAntiAffinity ?? spec.topologySpreadConstraints).toBeDefined();
      for (const resource of ['cpu', 'memory']) {
        expect(container.resources?.requests?.[resource], `requests.${resource}`).toBeDefined();
        expect(container.resources?.limits?.[resource], `limits.${resource}`).toBeDefined();
      }
      const pdb = only(overlay, 'PodDisruptionBudget', 'gitops-guard');
      expect(pdb.spec.minAvailable).toBeGreaterThanOrEqual(1);
      expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas);
      const delay = Number(flag(container, 'shutdown-delay-ms') ?? 0);
      const drain = Number(flag(container, 'drain-timeout-ms') ?? 10_000);
      expect(delay, 'endpoints drop the pod before it stops listening').toBeGreaterThan(0);
      expect((spec.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThan(delay + drain);
      // The server's deadlines and timeouts follow the webhooks': its cap is their largest timeout,
      // and the drain outlasts any admission still in flight when the listener closes.
      const timeouts = (['mutate', 'validate'] as const).flatMap((phase) => webhookConfig(overlay, phase).webhooks.map((w) => w.timeoutSeconds!));
      const webhookTimeout = Number(flag(container, 'webhook-timeout-seconds') ?? 5);
      expect(webhookTimeout, '--webhook-timeout-seconds is the largest webhook timeoutSeconds').toBe(Math.max(...timeouts));
      expect(drain).toBeGreaterThanOrEqual(webhookTimeout * 1000);
    }
  });

  it('is locked down: non-root (the image\'s numeric user), read-only root, no capabilities, RuntimeDefault seccomp', () => {
    const dockerUser = /^USER\s+(\d+)(?::(\d+))?\s*$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8').split(/^FROM /m).pop()!);
    expect(dockerUser, 'the runtime stage of the Dockerfile sets a numeric USER').not.toBeNull();
    for (const overlay of OVERLAYS) {
      const spec = podSpecOf(overlay);
      const container = containerOf(overlay);
      expectLockedDown(spec, container, dockerUser![1]!);
      expect(spec.automountServiceAccountToken).not.toBe(false);
      expect(only(overlay, 'Namespace').metadata.labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
    }
  });

  it('passes the mounted TLS, rules and checksum key paths to the server', () => {
    for (const overlay of OVERLAYS) {
      const container = containerOf(overlay);
      const spec = podSpecOf(overlay);
      const fileOf = (secretName: string, key: string) => {
        const volume = spec.volumes!.find((v) => v.secret?.secretName === secretName)!;
        const mount = container.volumeMounts!.find((m) => m.name === volume.name)!;
        const item = volume.secret!.items?.find((i) => i.key === key);
        if (volume.secret!.items) expect(item, `${secretName} mounts ${key}`).toBeDefined();
        return `${mount.mountPath}/${item?.path ?? key}`;
      };
      expect(flag(container, 'tls-cert')).toBe(fileOf('gitops-guard-tls', 'tls.crt'));
      expect(flag(container, 'tls-key')).toBe(fileOf('gitops-guard-tls', 'tls.key'));
      // The key name documented in docs/config-checksum.md and created by hack/install-certs.sh.
      expect(flag(container, 'checksum-key')).toBe(fileOf('gitops-guard-checksum-key', 'checksum.key'));
      expect(flag(container, 'dev-certs')).toBeUndefined();
      // Caller authentication only where the overlay says so; the CA file is the mounted Secret's ca.crt.
      expect(flag(container, 'client-ca'), overlay).toBe(usesClientAuth(overlay) ? fileOf('gitops-guard-client-ca', 'ca.crt') : undefined);
    }
  });

  it('the controller Deployment: its own pods, metrics port behind its NetworkPolicy, the webhook\'s key, locked down, a PDB', () => {
    const dockerUser = /^USER\s+(\d+)(?::(\d+))?\s*$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8').split(/^FROM /m).pop()!);
    for (const overlay of CONTROLLER_OVERLAYS) {
      const deployment = controllerDeploymentOf(overlay);
      const spec = controllerPodSpecOf(overlay);
      const container = controllerContainerOf(overlay);
      const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
      const webhookPodLabels = deploymentOf(overlay).spec.template.metadata.labels as Record<string, string>;
      expect(deployment.metadata.namespace).toBe(deploymentOf(overlay).metadata.namespace);

      // Selectors never mix the two Deployments' pods (the webhook Service must not send
      // admission calls to the controller, and each PDB counts its own pods only).
      const pdb = only(overlay, 'PodDisruptionBudget', CONTROLLER);
      const policy = only(overlay, 'NetworkPolicy', CONTROLLER);
      for (const selector of [deployment.spec.selector.matchLabels, pdb.spec.selector.matchLabels, policy.spec.podSelector.matchLabels]) {
        expect(selects(selector, podLabels)).toBe(true);
        expect(selects(selector, webhookPodLabels), 'controller selector picks webhook pods').toBe(false);
      }
      for (const selector of [
        only(overlay, 'Service', 'gitops-guard').spec.selector,
        only(overlay, 'PodDisruptionBudget', 'gitops-guard').spec.selector.matchLabels,
        only(overlay, 'NetworkPolicy', 'gitops-guard').spec.podSelector.matchLabels,
        deploymentOf(overlay).spec.selector.matchLabels,
      ]) {
        expect(selects(selector, podLabels), 'webhook selector picks controller pods').toBe(false);
      }

      // Probes and the NetworkPolicy use the port the controller serves /metrics, /healthz and /readyz on.
      const metricsPort = container.ports!.find((p) => p.name === 'metrics')!;
      expect(container.ports).toHaveLength(1);
      expect(flag(container, 'metrics-port')).toBe(String(metricsPort.containerPort));
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
      expect(policy.spec.ingress).toEqual([{ ports: [{ port: metricsPort.containerPort, protocol: 'TCP' }] }]);
      expect(container.readinessProbe!.httpGet).toEqual({ path: '/readyz', port: metricsPort.name });
      expect(container.livenessProbe!.httpGet).toEqual({ path: '/healthz', port: metricsPort.name });

      // Two replicas (one leads, one warm), a PDB that lets a drain evict one of them.
      expect(deployment.spec.replicas).toBe(2);
      expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
      expect(pdb.spec.maxUnavailable ?? deployment.spec.replicas - pdb.spec.minAvailable).toBeGreaterThanOrEqual(1);
      expect(pdb.spec.minAvailable ?? 0).toBeLessThan(deployment.spec.replicas);
      for (const resource of ['cpu', 'memory']) {
        expect(container.resources?.requests?.[resource], `requests.${resource}`).toBeDefined();
        expect(container.resources?.limits?.[resource], `limits.${resource}`).toBeDefined();
      }

      // The webhook's checksum key (same Secret, same key) at the path --checksum-key names.
      const keyVolume = spec.volumes!.find((v) => v.secret)!;
      const webhookKeyVolume = podSpecOf(overlay).volumes!.find((v) => v.secret?.secretName === keyVolume.secret!.secretName)!;
      expect(keyVolume.secret!.secretName).toBe('gitops-guard-checksum-key');
      expect(webhookKeyVolume, 'the webhook mounts the same Secret').toBeDefined();
      const keyMount = container.volumeMounts!.find((m) => m.name === keyVolume.name)!;
      const keyItem = keyVolume.secret!.items?.find((i) => i.key === 'checksum.key');
      if (keyVolume.secret!.items) expect(keyItem).toBeDefined();
      expect(flag(container, 'checksum-key')).toBe(`${keyMount.mountPath}/${keyItem?.path ?? 'checksum.key'}`);

      // Identity and Lease: the pod's own namespace and name; the stamping rule is matched as the
      // controller's own service account; the lease is the one the Role is for.
      const account = only(overlay, 'ServiceAccount', CONTROLLER);
      expect(spec.serviceAccountName).toBe(account.metadata.name);
      expect(spec.automountServiceAccountToken).not.toBe(false);
      expect(container.env).toContainEqual({ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });
      expect(container.env).toContainEqual({ name: 'HOSTNAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
      expect(env(container, 'GITOPS_GUARD_CONTROLLER_USERNAME')).toBe(`system:serviceaccount:${account.metadata.namespace}:${account.metadata.name}`);
      expect(flag(container, 'lease-namespace'), 'the lease namespace comes from POD_NAMESPACE').toBeUndefined();
      expect(flag(container, 'lease-name')).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);

      // Locked down like the webhook.
      expectLockedDown(spec, container, dockerUser![1]!);
    }
  });
});

