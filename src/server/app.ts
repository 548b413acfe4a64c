import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express from 'express';
import { createAdmissionEndpoint, type AdmissionEndpointDeps, webhookPhaseOf } from './admission-endpoint.js';

export { MAX_BODY_BYTES, WEBHOOK_PATHS } from './admission-endpoint.js';

export interface AppDeps extends AdmissionEndpointDeps {
  isReady: () => boolean;
}

/**
 * The request listener of the HTTPS server: admission calls go to the admission endpoint,
 * everything else (health, readiness, metrics, 404s) to a small Express app.
 */
export function createApp(deps: AppDeps): RequestListener {
  const operations = express();
  operations.disable('x-powered-by');
  operations.set('etag', false);
  operations.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });
  operations.get('/readyz', (_req, res) => {
    const ready = deps.isReady();
    res.status(ready ? 200 : 503).type('text/plain').send(ready ? 'ready' : 'not ready');
  });
  operations.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  operations.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });

  const admission = createAdmissionEndpoint(deps);
  return (req: IncomingMessage, res: ServerResponse) => {
    const phase = webhookPhaseOf(req);
    if (phase) void admission(phase, req, res);
    else operations(req, res);
  };
}
