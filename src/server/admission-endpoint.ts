import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { BadReviewError, decodeAdmissionReview } from '../admission/decode.js';
import { handleAdmission, logAdmission, verdictOf, type HandlerDeps } from '../admission/handler.js';
import { toReview } from '../admission/response.js';
import type { WebhookPhase } from '../admission/types.js';

/**
 * The API server refuses request bodies over 3 MiB (--max-request-body-bytes) and etcd stores
 * objects up to 1.5 MiB; an UPDATE review carries `object` and `oldObject`, JSON-escaped inside
 * the review. 8 MiB fits two maximal objects with room to spare while bounding memory per request.
 */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

export const WEBHOOK_PATHS: Record<WebhookPhase, string> = { mutate: '/mutate', validate: '/validate' };

export interface AdmissionEndpointDeps extends HandlerDeps {
  logger: Logger;
  /** Hard limit for one admission, so a stuck rule cannot hold a connection forever. */
  requestTimeoutMs?: number;
  /** `serve --client-ca`: only callers whose client certificate verified may be answered. */
  requireClientCertificate?: boolean;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The webhook a request is for, or null when it is not an admission call (the API server adds `?timeout=`). */
export function webhookPhaseOf(req: IncomingMessage): WebhookPhase | null {
  if (req.method !== 'POST' || !req.url) return null;
  const query = req.url.indexOf('?');
  const path = query === -1 ? req.url : req.url.slice(0, query);
  return path === WEBHOOK_PATHS.mutate ? 'mutate' : path === WEBHOOK_PATHS.validate ? 'validate' : null;
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function checkHeaders(req: IncomingMessage): void {
  const contentType = req.headers['content-type'] ?? '';
  const [mediaType = '', ...parameters] = contentType.split(';').map((part) => part.trim().toLowerCase());
  if (mediaType !== 'application/json') {
    throw new HttpError(415, `content type must be application/json, got ${contentType || 'none'}`);
  }
  const charset = parameters.find((p) => p.startsWith('charset='))?.slice('charset='.length).replace(/"/g, '');
  if (charset && charset !== 'utf-8' && charset !== 'utf8') throw new HttpError(415, `unsupported charset ${charset}`);
  const encoding = req.headers['content-encoding'];
  if (encoding && encoding !== 'identity') throw new HttpError(415, `unsupported content encoding ${encoding}`);
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
    throw new HttpError(413, `request body exceeds ${MAX_BODY_BYTES} bytes`);
  }
}

/** Reads the whole body, refusing more than MAX_BODY_BYTES (also without a Content-Length). */
function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer) => {
      length += chunk.length;
      if (length > MAX_BODY_BYTES) {
        req.off('data', onData);
        req.resume(); // discard the rest; the answer is already decided
        reject(new HttpError(413, `request body exceeds ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length)));
    req.once('error', reject);
  });
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
}

/**
 * POST /mutate and /validate: body → AdmissionReview → rule engine → AdmissionReview. Written on
 * plain node:http primitives rather than Express middleware: this is the hot path of every
 * matched API write, and the middleware chain cost more than the rules (docs/performance.md).
 */
export function createAdmissionEndpoint(deps: AdmissionEndpointDeps) {
  return async function admissionEndpoint(phase: WebhookPhase, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (deps.requireClientCertificate && !(req.socket as TLSSocket).authorized) {
      // Refused before the body is read: an unauthenticated caller learns nothing and costs nothing.
      deps.metrics.errors.inc({ type: 'unauthenticated' });
      res.shouldKeepAlive = false;
      sendJson(res, 401, { error: 'a client certificate issued by the configured client CA is required' });
      return;
    }
    try {
      checkHeaders(req);
      const body = parseJson(await readBody(req));
      await admit(phase, body, res, deps);
    } catch (error) {
      if (error instanceof HttpError || error instanceof BadReviewError) {
        deps.metrics.errors.inc({ type: 'bad_request' });
        if (!res.headersSent) sendJson(res, error instanceof HttpError ? error.status : 400, { error: error.message });
        return;
      }
      deps.metrics.errors.inc({ type: 'internal' });
      deps.logger.error({ err: { message: (error as Error).message, stack: (error as Error).stack }, webhook: phase }, 'internal error');
      // The API server applies the webhook's failurePolicy to a 500.
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
    }
  };
}

async function admit(phase: WebhookPhase, body: unknown, res: ServerResponse, deps: AdmissionEndpointDeps): Promise<void> {
  const started = performance.now();
  const request = decodeAdmissionReview(body);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error('admission deadline exceeded')), deps.requestTimeoutMs ?? 10_000);
  try {
    const handled = await handleAdmission(request, phase, deps, controller.signal);
    const durationMs = performance.now() - started;
    deps.metrics.admissionDuration.observe(
      { webhook: phase, operation: request.operation, kind: request.kind.kind, verdict: verdictOf(handled.response) },
      durationMs / 1000,
    );
    logAdmission(deps.logger, phase, request, handled, durationMs);
    sendJson(res, 200, toReview(handled.response));
  } finally {
    clearTimeout(timer);
  }
}
