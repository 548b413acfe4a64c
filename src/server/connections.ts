import type { Server } from 'node:https';
import type { Logger } from 'pino';
import type { Metrics } from './metrics.js';

export const DEFAULT_MAX_CONNECTIONS = 512;
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

export interface ConnectionLimits {
  /** The largest webhook timeoutSeconds, in ms: no handshake, headers or body may take longer. */
  maxTimeoutMs: number;
  maxConnections?: number;
  idleTimeoutMs?: number;
}

/** Options of node:https's createServer that bound how long a caller may take to say anything. */
export function connectionTimeouts(limits: ConnectionLimits) {
  return {
    // Nothing a webhook call needs takes longer than the API server waits for it.
    handshakeTimeout: limits.maxTimeoutMs,
    headersTimeout: limits.maxTimeoutMs,
    requestTimeout: limits.maxTimeoutMs,
    // Node checks the two above this often (its default, 30 s, would let them run long).
    connectionsCheckingInterval: 250,
    keepAliveTimeout: limits.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
  };
}

/**
 * Caps the connections and closes silent or stalled ones, counting each in
 * gitops_guard_admission_rejected_total: a caller that opens connections and says nothing, or
 * trickles its headers or body, holds nothing for long.
 */
export function limitConnections(server: Server, limits: ConnectionLimits, metrics: Metrics, logger: Logger): void {
  // Inactivity limit of a connection that has not sent a request yet, or is in the middle of one
  // (kept-alive idle connections use keepAliveTimeout instead). Every call is answered within
  // its deadline, so only a silent or stalled client reaches it.
  server.timeout = limits.maxTimeoutMs + 1000;
  server.maxConnections = limits.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  server.on('drop', () => metrics.rejected.inc({ reason: 'connection_limit' }));
  server.on('tlsClientError', (error: NodeJS.ErrnoException) => {
    metrics.rejected.inc({ reason: error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'timeout' : 'bad_connection' });
    logger.debug({ err: error.message }, 'TLS handshake failed');
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    // Headers or body not received in time (headersTimeout/requestTimeout), or not HTTP at all.
    const timedOut = error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    if (error.code !== 'ECONNRESET') metrics.rejected.inc({ reason: timedOut ? 'timeout' : 'bad_connection' });
    logger.debug({ err: error.message, code: error.code }, 'client error');
    const response = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && !response?.headersSent) {
      socket.end(`HTTP/1.1 ${timedOut ? '408 Request Timeout' : '400 Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      setTimeout(() => socket.destroy(), 1000).unref();
    } else {
      socket.destroy();
    }
  });
}
