import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { PassThrough } from 'node:stream';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { parser } from '@prometheus-io/lezer-promql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../src/api/types.js';
import { serviceDnsNames } from '../src/certs/generate.js';
import { runController, type RunningController } from '../src/cli/controller.js';
import { CHECKS } from '../src/report/checks.js';
import { DEFAULT_RULES } from './support/app.js';
import { startGuardServer, type GuardServer } from './support/guard-server.js';
import { httpsRequest } from './support/https-client.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { kustomizeBuild } from './support/kustomize.js';
import { MANIFESTS, OVERLAYS, hasController, usesCertManager, type Overlay } from './support/manifests.js';
import { typeErrors } from './support/type-check.js';

/**
 * manifests/components/monitoring: it renders into every overlay, its Prometheus Operator objects
 * have the shape the operator's schemas describe, its ServiceMonitors reach the ports and
 * certificates the install really has, its dashboard is a valid Grafana dashboard, and every
 * PromQL expression parses and names only metrics the real server and controller export.
 */

const COMPONENT = join(MANIFESTS, 'components', 'monitoring');
const component = (file: string) => readFileSync(join(COMPONENT, file), 'utf8');
const docs = (file: string) => parseAllDocuments(component(file)).map((d) => d.toJS() as KubeObject & Record<string, any>);

/** `kubectl kustomize` of an overlay with the component added, as docs/operations.md tells users to. */
function withMonitoring(overlay: Overlay, extra = ''): (KubeObject & Record<string, any>)[] {
  const dir = mkdtempSync(join(tmpdir(), 'gg-monitoring-'));
  try {
    // kustomize refuses absolute paths; a relative one from the temporary directory works anywhere.
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        `  - ${relative(dir, join(MANIFESTS, 'overlays', overlay))}`,
        'components:',
        `  - ${relative(dir, COMPONENT)}`,
        extra,
      ].join('\n'),
    );
    return parseAllDocuments(kustomizeBuild(dir)).map((d) => d.toJS());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const id = (o: KubeObject) => `${o.kind}/${o.metadata!.name}`;
const selects = (selector: Record<string, string>, labels: Record<string, string> = {}) => Object.entries(selector).every(([k, v]) => labels[k] === v);

const rendered = new Map<Overlay, (KubeObject & Record<string, any>)[]>();
const plain = new Map<Overlay, (KubeObject & Record<string, any>)[]>();
beforeAll(() => {
  for (const overlay of OVERLAYS) {
    rendered.set(overlay, withMonitoring(overlay));
    plain.set(overlay, parseAllDocuments(kustomizeBuild(join(MANIFESTS, 'overlays', overlay))).map((d) => d.toJS()));
  }
});

describe('the monitoring component', () => {
  it('renders into every overlay, adding its objects and a component label on the webhook Service, changing nothing else', () => {
    const added = ['ConfigMap/gitops-guard-dashboard', 'PrometheusRule/gitops-guard', 'Service/gitops-guard-controller-metrics', 'ServiceMonitor/gitops-guard', 'ServiceMonitor/gitops-guard-controller'];
    for (const overlay of OVERLAYS) {
      const before = new Map(plain.get(overlay)!.map((o) => [id(o), o]));
      const after = rendered.get(overlay)!;
      expect(after.map(id).filter((i) => !before.has(i)).sort(), overlay).toEqual(added);
      for (const object of after.filter((o) => before.has(id(o)))) {
        const expected = structuredClone(before.get(id(object))!);
        if (id(object) === 'Service/gitops-guard') expected.metadata!.labels = { ...expected.metadata!.labels, 'app.kubernetes.io/component': 'webhook' };
        expect(object, `${overlay}: ${id(object)}`).toEqual(expected);
      }
      for (const object of after.filter((o) => !before.has(id(o)))) expect(object.metadata!.namespace, id(object)).toBe('gitops-guard');
    }
  });

  it('ServiceMonitors and PrometheusRule match the Prometheus Operator schemas: required fields, types, enums, no unknown field', () => {
    const models = { ServiceMonitor, PrometheusRule } as const;
    const objects = rendered.get('controller')!.filter((o) => o.apiVersion === 'monitoring.coreos.com/v1');
    expect(objects.map(id).sort()).toEqual(['PrometheusRule/gitops-guard', 'ServiceMonitor/gitops-guard', 'ServiceMonitor/gitops-guard-controller']);
    for (const object of objects) {
      const Model = models[object.kind as keyof typeof models];
      expect(() => new Model(object as any).validate(), id(object)).not.toThrow();
      const type = `I${object.kind}`;
      const errors = typeErrors(`import type { ${type} } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${object.kind}';`, type, object);
      expect(errors, id(object)).toEqual([]);
    }
    // The checks are not vacuous: a misspelt field and a wrong enum value are caught.
    const check = (mutate: (endpoint: Record<string, unknown>) => void) => {
      const broken = structuredClone(objects.find((o) => o.kind === 'ServiceMonitor')!);
      mutate(broken.spec.endpoints[0]);
      return typeErrors("import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';", 'IServiceMonitor', broken).join('\n');
    };
    expect(check((e) => (e.intervall = '30s'))).toContain("'\"intervall\"' does not exist");
    expect(check((e) => (e.scheme = 'HTTPS'))).toContain('\'"HTTPS"\' is not assignable');
  });

  it.each(OVERLAYS)('scrapes what the %s install really serves: Services, named ports, NetworkPolicy, TLS name and CA', (overlay) => {
    const objects = rendered.get(overlay)!;
    const of = (kind: string) => objects.filter((o) => o.kind === kind);
    for (const monitor of of('ServiceMonitor')) {
      const services = of('Service').filter((s) => s.metadata!.namespace === monitor.metadata!.namespace && selects(monitor.spec.selector.matchLabels, s.metadata!.labels));
      expect(services.map(id), id(monitor)).toEqual([monitor.metadata!.name === 'gitops-guard' ? 'Service/gitops-guard' : 'Service/gitops-guard-controller-metrics']);
      const service = services[0]!;
      const pods = of('Deployment').filter((d) => selects(service.spec.selector, d.spec.template.metadata.labels));
      const isController = monitor.metadata!.name === 'gitops-guard-controller';
      // Without the controller its Service selects nothing (no target, no alert); with it, exactly the controller.
      expect(pods.map(id)).toEqual(isController ? (hasController(overlay) ? ['Deployment/gitops-guard-controller'] : []) : ['Deployment/gitops-guard']);
      for (const endpoint of monitor.spec.endpoints) {
        const port = service.spec.ports.find((p: any) => p.name === endpoint.port);
        expect(port, `${id(monitor)} port ${endpoint.port}`).toBeDefined();
        for (const deployment of pods) {
          const container = deployment.spec.template.spec.containers[0];
          const containerPort = container.ports.find((p: any) => p.name === port.targetPort);
          expect(containerPort, `${id(deployment)} has a port named ${port.targetPort}`).toBeDefined();
          // The NetworkPolicy that selects these pods lets the scrape in.
          const policies = of('NetworkPolicy').filter((n) => selects(n.spec.podSelector.matchLabels, deployment.spec.template.metadata.labels));
          expect(policies.flatMap((n) => n.spec.ingress.flatMap((r: any) => r.ports.map((p: any) => p.port)))).toContain(containerPort.containerPort);
          // The process listens there: the webhook's --port, the controller's --metrics-port.
          expect(container.args).toContain(isController ? `--metrics-port=${containerPort.containerPort}` : `--port=${containerPort.containerPort}`);
          if (endpoint.scheme === 'https') {
            const tlsVolume = deployment.spec.template.spec.volumes.find((v: any) => v.name === 'tls');
            expect(endpoint.tlsConfig.ca.secret.name, 'the CA comes from the Secret the pods serve with').toBe(tlsVolume.secret.secretName);
            expect(endpoint.tlsConfig.ca.secret.key).toBe('ca.crt');
            expect(serviceDnsNames('gitops-guard', 'gitops-guard')).toContain(endpoint.tlsConfig.serverName);
            if (usesCertManager(overlay)) {
              const certificate = of('Certificate').find((c) => c.spec.secretName === tlsVolume.secret.secretName)!;
              expect(certificate.spec.dnsNames).toContain(endpoint.tlsConfig.serverName);
            }
          }
        }
        expect(endpoint.scheme).toBe(isController ? 'http' : 'https');
        expect(endpoint.path).toBe('/metrics');
      }
    }
    // hack/install-certs.sh writes ca.crt into the TLS Secret too.
    expect(readFileSync(join(MANIFESTS, '..', 'hack', 'install-certs.sh'), 'utf8')).toMatch(/--from-file=ca\.crt=/);
  });

  it('takes the label patch docs/operations.md shows for selecting Prometheus', () => {
    const section = readFileSync(join(MANIFESTS, '..', 'docs', 'operations.md'), 'utf8').split('\n## Monitoring component\n')[1]!.split('\n## ')[0]!;
    const patch = [...section.matchAll(/^( *)```yaml\n([\s\S]*?)^\1```$/gm)].map((m) => m[2]!.replace(new RegExp(`^${m[1]}`, 'gm'), '')).find((b) => b.startsWith('patches:'));
    expect(patch).toBeDefined();
    const objects = withMonitoring('audit', patch);
    const labelled = objects.filter((o) => o.metadata!.labels?.release === 'kube-prometheus-stack').map(id).sort();
    expect(labelled).toEqual(['PrometheusRule/gitops-guard', 'ServiceMonitor/gitops-guard', 'ServiceMonitor/gitops-guard-controller']);
  });

  it('ships the dashboard as a ConfigMap for Grafana\'s sidecar, with the file unchanged', () => {
    const configMap = rendered.get('audit')!.find((o) => id(o) === 'ConfigMap/gitops-guard-dashboard')!;
    expect(configMap.metadata!.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(configMap.data).toEqual({ 'gitops-guard.json': component('dashboard.json') });
  });
});

// ---------------------------------------------------------------------------------------------
// Dashboard and PromQL

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: { refId: string; expr: string; datasource?: { type: string; uid: string } }[];
  panels?: Panel[];
}
const dashboard = JSON.parse(component('dashboard.json')) as { uid: string; title: string; schemaVersion: number; panels: Panel[]; templating: { list: { name: string; type: string; query?: unknown; definition?: string }[] } };
const alerts = (docs('prometheus-rule.yaml')[0]!.spec.groups as { name: string; rules: { alert: string; expr: string; for: string; labels: Record<string, string>; annotations: Record<string, string> }[] }[]).flatMap((g) => g.rules);

/** Grafana macros that stand for a range: replaced by a duration before PromQL parses the query. */
const GRAFANA_RANGES = /\$__(rate_interval|interval|range)\b/g;

const panelExprs = () => dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr.replace(GRAFANA_RANGES, '5m') })));
const alertExprs = () => alerts.map((a) => ({ where: `alert ${a.alert}`, expr: a.expr }));
/** `label_values(metric, label)` of the dashboard's query variables: Grafana syntax around a metric name. */
const variableMetrics = () => dashboard.templating.list.filter((v) => v.type === 'query').map((v) => /^label_values\((\w+), *\w+\)$/.exec(v.definition ?? '')?.[1]);

/** Parse problems (lezer marks what it cannot parse with error nodes) and the metric names selected. */
function promql(expr: string): { errors: string[]; metrics: string[] } {
  const errors: string[] = [];
  const metrics: string[] = [];
  parser.parse(expr).iterate({
    enter(node) {
      if (node.type.isError) errors.push(`cannot parse at ${node.from}: ${JSON.stringify(expr.slice(Math.max(0, node.from - 10), node.to + 10))}`);
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') metrics.push(expr.slice(node.from, node.to));
    },
  });
  return { errors, metrics };
}

describe('the Grafana dashboard', () => {
  it('is a complete dashboard: uid, title, data source variable, unique panel ids, panels inside the 24-column grid without overlap', () => {
    expect(dashboard.uid).toBe('gitops-guard');
    expect(dashboard.title).toBe('gitops-guard');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const panels = dashboard.panels;
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const a of panels) {
      expect(a.gridPos.x + a.gridPos.w, a.title).toBeLessThanOrEqual(24);
      for (const b of panels) {
        if (a === b) continue;
        const overlap = a.gridPos.x < b.gridPos.x + b.gridPos.w && b.gridPos.x < a.gridPos.x + a.gridPos.w && a.gridPos.y < b.gridPos.y + b.gridPos.h && b.gridPos.y < a.gridPos.y + a.gridPos.h;
        expect(overlap, `"${a.title}" overlaps "${b.title}"`).toBe(false);
      }
      if (a.type === 'row') continue;
      expect(a.datasource, a.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(a.targets?.length, a.title).toBeGreaterThan(0);
      expect(new Set(a.targets!.map((t) => t.refId)).size, `${a.title}: unique refIds`).toBe(a.targets!.length);
      for (const target of a.targets!) expect(target.datasource).toEqual(a.datasource);
    }
  });

  it('shows admission latency and verdicts, rule results, audit findings, scan findings, certificate expiry and reloads', () => {
    const used = new Set(panelExprs().flatMap(({ expr }) => promql(expr).metrics));
    for (const metric of [
      'gitops_guard_admission_duration_seconds_bucket',
      'gitops_guard_admission_duration_seconds_count',
      'gitops_guard_rule_results_total',
      'gitops_guard_audit_findings_total',
      'gitops_guard_scan_findings',
      'gitops_guard_certificate_expiry_seconds',
      'gitops_guard_certificate_reloads_total',
      'gitops_guard_rules_reloads_total',
    ]) {
      expect(used, metric).toContain(metric);
    }
  });
});

describe('PromQL in the dashboard and the alerts', () => {
  it('every expression parses', () => {
    const all = [...panelExprs(), ...alertExprs()];
    expect(all.length).toBeGreaterThan(20);
    for (const { where, expr } of all) expect(promql(expr).errors, `${where}: ${expr}`).toEqual([]);
    // The parser is not lenient: broken expressions are reported.
    expect(promql('sum by (le (rate(x[5m]))').errors).not.toEqual([]);
    expect(promql('rate(x[$__rate_interval])').errors).not.toEqual([]);
  });

  it('every alert has a severity, a summary, a description and a for: that is a duration', () => {
    expect(alerts.map((a) => a.alert)).toEqual([...new Set(alerts.map((a) => a.alert))]);
    for (const alert of alerts) {
      expect(['warning', 'critical'], alert.alert).toContain(alert.labels.severity);
      expect(alert.annotations.summary, alert.alert).toBeTruthy();
      expect(alert.annotations.description, alert.alert).toBeTruthy();
      expect(alert.for, alert.alert).toMatch(/^\d+[smh]$/);
    }
  });

  it('the scan alerts select the built-in checks by their real names', () => {
    const byName = new Map(alerts.map((a) => [a.alert, a.expr]));
    for (const [alert, check] of [
      ['GitopsGuardSharedObjects', CHECKS.sharedObject],
      ['GitopsGuardOwnerConflicts', CHECKS.ownerConflict],
      ['GitopsGuardStaleWorkloads', CHECKS.staleChecksum],
    ] as const) {
      expect(byName.get(alert), alert).toContain(`check="${check.check}", rule="${check.rule}", result="fail"`);
    }
  });

  describe('names only metrics that are exported', () => {
    let api: KubeApiServer;
    let guard: GuardServer;
    let controller: RunningController | undefined;
    let dir: string;
    beforeAll(async () => {
      api = await KubeApiServer.start();
      guard = await startGuardServer();
      dir = mkdtempSync(join(tmpdir(), 'gg-monitoring-'));
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'checksum.key'), 'monitoring-test-key-0123456789abcdef\n', { mode: 0o600 });
      const result = await runController(
        [
          `--kubeconfig=${api.writeKubeconfig()}`,
          `--checksum-key=${join(dir, 'checksum.key')}`,
          `--rules=${DEFAULT_RULES}`,
          '--metrics-port=0',
          '--metrics-host=127.0.0.1',
          '--lease-namespace=gitops-guard',
          '--identity=monitoring-test',
          '--log-level=silent',
        ],
        { stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough() },
        { handleSignals: false },
      );
      expect(typeof result).not.toBe('number');
      controller = result as RunningController;
    });
    afterAll(async () => {
      await controller?.shutdown();
      await guard?.server.shutdown();
      await api?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    /** Metric names in a Prometheus text exposition: every family, with the series names histograms and summaries add. */
    function exported(text: string): Set<string> {
      const names = new Set<string>();
      for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
        names.add(name!);
        if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
        if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(`${name}${suffix}`);
      }
      for (const [, name] of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)) names.add(name!);
      return names;
    }

    /** Metrics of other exporters the alerts use, and where they come from (documented in docs/operations.md). */
    const FOREIGN: Record<string, string> = {
      kube_deployment_status_replicas_available: 'kube-state-metrics',
      apiserver_admission_webhook_fail_open_count: 'kube-apiserver',
    };

    it("the server's and the controller's real /metrics export every gitops-guard metric the dashboard and alerts name", async () => {
      const server = await httpsRequest({ port: guard.server.port, ca: guard.ca, servername: 'localhost', path: '/metrics' });
      expect(server.status).toBe(200);
      const controllerMetrics = await new Promise<string>((resolve, reject) =>
        request({ host: '127.0.0.1', port: controller!.port, path: '/metrics' }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`controller /metrics: ${res.statusCode}`))));
        })
          .on('error', reject)
          .end(),
      );
      const available = new Set([...exported(server.body), ...exported(controllerMetrics)]);
      expect(available).toContain('gitops_guard_admission_duration_seconds_bucket');
      expect(available).toContain('gitops_guard_scan_findings');

      const named = [...panelExprs(), ...alertExprs()].flatMap(({ where, expr }) => promql(expr).metrics.map((metric) => ({ where, metric })));
      for (const metric of variableMetrics()) named.push({ where: 'dashboard variable', metric: metric! });
      const ours = named.filter((n) => n.metric.startsWith('gitops_guard_'));
      expect(ours.length).toBeGreaterThan(20);
      for (const { where, metric } of ours) expect(available.has(metric), `${where} names ${metric}, which neither /metrics exports`).toBe(true);
      const foreign = [...new Set(named.filter((n) => !n.metric.startsWith('gitops_guard_')).map((n) => n.metric))].sort();
      expect(foreign).toEqual(Object.keys(FOREIGN).sort());
    });
  });
});
