/**
 * The admission deadline: how long gitops-guard may work on one AdmissionReview. The API server
 * puts its own call timeout on the URL (`POST /mutate?timeout=5s`, the webhook's
 * `timeoutSeconds` as a Go duration) and gives up when it passes; an answer after that is
 * wasted, and a rule that fails because *we* ran out of time would fail open for nothing.
 */

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const GO_DURATION = /^(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$/;
const GO_DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/** A Go `time.Duration` string (`5s`, `1m0s`, `2.5s`, `300ms`) in milliseconds; null when it is not one. */
export function parseGoDuration(text: string): number | null {
  if (text.length === 0 || text.length > 40 || !GO_DURATION.test(text)) return null;
  let total = 0;
  for (const [, value, unit] of text.matchAll(GO_DURATION_PART)) total += Number(value) * UNIT_MS[unit!]!;
  return Number.isFinite(total) ? total : null;
}

/** Time kept back from the API server's timeout to write the answer and get it across the network. */
export function answerReserveMs(timeoutMs: number): number {
  return Math.min(500, Math.max(100, Math.round(timeoutMs / 10)));
}

export interface AdmissionTiming {
  /** The API server's timeout for this call, capped by the webhooks' largest `timeoutSeconds`. */
  timeoutMs: number;
  /** How long gitops-guard works on it: the timeout less the answer reserve. */
  budgetMs: number;
  /** True when the URL carried a usable `?timeout=`. */
  fromQuery: boolean;
}

/**
 * The timing of one admission call from its URL. `maxTimeoutMs` is the largest `timeoutSeconds`
 * of the webhook configurations this server answers: the API server never waits longer, so a
 * larger (or missing, or malformed) `?timeout=` is capped by it.
 */
export function admissionTiming(url: string | undefined, maxTimeoutMs: number): AdmissionTiming {
  const query = url?.indexOf('?') ?? -1;
  let requested: number | null = null;
  if (url && query !== -1) {
    for (const pair of url.slice(query + 1).split('&')) {
      if (!pair.startsWith('timeout=')) continue;
      let value = pair.slice('timeout='.length);
      try {
        value = decodeURIComponent(value);
      } catch {
        value = '';
      }
      requested = parseGoDuration(value);
      break;
    }
  }
  const usable = requested !== null && requested > 0;
  const timeoutMs = usable ? Math.min(requested!, maxTimeoutMs) : maxTimeoutMs;
  return { timeoutMs, budgetMs: Math.max(1, timeoutMs - answerReserveMs(timeoutMs)), fromQuery: usable };
}
