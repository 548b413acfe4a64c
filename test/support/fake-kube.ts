import type { KubeObject } from '../../src/api/types.js';
import { configContent } from '../../src/kube/config-data.js';
import { KubeApiError, KubeReadError, statusReason } from '../../src/kube/errors.js';
import type { KubeReader, ObjectRef, ReadResult } from '../../src/kube/reader.js';
import type { WorkloadClient, WorkloadRef } from '../../src/kube/workloads.js';
import { KubeStore, type ApiAnswer, type ResourceType } from './kube-store.js';

/**
 * In-memory stand-ins for the Kubernetes adapter's interfaces, over the same KubeStore the test
 * API server serves (so they answer with the API server's semantics: resourceVersion
 * preconditions, 404 and 409 Status answers, generation), for unit tests without HTTP — what
 * controller-runtime's fake client is to its reconcilers. Every call is recorded.
 */

type Call = 'get' | 'mergePatch' | 'createEvent' | 'readConfigSource';

const STATUS_REASONS: Record<number, string> = { 401: 'Unauthorized', 403: 'Forbidden', 409: 'Conflict', 500: 'InternalError', 503: 'ServiceUnavailable' };

function resourceOf(store: KubeStore, ref: WorkloadRef): ResourceType {
  const resource = store.served(ref.resource.group, ref.resource.version, ref.resource.plural);
  if (!resource) throw KubeApiError.fromStatus(404, 'NotFound');
  return resource;
}

/** A failure answer as the adapter's one error type, exactly as a client-node call would throw it. */
function orThrow(answer: ApiAnswer): KubeObject {
  if (answer.code >= 200 && answer.code < 300) return structuredClone(answer.body as KubeObject);
  throw KubeApiError.fromStatus(answer.code, statusReason(answer.body));
}

export class FakeKube implements WorkloadClient, KubeReader {
  readonly calls: { call: Call; target: string }[] = [];
  private readonly failures: { call: Call; code: number; remaining: number }[] = [];

  constructor(readonly store: KubeStore = new KubeStore()) {}

  /** The next `times` calls of `call` answer HTTP `code` (with the API server's Status reason). */
  fail(call: Call, code: number, times = 1): void {
    this.failures.push({ call, code, remaining: times });
  }

  /** Records the call; throws the failure armed for it, as the adapter's one error type. */
  private record(call: Call, target: string): void {
    this.calls.push({ call, target });
    const failure = this.failures.find((f) => f.call === call && f.remaining > 0);
    if (failure) {
      failure.remaining--;
      throw KubeApiError.fromStatus(failure.code, STATUS_REASONS[failure.code]);
    }
  }

  /** Calls made of one kind. */
  callsOf(call: Call): string[] {
    return this.calls.filter((c) => c.call === call).map((c) => c.target);
  }

  async get(ref: WorkloadRef): Promise<KubeObject | null> {
    this.record('get', `${ref.resource.plural}/${ref.namespace}/${ref.name}`);
    const answer = this.store.read(resourceOf(this.store, ref), ref.namespace, ref.name);
    return answer.code === 404 ? null : orThrow(answer);
  }

  async mergePatch(ref: WorkloadRef, body: Record<string, unknown>): Promise<KubeObject> {
    this.record('mergePatch', `${ref.resource.plural}/${ref.namespace}/${ref.name}`);
    return orThrow(this.store.patch(resourceOf(this.store, ref), ref.namespace, ref.name, structuredClone(body)));
  }

  async createEvent(namespace: string, event: KubeObject): Promise<void> {
    this.record('createEvent', `${namespace}/${event.metadata?.name ?? ''}`);
    // Events go over the wire as JSON: dates become strings.
    orThrow(this.store.create(this.store.resourceFor('v1', 'Event'), namespace, JSON.parse(JSON.stringify(event))));
  }

  async readConfigSource(ref: ObjectRef): Promise<ReadResult> {
    try {
      this.record('readConfigSource', `${ref.kind}/${ref.namespace}/${ref.name}`);
    } catch (error) {
      // A KubeReader names the object it could not read (KubeReadError), as ClientNodeReader does.
      const failure = error as KubeApiError;
      throw new KubeReadError(ref, failure.reason === 'not-found' || failure.reason === 'conflict' ? 'server' : failure.reason, failure.detail, failure.httpStatus);
    }
    const answer = this.store.read(this.store.resourceFor('v1', ref.kind), ref.namespace, ref.name);
    if (answer.code === 404) return { found: false };
    return { found: true, content: configContent(ref, orThrow(answer)) };
  }

  /** Events recorded in `namespace`. */
  events(namespace: string): KubeObject[] {
    return this.store.list('v1', 'Event', namespace);
  }
}
