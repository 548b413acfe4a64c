/**
 * How big a report is once it reaches the API server, and the limits it must stay under.
 *
 * - etcd refuses values over 1.5 MiB (`--max-request-bytes` default): the hard limit for any
 *   object, whatever wrote it.
 * - `kubectl apply` (client-side) copies the whole object into the
 *   `kubectl.kubernetes.io/last-applied-configuration` annotation, and the API server refuses an
 *   object whose annotations total more than 256 KiB (`metadata.annotations: Too long`). A report
 *   meant for `kubectl apply -f -` must therefore stay well under 256 KiB; server-side apply has
 *   no such copy and may use most of the etcd limit.
 */

/** The API server's limit on an object's annotations, which client-side apply fills with a copy of the object. */
export const ANNOTATIONS_LIMIT_BYTES = 256 * 1024;

/** etcd's default request limit: no object can be larger. */
export const ETCD_LIMIT_BYTES = 1.5 * 1024 * 1024;

/**
 * Default report budget: fits the last-applied annotation of `kubectl apply -f -` with 16 KiB to
 * spare for the object's other annotations.
 */
export const DEFAULT_REPORT_MAX_BYTES = ANNOTATIONS_LIMIT_BYTES - 16 * 1024;

/**
 * Budget for reports written with server-side apply (the in-cluster controller): a third of the
 * etcd limit left for metadata and managedFields (`results` is an atomic list, so its entry in
 * managedFields is a single field, but labels, annotations and other managers add up).
 */
export const SERVER_SIDE_APPLY_REPORT_MAX_BYTES = 1024 * 1024;

/** Smallest budget accepted: room for the report's own metadata, summary and the truncation note. */
export const MIN_REPORT_MAX_BYTES = 8 * 1024;

/** Longest `message` of one result, in characters; longer ones are cut with `…`. */
export const MAX_MESSAGE_CHARS = 1024;
/** Longest value of one result property, in characters. */
export const MAX_PROPERTY_CHARS = 1024;
/** Most properties one finding may carry (a programming limit: properties come from code). */
export const MAX_PROPERTIES = 32;

// Go's encoding/json (the API server and kubectl) escapes these as \u003c, \u003e, \u0026,
// \u2028 and \u2029, so they take more bytes there than in JavaScript's JSON.
const GO_ESCAPED = /[<>&\u2028\u2029]/g;
const GO_EXTRA_BYTES: Record<string, number> = { '<': 5, '>': 5, '&': 5, '\u2028': 3, '\u2029': 3 };

/** Bytes of `value` as compact JSON the way the API server and kubectl encode it (UTF-8, Go escaping). */
export function apiJsonBytes(value: unknown): number {
  const text = JSON.stringify(value);
  let extra = 0;
  for (const match of text.matchAll(GO_ESCAPED)) extra += GO_EXTRA_BYTES[match[0]]!;
  return Buffer.byteLength(text, 'utf8') + extra;
}

/** `text` cut to at most `max` characters (code points, never half a surrogate pair), ending in `…` when cut. */
export function clip(text: string, max: number): string {
  const points = Array.from(text);
  return points.length <= max ? text : `${points.slice(0, max - 1).join('')}…`;
}
