import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeObject } from '../admission/types.js';
import type { LiveObjectReader, LiveRef } from './live.js';

/**
 * Reads live objects with the kubeconfig's credentials. The URL is built from the audit's own
 * kind table (plural, scope), so no discovery round trip is needed per kind. Errors carry status
 * codes and Status reasons only, never response bodies.
 */

export class LiveReadError extends Error {
  override readonly name = 'LiveReadError';
}

const MAX_BODY_BYTES = 64 * 1024 * 1024;

export function objectPath(ref: LiveRef): string {
  const slash = ref.apiVersion.indexOf('/');
  const prefix = slash === -1 ? `/api/${ref.apiVersion}` : `/apis/${ref.apiVersion}`;
  const scope = ref.namespace ? `/namespaces/${encodeURIComponent(ref.namespace)}` : '';
  return `${prefix}${scope}/${encodeURIComponent(ref.plural)}/${encodeURIComponent(ref.name)}`;
}

function statusReason(text: string): string | undefined {
  try {
    const parsed = JSON.parse(text) as { kind?: unknown; reason?: unknown };
    return parsed.kind === 'Status' && typeof parsed.reason === 'string' && /^[A-Za-z]{1,40}$/.test(parsed.reason)
      ? parsed.reason
      : undefined;
  } catch {
    return undefined;
  }
}

export class KubeConfigObjectReader implements LiveObjectReader {
  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly timeoutMs = 10_000,
  ) {}

  async read(ref: LiveRef, signal?: AbortSignal): Promise<KubeObject | null> {
    const cluster = this.kubeConfig.getCurrentCluster();
    if (!cluster) throw new LiveReadError('kubeconfig has no current cluster');
    const base = new URL(cluster.server);
    const url = new URL(`${base.pathname.replace(/\/+$/, '')}${objectPath(ref)}`, base);

    const options: RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
    await this.kubeConfig.applyToHTTPSOptions(options);
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const isHttps = url.protocol === 'https:';
    if (!isHttps) delete options.agent;

    return new Promise<KubeObject | null>((resolve, reject) => {
      const onResponse = (response: IncomingMessage): void => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) {
            response.destroy();
            reject(new LiveReadError(`response larger than ${MAX_BODY_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        response.on('error', (error) => reject(new LiveReadError(`response failed: ${(error as NodeJS.ErrnoException).code ?? 'error'}`)));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = response.statusCode ?? 0;
          if (status === 404) return resolve(null);
          if (status !== 200) {
            const reason = statusReason(text);
            return reject(new LiveReadError(`HTTP ${status}${reason ? ` ${reason}` : ''}`));
          }
          try {
            const object = JSON.parse(text) as unknown;
            if (typeof object !== 'object' || object === null || Array.isArray(object)) {
              return reject(new LiveReadError('response is not an object'));
            }
            resolve(object as KubeObject);
          } catch {
            reject(new LiveReadError('response is not JSON'));
          }
        });
      };
      const request = (isHttps ? httpsRequest : httpRequest)(url, { ...options, signal: combined }, onResponse);
      request.on('error', (error: NodeJS.ErrnoException) => {
        if (error.name === 'AbortError') {
          reject(new LiveReadError(timeout.aborted ? `no answer within ${this.timeoutMs} ms` : 'aborted'));
        } else {
          reject(new LiveReadError(`request failed: ${error.code ?? error.name}`));
        }
      });
      request.end();
    });
  }
}
