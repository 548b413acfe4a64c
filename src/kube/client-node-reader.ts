import {
  ApiException,
  CoreV1Api,
  type KubeConfig,
} from '@kubernetes/client-node';
import { withSignal } from './call-options.js';
import { KeepAliveAuthentication, makeKeepAliveApiClient } from './keep-alive.js';
import { KubeReadError, type ConfigContent, type KubeReader, type ObjectRef, type ReadOptions, type ReadResult } from './reader.js';
import { Slots } from './slots.js';

/**
 * Connections to the API server for reads. Every read in flight needs one (HTTP/1.1), and the
 * webhook reads for every admission it works on at the same time: 50 concurrent Deployment
 * admissions with three references each are 150 reads. Beyond this, reads wait for a
 * connection without that wait counting against their own timeout.
 */
export const DEFAULT_READ_CONNECTIONS = 256;

/** A Status `reason` is a CamelCase word; anything else from a response body is not repeated. */
function statusReason(body: unknown): string | undefined {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { kind, reason } = parsed as { kind?: unknown; reason?: unknown };
  return kind === 'Status' && typeof reason === 'string' && /^[A-Za-z]{1,40}$/.test(reason) ? reason : undefined;
}

function fromApiException(error: ApiException<unknown>, ref: ObjectRef): KubeReadError {
  const code = error.code;
  const reason = statusReason(error.body);
  const detail = reason ?? `HTTP ${code}`;
  if (code === 401) return new KubeReadError(ref, 'unauthorized', detail, code);
  if (code === 403) return new KubeReadError(ref, 'forbidden', detail, code);
  if (code === 408 || code === 504) return new KubeReadError(ref, 'timeout', detail, code);
  return new KubeReadError(ref, 'server', detail, code);
}

/** Error codes are the only part of a transport error that is repeated (messages may quote bodies). */
function transportCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,63}$/.test(code) ? code : undefined;
}

function stringMap(value: unknown, ref: ObjectRef, field: string): [string, string][] {
  if (value === undefined || value === null) return [];
  if (typeof value !== 'object' || Array.isArray(value)) throw new KubeReadError(ref, 'server', `malformed ${field}`);
  const entries = Object.entries(value as Record<string, unknown>);
  for (const [, v] of entries) {
    if (typeof v !== 'string') throw new KubeReadError(ref, 'server', `malformed ${field}`);
  }
  return entries as [string, string][];
}

/** The bytes a pod sees: ConfigMap `data` as UTF-8 and `binaryData` decoded; Secret `data` decoded. */
export function decodeConfigSource(ref: ObjectRef, object: { data?: unknown; binaryData?: unknown }): ConfigContent {
  const content = new Map<string, Buffer>();
  if (ref.kind === 'Secret') {
    for (const [key, value] of stringMap(object.data, ref, 'data')) content.set(key, Buffer.from(value, 'base64'));
    return content;
  }
  for (const [key, value] of stringMap(object.data, ref, 'data')) content.set(key, Buffer.from(value, 'utf8'));
  for (const [key, value] of stringMap(object.binaryData, ref, 'binaryData')) {
    if (content.has(key)) throw new KubeReadError(ref, 'server', 'key in both data and binaryData');
    content.set(key, Buffer.from(value, 'base64'));
  }
  return content;
}

/**
 * KubeReader over @kubernetes/client-node: one fresh GET per read (no cache), cancelled at
 * `timeoutMs` after it was sent or when `signal` aborts. 404 is an answer ({found: false}); every
 * other failure is a KubeReadError whose text holds status codes and reasons only, never object data.
 */
export class ClientNodeReader implements KubeReader {
  private readonly core: CoreV1Api;
  private readonly slots: Slots;

  constructor(kubeConfig: KubeConfig, options: { maxConnections?: number } = {}) {
    const connections = options.maxConnections ?? DEFAULT_READ_CONNECTIONS;
    this.slots = new Slots(connections);
    this.core = makeKeepAliveApiClient(kubeConfig, CoreV1Api, new KeepAliveAuthentication(kubeConfig, connections));
  }

  readsWaiting(): number {
    return this.slots.waiting;
  }

  async readConfigSource(ref: ObjectRef, options: ReadOptions): Promise<ReadResult> {
    if (options.signal?.aborted) throw new KubeReadError(ref, 'timeout', 'aborted before the read started');
    let release: () => void;
    try {
      // Waiting for a connection is bounded by the caller's signal (the admission deadline), not by timeoutMs.
      release = await this.slots.acquire(options.signal);
    } catch {
      throw new KubeReadError(ref, 'timeout', 'aborted while waiting for a connection to the API server');
    }
    try {
      return await this.read(ref, options);
    } finally {
      release();
    }
  }

  private async read(ref: ObjectRef, { timeoutMs, signal }: ReadOptions): Promise<ReadResult> {
    if (signal?.aborted) throw new KubeReadError(ref, 'timeout', 'aborted before the read started');
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    // Also bounds time spent before the request is sent (e.g. an exec credential plugin).
    const stopped = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new KubeReadError(ref, 'timeout', `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      onAbort = () => {
        controller.abort();
        reject(new KubeReadError(ref, 'timeout', 'aborted by the caller'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const object = await Promise.race([this.get(ref, controller.signal), stopped]);
      return { found: true, content: decodeConfigSource(ref, object) };
    } catch (error) {
      if (error instanceof KubeReadError) throw error;
      if (error instanceof ApiException) {
        if (error.code === 404) return { found: false };
        throw fromApiException(error, ref);
      }
      if ((error as Error | null)?.name === 'AbortError') throw new KubeReadError(ref, 'timeout', 'request aborted');
      const code = transportCode(error);
      if (code) throw new KubeReadError(ref, 'unavailable', code);
      throw new KubeReadError(ref, 'server', `unexpected ${error instanceof Error ? error.name : typeof error}`);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  private get(ref: ObjectRef, signal: AbortSignal): Promise<{ data?: unknown; binaryData?: unknown }> {
    const request = { name: ref.name, namespace: ref.namespace };
    return ref.kind === 'Secret'
      ? this.core.readNamespacedSecret(request, withSignal(signal))
      : this.core.readNamespacedConfigMap(request, withSignal(signal));
  }
}
