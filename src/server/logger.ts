import { pino, type Logger, type LevelWithSilent } from 'pino';

/**
 * Structured JSON logs on stdout. Paths that can hold object bodies are redacted as a second line
 * of defence: code logs object bodies only at debug level, and never Secret data.
 */
export function createLogger(level: LevelWithSilent = 'info', destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'gitops-guard' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: ['*.data', '*.stringData', '*.binaryData', 'object.data', 'object.stringData', 'oldObject.data', 'oldObject.stringData'],
        censor: '[redacted]',
      },
    },
    destination ?? process.stdout,
  );
}

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
