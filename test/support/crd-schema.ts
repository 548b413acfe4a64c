import { readFileSync } from 'node:fs';
import { Ajv, type AnySchemaObject, type ErrorObject, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';

/**
 * Validates custom resources against the `openAPIV3Schema` a CustomResourceDefinition publishes,
 * the way the API server treats them, with ajv. A Kubernetes structural schema is OpenAPI v3 plus
 * extensions; each is handled, none silently ignored:
 *
 * - Unknown fields: the API server *prunes* fields its schema does not declare (a report field
 *   with a typo would vanish without an error). Here every object schema with `properties` and
 *   neither `additionalProperties` nor `x-kubernetes-preserve-unknown-fields` gets
 *   `additionalProperties: false`, so such a field is an error instead of lost data.
 * - `x-kubernetes-preserve-unknown-fields: true`: unknown fields allowed below it.
 * - `x-kubernetes-int-or-string: true`: an integer or a string (the schema carries no `type`).
 * - `x-kubernetes-list-type`: `atomic` has no effect on validation; `set` requires unique items;
 *   `map` requires items unique by `x-kubernetes-list-map-keys`.
 * - `x-kubernetes-map-type`, `x-kubernetes-embedded-resource`: no effect on validation of the
 *   value itself (accepted as annotations).
 * - `x-kubernetes-validations` (CEL rules): not evaluated here, so a schema that has them is
 *   refused outright rather than passed unchecked.
 * - `format: int32` / `int64`: integer ranges; any other format is refused (ajv strict mode).
 * - `metadata` (`type: object` in every CRD): the API server validates it as ObjectMeta, so it is
 *   checked here with ObjectMeta's rules for what reports use: DNS names, label keys and values,
 *   the 256 KiB limit on annotations, and no field ObjectMeta does not have.
 *
 * Besides the schema, the object's apiVersion must be a served version of the CRD, its kind the
 * CRD's kind, and `metadata.namespace` present exactly when the CRD is namespaced.
 */

export interface Crd {
  spec: {
    group: string;
    names: { kind: string; plural: string };
    scope: 'Namespaced' | 'Cluster';
    versions: { name: string; served: boolean; schema: { openAPIV3Schema: AnySchemaObject } }[];
  };
}

export function readCrd(file: string): Crd {
  return parse(readFileSync(file, 'utf8')) as Crd;
}

const INT_RANGES: Record<string, [number, number]> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
  for (const [name, [min, max]] of Object.entries(INT_RANGES)) {
    ajv.addFormat(name, { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= min && n <= max });
  }
  ajv.addKeyword({ keyword: 'x-kubernetes-preserve-unknown-fields', schemaType: 'boolean' });
  ajv.addKeyword({ keyword: 'x-kubernetes-map-type', schemaType: 'string' });
  ajv.addKeyword({ keyword: 'x-kubernetes-embedded-resource', schemaType: 'boolean' });
  ajv.addKeyword({ keyword: 'x-kubernetes-list-map-keys', schemaType: 'array' });
  ajv.addKeyword({
    keyword: 'x-kubernetes-int-or-string',
    schemaType: 'boolean',
    validate: (enabled: boolean, data: unknown) => !enabled || typeof data === 'string' || Number.isInteger(data),
    errors: false,
  });
  ajv.addKeyword({
    keyword: 'x-kubernetes-list-type',
    schemaType: 'string',
    validate: function listType(this: unknown, type: string, data: unknown, parent?: AnySchemaObject) {
      if (!Array.isArray(data) || type === 'atomic') return true;
      const keyOf =
        type === 'map'
          ? (item: unknown) => JSON.stringify(((parent?.['x-kubernetes-list-map-keys'] as string[]) ?? []).map((k) => (item as Record<string, unknown>)?.[k]))
          : (item: unknown) => JSON.stringify(item);
      return new Set(data.map(keyOf)).size === data.length;
    },
    errors: false,
  });
  return ajv;
}

/** The CRD schema as ajv takes it: see the list above. */
function structural(schema: AnySchemaObject, path: string): AnySchemaObject {
  if (schema['x-kubernetes-validations'] !== undefined) throw new Error(`${path}: x-kubernetes-validations (CEL) are not evaluated by this validator`);
  const out: AnySchemaObject = { ...schema };
  if (out.properties) {
    out.properties = Object.fromEntries(Object.entries(out.properties as Record<string, AnySchemaObject>).map(([k, v]) => [k, structural(v, `${path}.${k}`)]));
    if (out.additionalProperties === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) out.additionalProperties = false;
  }
  if (out.additionalProperties && typeof out.additionalProperties === 'object') out.additionalProperties = structural(out.additionalProperties, `${path}.*`);
  if (out.items) out.items = structural(out.items as AnySchemaObject, `${path}[]`);
  for (const key of ['allOf', 'anyOf', 'oneOf'] as const) if (out[key]) out[key] = (out[key] as AnySchemaObject[]).map((s, i) => structural(s, `${path}.${key}[${i}]`));
  return out;
}

// ObjectMeta, as apimachinery validates the parts reports use.
const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const QUALIFIED_NAME = '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$';
const LABEL_VALUE = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';
const OBJECT_META: AnySchemaObject = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', maxLength: 253, pattern: DNS_SUBDOMAIN },
    namespace: { type: 'string', maxLength: 63, pattern: DNS_LABEL },
    labels: { type: 'object', propertyNames: { maxLength: 316, pattern: QUALIFIED_NAME }, additionalProperties: { type: 'string', maxLength: 63, pattern: LABEL_VALUE } },
    annotations: { type: 'object', propertyNames: { maxLength: 316, pattern: QUALIFIED_NAME }, additionalProperties: { type: 'string' } },
    // The rest of ObjectMeta, set by the API server or other writers: allowed, not checked further.
    ...Object.fromEntries(
      ['generateName', 'uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp'].map((k) => [k, { type: 'string' }]),
    ),
    generation: { type: 'integer' },
    deletionGracePeriodSeconds: { type: 'integer' },
    ownerReferences: { type: 'array' },
    finalizers: { type: 'array', items: { type: 'string' } },
    managedFields: { type: 'array' },
  },
};
export const ANNOTATIONS_LIMIT_BYTES = 256 * 1024;

export type CrdValidator = (object: unknown) => string[];

/** A validator for objects of one CRD, in any of its served versions. */
export function crdValidator(crd: Crd): CrdValidator {
  const ajv = newAjv();
  const byVersion = new Map<string, ValidateFunction>(
    crd.spec.versions
      .filter((v) => v.served)
      .map((v) => {
        const schema = structural(v.schema.openAPIV3Schema, `${crd.spec.names.plural}/${v.name}`);
        schema.properties = { ...schema.properties, metadata: OBJECT_META };
        return [`${crd.spec.group}/${v.name}`, ajv.compile(schema)];
      }),
  );
  return (object: unknown) => {
    const o = object as { apiVersion?: unknown; kind?: unknown; metadata?: { namespace?: unknown; annotations?: Record<string, string> } };
    const validate = byVersion.get(String(o?.apiVersion));
    if (!validate) return [`apiVersion ${String(o?.apiVersion)} is not served by ${crd.spec.names.plural}.${crd.spec.group}`];
    const errors = validate(object) ? [] : (validate.errors ?? []).map(describe);
    if (o.kind !== crd.spec.names.kind) errors.push(`kind ${String(o.kind)} is not ${crd.spec.names.kind}`);
    const namespaced = crd.spec.scope === 'Namespaced';
    if (namespaced !== (o.metadata?.namespace !== undefined)) errors.push(`metadata.namespace must be ${namespaced ? 'set' : 'absent'} for a ${crd.spec.scope}-scoped kind`);
    const annotations = Object.entries(o.metadata?.annotations ?? {}).reduce((n, [k, v]) => n + k.length + Buffer.byteLength(v), 0);
    if (annotations > ANNOTATIONS_LIMIT_BYTES) errors.push(`metadata.annotations: Too long: may not be more than ${ANNOTATIONS_LIMIT_BYTES} bytes`);
    return errors;
  };
}

function describe(error: ErrorObject): string {
  const extra = error.keyword === 'additionalProperties' ? ` (${String(error.params.additionalProperty)})` : error.keyword === 'enum' ? ` (${JSON.stringify(error.params.allowedValues)})` : '';
  return `${error.instancePath || '/'}: ${error.message}${extra}`;
}
