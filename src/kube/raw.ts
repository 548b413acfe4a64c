import { createConfiguration, HttpMethod, ServerConfiguration, type Configuration, type KubeConfig } from '@kubernetes/client-node';
import { toKubeApiError } from './api-error.js';
import { KubeApiError, statusReason } from './errors.js';
import { KeepAliveAuthentication } from './keep-alive.js';

/**
 * Requests by URL over @kubernetes/client-node's transport (the kubeconfig's credentials, TLS and
 * proxy, kept-alive connections), for calls on resources of any kind: the generated API classes
 * have one method per kind, or need a discovery round trip per group-version. Every call gives
 * up after `timeoutMs`; failures are KubeApiErrors that carry status codes and Status reasons
 * only, never response bodies.
 */

/** An answer larger than this is refused rather than held in memory (when the server says how large it is). */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** `/api/v1` for the core group, `/apis/{group}/{version}` otherwise. */
export function apiPrefix(apiVersion: string): string {
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

export interface RawRequest {
  method: 'GET' | 'PATCH';
  /** An absolute API path, segments already encoded. */
  path: string;
  query?: Record<string, string | undefined>;
  accept?: string;
  contentType?: string;
  body?: string;
  signal?: AbortSignal;
}

export interface RawResponse {
  status: number;
  text: string;
}

export class RawApiClient {
  private readonly configuration: Configuration;

  constructor(
    kubeConfig: KubeConfig,
    readonly timeoutMs = 10_000,
    private readonly maxBytes = MAX_RESPONSE_BYTES,
  ) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new KubeApiError('unavailable', 'kubeconfig has no current cluster');
    this.configuration = createConfiguration({ baseServer: new ServerConfiguration(cluster.server, {}), authMethods: { default: new KeepAliveAuthentication(kubeConfig) } });
  }

  /** Any answer (also 4xx/5xx) as status and text; a call that got no answer throws a KubeApiError. */
  async send(request: RawRequest): Promise<RawResponse> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
    const context = this.configuration.baseServer.makeRequestContext(request.path, request.method === 'GET' ? HttpMethod.GET : HttpMethod.PATCH);
    for (const [name, value] of Object.entries(request.query ?? {})) if (value !== undefined) context.setQueryParam(name, value);
    context.setHeaderParam('Accept', request.accept ?? 'application/json');
    if (request.contentType) context.setHeaderParam('Content-Type', request.contentType);
    if (request.body !== undefined) context.setBody(request.body);
    try {
      await this.configuration.authMethods.default?.applySecurityAuthentication(context);
      context.setSignal(combined);
      const response = await this.configuration.httpApi.send(context).toPromise();
      const length = Number(response.headers['content-length']);
      if (length > this.maxBytes) throw new KubeApiError('server', `response larger than ${this.maxBytes} bytes`);
      return { status: response.httpStatusCode, text: await response.body.text() };
    } catch (error) {
      if (timeout.aborted) throw new KubeApiError('timeout', `no answer within ${this.timeoutMs} ms`);
      throw toKubeApiError(error, combined);
    }
  }

  /** A 2xx answer's JSON object; any other status is a KubeApiError (status and Status reason only). */
  async json(request: RawRequest): Promise<Record<string, unknown>> {
    const { status, text } = await this.send(request);
    if (status < 200 || status > 299) throw KubeApiError.fromStatus(status, statusReason(text));
    return parseObject(text);
  }
}

/** A response body that must be one JSON object. */
export function parseObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new KubeApiError('server', 'response is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new KubeApiError('server', 'response is not an object');
  return value as Record<string, unknown>;
}
