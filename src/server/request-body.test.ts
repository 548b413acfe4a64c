import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MemoryBudget } from './memory-budget.js';
import { BodyTooLargeError, ClientAbortError, MAX_BODY_BYTES, parseCost, receiveBody } from './request-body.js';

const never = new AbortController().signal;
const budget = () => new MemoryBudget({ capacityBytes: 64 * 1024 * 1024, smallReserveBytes: 1024, largeThresholdBytes: 256 * 1024 });
const request = () => new PassThrough() as unknown as IncomingMessage & PassThrough;

describe('receiveBody', () => {
  it('keeps a body that arrives in one chunk as it is, without copying it', async () => {
    const req = request();
    const chunk = Buffer.from('{"apiVersion":"admission.k8s.io/v1"}');
    const received = receiveBody(req, chunk.length, await budget().reserve(chunk.length, never), never);
    req.end(chunk);
    expect((await received).body).toBe(chunk);
  });

  it('assembles a body in pieces into one buffer of its Content-Length', async () => {
    const req = request();
    const text = JSON.stringify({ a: 'x'.repeat(100_000), b: [1, 2, 3] });
    const received = receiveBody(req, text.length, await budget().reserve(text.length, never), never);
    for (let i = 0; i < text.length; i += 16_384) req.write(Buffer.from(text.slice(i, i + 16_384)));
    req.end();
    const { body, parseCost: cost } = await received;
    expect(body.toString('utf8')).toBe(text);
    expect(body.buffer.byteLength).toBeLessThan(text.length * 2);
    // Scanned (over 64 KiB): its text once (ASCII) plus the parsed estimate.
    expect(cost).toBeGreaterThan(2 * text.length);
    expect(cost).toBeLessThan(3 * text.length);
  });

  it('grows the reservation of a body without Content-Length as it arrives, and refuses one over 8 MiB', async () => {
    const b = budget();
    const req = request();
    const reservation = await b.reserve(64 * 1024, never);
    const received = receiveBody(req, undefined, reservation, never);
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    for (let i = 0; i < 3; i++) req.write(chunk);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(reservation.bytes).toBeGreaterThanOrEqual(3 * chunk.length);
    for (let i = 0; i < 6; i++) req.write(chunk);
    await expect(received).rejects.toBeInstanceOf(BodyTooLargeError);
    expect(9 * chunk.length).toBeGreaterThan(MAX_BODY_BYTES);
  });

  it('tells a client that went away from a deadline', async () => {
    const gone = request();
    const receivedGone = receiveBody(gone, 100, await budget().reserve(100, never), never);
    gone.write('{"apiVersion":');
    gone.emit('aborted');
    await expect(receivedGone).rejects.toBeInstanceOf(ClientAbortError);

    const controller = new AbortController();
    const slow = request();
    const receivedSlow = receiveBody(slow, 100, await budget().reserve(100, never), controller.signal);
    controller.abort(new Error('deadline'));
    await expect(receivedSlow).rejects.toThrow('deadline');
  });
});

describe('parseCost', () => {
  it('counts the text once for ASCII and twice otherwise, and the worst case for unscanned bodies', () => {
    const ascii = Buffer.from('{"a":"b"}');
    const accented = Buffer.from('{"a":"é"}');
    expect(parseCost(ascii, 100)).toBe(ascii.length + 100);
    expect(parseCost(accented, 100)).toBe(2 * accented.length + 100);
    expect(parseCost(ascii, undefined)).toBe(ascii.length + 26 * ascii.length);
  });
});
