import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

/**
 * `,"time":"<ISO 8601>"` as pino.stdTimeFunctions.isoTime writes it, formatted once per
 * millisecond: under load several lines share a millisecond, and formatting a date was a sixth
 * of what a log line cost.
 */
function isoTimeOncePerMs(): () => string {
  let last = -1;
  let text = '';
  return () => {
    const now = Date.now();
    if (now !== last) {
      last = now;
      text = `,"time":"${new Date(now).toISOString()}"`;
    }
    return text;
  };
}

/** Log bytes held while standard output does not keep up; beyond them lines are dropped, never the server blocked. */
const MAX_PENDING_LOG_BYTES = 8 * 1024 * 1024;

/**
 * Standard output for logs: written asynchronously (lines that arrive while a write is under way
 * go out together in the next one, instead of one blocking write per line; a stalled log pipe
 * cannot stall admissions) and flushed synchronously when the process exits, also on an uncaught
 * exception.
 */
export function stdoutDestination(): DestinationStream {
  return pino.destination({ dest: 1, sync: false, minLength: 0, maxLength: MAX_PENDING_LOG_BYTES });
}

/**
 * Structured JSON logs on stdout. Paths that can hold object bodies are redacted as a second line
 * of defence: code logs object bodies only at debug level, and never Secret data.
 */
export function createLogger(level: LevelWithSilent = 'info', destination?: NodeJS.WritableStream | DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'gitops-guard' },
      timestamp: isoTimeOncePerMs(),
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        // Exact paths, no wildcards: wildcard redaction walks every field of every line (a tenth of
        // the CPU of a fast-path admission). Object bodies are only ever logged under these keys.
        paths: ['object.data', 'object.stringData', 'object.binaryData', 'oldObject.data', 'oldObject.stringData', 'oldObject.binaryData'],
        censor: '[redacted]',
      },
    },
    destination ?? stdoutDestination(),
  );
}

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
