import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as clientNode from '@kubernetes/client-node';
import { Ajv } from 'ajv';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRegistry } from '../src/actions/registry.js';
import type { KubeObject, Operation, WebhookPhase } from '../src/admission/types.js';
import { generateCertificates, serviceDnsNames } from '../src/certs/generate.js';
import { loadRuleSetFile, parseRuleSet } from '../src/rules/load.js';
import { WORKLOAD_RESOURCES } from '../src/controller/kube-api.js';
import { WEBHOOK_PATHS } from '../src/server/app.js';
import { CLI } from './support/cli.js';
import { httpsRequest } from './support/https-client.js';
import { configMap, deployment as kubeDeployment, KubeApiServer, secret } from './support/kube-api-server.js';
import { buildObjects, kustomizeBuild, kustomizeTool } from './support/kustomize.js';
import { reviewFor } from './support/review.js';
import { killServers, startServe } from './support/serve.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MANIFESTS = join(ROOT, 'manifests');
const OVERLAYS = ['audit', 'audit-cert-manager', 'controller', 'enforce', 'enforce-cert-manager'] as const;
type Overlay = (typeof OVERLAYS)[number];
const MODE: Record<Overlay, 'audit' | 'enforce'> = {
  audit: 'audit',
  'audit-cert-manager': 'audit',
  controller: 'enforce',
  enforce: 'enforce',
  'enforce-cert-manager': 'enforce',
};
const usesCertManager = (overlay: Overlay) => overlay.endsWith('-cert-manager');
/** Overlays that add the rollout controller (manifests/components/controller, docs/controller.md). */
const CONTROLLER_OVERLAYS: readonly Overlay[] = ['controller'];
const hasController = (overlay: Overlay) => CONTROLLER_OVERLAYS.includes(overlay);
const CONTROLLER = 'gitops-guard-controller';
const LEADER_ELECTION = 'gitops-guard-controller-leader-election';

// ---------------------------------------------------------------------------------------------
// Small typed views of the objects the tests look at.

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, any>;
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
}
interface Probe {
  httpGet?: { path: string; port: string | number; scheme?: string };
}
interface Volume {
  name: string;
  secret?: { secretName: string; items?: { key: string; path: string }[]; defaultMode?: number };
  configMap?: { name: string; items?: { key: string; path: string }[] };
}
interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: Record<string, any>;
  affinity?: { podAntiAffinity?: unknown };
  topologySpreadConstraints?: unknown[];
  containers: Container[];
  volumes?: Volume[];
}
interface WebhookRule {
  apiGroups: string[];
  apiVersions: string[];
  resources: string[];
  operations: string[];
  scope?: string;
}
interface Webhook {
  name: string;
  clientConfig: { service?: { name: string; namespace: string; path?: string; port?: number }; url?: string; caBundle?: string };
  rules: WebhookRule[];
  failurePolicy?: string;
  matchPolicy?: string;
  sideEffects?: string;
  admissionReviewVersions?: string[];
  timeoutSeconds?: number;
  reinvocationPolicy?: string;
  namespaceSelector?: { matchExpressions?: { key: string; operator: string; values?: string[] }[] };
  matchConditions?: { name: string; expression: string }[];
}

const builds = new Map<Overlay | 'top', KubeObject[]>();

function objects(overlay: Overlay | 'top'): KubeObject[] {
  const built = builds.get(overlay);
  if (!built) throw new Error(`overlay ${overlay} was not built`);
  return built;
}
function only(overlay: Overlay, kind: string, name?: string): any {
  const found = objects(overlay).filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  expect(found.map((o) => `${o.kind}/${o.metadata?.name}`), `exactly one ${kind}${name ? `/${name}` : ''} in ${overlay}`).toHaveLength(1);
  return found[0];
}
const deploymentOf = (overlay: Overlay) => only(overlay, 'Deployment', 'gitops-guard');
const podSpecOf = (overlay: Overlay): PodSpec => deploymentOf(overlay).spec.template.spec;
const containerOf = (overlay: Overlay): Container => {
  const { containers } = podSpecOf(overlay);
  expect(containers).toHaveLength(1);
  return containers[0]!;
};
function flag(container: Container, name: string): string | undefined {
  const prefix = `--${name}=`;
  const found = (container.args ?? []).filter((a) => a.startsWith(prefix) || a === `--${name}`);
  expect(found.length, `--${name} given at most once`).toBeLessThanOrEqual(1);
  expect(found.every((a) => a.startsWith(prefix)), `--${name} in --flag=value form`).toBe(true);
  return found[0]?.slice(prefix.length);
}
function env(container: Container, name: string): string | undefined {
  return container.env?.find((e) => e.name === name)?.value;
}
const controllerDeploymentOf = (overlay: Overlay) => only(overlay, 'Deployment', CONTROLLER);
const controllerPodSpecOf = (overlay: Overlay): PodSpec => controllerDeploymentOf(overlay).spec.template.spec;
const controllerContainerOf = (overlay: Overlay): Container & { command?: string[] } => {
  const { containers } = controllerPodSpecOf(overlay);
  expect(containers).toHaveLength(1);
  return containers[0]!;
};
/** Whether a label selector's matchLabels select a pod with these labels. */
const selects = (matchLabels: Record<string, string>, podLabels: Record<string, string>) =>
  Object.entries(matchLabels).every(([key, value]) => podLabels[key] === value);
const webhookConfig = (overlay: Overlay, phase: WebhookPhase) =>
  only(overlay, phase === 'mutate' ? 'MutatingWebhookConfiguration' : 'ValidatingWebhookConfiguration', 'gitops-guard') as KubeObject & { webhooks: Webhook[] };

beforeAll(() => {
  for (const overlay of OVERLAYS) builds.set(overlay, buildObjects(join(MANIFESTS, 'overlays', overlay)));
  builds.set('top', buildObjects(MANIFESTS));
});
afterEach(() => killServers());

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
      expect(volumes.filter((v) => v.secret).map((v) => v.secret!.secretName).sort()).toEqual(['gitops-guard-checksum-key', 'gitops-guard-tls']);
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
  'has-tracking-metadata': 'has(object.metadata.labels) || has(object.metadata.annotations)',
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

// ---------------------------------------------------------------------------------------------

/**
 * Non-root as the image's numeric user, read-only root, no capabilities, RuntimeDefault seccomp,
 * and whole-directory read-only mounts (subPath mounts never see Secret/ConfigMap updates).
 */
function expectLockedDown(spec: PodSpec, container: Container, imageUser: string): void {
  expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  expect(String(spec.securityContext!['runAsUser'])).toBe(imageUser);
  expect(container.securityContext).toMatchObject({
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
  });
  expect(container.securityContext!['capabilities'].add).toBeUndefined();
  expect(container.securityContext!['privileged'] ?? false).toBe(false);
  for (const mount of container.volumeMounts ?? []) {
    expect(mount.subPath, mount.name).toBeUndefined();
    expect(mount.readOnly, mount.name).toBe(true);
  }
}

/** A command's own imports, from its CLI module down (relative imports only). */
function importGraph(entry: string): string[] {
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      queue.push(join(dirname(file), match[1]!.replace(/\.js$/, '.ts')));
    }
  }
  return [...seen];
}
/** The server's own imports, from `gitops-guard serve` down. */
const serveImportGraph = () => importGraph(join(ROOT, 'src', 'cli', 'serve.ts'));

const API_METHOD = /\.(read|list|watch|create|patch|replace|delete|connect)(Namespaced)?([A-Z][A-Za-z]*?)(Status|Scale)?\(/g;
const VERBS: Record<string, string> = { read: 'get', list: 'list', watch: 'watch', create: 'create', patch: 'patch', replace: 'update', delete: 'delete', connect: 'create' };
const CORE_PLURALS: Record<string, string> = { ConfigMap: 'configmaps', Secret: 'secrets' };

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
const granted = (rules: PolicyRule[], group: string, resource: string, verb: string) =>
  rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb) && !r.resourceNames);
/** Every (verb, group, resource) a list of rules grants, as `verb group/resource` (core group: `/resource`). */
const grants = (rules: PolicyRule[]) =>
  rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${v} ${g}/${res}`))));
const CONTROLLER_CLUSTER_GRANTS = [
  ...['configmaps', 'secrets'].flatMap((r) => ['get', 'list', 'watch'].map((v) => `${v} /${r}`)),
  'create /events',
  ...['apps/deployments', 'apps/statefulsets', 'apps/daemonsets', 'batch/cronjobs', 'argoproj.io/rollouts'].flatMap((r) => ['get', 'list', 'watch', 'patch'].map((v) => `${v} ${r}`)),
];
const CONTROLLER_LEASE_GRANTS = ['get', 'create', 'update'].map((v) => `${v} coordination.k8s.io/leases`);

/** @kubernetes/client-node API classes the controller may use, with the API group each reaches. */
const CONTROLLER_API_CLASSES: Record<string, string | 'custom-objects'> = {
  CoreV1Api: '',
  CoordinationV1Api: 'coordination.k8s.io',
  CustomObjectsApi: 'custom-objects',
};
/** Method name -> client-node API classes (`*Api` exports) that have a method of that name. */
function clientNodeApiMethods(): Map<string, string[]> {
  const methods = new Map<string, string[]>();
  for (const [name, value] of Object.entries(clientNode)) {
    // KubernetesObjectApi's generic get/list/delete... would match any such call; its use is refused below.
    if (!/Api$/.test(name) || name === 'KubernetesObjectApi' || typeof value !== 'function' || !(value as { prototype?: object }).prototype) continue;
    for (const method of Object.getOwnPropertyNames((value as { prototype: object }).prototype)) {
      if (method === 'constructor') continue;
      methods.set(method, [...(methods.get(method) ?? []), name]);
    }
  }
  return methods;
}
const CONTROLLER_METHOD = /^(get|read|list|watch|create|patch|replace|delete|deleteCollection|connect)(Namespaced|Cluster)?([A-Z][A-Za-z]*?)(ForAllNamespaces)?(Status|Scale)?(WithHttpInfo)?$/;
const CONTROLLER_VERBS: Record<string, string> = { ...VERBS, get: 'get', deleteCollection: 'deletecollection' };
const CONTROLLER_PLURALS: Record<string, string> = { ...CORE_PLURALS, Event: 'events', Lease: 'leases' };

/** The (verb, group/resource) an API request needs, or 'discovery' for `/apis/{group}/{version}`. */
function requestGrant(request: { method: string; path: string; query: string }): string | 'discovery' {
  if (/^\/apis\/[^/]+\/[^/]+$/.test(request.path) && request.method === 'GET') return 'discovery';
  const match = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)(?:\/namespaces\/[^/]+)?\/([a-z]+)(?:\/([^/]+))?$/.exec(request.path);
  expect(match, `${request.method} ${request.path}: a resource path without subresource`).not.toBeNull();
  const [, group = '', resource, name] = match!;
  const watch = /(^|&)watch=(true|1)(&|$)/.test(request.query.replace(/^\?/, ''));
  const verb = { GET: name ? 'get' : watch ? 'watch' : 'list', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: name ? 'delete' : 'deletecollection' }[request.method];
  expect(verb, `${request.method} ${request.path}`).toBeDefined();
  return `${verb} ${group}/${resource}`;
}

describe('RBAC', () => {
  it('grants exactly get on configmaps and secrets, to the Deployment\'s service account', () => {
    for (const overlay of OVERLAYS) {
      const role = only(overlay, 'ClusterRole', 'gitops-guard');
      expect(role.rules).toEqual([{ apiGroups: [''], resources: ['configmaps', 'secrets'], verbs: ['get'] }]);
      expect(role.aggregationRule).toBeUndefined();
      const binding = only(overlay, 'ClusterRoleBinding', 'gitops-guard');
      expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
      const account = only(overlay, 'ServiceAccount', 'gitops-guard');
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: account.metadata.name, namespace: account.metadata.namespace }]);
      expect(podSpecOf(overlay).serviceAccountName).toBe(account.metadata.name);
      expect(account.metadata.namespace).toBe(deploymentOf(overlay).metadata.namespace);
      // No Role/RoleBinding anywhere but the controller's leader election: the server needs nothing else.
      const namespaced = objects(overlay).filter((o) => o.kind === 'Role' || o.kind === 'RoleBinding');
      expect(namespaced.map((o) => `${o.kind}/${o.metadata!.namespace}/${o.metadata!.name}`).sort(), overlay).toEqual(
        hasController(overlay) ? [`Role/gitops-guard/${LEADER_ELECTION}`, `RoleBinding/gitops-guard/${LEADER_ELECTION}`] : [],
      );
      // ...and nothing else is bound to the webhook's service account.
      for (const object of objects(overlay).filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
        if (object === binding) continue;
        expect((object as any).subjects, `${object.kind}/${object.metadata!.name}`).not.toContainEqual(expect.objectContaining({ name: account.metadata.name, namespace: account.metadata.namespace }));
      }
    }
  });

  it('grants the controller exactly its watches, patches, events and its Lease, to the controller\'s service account', () => {
    for (const overlay of CONTROLLER_OVERLAYS) {
      const account = only(overlay, 'ServiceAccount', CONTROLLER);
      expect(account.metadata.namespace).toBe('gitops-guard');
      expect(controllerPodSpecOf(overlay).serviceAccountName).toBe(account.metadata.name);
      const subjects = [{ kind: 'ServiceAccount', name: account.metadata.name, namespace: account.metadata.namespace }];

      const role = only(overlay, 'ClusterRole', CONTROLLER);
      expect(role.aggregationRule).toBeUndefined();
      expect(new Set(grants(role.rules))).toEqual(new Set(CONTROLLER_CLUSTER_GRANTS));
      expect(grants(role.rules), 'no grant repeated').toHaveLength(CONTROLLER_CLUSTER_GRANTS.length);
      expect(role.rules.some((r: PolicyRule) => r.resourceNames || (r as any).nonResourceURLs)).toBe(false);
      const binding = only(overlay, 'ClusterRoleBinding', CONTROLLER);
      expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
      expect(binding.subjects).toEqual(subjects);

      // Leader election: a Role in gitops-guard's namespace (where POD_NAMESPACE puts the Lease),
      // leases only, and nothing but get/create/update.
      const leader = only(overlay, 'Role', LEADER_ELECTION);
      expect(leader.metadata.namespace).toBe(controllerDeploymentOf(overlay).metadata.namespace);
      expect(leader.rules).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }]);
      expect(new Set(grants(leader.rules))).toEqual(new Set(CONTROLLER_LEASE_GRANTS));
      const leaderBinding = only(overlay, 'RoleBinding', LEADER_ELECTION);
      expect(leaderBinding.metadata.namespace).toBe(leader.metadata.namespace);
      expect(leaderBinding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: leader.metadata.name });
      expect(leaderBinding.subjects).toEqual(subjects);
    }
  });

  it('covers every Kubernetes API call in the server\'s code', () => {
    const role = only('enforce', 'ClusterRole', 'gitops-guard');
    const files = serveImportGraph();
    expect(files.map((f) => relative(ROOT, f))).toContain(join('src', 'kube', 'client-node-reader.ts'));
    const calls: string[] = [];
    for (const file of files) {
      // Comments may name APIs the code does not call.
      const text = readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/^\s*\/\/.*$/gm, '');
      if (!text.includes("'@kubernetes/client-node'")) continue;
      for (const unsupported of ['KubernetesObjectApi', 'makeInformer', 'new Watch', 'ListWatch', 'Exec(', 'PortForward']) {
        expect(text.includes(unsupported), `${relative(ROOT, file)} uses ${unsupported}: extend this test and the ClusterRole`).toBe(false);
      }
      for (const api of text.matchAll(/\b([A-Z][A-Za-z]*V\d+(?:alpha\d+|beta\d+)?Api)\b/g)) {
        expect(api[1], `${relative(ROOT, file)} uses ${api[1]}: only CoreV1Api is expected; extend this test and the ClusterRole`).toBe('CoreV1Api');
      }
      for (const [, action, , kind, subresource] of text.matchAll(API_METHOD)) {
        const resource = CORE_PLURALS[kind!];
        expect(resource, `${relative(ROOT, file)} calls ${action}${kind}: add its resource to this test and the ClusterRole`).toBeDefined();
        expect(subresource, 'no subresources').toBeUndefined();
        calls.push(`${VERBS[action!]} ${resource}`);
        expect(granted(role.rules, '', resource!, VERBS[action!]!), `ClusterRole grants ${VERBS[action!]} ${resource}`).toBe(true);
      }
    }
    expect(new Set(calls)).toEqual(new Set(['get configmaps', 'get secrets']));
  });

  it('covers every Kubernetes API call in the controller\'s code, and grants nothing it does not call', () => {
    const files = importGraph(join(ROOT, 'src', 'cli', 'controller.ts'));
    for (const file of ['kube-api.ts', 'informers.ts', 'leader.ts', 'reconcile.ts', 'controller.ts']) expect(files).toContain(join(ROOT, 'src', 'controller', file));
    expect(files).toContain(join(ROOT, 'src', 'kube', 'client-node-reader.ts'));
    const apiMethods = clientNodeApiMethods();
    expect(apiMethods.get('listConfigMapForAllNamespaces')).toEqual(['CoreV1Api']);
    const workloads = WORKLOAD_RESOURCES.map((r) => `${r.group}/${r.plural}`);
    const calls = new Set<string>();
    const methodsSeen = new Set<string>();
    for (const file of files) {
      const where = relative(ROOT, file);
      // Comments may name APIs the code does not call.
      const text = readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/^\s*\/\/.*$/gm, '');
      if (!text.includes("'@kubernetes/client-node'")) continue;
      for (const unsupported of ['KubernetesObjectApi', 'makeInformer', 'new Exec(', 'new Attach(', 'new PortForward(', 'new Log(', 'new Metrics(', 'new Cp(']) {
        expect(text.includes(unsupported), `${where} uses ${unsupported}: extend this test and the controller's RBAC`).toBe(false);
      }
      for (const api of text.matchAll(/\b([A-Z][A-Za-z0-9]*Api)\b/g)) {
        if (!(api[1]! in clientNode)) continue; // the controller's own classes (WorkloadApi)
        expect(Object.keys(CONTROLLER_API_CLASSES), `${where} uses ${api[1]}: extend this test and the controller's RBAC`).toContain(api[1]);
      }
      const resourcesListed: string[] = [];
      for (const [, method] of text.matchAll(/\.([a-zA-Z]+)\(/g)) {
        const classes = apiMethods.get(method!);
        if (!classes) continue;
        methodsSeen.add(method!);
        if (method === 'getAPIResources') continue; // discovery: every authenticated user may read it
        const api = classes.find((c) => c in CONTROLLER_API_CLASSES);
        expect(api, `${where} calls ${method} of ${classes.join('/')}: extend this test and the controller's RBAC`).toBeDefined();
        const parts = CONTROLLER_METHOD.exec(method!);
        expect(parts, `${where}: ${method} is not a resource call this test understands`).not.toBeNull();
        const [, action, , kind, , subresource, withHttpInfo] = parts!;
        expect(subresource, `${where}: ${method}: no subresources`).toBeUndefined();
        expect(withHttpInfo).toBeUndefined();
        const verb = CONTROLLER_VERBS[action!]!;
        let resources: string[];
        if (CONTROLLER_API_CLASSES[api!] === 'custom-objects') {
          expect(kind, method).toBe('CustomObject');
          resources = workloads; // the generic API, called with the plurals of WORKLOAD_RESOURCES
        } else {
          const plural = CONTROLLER_PLURALS[kind!];
          expect(plural, `${where} calls ${method}: add its resource to this test and the controller's RBAC`).toBeDefined();
          resources = [`${CONTROLLER_API_CLASSES[api!]}/${plural}`];
        }
        for (const resource of resources) calls.add(`${verb} ${resource}`);
        if (verb === 'list') resourcesListed.push(...resources);
      }
      // An informer (ListWatch over a Watch) watches what its list function lists.
      if (/\bnew ListWatch\b/.test(text)) {
        expect(text, `${where}: the informer's Watch`).toMatch(/\b(new Watch|extends Watch)\b/);
        expect(resourcesListed.length, `${where}: informers list something`).toBeGreaterThan(0);
        for (const resource of resourcesListed) calls.add(`watch ${resource}`);
      } else {
        expect(text, `${where} watches outside an informer: extend this test`).not.toMatch(/\bnew (ListWatch|Watch)\b|\bextends Watch\b/);
      }
    }
    // The calls this test knows the controller makes: a rename or a new call shows up here first.
    expect([...methodsSeen].sort()).toEqual([
      'createNamespacedEvent',
      'createNamespacedLease',
      'getAPIResources',
      'getNamespacedCustomObject',
      'listClusterCustomObject',
      'listConfigMapForAllNamespaces',
      'listNamespacedConfigMap',
      'listNamespacedCustomObject',
      'listNamespacedSecret',
      'listSecretForAllNamespaces',
      'patchNamespacedCustomObject',
      'readNamespacedConfigMap',
      'readNamespacedLease',
      'readNamespacedSecret',
      'replaceNamespacedLease',
    ]);
    for (const overlay of CONTROLLER_OVERLAYS) {
      const role = only(overlay, 'ClusterRole', CONTROLLER);
      const leader = only(overlay, 'Role', LEADER_ELECTION);
      for (const call of calls) {
        const [verb, groupResource] = call.split(' ') as [string, string];
        const [group, resource] = groupResource.split('/') as [string, string];
        // The Lease lives in gitops-guard's namespace: the namespaced Role, not the ClusterRole, grants it.
        const rules = group === 'coordination.k8s.io' ? leader.rules : role.rules;
        expect(granted(rules, group, resource, verb), `${overlay}: ${call} is granted`).toBe(true);
      }
      const everyGrant = [...grants(role.rules), ...grants(leader.rules)];
      expect(everyGrant.filter((g) => !calls.has(g)), `${overlay}: granted but never called`).toEqual([]);
    }
    expect(new Set(calls)).toEqual(new Set([...CONTROLLER_CLUSTER_GRANTS, ...CONTROLLER_LEASE_GRANTS]));
  });
});

// ---------------------------------------------------------------------------------------------

/** Files the Deployment mounts, written under `root` exactly where the pod would see them. */
function materialise(
  overlay: Overlay,
  root: string,
  tls: { certPem: string; keyPem: string },
  pod: { spec: PodSpec; container: Container; fieldRefs?: Record<string, string> } = { spec: podSpecOf(overlay), container: containerOf(overlay) },
): { args: string[]; env: Record<string, string> } {
  const { spec, container } = pod;
  const configMaps = new Map(objects(overlay).filter((o) => o.kind === 'ConfigMap').map((o) => [o.metadata!.name!, (o as any).data as Record<string, string>]));
  const secrets: Record<string, Record<string, string>> = {
    'gitops-guard-tls': { 'tls.crt': tls.certPem, 'tls.key': tls.keyPem, 'ca.crt': '' },
    'gitops-guard-checksum-key': { 'checksum.key': `${randomBytes(32).toString('hex')}\n` },
  };
  const mounts = container.volumeMounts ?? [];
  for (const mount of mounts) {
    const volume = spec.volumes!.find((v) => v.name === mount.name)!;
    const data = volume.secret ? secrets[volume.secret.secretName] : configMaps.get(volume.configMap!.name);
    expect(data, `data for volume ${mount.name}`).toBeDefined();
    const items = (volume.secret ?? volume.configMap)!.items ?? Object.keys(data!).map((key) => ({ key, path: key }));
    for (const item of items) {
      const file = join(root, mount.mountPath, item.path);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, data![item.key]!);
    }
  }
  // Absolute paths under a mount point are rewritten into `root`; the port is picked freely.
  const args = (container.args ?? []).map((arg) => {
    if (arg.startsWith('--port=')) return '--port=0';
    if (arg.startsWith('--metrics-port=')) return '--metrics-port=0';
    const [name, value] = arg.split(/=(.*)/s) as [string, string | undefined];
    if (value && mounts.some((m) => value.startsWith(`${m.mountPath}/`))) return `${name}=${join(root, value)}`;
    return arg;
  });
  const env = Object.fromEntries(
    (container.env ?? []).map((e) => {
      const fieldPath = e.valueFrom?.fieldRef?.fieldPath;
      if (fieldPath !== undefined) expect(pod.fieldRefs?.[fieldPath], `env ${e.name} from ${fieldPath}`).toBeDefined();
      return [e.name, fieldPath !== undefined ? pod.fieldRefs![fieldPath]! : (e.value ?? '')];
    }),
  );
  return { args, env };
}

describe('the server started as the manifests start it', () => {
  let api: KubeApiServer;
  beforeAll(async () => {
    api = await KubeApiServer.start();
  });
  afterAll(async () => {
    await api?.close();
  });

  const entrypoint = () => {
    const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    expect(line, 'the Dockerfile has an exec-form ENTRYPOINT').not.toBeNull();
    return JSON.parse(line![1]!) as string[];
  };

  for (const overlay of ['enforce', 'audit'] as const) {
    it(`comes up ready with the ${overlay} overlay's args, env and mounted files, and reads only what RBAC grants`, async () => {
      const image = entrypoint();
      expect(image.at(-1), 'the image runs `gitops-guard serve`').toBe('serve');
      expect(image.at(-2)).toMatch(/(^|\/)dist\/cli\/main\.js$/);
      const root = mkdtempSync(join(tmpdir(), 'gg-manifests-'));
      const service = only(overlay, 'Service', 'gitops-guard');
      const certs = generateCertificates({ service: service.metadata.name, namespace: service.metadata.namespace, days: 1 });
      const { args, env } = materialise(overlay, root, certs);
      // In-cluster credentials stand in for the Deployment's service account token.
      const server = await startServe(args, { cwd: root, env: { ...env, GITOPS_GUARD_KUBECONFIG: api.writeKubeconfig() } });

      const servername = `${service.metadata.name}.${service.metadata.namespace}.svc`;
      expect(serviceDnsNames(service.metadata.name, service.metadata.namespace)).toContain(servername);
      const container = containerOf(overlay);
      for (const probe of [container.readinessProbe!, container.livenessProbe!]) {
        const answer = await httpsRequest({ port: server.port, ca: certs.caCertPem, servername, path: probe.httpGet!.path });
        expect(answer.status, probe.httpGet!.path).toBe(200);
      }
      const metrics = await httpsRequest({ port: server.port, ca: certs.caCertPem, servername, path: '/metrics' });
      expect(metrics.body).toMatch(/^gitops_guard_certificate_expiry_seconds \d/m);
      expect(metrics.body).toMatch(/^gitops_guard_rules_loaded [1-9]/m);

      const namespace = `ns-${overlay}`;
      api.put(configMap(namespace, 'app-config', { LOG_LEVEL: 'debug' }));
      api.put(secret(namespace, 'db', { password: 'hunter2' }));
      api.clearRequests();
      const workload = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'app', namespace },
        spec: {
          selector: { matchLabels: { app: 'app' } },
          template: {
            metadata: { labels: { app: 'app' } },
            spec: {
              containers: [
                {
                  name: 'app',
                  image: 'app:1',
                  envFrom: [{ configMapRef: { name: 'app-config' } }],
                  env: [{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }],
                },
              ],
            },
          },
        },
      };
      const review = reviewFor(workload);
      const answer = await httpsRequest({ port: server.port, ca: certs.caCertPem, servername, method: 'POST', path: WEBHOOK_PATHS.mutate, body: JSON.stringify(review) });
      const response = JSON.parse(answer.body).response;
      expect(response.allowed).toBe(true);
      if (overlay === 'enforce') {
        const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8'));
        expect(JSON.stringify(patch)).toMatch(/gitops-guard\.dev(~1|\/)config-checksum.*v1:[0-9a-f]{64}/);
      } else {
        expect(response.patch, 'audit mode changes nothing').toBeUndefined();
      }

      // Every API request the server made is one the ClusterRole grants.
      const role = only(overlay, 'ClusterRole', 'gitops-guard');
      expect(api.requests.length).toBeGreaterThanOrEqual(2);
      for (const request of api.requests) {
        const match = /^\/api\/v1\/namespaces\/[^/]+\/([a-z]+)\/[^/]+$/.exec(request.path);
        expect(match, `${request.method} ${request.path} is a namespaced core GET by name`).not.toBeNull();
        expect(request.method).toBe('GET');
        expect(granted(role.rules, '', match![1]!, 'get'), `${request.method} ${request.path}`).toBe(true);
      }

      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }, 30_000);
  }
});

describe('the controller started as the manifests start it', () => {
  let api: KubeApiServer;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    api = await KubeApiServer.start();
  });
  afterEach(() => {
    child?.kill('SIGKILL');
    child = undefined;
  });
  afterAll(async () => {
    await api?.close();
  });

  const httpGet = (port: number, path: string) =>
    new Promise<number>((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port, path }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      })
        .on('error', reject)
        .end();
    });
  const waitFor = async (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 15_000) => {
    const started = Date.now();
    while (!(await condition())) {
      if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  for (const overlay of CONTROLLER_OVERLAYS) {
    it(`comes up ready with the ${overlay} overlay's command, args, env and mounted files, leads, rolls, and calls only what RBAC grants`, async () => {
      const deployment = controllerDeploymentOf(overlay);
      const container = controllerContainerOf(overlay);
      // Same program as the image's entrypoint, its `controller` command.
      const entrypoint = JSON.parse(/^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))![1]!) as string[];
      expect(container.command).toEqual([...entrypoint.slice(0, -1), 'controller']);
      expect(container.command![1]).toMatch(/(^|\/)dist\/cli\/main\.js$/);

      const root = mkdtempSync(join(tmpdir(), 'gg-manifests-controller-'));
      const podName = `${CONTROLLER}-7d9f8c6b5-x2x4q`;
      const namespace = deployment.metadata.namespace as string;
      const { args, env } = materialise(overlay, root, { certPem: '', keyPem: '' }, {
        spec: controllerPodSpecOf(overlay),
        container,
        fieldRefs: { 'metadata.namespace': namespace, 'metadata.name': podName },
      });

      // A workload the stamping rule selects, stamped with a checksum that does not match what it
      // consumes: the leader rolls it (get, patch, event).
      const ns = `ns-${overlay}-controller`;
      api.put(configMap(ns, 'app-config', { LOG_LEVEL: 'debug' }));
      api.put(secret(ns, 'db', { password: 'hunter2' }));
      api.put(
        kubeDeployment(
          ns,
          'app',
          { containers: [{ name: 'app', image: 'app:1', envFrom: [{ configMapRef: { name: 'app-config' } }], env: [{ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } }] }] },
          { 'gitops-guard.dev/config-checksum': `v1:${'0'.repeat(64)}` },
        ),
      );
      api.clearRequests();

      child = spawn(process.execPath, [CLI, 'controller', ...args], {
        cwd: root,
        env: { ...process.env, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', HOME: root, ...env, GITOPS_GUARD_KUBECONFIG: api.writeKubeconfig() },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const exited = new Promise<number | null>((resolve) => child!.on('exit', (code) => resolve(code)));
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (c) => (stdout += c));
      child.stderr!.on('data', (c) => (stderr += c));
      let port = 0;
      await waitFor(`the metrics port (${stderr})`, () => {
        const line = stdout.split('\n').find((l) => l.includes('"controller metrics listening"'));
        port = line ? (JSON.parse(line) as { port: number }).port : 0;
        return port > 0;
      });

      await waitFor('/readyz 200', async () => (await httpGet(port, container.readinessProbe!.httpGet!.path)) === 200);
      expect(await httpGet(port, container.livenessProbe!.httpGet!.path)).toBe(200);
      // It leads through the Lease its Role is for: POD_NAMESPACE, --lease-name, the pod's name.
      const leaseName = flag(container, 'lease-name')!;
      await waitFor('the lease', () => (api.get('coordination.k8s.io/v1', 'Lease', namespace, leaseName) as any)?.spec?.holderIdentity === podName);
      expect(only(overlay, 'Role', LEADER_ELECTION).metadata.namespace).toBe(namespace);
      await waitFor('the rollout', () => api.patches.some((p) => p.path === `/apis/apps/v1/namespaces/${ns}/deployments/app` && p.status === 200));
      await waitFor('the event', () => api.requests.some((r) => r.method === 'POST' && r.path === `/api/v1/namespaces/${ns}/events`));

      // Every API request it made is one its ClusterRole (or, for the Lease, its Role) grants.
      const role = only(overlay, 'ClusterRole', CONTROLLER);
      const leader = only(overlay, 'Role', LEADER_ELECTION);
      const needed = new Set<string>();
      for (const request of api.requests) {
        expect(request.authorized, `${request.method} ${request.path}`).toBe(true);
        const grant = requestGrant(request);
        if (grant === 'discovery') continue;
        needed.add(grant);
        const [verb, groupResource] = grant.split(' ') as [string, string];
        const [group, resource] = groupResource.split('/') as [string, string];
        if (group === 'coordination.k8s.io') expect(request.path, 'the Lease is in the Role\'s namespace').toMatch(new RegExp(`^/apis/coordination\\.k8s\\.io/v1/namespaces/${leader.metadata.namespace}/leases(/|$)`));
        expect(granted(group === 'coordination.k8s.io' ? leader.rules : role.rules, group, resource, verb), `${request.method} ${request.path}${request.query} needs ${grant}`).toBe(true);
      }
      // The run exercised every kind of call the static check above found.
      for (const call of ['list /configmaps', 'watch /configmaps', 'list /secrets', 'watch /secrets', 'watch apps/deployments', 'get apps/deployments', 'patch apps/deployments', 'create /events', 'get coordination.k8s.io/leases', 'create coordination.k8s.io/leases']) {
        expect(needed, call).toContain(call);
      }

      child.kill('SIGTERM');
      expect(await exited, stderr).toBe(0);
      child = undefined;
      // A normal stop hands the Lease over at once.
      expect((api.get('coordination.k8s.io/v1', 'Lease', namespace, leaseName) as any).spec.holderIdentity).toBe('');
    }, 45_000);
  }
});

// ---------------------------------------------------------------------------------------------

/**
 * A stand-in for kubectl that implements exactly the calls hack/install-certs.sh makes, over a
 * JSON file of objects, and records every call. Anything else fails loudly.
 */
const FAKE_KUBECTL = String.raw`
const fs = require('node:fs');
const statePath = process.env.FAKE_KUBECTL_STATE;
const state = JSON.parse(fs.readFileSync(statePath, 'utf8'));
let argv = process.argv.slice(2);
state.calls.push(argv.join(' '));
let namespace = '';
const n = argv.indexOf('-n');
if (n >= 0) { namespace = argv[n + 1]; argv.splice(n, 2); }
const save = () => fs.writeFileSync(statePath, JSON.stringify(state, null, 2));
const fail = (message, code = 1) => { save(); process.stderr.write(message + '\n'); process.exit(code); };
const kinds = { namespace: 'Namespace', secret: 'Secret', mutatingwebhookconfiguration: 'MutatingWebhookConfiguration', validatingwebhookconfiguration: 'ValidatingWebhookConfiguration' };
const key = (kind, ns, name) => kind + '/' + (kind === 'Secret' ? ns : '') + '/' + name;
const option = (name) => { const a = argv.find((x) => x.startsWith(name + '=')); return a === undefined ? undefined : a.slice(name.length + 1); };
function jsonpath(object, expression) {
  const body = /^\{(.*)\}$/.exec(expression)[1];
  if (body === '.webhooks[*].name') return (object.webhooks || []).map((w) => w.name).join(' ');
  const parts = body.slice(1).split(/(?<!\\)\./).map((p) => p.replace(/\\\./g, '.'));
  let value = object;
  for (const part of parts) value = value == null ? undefined : value[part];
  return value === undefined ? '' : String(value);
}
const [verb, what, name] = argv;
if (verb === 'get' && kinds[what]) {
  const object = state.objects[key(kinds[what], namespace, name)];
  if (!object) fail('Error from server (NotFound): ' + what + ' "' + name + '" not found');
  const output = option('-o') ?? argv[argv.indexOf('-o') + 1];
  if (output === 'name') process.stdout.write(what + '/' + name + '\n');
  else if (output.startsWith('jsonpath=')) process.stdout.write(jsonpath(object, output.slice('jsonpath='.length)));
  else fail('fake kubectl: unsupported output ' + output, 3);
} else if (verb === 'create' && what === 'namespace') {
  state.objects[key('Namespace', '', name)] = { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
} else if (verb === 'create' && what === 'secret' && name === 'generic') {
  const secretName = argv[3];
  const data = {};
  for (const arg of argv.filter((a) => a.startsWith('--from-file='))) {
    const [k, path] = arg.slice('--from-file='.length).split(/=(.*)/s);
    data[k] = fs.readFileSync(path).toString('base64');
  }
  const object = { apiVersion: 'v1', kind: 'Secret', metadata: { name: secretName, namespace }, type: option('--type') ?? 'Opaque', data };
  if (option('--dry-run') === 'client') {
    if (argv[argv.indexOf('-o') + 1] !== 'json') fail('fake kubectl: dry-run needs -o json', 3);
    process.stdout.write(JSON.stringify(object));
  } else {
    if (state.objects[key('Secret', namespace, secretName)]) fail('Error from server (AlreadyExists): secrets "' + secretName + '" already exists');
    state.objects[key('Secret', namespace, secretName)] = object;
  }
} else if ((verb === 'create' || verb === 'replace') && what === '-f') {
  const object = JSON.parse(fs.readFileSync(name, 'utf8'));
  const k = key(object.kind, object.metadata.namespace || namespace, object.metadata.name);
  if (verb === 'create' && state.objects[k]) fail('Error from server (AlreadyExists)');
  if (verb === 'replace' && !state.objects[k]) fail('Error from server (NotFound)');
  state.objects[k] = object;
} else if (verb === 'patch' && kinds[what]) {
  const object = state.objects[key(kinds[what], namespace, name)];
  if (!object) fail('Error from server (NotFound)');
  if (option('--type') !== 'json') fail('fake kubectl: only --type=json', 3);
  const ops = JSON.parse(argv[argv.indexOf('-p') + 1]);
  for (const op of ops) {
    if (op.op !== 'add' && op.op !== 'replace') fail('fake kubectl: unsupported op ' + op.op, 3);
    const parts = op.path.split('/').slice(1);
    let target = object;
    for (const part of parts.slice(0, -1)) {
      if (target[part] === undefined) fail('The request is invalid: missing ' + op.path);
      target = target[part];
    }
    target[parts[parts.length - 1]] = op.value;
  }
} else {
  fail('fake kubectl: unsupported call: ' + process.argv.slice(2).join(' '), 3);
}
save();
`;

describe('hack/install-certs.sh', () => {
  const SCRIPT = join(ROOT, 'hack', 'install-certs.sh');

  function fakeCluster(overlay: Overlay): { dir: string; statePath: string; run: (args?: string[]) => { status: number | null; stdout: string; stderr: string }; state: () => any } {
    const dir = mkdtempSync(join(tmpdir(), 'gg-install-certs-'));
    const kubectl = join(dir, 'kubectl');
    writeFileSync(kubectl, `#!${process.execPath}\n${FAKE_KUBECTL}`);
    chmodSync(kubectl, 0o755);
    const statePath = join(dir, 'state.json');
    const objectsByKey: Record<string, unknown> = {};
    for (const phase of ['mutate', 'validate'] as const) {
      const config = webhookConfig(overlay, phase);
      objectsByKey[`${config.kind}//${config.metadata!.name}`] = config;
    }
    writeFileSync(statePath, JSON.stringify({ objects: objectsByKey, calls: [] }));
    return {
      dir,
      statePath,
      state: () => JSON.parse(readFileSync(statePath, 'utf8')),
      run: (args = []) => {
        const result = spawnSync('bash', [SCRIPT, ...args], {
          encoding: 'utf8',
          timeout: 60_000,
          env: { ...process.env, KUBECTL: kubectl, FAKE_KUBECTL_STATE: statePath, GITOPS_GUARD: `${process.execPath} ${CLI}` },
        });
        return { status: result.status, stdout: result.stdout, stderr: result.stderr };
      },
    };
  }

  const caBundles = (state: any) =>
    ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'].flatMap((kind) =>
      (state.objects[`${kind}//gitops-guard`].webhooks as Webhook[]).map((w) => w.clientConfig.caBundle),
    );
  const certsIn = (pem: string) => pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];

  it('creates both Secrets once, patches every caBundle, and changes nothing when run again', () => {
    const cluster = fakeCluster('enforce');
    const first = cluster.run();
    expect(first.status, first.stderr).toBe(0);
    let state = cluster.state();
    expect(state.objects['Namespace//gitops-guard']).toBeDefined();
    const key = state.objects['Secret/gitops-guard/gitops-guard-checksum-key'];
    const keyText = Buffer.from(key.data['checksum.key'], 'base64').toString('utf8');
    expect(keyText).toMatch(/^[0-9a-f]{64}$/);
    const tls = state.objects['Secret/gitops-guard/gitops-guard-tls'];
    expect(tls.type).toBe('kubernetes.io/tls');
    expect(Object.keys(tls.data).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    const ca = new X509Certificate(Buffer.from(tls.data['ca.crt'], 'base64'));
    const cert = new X509Certificate(Buffer.from(tls.data['tls.crt'], 'base64'));
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkHost('gitops-guard.gitops-guard.svc')).toBe('gitops-guard.gitops-guard.svc');
    const bundles = caBundles(state);
    expect(bundles).toHaveLength(3);
    for (const bundle of bundles) expect(bundle).toBe(tls.data['ca.crt']);

    const callsBefore = (state.calls as string[]).length;
    const second = cluster.run();
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout).toContain('kept secret gitops-guard/gitops-guard-checksum-key');
    expect(second.stdout).toContain('kept secret gitops-guard/gitops-guard-tls');
    state = cluster.state();
    expect(state.objects['Secret/gitops-guard/gitops-guard-checksum-key']).toEqual(key);
    expect(state.objects['Secret/gitops-guard/gitops-guard-tls']).toEqual(tls);
    expect(caBundles(state)).toEqual(bundles);
    const writes = (state.calls as string[]).slice(callsBefore).filter((c) => /^(-n \S+ )?(create|replace|delete|apply)\b/.test(c));
    expect(writes, 'the second run creates and replaces nothing').toEqual([]);
  });

  it('--rotate keeps the checksum key, trusts old and new CA during the switch, and the next run drops the old CA', () => {
    const cluster = fakeCluster('enforce');
    expect(cluster.run().status).toBe(0);
    const before = cluster.state();
    const oldCa = Buffer.from(before.objects['Secret/gitops-guard/gitops-guard-tls'].data['ca.crt'], 'base64').toString('utf8');

    const rotate = cluster.run(['--rotate']);
    expect(rotate.status, rotate.stderr).toBe(0);
    const during = cluster.state();
    expect(during.objects['Secret/gitops-guard/gitops-guard-checksum-key']).toEqual(before.objects['Secret/gitops-guard/gitops-guard-checksum-key']);
    const newCa = Buffer.from(during.objects['Secret/gitops-guard/gitops-guard-tls'].data['ca.crt'], 'base64').toString('utf8');
    expect(newCa).not.toBe(oldCa);
    for (const bundle of caBundles(during)) {
      const pems = certsIn(Buffer.from(bundle!, 'base64').toString('utf8'));
      expect(pems).toEqual([certsIn(newCa)[0], certsIn(oldCa)[0]]);
    }
    // caBundle is patched before the Secret is replaced.
    const calls = during.calls as string[];
    const lastPatch = calls.map((c, i) => (c.startsWith('patch ') ? i : -1)).reduce((a, b) => Math.max(a, b));
    expect(calls.findIndex((c) => c.includes('replace -f'))).toBeGreaterThan(lastPatch);

    expect(cluster.run().status).toBe(0);
    for (const bundle of caBundles(cluster.state())) expect(Buffer.from(bundle!, 'base64').toString('utf8')).toBe(newCa);
  });

  it('--checksum-key-only leaves the TLS Secret and cert-manager-injected caBundles to cert-manager', () => {
    const cluster = fakeCluster('enforce-cert-manager');
    const result = cluster.run(['--checksum-key-only']);
    expect(result.status, result.stderr).toBe(0);
    const state = cluster.state();
    expect(state.objects['Secret/gitops-guard/gitops-guard-checksum-key']).toBeDefined();
    expect(state.objects['Secret/gitops-guard/gitops-guard-tls']).toBeUndefined();
    expect(caBundles(state)).toEqual([undefined, undefined, undefined]);
    expect((state.calls as string[]).some((c) => c.startsWith('patch'))).toBe(false);

    // Even a full run does not fight cert-manager's CA injector over caBundle.
    const full = cluster.run();
    expect(full.status, full.stderr).toBe(0);
    expect(full.stderr).toMatch(/managed by cert-manager/);
    expect(caBundles(cluster.state())).toEqual([undefined, undefined, undefined]);
  });

  it('refuses unknown arguments', () => {
    const result = fakeCluster('enforce').run(['--colour']);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/unknown argument --colour/);
  });
});
