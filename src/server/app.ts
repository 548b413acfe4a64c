import express, { type ErrorRequestHandler, type Request, type Response } from 'express';
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

export interface AppDeps extends HandlerDeps {
  logger: Logger;
  isReady: () => boolean;
  /** Hard limit for one admission, so a stuck rule cannot hold a connection forever. */
  requestTimeoutMs?: number;
}

function sendError(res: Response, status: number, message: string): void {
  res.status(status).json({ error: message });
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });
  app.get('/readyz', (_req, res) => {
    const ready = deps.isReady();
    res.status(ready ? 200 : 503).type('text/plain').send(ready ? 'ready' : 'not ready');
  });
  app.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  const json = express.json({ limit: MAX_BODY_BYTES, strict: true, type: () => true });
  for (const phase of ['mutate', 'validate'] as const) {
    app.post(
      WEBHOOK_PATHS[phase],
      (req, res, next) => {
        if (!req.is('application/json')) {
          deps.metrics.errors.inc({ type: 'bad_request' });
          sendError(res, 415, `content type must be application/json, got ${req.get('content-type') ?? 'none'}`);
          return;
        }
        next();
      },
      json,
      (req, res) => admit(phase, req, res, deps),
    );
  }

  app.use((_req, res) => sendError(res, 404, 'not found'));
  app.use(errorHandler(deps));
  return app;
}

async function admit(phase: WebhookPhase, req: Request, res: Response, deps: AppDeps): Promise<void> {
  const started = performance.now();
  let request;
  try {
    request = decodeAdmissionReview(req.body);
  } catch (error) {
    if (!(error instanceof BadReviewError)) throw error;
    deps.metrics.errors.inc({ type: 'bad_request' });
    sendError(res, 400, error.message);
    return;
  }
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
    res.json(toReview(handled.response));
  } finally {
    clearTimeout(timer);
  }
}

interface BodyParserError extends Error {
  type?: string;
  status?: number;
  expose?: boolean;
}

function errorHandler(deps: AppDeps): ErrorRequestHandler {
  return (error: BodyParserError, req, res, _next) => {
    const status = error.status ?? 500;
    if (error.type === 'entity.too.large') {
      deps.metrics.errors.inc({ type: 'bad_request' });
      sendError(res, 413, `request body exceeds ${MAX_BODY_BYTES} bytes`);
    } else if (error.type === 'entity.parse.failed') {
      deps.metrics.errors.inc({ type: 'bad_request' });
      sendError(res, 400, 'request body is not valid JSON');
    } else if (status >= 400 && status < 500) {
      deps.metrics.errors.inc({ type: 'bad_request' });
      sendError(res, status, error.expose ? error.message : 'bad request');
    } else {
      deps.metrics.errors.inc({ type: 'internal' });
      deps.logger.error({ err: { message: error.message, stack: error.stack }, path: req.path }, 'internal error');
      // The API server applies the webhook's failurePolicy to a 500.
      sendError(res, 500, 'internal error');
    }
  };
}
