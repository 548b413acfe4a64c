import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { BadReviewError, decodeAdmissionReview } from '../admission/decode.js';
import { handleAdmission, type HandlerDeps } from '../admission/handler.js';
import { toReview, verdictOf } from '../admission/response.js';
import type { WebhookPhase } from '../api/types.js';
import { DeadlineExceededError, isDeadlineExceeded } from '../util/abort.js';
import { countRuleResults, logAdmission } from './admission-log.js';
import { CallAbort } from './call-abort.js';
import { admissionTiming, type AdmissionTiming } from './deadline.js';
import { Lane } from './lane.js';
import { BudgetExceededError, MemoryBudget, type Reservation } from './memory-budget.js';
import { observeAdmission, type Metrics, type RejectReason } from './metrics.js';
import { BodyTooLargeError, ClientAbortError, MAX_BODY_BYTES, receiveBody } from './request-body.js';

export { MAX_BODY_BYTES } from './request-body.js';

export const WEBHOOK_PATHS: Record<WebhookPhase, string> = { mutate: '/mutate', validate: '/validate' };

/**
 * The largest `timeoutSeconds` of the shipped webhook configurations (manifests/base): the API
 * server never waits longer for an answer, so no admission needs more.
 */
export const DEFAULT_MAX_TIMEOUT_MS = 5000;

/** Budget defaults for tests and embedders; `gitops-guard serve` sizes the budget from the heap limit. */
export const DEFAULT_MEMORY_BUDGET_BYTES = 64 * 1024 * 1024;

/** Reviews above this are parsed one at a time (through the lane) and count as large in the parse budget. */
const LARGE_PARSE_BYTES = 2 * 1024 * 1024;
/** Bodies above this count as large in the body budget. */
const LARGE_BODY_BYTES = 256 * 1024;

export interface AdmissionBudgets {
  /** Bytes of bodies being received or held, reserved from Content-Length before reading. */
  bodies: MemoryBudget;
  /** Heap of bodies' text and parsed reviews, reserved before parsing (estimated from the body's structure). */
  parsing: MemoryBudget;
}

/**
 * Splits a memory budget in two: a third for bodies (so many can arrive while a few are parsed,
 * keeping the CPU busy), two thirds for parsed reviews. A quarter of each is kept for small
 * requests, so big ones never hold up ordinary admissions.
 */
export function admissionBudgets(totalBytes: number): AdmissionBudgets {
  const bodies = Math.floor(totalBytes / 3);
  const parsing = totalBytes - bodies;
  return {
    bodies: new MemoryBudget({ capacityBytes: bodies, smallReserveBytes: Math.floor(bodies / 4), largeThresholdBytes: LARGE_BODY_BYTES }),
    parsing: new MemoryBudget({ capacityBytes: parsing, smallReserveBytes: Math.floor(parsing / 4), largeThresholdBytes: LARGE_PARSE_BYTES }),
  };
}

export interface AdmissionLimits extends AdmissionBudgets {
  /** The largest `timeoutSeconds` (in ms) of the webhooks this server answers; caps `?timeout=`. */
  maxTimeoutMs: number;
}

/** Reserved for a body of unknown length before its first bytes arrive; it grows as they do. */
const CHUNKED_INITIAL_BYTES = 64 * 1024;

export interface AdmissionEndpointDeps extends HandlerDeps {
  logger: Logger;
  metrics: Metrics;
  limits?: AdmissionLimits;
  /** `serve --client-ca`: only callers whose client certificate verified may be answered. */
  requireClientCertificate?: boolean;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly rejected?: RejectReason,
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

const JSON_TYPE = 'application/json; charset=utf-8';

function sendJson(res: ServerResponse, status: number, value: unknown, close = false): void {
  const body = JSON.stringify(value);
  // A body left unread (refused before or while reading it) cannot be skipped on a kept-alive connection.
  const headers: Record<string, string | number> = close
    ? { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body), connection: 'close' }
    : { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body) };
  res.writeHead(status, headers);
  res.end(body);
}

/**
 * The timing of a URL, remembered: the API server calls each webhook with the same
 * `?timeout=`, so the query is parsed once per webhook, not per call. Bounded, since callers
 * choose the URL.
 */
function timingMemo(maxTimeoutMs: number): (url: string | undefined) => AdmissionTiming {
  const known = new Map<string | undefined, AdmissionTiming>();
  return (url) => {
    let timing = known.get(url);
    if (!timing) {
      timing = admissionTiming(url, maxTimeoutMs);
      if (known.size >= 16) known.clear();
      known.set(url, timing);
    }
    return timing;
  };
}

function checkContentType(contentType: string): void {
  const [mediaType = '', ...parameters] = contentType.split(';').map((part) => part.trim().toLowerCase());
  if (mediaType !== 'application/json') {
    throw new HttpError(415, `content type must be application/json, got ${contentType || 'none'}`);
  }
  const charset = parameters.find((p) => p.startsWith('charset='))?.slice('charset='.length).replace(/"/g, '');
  if (charset && charset !== 'utf-8' && charset !== 'utf8') throw new HttpError(415, `unsupported charset ${charset}`);
}

function checkHeaders(req: IncomingMessage): number | undefined {
  const contentType = req.headers['content-type'] ?? '';
  // What the API server sends, every call: nothing to take apart.
  if (contentType !== 'application/json') checkContentType(contentType);
  const encoding = req.headers['content-encoding'];
  if (encoding && encoding !== 'identity') throw new HttpError(415, `unsupported content encoding ${encoding}`);
  const header = req.headers['content-length'];
  if (header === undefined) return undefined;
  const length = Number(header);
  if (length > MAX_BODY_BYTES) throw new HttpError(413, `request body exceeds ${MAX_BODY_BYTES} bytes`, 'too_large');
  return length;
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
 *
 * Every call gets a deadline from the API server's `?timeout=` (capped by the largest webhook
 * timeout) and reserves memory from a budget shared by all calls before its body is read; while
 * the budget is used up, bodies stay unread in the socket (TCP backpressure). Large bodies are
 * parsed one at a time (Lane). See docs/operations.md, "Memory and time budgets".
 */
export function createAdmissionEndpoint(deps: AdmissionEndpointDeps) {
  const limits: AdmissionLimits = deps.limits ?? { maxTimeoutMs: DEFAULT_MAX_TIMEOUT_MS, ...admissionBudgets(DEFAULT_MEMORY_BUDGET_BYTES) };
  const lane = new Lane();
  const timingOf = timingMemo(limits.maxTimeoutMs);
  let inFlight = 0;
  let waiting = 0;
  deps.metrics.setAdmissionLoad({
    inFlight: () => inFlight,
    waiting: () => waiting,
    reservedBytes: (pool) => limits[pool].used,
    budgetBytes: (pool) => limits[pool].capacityBytes,
    readsWaiting: () => deps.kube.readsWaiting?.() ?? 0,
  });
  const waitFor = async <T>(promise: Promise<T>): Promise<T> => {
    waiting++;
    try {
      return await promise;
    } finally {
      waiting--;
    }
  };
  /** A reservation of `bytes` from `budget`: at once when it fits, else after waiting in line. */
  const reserve = (budget: MemoryBudget, bytes: number, call: CallAbort): Reservation | Promise<Reservation> =>
    budget.tryReserve(bytes) ?? waitFor(budget.reserve(bytes, call.signal));

  return async function admissionEndpoint(phase: WebhookPhase, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (deps.requireClientCertificate && !(req.socket as TLSSocket).authorized) {
      // Refused before the body is read: an unauthenticated caller learns nothing and costs nothing.
      deps.metrics.errors.inc({ type: 'unauthenticated' });
      res.shouldKeepAlive = false;
      sendJson(res, 401, { error: 'a client certificate issued by the configured client CA is required' });
      return;
    }
    const started = performance.now();
    const timing = timingOf(req.url);
    const deadline = Date.now() + timing.budgetMs;
    const call = new CallAbort();
    const timer = setTimeout(() => call.abort(new DeadlineExceededError(timing.budgetMs)), timing.budgetMs);
    // The API server gives up (and closes the connection) when its own timeout passes.
    const onClose = () => {
      if (!res.writableFinished) call.abort(new ClientAbortError());
    };
    res.once('close', onClose);
    inFlight++;
    let bodyReservation: Reservation | undefined;
    let parseReservation: Reservation | undefined;
    let bodyRead = false;
    try {
      const length = checkHeaders(req);
      bodyReservation = await reserve(limits.bodies, length ?? CHUNKED_INITIAL_BYTES, call);
      const { body, parseCost } = await receiveBody(req, length, bodyReservation, call);
      bodyRead = true;
      parseReservation = await reserve(limits.parsing, parseCost, call);
      const parse = () => parseJson(body);
      const parsed = parseReservation.large ? await waitFor(lane.run(call.signal, parse)) : parse();
      await admit(phase, parsed, res, deps, call, deadline, timing, started);
    } catch (error) {
      answerFailure(error, phase, req, res, deps, timing, started, bodyRead);
    } finally {
      clearTimeout(timer);
      res.off('close', onClose);
      bodyReservation?.release();
      parseReservation?.release();
      inFlight--;
    }
  };
}

function answerFailure(
  error: unknown,
  phase: WebhookPhase,
  req: IncomingMessage,
  res: ServerResponse,
  deps: AdmissionEndpointDeps,
  timing: AdmissionTiming,
  started: number,
  bodyRead: boolean,
): void {
  const elapsedMs = Math.round(performance.now() - started);
  if (error instanceof ClientAbortError) {
    // The API server closes the connection when its own timeout passes: the call failed open.
    deps.metrics.errors.inc({ type: 'aborted' });
    deps.logger.warn({ webhook: phase, elapsedMs, timeoutMs: timing.timeoutMs, reason: error.message }, 'admission call aborted by the client');
    if (!res.headersSent && !res.destroyed) sendJson(res, 400, { error: error.message }, true);
    return;
  }
  if (isDeadlineExceeded(error)) {
    deps.metrics.rejected.inc({ reason: 'deadline' });
    deps.logger.warn(
      { webhook: phase, elapsedMs, timeoutMs: timing.timeoutMs, stage: bodyRead ? 'waiting to parse' : 'waiting for memory or the body' },
      'admission deadline passed before the review could be handled; the API server applies the failure policy',
    );
    if (!res.headersSent) sendJson(res, 503, { error: `admission deadline of ${timing.budgetMs} ms passed before the review could be handled` }, true);
    return;
  }
  if (error instanceof BudgetExceededError || error instanceof BodyTooLargeError) {
    deps.metrics.rejected.inc({ reason: 'too_large' });
    deps.metrics.errors.inc({ type: 'bad_request' });
    deps.logger.warn({ webhook: phase, contentLength: req.headers['content-length'], reason: error.message }, 'admission call refused: too large');
    if (!res.headersSent) sendJson(res, 413, { error: error instanceof BudgetExceededError ? `request too large for the memory budget: ${error.message}` : error.message }, !bodyRead);
    return;
  }
  if (error instanceof HttpError || error instanceof BadReviewError) {
    if (error instanceof HttpError && error.rejected) deps.metrics.rejected.inc({ reason: error.rejected });
    deps.metrics.errors.inc({ type: 'bad_request' });
    if (!res.headersSent) sendJson(res, error instanceof HttpError ? error.status : 400, { error: error.message }, !bodyRead);
    return;
  }
  deps.metrics.errors.inc({ type: 'internal' });
  deps.logger.error({ err: { message: (error as Error).message, stack: (error as Error).stack }, webhook: phase }, 'internal error');
  // The API server applies the webhook's failurePolicy to a 500.
  if (!res.headersSent) sendJson(res, 500, { error: 'internal error' }, !bodyRead);
}

async function admit(
  phase: WebhookPhase,
  body: unknown,
  res: ServerResponse,
  deps: AdmissionEndpointDeps,
  call: CallAbort,
  deadline: number,
  timing: AdmissionTiming,
  started: number,
): Promise<void> {
  const request = decodeAdmissionReview(body);
  const { response, result } = await handleAdmission(request, phase, deps, () => call.signal, deadline);
  countRuleResults(result, deps.metrics);
  if (call.aborted && call.reason instanceof ClientAbortError) throw call.reason;
  const durationMs = performance.now() - started;
  const verdict = verdictOf(response);
  observeAdmission(deps.metrics, deps.rules(), phase, request, verdict, durationMs / 1000);
  if (durationMs > timing.timeoutMs) deps.metrics.late.inc({ webhook: phase });
  logAdmission(deps.logger, phase, request, response, result, durationMs, verdict);
  sendJson(res, 200, toReview(response));
}
