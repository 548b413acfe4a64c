import { isAscii } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import { signalOf, type AbortSource } from './call-abort.js';
import { JsonCostScanner } from './json-cost.js';
import type { Reservation } from './memory-budget.js';

/**
 * The API server refuses request bodies over 3 MiB (--max-request-body-bytes) and etcd stores
 * objects up to 1.5 MiB; an UPDATE review carries `object` and `oldObject`, JSON-escaped inside
 * the review. 8 MiB fits two maximal objects with room to spare while bounding memory per request.
 */
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

/**
 * Bodies up to this size are not scanned: they reserve the worst case, which is small at this
 * size, and ordinary reviews (a few KiB) skip the scan's CPU.
 */
export const SCAN_THRESHOLD_BYTES = 64 * 1024;
/** Parsed heap per body byte in the worst case the scanner's weights allow (8 MiB of `[{},…]`: 25×). */
const WORST_PARSED_PER_BYTE = 26;

/**
 * What parsing a body costs in heap while its review is handled: its text (one byte per
 * character when it is ASCII, up to two otherwise) and the parsed value. Kept until the answer
 * is written, because garbage is only given back when the collector runs.
 */
export function parseCost(body: Buffer, parsedBytes: number | undefined): number {
  const text = isAscii(body) ? body.length : 2 * body.length;
  return text + (parsedBytes ?? body.length * WORST_PARSED_PER_BYTE);
}

export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError';
  constructor() {
    super(`request body exceeds ${MAX_BODY_BYTES} bytes`);
  }
}

/** The caller closed the connection before the body was complete. */
export class ClientAbortError extends Error {
  override readonly name = 'ClientAbortError';
  constructor(message = 'the client closed the connection before the request was complete') {
    super(message);
  }
}

export interface ReceivedBody {
  body: Buffer;
  /** The heap its text and parsed review will take (parseCost). */
  parseCost: number;
}

/**
 * Reads a body into one buffer (allocated once from Content-Length, or grown chunk by chunk
 * when the length is not known), scanning its structure as it streams in. `reservation` covers
 * the body's bytes: reserved from Content-Length before reading, or grown with every chunk
 * (pausing the socket while the budget is used up). Rejects with `signal`'s reason when it
 * aborts, with ClientAbortError when the client goes away, with BodyTooLargeError past
 * MAX_BODY_BYTES.
 */
export function receiveBody(req: IncomingMessage, length: number | undefined, reservation: Reservation, signal: AbortSource): Promise<ReceivedBody> {
  const scanner = length === undefined || length > SCAN_THRESHOLD_BYTES ? new JsonCostScanner() : undefined;
  return new Promise<ReceivedBody>((resolve, reject) => {
    let fixed: Buffer | undefined;
    let offset = 0;
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (error: unknown, value?: ReceivedBody): void => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('aborted', onClientGone);
      req.off('error', onClientGone);
      signal.removeEventListener('abort', onAbort);
      if (error) {
        reject(error);
      } else {
        resolve(value!);
      }
    };
    const onData = (chunk: Buffer): void => {
      if (length !== undefined) {
        if (offset + chunk.length > length) return finish(new ClientAbortError('request body longer than its Content-Length'));
        if (offset === 0 && chunk.length === length) {
          fixed = chunk; // the whole body in one chunk: no copy
        } else {
          fixed ??= Buffer.allocUnsafe(length);
          chunk.copy(fixed, offset);
        }
        offset += chunk.length;
        scanner?.feed(chunk);
        return;
      }
      offset += chunk.length;
      if (offset > MAX_BODY_BYTES) {
        req.resume(); // discard the rest; the answer is already decided
        return finish(new BodyTooLargeError());
      }
      scanner!.feed(chunk);
      chunks.push(chunk);
      if (offset > reservation.bytes) {
        req.pause();
        reservation.resize(Math.min(MAX_BODY_BYTES, Math.max(offset, 2 * reservation.bytes)), signalOf(signal)).then(
          () => {
            if (!settled) req.resume();
          },
          (error: unknown) => finish(error),
        );
      }
    };
    const onEnd = (): void => {
      if (length !== undefined && offset !== length) return finish(new ClientAbortError());
      const body = length !== undefined ? (fixed ?? Buffer.alloc(0)) : Buffer.concat(chunks, offset);
      finish(undefined, { body, parseCost: parseCost(body, scanner?.parsedBytes) });
    };
    const onClientGone = (): void => finish(new ClientAbortError());
    const onAbort = (): void => finish(signal.reason);
    if (signal.aborted) return finish(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('aborted', onClientGone);
    req.once('error', onClientGone);
  });
}
