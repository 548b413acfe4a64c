import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collectInput, parseDocuments, STDIN_NAME, type DocumentEvent } from './input.js';

const events = (text: string): DocumentEvent[] => [...parseDocuments(text)];

describe('parseDocuments', () => {
  it('yields each object of a multi-document stream with the line it starts on', () => {
    const text = [
      '# leading comment',
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata: {name: one}',
      '---',
      '---',
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata:',
      '  name: two',
    ].join('\n');
    const out = events(text);
    expect(out.map((e) => e.type)).toEqual(['object', 'empty', 'object']);
    expect(out[0]).toMatchObject({ type: 'object', line: 2, object: { kind: 'ConfigMap', metadata: { name: 'one' } } });
    expect(out[2]).toMatchObject({ type: 'object', line: 7, object: { kind: 'Deployment' } });
  });

  it('flattens kind: List (and typed lists) with each item at its own line', () => {
    const text = [
      'apiVersion: v1',
      'kind: List',
      'items:',
      '- apiVersion: v1',
      '  kind: Secret',
      '  metadata: {name: a}',
      '- apiVersion: v1',
      '  kind: ConfigMapList',
      '  items:',
      '  - {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}',
      '- just a string',
    ].join('\n');
    const out = events(text);
    expect(out.map((e) => e.type)).toEqual(['list', 'object', 'object', 'notKubernetes']);
    expect(out[0]).toEqual({ type: 'list', line: 1, items: 3 });
    expect(out[1]).toMatchObject({ line: 4, object: { kind: 'Secret' }, inList: true });
    expect(out[2]).toMatchObject({ object: { kind: 'ConfigMap', metadata: { name: 'b' } }, inList: true });
  });

  it('parses JSON documents', () => {
    const out = events('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}');
    expect(out).toEqual([{ type: 'object', line: 1, object: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a' } } }]);
  });

  it('counts documents that are not Kubernetes objects instead of auditing them', () => {
    const out = events('replicaCount: 2\n---\n- a\n- b\n---\nkind: Thing\nmetadata: {name: x}\n');
    expect(out.map((e) => e.type)).toEqual(['notKubernetes', 'notKubernetes', 'notKubernetes']);
  });

  it('reports a syntax error with its line and column and keeps reading the next documents', () => {
    const text = 'apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [ { port: 80 ]\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: after}\n';
    const out = events(text);
    expect(out[0]).toMatchObject({ type: 'error', line: 5 });
    expect((out[0] as { message: string }).message).toMatch(/^YAML syntax error: /);
    expect(out[1]).toMatchObject({ type: 'object', line: 7, object: { metadata: { name: 'after' } } });
  });

  it('rejects duplicate keys like the API server decoder', () => {
    const out = events('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  k: 1\n  k: 2\n');
    expect(out[0]).toMatchObject({ type: 'error', line: 6 });
  });

  it('reports objects without a name as errors (the API server would reject them)', () => {
    const out = events('apiVersion: v1\nkind: ConfigMap\ndata: {}\n');
    expect(out).toEqual([{ type: 'error', line: 1, message: 'ConfigMap has no metadata.name (the API server would reject it)' }]);
    expect(events('apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: run-}\n')[0]!.type).toBe('object');
  });

  it('reads scalars as YAML 1.1 (like kubectl) but keeps timestamps as strings', () => {
    const out = events('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  enabled: yes\n  date: 2024-01-02\n');
    expect((out[0] as unknown as { object: { data: unknown } }).object.data).toEqual({ enabled: true, date: '2024-01-02' });
  });

  it('stops alias bombs', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]', 'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]', 'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]'].join('\n');
    const out = events(bomb);
    expect(out[0]).toMatchObject({ type: 'error' });
  });
});

describe('collectInput', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gitops-guard-audit-input-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const object = (kind: string, name: string) => `apiVersion: v1\nkind: ${kind}\nmetadata:\n  name: ${name}\n`;

  it('reads directories recursively, in name order, only .yaml/.yml/.json files', async () => {
    mkdirSync(join(dir, 'b', 'nested'), { recursive: true });
    writeFileSync(join(dir, 'b', 'nested', 'z.yml'), object('ConfigMap', 'z'));
    writeFileSync(join(dir, 'a.yaml'), object('ConfigMap', 'a'));
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } }));
    writeFileSync(join(dir, 'README.md'), object('ConfigMap', 'ignored'));
    writeFileSync(join(dir, 'values.YAML'), object('ConfigMap', 'upper'));
    const result = await collectInput([{ path: dir }]);
    expect(result.problems).toEqual([]);
    expect(result.objects.map((o) => o.object.metadata?.name)).toEqual(['a', 'z', 'c', 'upper']);
    expect(result.objects.map((o) => o.source.file)).toEqual([
      `${dir}/a.yaml`,
      `${dir}/b/nested/z.yml`,
      `${dir}/c.json`,
      `${dir}/values.YAML`,
    ]);
    expect(result.objects.map((o) => o.index)).toEqual([0, 1, 2, 3]);
    expect(result.stats).toEqual({ files: 4, documents: 4, objects: 4, skipped: { empty: 0, notKubernetes: 0 } });
  });

  it('does not follow symlinked directories (no cycles) but reads symlinked files', async () => {
    mkdirSync(join(dir, 'real'));
    writeFileSync(join(dir, 'real', 'x.yaml'), object('ConfigMap', 'x'));
    symlinkSync(join(dir, 'real'), join(dir, 'loop'));
    symlinkSync(join(dir, 'real', 'x.yaml'), join(dir, 'link.yaml'));
    const result = await collectInput([{ path: dir }]);
    expect(result.objects.map((o) => o.source.file)).toEqual([`${dir}/link.yaml`, `${dir}/real/x.yaml`]);
  });

  it('reports a broken file with its line and still reads the other inputs', async () => {
    writeFileSync(join(dir, 'good.yaml'), object('ConfigMap', 'good'));
    writeFileSync(join(dir, 'bad.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [ { port: 80 ]\n');
    writeFileSync(join(dir, 'later.yaml'), object('Secret', 'later'));
    const result = await collectInput([{ path: join(dir, 'good.yaml') }, { path: join(dir, 'bad.yaml') }, { path: join(dir, 'later.yaml') }]);
    expect(result.objects.map((o) => o.object.metadata?.name)).toEqual(['good', 'later']);
    expect(result.problems).toHaveLength(1);
    expect(result.problems[0]).toMatchObject({ file: join(dir, 'bad.yaml'), line: 5 });
  });

  it('reports unreadable paths and directories without manifests', async () => {
    mkdirSync(join(dir, 'empty'));
    writeFileSync(join(dir, 'empty', 'notes.txt'), 'nothing here');
    const result = await collectInput([{ path: join(dir, 'missing.yaml') }, { path: join(dir, 'empty') }]);
    expect(result.problems).toEqual([
      { file: join(dir, 'missing.yaml'), message: 'cannot read: no such file or directory' },
      { file: join(dir, 'empty'), message: 'directory contains no .yaml, .yml or .json files' },
    ]);
    expect(result.stats.files).toBe(0);
  });

  it('reads stdin for "-", once, and tags objects with their app', async () => {
    const stdin = Readable.from([Buffer.from(object('ConfigMap', 'piped')), Buffer.from('---\n'), Buffer.from(object('Secret', 'piped2'))]);
    const result = await collectInput([{ path: '-', app: 'web' }, { path: '-' }], { stdin });
    expect(result.objects.map((o) => [o.object.kind, o.source.file, o.app])).toEqual([
      ['ConfigMap', STDIN_NAME, 'web'],
      ['Secret', STDIN_NAME, 'web'],
    ]);
    expect(result.problems).toEqual([{ file: STDIN_NAME, message: 'stdin (-) can be read only once' }]);
  });

  it('counts empty and non-Kubernetes documents, and a List as one document', async () => {
    const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' } }, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 't' } }, 42] });
    writeFileSync(join(dir, 'mixed.yaml'), `# only a comment\n---\n${object('ConfigMap', 'a')}---\nfoo: bar\n---\n${list}\n---\n`);
    const result = await collectInput([{ path: join(dir, 'mixed.yaml') }]);
    expect(result.stats).toEqual({ files: 1, documents: 4, objects: 3, skipped: { empty: 1, notKubernetes: 2 } });
  });
});
