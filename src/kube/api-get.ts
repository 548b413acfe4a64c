import { request as httpRequest, type Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError } from './errors.js';
import { isPlainHttpsAgent, KeepAliveAgents } from './keep-alive.js';
import { RequestCredentials, type AppliedOptions } from './request-credentials.js';
import { Cancellation } from './cancellation.js';
import { transportCode } from './api-error.js';

/** An answered GET: the status and the whole body (bounded). */
export interface ApiAnswer {
  status: number;
  body: Buffer;
}

/**
 * GETs of single objects straight over node:https, for the reads of the admission hot path.
 * client-node's generated clients run every call through their middleware, node-fetch and a model
 * deserializer, and the answer is parsed twice; here the path is requested over the shared
 * keep-alive agent and the body comes back as bytes, for the caller to parse once.
 *
 * Authentication stays client-node's: `kubeConfig.applyToHTTPSOptions` (in-cluster token file,
 * exec plugins, client certificates, basic auth, impersonation, CA and SNI name), as client-node's
 * own calls do, resolved once a second rather than per request (RequestCredentials) and afresh
 * after a 401; only the agent it builds is swapped for the keep-alive agent of the same TLS
 * identity. A proxy (`proxy-url`) keeps client-node's agent.
 */
export class ApiGetClient {
  private readonly agents: KeepAliveAgents;
  private readonly credentials: RequestCredentials;
  private readonly server: URL;
  private readonly basePath: string;
  private readonly hostname: string;
  private readonly port: number;
  private readonly plain: boolean;

  constructor(
    kubeConfig: KubeConfig,
    options: { maxSockets?: number } = {},
  ) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new KubeApiError('unavailable', 'kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
    // A server URL with a path (an API proxy) prefixes every request path, as client-node does.
    this.basePath = this.server.pathname.replace(/\/+$/, '');
    this.plain = this.server.protocol === 'http:';
    this.hostname = this.server.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(this.server.port || (this.plain ? 80 : 443));
    this.agents = new KeepAliveAgents(options.maxSockets);
    this.credentials = new RequestCredentials(kubeConfig);
  }

  /**
   * GETs `path` and resolves with the status and body of any answer. Rejects with a KubeApiError:
   * `unavailable` with the transport code when there is no answer, `server` when the body is
   * longer than `maxBytes`, `timeout` ("request aborted") when `signal` aborts, which also
   * cancels the request.
   */
  async get(path: string, signal: AbortSignal, maxBytes: number): Promise<ApiAnswer> {
    const { cancellation, detach } = Cancellation.following(signal);
    try {
      return await this.request(path, cancellation, maxBytes);
    } finally {
      detach();
    }
  }

  /** `get` with a Cancellation (what the reader makes per read) instead of an AbortSignal. */
  request(path: string, cancellation: Cancellation, maxBytes: number): Promise<ApiAnswer> {
    const options = this.credentials.fresh();
    if (!options) return this.credentials.current().then((resolved) => this.send(resolved, path, cancellation, maxBytes));
    return this.send(options, path, cancellation, maxBytes).then((answer) => {
      // Kept credentials the server no longer takes (an exec credential that expired within the
      // second they are kept): resolved afresh and sent once more, rather than failing the read.
      if (answer.status !== 401 || cancellation.cancelled) return answer;
      return this.credentials.current().then((resolved) => (resolved === options ? answer : this.send(resolved, path, cancellation, maxBytes)));
    });
  }

  private async send(options: AppliedOptions, path: string, cancellation: Cancellation, maxBytes: number): Promise<ApiAnswer> {
    if (cancellation.cancelled) throw new KubeApiError('timeout', 'request aborted');
    const agent = isPlainHttpsAgent(options.agent) ? this.agents.agentFor(options) : (options.agent as HttpAgent | undefined);
    const request: RequestOptions = {
      hostname: this.hostname,
      port: this.port,
      path: `${this.basePath}${path}`,
      method: 'GET',
      headers: { ...(options.headers as Record<string, string>), accept: 'application/json', 'user-agent': 'gitops-guard' },
      ...(options.auth ? { auth: options.auth } : {}),
      ...(agent ? { agent } : {}),
    };
    let answer: ApiAnswer;
    try {
      answer = await send(this.plain, request, cancellation, maxBytes);
    } catch (error) {
      // A kept-alive connection the server closed just as it was reused: the request never
      // reached it, so it is sent once more (on another connection), as Go's client does.
      if (!(error instanceof StaleConnection) || cancellation.cancelled) throw error;
      answer = await send(this.plain, request, cancellation, maxBytes, false);
    }
    // Rejected credentials (a rotated token, an expired exec credential) are not reused.
    if (answer.status === 401) this.credentials.invalidate();
    return answer;
  }

  destroy(): void {
    this.agents.destroy();
  }
}

function transportFailure(error: unknown): KubeApiError {
  const code = transportCode(error);
  return code ? new KubeApiError('unavailable', code) : new KubeApiError('unavailable', `unexpected ${error instanceof Error ? error.name : typeof error}`);
}

/** The request failed on a reused connection before any answer: the server had closed it. */
class StaleConnection extends KubeApiError {}

function send(plain: boolean, options: RequestOptions, cancellation: Cancellation, maxBytes: number, mayRetry = true): Promise<ApiAnswer> {
  return new Promise<ApiAnswer>((resolve, reject) => {
    let settled = false;
    let answered = false;
    const finish = (error: KubeApiError | null, answer?: ApiAnswer): void => {
      if (settled) return;
      settled = true;
      cancellation.onCancel(undefined);
      if (error) reject(error);
      else resolve(answer!);
    };
    const req = (plain ? httpRequest : httpsRequest)(options, (res) => {
      answered = true;
      receive(res, maxBytes, finish, () => req.destroy());
    });
    const onAbort = (): void => {
      finish(new KubeApiError('timeout', 'request aborted'));
      req.destroy();
    };
    req.once('error', (error: NodeJS.ErrnoException) => {
      const stale = mayRetry && req.reusedSocket && !answered && (error.code === 'ECONNRESET' || error.code === 'EPIPE');
      finish(stale ? new StaleConnection('unavailable', error.code!) : transportFailure(error));
    });
    cancellation.onCancel(onAbort);
    req.end();
  });
}

/** Collects a response body into one buffer, refusing more than `maxBytes` (from Content-Length when given, else as it arrives). */
function receive(res: IncomingMessage, maxBytes: number, finish: (error: KubeApiError | null, answer?: ApiAnswer) => void, cut: () => void): void {
  const status = res.statusCode ?? 0;
  const tooLong = (): void => {
    finish(new KubeApiError('server', `response larger than ${maxBytes} bytes`, status));
    cut();
  };
  const declared = Number(res.headers['content-length']);
  if (declared > maxBytes) return tooLong();
  const chunks: Buffer[] = [];
  let length = 0;
  res.on('data', (chunk: Buffer) => {
    length += chunk.length;
    if (length > maxBytes) return tooLong();
    chunks.push(chunk);
  });
  res.once('end', () => finish(null, { status, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length) }));
  res.once('error', (error) => finish(transportFailure(error)));
  // Closed before the body was complete, whether or not an error was reported for it.
  res.once('close', () => {
    if (!res.complete) finish(new KubeApiError('unavailable', 'ECONNRESET'));
  });
}
