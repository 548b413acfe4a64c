import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checksumV2 } from '../src/actions/checksum/encoding.js';
import { runAudit } from '../src/cli/audit.js';
import { SECRET_CHECKSUM_NOTE, type JsonObject, type JsonReport } from '../src/audit/report-json.js';
import { configMap, deployment, objectPath, secret } from './support/kube-fixtures.js';
import { KubeApiServer } from './support/kube-api-server.js';
import { stringify } from 'yaml';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const CORPUS = join(ROOT, 'test/fixtures/corpus');
const FIXTURES = join(ROOT, 'test/fixtures/audit');
const INGRESS = join(CORPUS, 'ingress-nginx-cloud-deploy.yaml');
const ARGOCD = join(CORPUS, 'argocd-install.yaml');
const ANSI = /\u001b\[/;

const schema = JSON.parse(readFileSync(join(ROOT, 'docs/audit-output.schema.json'), 'utf8')) as Record<string, unknown>;
const validateReport = new Ajv({ allErrors: true, strict: true }).compile(schema);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function audit(argv: string[], stdinText = ''): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c: Buffer) => out.push(c));
  stderr.on('data', (c: Buffer) => err.push(c));
  const code = await runAudit(argv, { stdin: Readable.from([Buffer.from(stdinText)]), stdout, stderr });
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

async function auditJson(argv: string[], stdinText = ''): Promise<{ code: number; report: JsonReport; stderr: string }> {
  const run = await audit([...argv, '--format', 'json'], stdinText);
  const report = JSON.parse(run.stdout) as JsonReport;
  const valid = validateReport(report);
  expect(validateReport.errors ?? [], 'report matches docs/audit-output.schema.json').toEqual([]);
  expect(valid).toBe(true);
  expect(report.exitCode).toBe(run.code);
  return { code: run.code, report, stderr: run.stderr };
}

const find = (report: JsonReport, kind: string, name: string, namespace?: string): JsonObject | undefined =>
  report.objects.find((o) => o.kind === kind && o.name === name && (namespace === undefined || o.namespace === namespace));

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'gitops-guard-audit-cli-'));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('gitops-guard audit: real manifests', () => {
  it('two copies of ingress-nginx as two apps: every shared object is a duplicate with both owners', async () => {
    const { code, report } = await auditJson(['--app', `first=${INGRESS}`, '--app', `second=${INGRESS}`]);
    expect(code).toBe(1);
    const duplicates = new Map(report.duplicates.map((d) => [`${d.kind}/${d.namespace ? `${d.namespace}/` : ''}${d.name}`, d]));
    for (const shared of [
      'ClusterRole/ingress-nginx',
      'ClusterRoleBinding/ingress-nginx',
      'ClusterRole/ingress-nginx-admission',
      'ClusterRoleBinding/ingress-nginx-admission',
      'IngressClass/nginx',
      'ValidatingWebhookConfiguration/ingress-nginx-admission',
      'Namespace/ingress-nginx',
      'Deployment/ingress-nginx/ingress-nginx-controller',
      'ConfigMap/ingress-nginx/ingress-nginx-controller',
    ]) {
      expect(duplicates.get(shared), shared).toMatchObject({ severity: 'error', owners: ['argocd:first', 'argocd:second'] });
    }
    expect(report.summary.duplicates).toEqual({ error: 19, warning: 0 });
    expect(report.duplicates.filter((d) => d.scope === 'Cluster').map((d) => `${d.kind}/${d.name}`).sort()).toEqual([
      'ClusterRole/ingress-nginx',
      'ClusterRole/ingress-nginx-admission',
      'ClusterRoleBinding/ingress-nginx',
      'ClusterRoleBinding/ingress-nginx-admission',
      'IngressClass/nginx',
      'Namespace/ingress-nginx',
      'ValidatingWebhookConfiguration/ingress-nginx-admission',
    ]);

    // The second app's apply is denied by the webhook's own rule, with its own message.
    const clusterRole = find(report, 'ClusterRole', 'ingress-nginx')!;
    expect(clusterRole.renderings.map((r) => [r.app, r.operation, r.allowed])).toEqual([
      ['first', 'CREATE', true],
      ['second', 'UPDATE', false],
    ]);
    expect(clusterRole.renderings[1]!.denials).toEqual([
      expect.objectContaining({
        phase: 'validate',
        rule: 'deny-duplicate-owner',
        mode: 'enforce',
        message: expect.stringContaining('ClusterRole/ingress-nginx is owned by argocd:first; argocd:second may not take it over'),
      }),
    ]);
    expect(clusterRole.renderings[0]!.mutations).toContainEqual(
      expect.objectContaining({
        rule: 'tag-owner',
        patch: [{ op: 'add', path: '/metadata/annotations/gitops-guard.dev~1owner', value: 'argocd:first' }],
      }),
    );
  });

  it('one copy of ingress-nginx alone: no duplicates, exit 0', async () => {
    const { code, report } = await auditJson(['-f', INGRESS]);
    expect(code).toBe(0);
    expect(report.duplicates).toEqual([]);
    expect(report.summary).toMatchObject({ objects: 19, files: 1, inputErrors: 0, denied: 0 });
  });

  it("Argo CD's install.yaml alone: checksums for the workloads that consume ConfigMaps, no duplicates", async () => {
    const { code, report } = await auditJson(['-f', ARGOCD, '-n', 'argocd']);
    expect(code).toBe(0);
    expect(report.duplicates).toEqual([]);
    expect(report.checksumKey.source).toBe('audit');
    const workloads = report.objects.filter((o) => ['Deployment', 'StatefulSet'].includes(o.kind));
    const consumers = workloads.filter((o) => o.renderings[0]!.configSources.some((s) => s.kind === 'ConfigMap'));
    expect(consumers.map((o) => o.name).sort()).toEqual([
      'argocd-application-controller',
      'argocd-applicationset-controller',
      'argocd-dex-server',
      'argocd-notifications-controller',
      'argocd-repo-server',
      'argocd-server',
    ]);
    for (const workload of consumers) {
      const rendering = workload.renderings[0]!;
      // Under the public audit key, a checksum over a Secret is never printed (it would be a brute-force oracle).
      const coversSecret = rendering.configSources.some((s) => s.kind === 'Secret');
      expect(rendering.checksums, workload.name!).toEqual([
        expect.objectContaining({ rule: 'stamp-config-checksum', status: 'stamped', value: coversSecret ? '[redacted]' : expect.stringMatching(/^v2:[0-9a-f]{64}$/) }),
      ]);
      if (coversSecret) expect(JSON.stringify(rendering)).not.toMatch(/v2:[0-9a-f]{64}/);
      for (const source of rendering.configSources.filter((s) => s.kind === 'ConfigMap')) {
        expect(source).toMatchObject({ namespace: 'argocd', from: 'input' });
      }
      expect(rendering.patch).toContainEqual(expect.objectContaining({ path: '/spec/template/metadata/annotations' }));
    }
    // Secrets the install creates at runtime are not in the file: reported, with the action's warning.
    const redis = find(report, 'Deployment', 'argocd-redis', 'argocd')!.renderings[0]!;
    expect(redis.configSources).toContainEqual(expect.objectContaining({ kind: 'Secret', name: 'argocd-redis', from: 'absent' }));
    expect(redis.warnings.map((w) => w.message)).toContain('Secret argocd/argocd-redis not found: pods will not start until it exists');
    expect(report.summary.checksums.stamped).toBe(7);
  });

  it('checksums are deterministic, and --checksum-key gives the cluster key its own values', async () => {
    const keyFile = join(scratch, 'checksum.key');
    writeFileSync(keyFile, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    const manifests = join(scratch, 'checksum-keys.yaml');
    const consumer = (name: string, envFrom: unknown[]) => deployment('apps', name, { containers: [{ name: 'c', image: 'c:1', envFrom }] });
    writeFileSync(
      manifests,
      [
        configMap('apps', 'settings', { mode: 'fast' }),
        secret('apps', 'token', { token: 'abc' }),
        consumer('config-only', [{ configMapRef: { name: 'settings' } }]),
        consumer('with-secret', [{ configMapRef: { name: 'settings' } }, { secretRef: { name: 'token' } }]),
      ]
        .map((o) => stringify(o))
        .join('---\n'),
    );
    const first = await auditJson(['-f', manifests]);
    const second = await auditJson(['-f', manifests]);
    const keyed = await auditJson(['-f', manifests, '--checksum-key', keyFile]);
    const value = (r: JsonReport, name: string) => find(r, 'Deployment', name)!.renderings[0]!.checksums[0]!.value;
    expect(value(first.report, 'config-only')).toMatch(/^v2:[0-9a-f]{64}$/);
    expect(value(second.report, 'config-only')).toBe(value(first.report, 'config-only'));
    expect(value(keyed.report, 'config-only')).toMatch(/^v2:[0-9a-f]{64}$/);
    expect(value(keyed.report, 'config-only')).not.toBe(value(first.report, 'config-only'));
    // Over a Secret: never under the public key; the cluster key's value is shown.
    expect(value(first.report, 'with-secret')).toBe('[redacted]');
    expect(value(keyed.report, 'with-secret')).toMatch(/^v2:[0-9a-f]{64}$/);
    expect(keyed.report.checksumKey).toEqual({ source: 'file' });
  });

  it('audits the whole corpus together, reporting the Helm templates as YAML errors', async () => {
    const { code, report } = await auditJson(['-f', CORPUS]);
    expect(code).toBe(2);
    expect(report.inputErrors.map((e) => e.file.slice(CORPUS.length + 1)).sort()).toEqual([
      'airflow-chart/templates/secrets/webserver-secret-key-secret.yaml',
      'airflow-chart/templates/webserver/webserver-deployment.yaml',
    ]);
    expect(report.inputErrors.every((e) => e.line !== undefined && e.message.startsWith('YAML syntax error'))).toBe(true);
    expect(report.summary.skipped.notKubernetes).toBe(1); // airflow-chart/values.yaml
    expect(report.summary.objects).toBeGreaterThan(140);
  });
});

describe('gitops-guard audit: the Airflow case', () => {
  const apps = ['--app', `pdp-dev=${FIXTURES}/airflow/pdp-dev`, '--app', `smartdq-dev=${FIXTURES}/airflow/smartdq-dev`];

  it('two rendered apps with ClusterRoleBinding/airflow-pre-checker-binding: exit 1, both owners named', async () => {
    const { code, report } = await auditJson(apps);
    expect(code).toBe(1);
    expect(report.duplicates).toEqual([
      expect.objectContaining({
        kind: 'ClusterRoleBinding',
        name: 'airflow-pre-checker-binding',
        scope: 'Cluster',
        severity: 'error',
        owners: ['argocd:pdp-dev', 'argocd:smartdq-dev'],
        renderings: [
          { file: `${FIXTURES}/airflow/pdp-dev/airflow.yaml`, line: 64, app: 'pdp-dev', owner: 'argocd:pdp-dev' },
          { file: `${FIXTURES}/airflow/smartdq-dev/airflow.yaml`, line: 64, app: 'smartdq-dev', owner: 'argocd:smartdq-dev' },
        ],
      }),
    ]);
    const binding = find(report, 'ClusterRoleBinding', 'airflow-pre-checker-binding')!;
    expect(binding.renderings[1]!.denials[0]!.message).toContain(
      'ClusterRoleBinding/airflow-pre-checker-binding is owned by argocd:pdp-dev; argocd:smartdq-dev may not take it over',
    );
    expect(report.summary).toMatchObject({ denied: 1, duplicates: { error: 1, warning: 0 }, skipped: { empty: 0, notKubernetes: 0 } });

    // Each app's webserver gets a checksum from its own ConfigMap and Secret.
    const pdp = find(report, 'Deployment', 'pdp-dev-airflow-webserver', 'pdp-dev')!.renderings[0]!;
    const smartdq = find(report, 'Deployment', 'smartdq-dev-airflow-webserver', 'smartdq-dev')!.renderings[0]!;
    expect(pdp.configSources.map((s) => [s.kind, s.name, s.from])).toEqual([
      ['ConfigMap', 'pdp-dev-airflow-config', 'input'],
      ['Secret', 'pdp-dev-airflow-webserver-secret-key', 'input'],
    ]);
    expect(pdp.checksums[0]!.status).toBe('stamped');
    expect(pdp.checksums[0]!.value).toBe('[redacted]');
    expect(pdp.notes).toContain(SECRET_CHECKSUM_NOTE);
    expect(smartdq.checksums[0]!.value).toBe('[redacted]');
  });

  it('the table names both owners and where they render the object, without colour off a terminal', async () => {
    const run = await audit(apps);
    expect(run.code).toBe(1);
    expect(run.stdout).not.toMatch(ANSI);
    expect(run.stdout).toContain('DUPLICATE ClusterRoleBinding.rbac.authorization.k8s.io airflow-pre-checker-binding (cluster-scoped)');
    expect(run.stdout).toMatch(/argocd:pdp-dev +\S+\/airflow\/pdp-dev\/airflow\.yaml:64/);
    expect(run.stdout).toMatch(/argocd:smartdq-dev +\S+\/airflow\/smartdq-dev\/airflow\.yaml:64/);
    expect(run.stdout).toContain('DENY deny-duplicate-owner: ClusterRoleBinding/airflow-pre-checker-binding is owned by argocd:pdp-dev');
    expect(run.stdout).toMatch(/Result: 12 objects, .*1 denied, 1 duplicate owner.* -> exit 1\n$/);
    expect(run.stdout).not.toContain(Buffer.from('not-a-real-key-pdp-dev').toString('base64'));
    expect(run.stderr).toBe('');
    const coloured = await audit([...apps, '--color', 'always']);
    expect(coloured.stdout).toMatch(ANSI);
  });

  it('owners already recorded in the input (tracking ids, Helm release annotations) are used without --app', async () => {
    const { code, report } = await auditJson(['-f', `${FIXTURES}/tracked`]);
    expect(code).toBe(1);
    expect(report.duplicates.map((d) => [d.kind, d.severity, d.owners])).toEqual([
      ['ClusterRoleBinding', 'error', ['argocd:pdp-dev-airflow', 'argocd:smartdq-dev-airflow']],
      ['PriorityClass', 'warning', ['helm:spark/spark']],
    ]);
    // kind: List in JSON is flattened; the Deployment's checksum uses the ConfigMap next to it.
    expect(find(report, 'Deployment', 'listed-app', 'tools')!.renderings[0]!.configSources).toEqual([
      { kind: 'ConfigMap', namespace: 'tools', name: 'listed-config', from: 'input' },
    ]);
  });
});

describe('gitops-guard audit: bad input', () => {
  it('a broken YAML file among good ones: file and line reported, the others still audited, exit 2', async () => {
    const { code, report } = await auditJson(['-f', `${FIXTURES}/broken`]);
    expect(code).toBe(2);
    expect(report.inputErrors).toEqual([
      { file: `${FIXTURES}/broken/b-broken.yaml`, line: 7, column: 23, message: expect.stringMatching(/^YAML syntax error: /) },
    ]);
    expect(report.objects.map((o) => o.name)).toEqual(['good-config', 'after-the-error', 'web-json']);
    expect(report.summary.skipped).toEqual({ empty: 0, notKubernetes: 1 });

    const table = await audit(['-f', `${FIXTURES}/broken`]);
    expect(table.stdout).toContain(`ERROR ${FIXTURES}/broken/b-broken.yaml:7:23: YAML syntax error:`);
  });

  it('findings take precedence over input errors: exit 1', async () => {
    const { code, report } = await auditJson(['-f', `${FIXTURES}/broken`, '-f', `${FIXTURES}/tracked`]);
    expect(code).toBe(1);
    expect(report.inputErrors).toHaveLength(1);
  });

  it('a directory with no manifests, an empty directory, an unreadable path: exit 2, each reported', async () => {
    const empty = join(scratch, 'empty');
    mkdirSync(empty);
    const { code, report } = await auditJson(['-f', `${FIXTURES}/no-manifests`, '-f', empty, '-f', join(scratch, 'missing.yaml')]);
    expect(code).toBe(2);
    expect(report.inputErrors).toEqual([
      { file: `${FIXTURES}/no-manifests`, message: 'directory contains no .yaml, .yml or .json files' },
      { file: empty, message: 'directory contains no .yaml, .yml or .json files' },
      { file: join(scratch, 'missing.yaml'), message: 'cannot read: no such file or directory' },
    ]);
    // With nothing else wrong, an input without objects is itself the error.
    const onlyComments = join(scratch, 'comments.yaml');
    writeFileSync(onlyComments, '# nothing rendered\n---\n');
    const nothing = await auditJson(['-f', onlyComments]);
    expect(nothing.code).toBe(2);
    expect(nothing.report.inputErrors).toEqual([{ file: onlyComments, message: 'no Kubernetes objects found in the input' }]);
  });

  it('paths that cannot be read (through a file, a dangling link) are reported and the rest still audited', async () => {
    const dangling = join(scratch, 'dangling.yaml');
    symlinkSync(join(scratch, 'gone.yaml'), dangling);
    const { code, report } = await auditJson(['-f', `${INGRESS}/child.yaml`, '-f', dangling, '-f', INGRESS]);
    expect(code).toBe(2);
    expect(report.inputErrors).toEqual([
      { file: `${INGRESS}/child.yaml`, message: 'cannot read: not a directory' },
      { file: dangling, message: 'cannot read: no such file or directory' },
    ]);
    expect(report.summary.objects).toBe(19);
  });

  it('reads manifests from stdin with -f -', async () => {
    const { code, report } = await auditJson(['-f', '-'], readFileSync(INGRESS, 'utf8'));
    expect(code).toBe(0);
    expect(report.summary.objects).toBe(19);
    expect(report.objects[0]!.renderings[0]!.file).toBe('<stdin>');
  });

  it('stdin as one of two apps (helm template ... | gitops-guard audit --app a=- --app b=DIR)', async () => {
    const { code, report } = await auditJson(['--app', 'first=-', '--app', `second=${INGRESS}`], readFileSync(INGRESS, 'utf8'));
    expect(code).toBe(1);
    expect(find(report, 'ClusterRole', 'ingress-nginx')!.duplicate).toMatchObject({ owners: ['argocd:first', 'argocd:second'] });
  });
});

describe('gitops-guard audit: --kubeconfig', () => {
  let api: KubeApiServer;
  beforeAll(async () => {
    api = await KubeApiServer.start();
  });
  afterAll(() => api.close());

  it('audits existing objects as UPDATEs and reads missing ConfigMaps/Secrets from the cluster; failed reads are not guessed', async () => {
    const podSpec = (config: string, secretName: string) => ({
      containers: [{ name: 'app', image: 'busybox:1.36', envFrom: [{ configMapRef: { name: config } }, { secretRef: { name: secretName } }] }],
    });
    api.put(deployment('shop', 'web', podSpec('web-config', 'web-secret')));
    api.put(configMap('shop', 'web-config', { mode: 'live' }));
    api.put(secret('shop', 'web-secret', { token: 'live-token' }));
    api.put(secret('shop', 'locked', { token: 'x' }));
    api.fault({ path: objectPath('Secret', 'shop', 'locked') }, { status: 403 });
    const manifests = join(scratch, 'live-input.yaml');
    writeFileSync(
      manifests,
      [deployment('shop', 'web', podSpec('web-config', 'web-secret')), deployment('shop', 'worker', podSpec('local-config', 'locked')), configMap('shop', 'local-config', { a: '1' })]
        .map((o) => stringify(o))
        .join('---\n'),
    );

    const { code, report } = await auditJson(['-f', manifests, '--kubeconfig', api.writeKubeconfig()]);
    expect(code).toBe(0);
    expect(report.cluster).toBe(api.url);
    const web = find(report, 'Deployment', 'web', 'shop')!.renderings[0]!;
    expect(web).toMatchObject({ operation: 'UPDATE', oldObject: 'cluster', allowed: true });
    expect(web.configSources.map((s) => [s.kind, s.name, s.from])).toEqual([
      ['ConfigMap', 'web-config', 'cluster'],
      ['Secret', 'web-secret', 'cluster'],
    ]);
    expect(web.checksums[0]).toMatchObject({ status: 'stamped' });

    const worker = find(report, 'Deployment', 'worker', 'shop')!.renderings[0]!;
    expect(worker).toMatchObject({ operation: 'CREATE', oldObject: 'none' });
    expect(worker.configSources).toEqual([
      { kind: 'ConfigMap', namespace: 'shop', name: 'local-config', from: 'input' },
      { kind: 'Secret', namespace: 'shop', name: 'locked', from: 'unresolved', detail: expect.stringContaining('forbidden (HTTP 403)') },
    ]);
    expect(worker.checksums).toEqual([expect.objectContaining({ status: 'failed', reason: expect.stringContaining('Secret shop/locked') })]);
    expect(worker.patch).toEqual([]);
    expect(JSON.stringify(report)).not.toContain(Buffer.from('live-token').toString('base64'));
    // Each live object and each ConfigMap/Secret was read once.
    expect(api.requestsTo(objectPath('ConfigMap', 'shop', 'web-config'))).toHaveLength(1);
  });

  it('prints no checksum of a live Secret under the public audit key: nothing to brute-force offline', async () => {
    const PIN = '0815';
    api.put(secret('bank', 'pin', { code: PIN }));
    const workload = deployment('bank', 'teller', { containers: [{ name: 'c', image: 'c:1', env: [{ name: 'PIN', valueFrom: { secretKeyRef: { name: 'pin', key: 'code' } } }] }] });
    const manifests = join(scratch, 'teller.yaml');
    writeFileSync(manifests, stringify(workload));

    // The attack: every value the audit prints is compared with the checksum of each guess under
    // the public key (32 zero bytes). With 0.1 the third guess matched.
    const guesses = Array.from({ length: 10_000 }, (_, i) => String(i).padStart(4, '0'));
    const publicChecksum = (guess: string) =>
      checksumV2(Buffer.alloc(32, 0), 'bank', [{ kind: 'Secret', name: 'pin', keys: new Set(['code']), content: new Map([['code', Buffer.from(guess)]]) }]);
    const lookup = new Map(guesses.map((guess) => [publicChecksum(guess), guess]));
    for (const format of ['json', 'table']) {
      const run = await audit(['-f', manifests, '--kubeconfig', api.writeKubeconfig(), '--format', format]);
      expect(run.code).toBe(0);
      const printed = [...(run.stdout + run.stderr).matchAll(/v\d+:[0-9a-f]{64}/g)].map((m) => m[0]);
      expect(printed.filter((value) => lookup.has(value)), format).toEqual([]);
      expect(printed, format).toEqual([]);
      expect(run.stdout).toContain('[redacted]');
    }
    // The lookup table is sound: the right checksum is in it.
    expect(lookup.get(publicChecksum(PIN))).toBe(PIN);

    // With the cluster's key file the value is the one the cluster stamps, and it is shown.
    const keyFile = join(scratch, 'bank.key');
    writeFileSync(keyFile, 'cluster-key-'.repeat(4), { mode: 0o600 });
    const keyed = await auditJson(['-f', manifests, '--kubeconfig', api.writeKubeconfig(), '--checksum-key', keyFile]);
    const value = find(keyed.report, 'Deployment', 'teller', 'bank')!.renderings[0]!.checksums[0]!.value!;
    expect(value).toMatch(/^v2:[0-9a-f]{64}$/);
    expect(lookup.has(value)).toBe(false);
  });
});

describe('gitops-guard audit: usage', () => {
  it.each([
    [['--bogus'], /Unknown option '--bogus'/],
    [[], /no input/],
    [['--app', 'nameonly'], /--app must be NAME=PATH/],
    [['--app', 'bad:name=x'], /not a valid application name/],
    [['-f', 'x', '--format', 'yaml'], /--format must be table or json/],
    [['-f', 'x', 'stray'], /unexpected argument "stray"/],
    [['-f', '-', '-f', '-'], /stdin \(-\) can be given only once/],
    [['-f', 'x', '--namespace', 'Not_Valid'], /not a valid namespace/],
  ])('%j is a usage error: exit 2, one line on stderr', async (argv, message) => {
    const run = await audit(argv);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(message);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('setup problems (rules, checksum key, kubeconfig) are one line and exit 2', async () => {
    const badRules = join(scratch, 'bad-rules.yaml');
    writeFileSync(badRules, 'apiVersion: gitops-guard.dev/v1alpha1\nkind: RuleSet\nrules: [{name: x}]\n');
    for (const argv of [
      ['-f', INGRESS, '--rules', badRules],
      ['-f', INGRESS, '--checksum-key', join(scratch, 'no-such.key')],
      ['-f', INGRESS, '--kubeconfig', join(scratch, 'no-such-kubeconfig')],
    ]) {
      const run = await audit(argv);
      expect(run.code, argv.join(' ')).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/^gitops-guard audit: /);
    }
  });

  it('--help prints the options and exits 0', async () => {
    const run = await audit(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Usage: gitops-guard audit -f PATH...');
    expect(run.stdout).toContain('--kubeconfig');
  });
});

describe('gitops-guard audit: the built CLI', () => {
  const main = join(ROOT, 'dist/cli/main.js');

  it('runs as `gitops-guard audit` with stdin, exit code and JSON output', async () => {
    expect(existsSync(main), 'dist/cli/main.js exists (npm test builds it; run npm run build first)').toBe(true);
    const child = spawn(process.execPath, [main, 'audit', '-f', '-', '--format', 'json', '--app', `second=${INGRESS}`], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.stdin.end(readFileSync(INGRESS));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(Buffer.concat(err).toString()).toBe('');
    expect(code).toBe(1);
    const report = JSON.parse(Buffer.concat(out).toString()) as JsonReport;
    expect(validateReport(report)).toBe(true);
    expect(report.summary.objects).toBe(38);
    expect(report.duplicates.length).toBe(19);
  });

  it('keeps its exit code when the reader goes away early (| head)', async () => {
    const child = spawn(process.execPath, [main, 'audit', '--format', 'json', '--app', `a=${INGRESS}`, '--app', `b=${INGRESS}`], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const err: Buffer[] = [];
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(Buffer.concat(err).toString()).toBe('');
    expect(code).toBe(1);
  });
});
