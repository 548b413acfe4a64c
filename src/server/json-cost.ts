/**
 * What `JSON.parse` of a body will cost in heap, estimated from its bytes before parsing. Bytes
 * alone say little: 8 MiB of `[{},{},…]` parse into 2.8 million objects, about 180 MB of heap
 * (measured on Node 20), while 8 MiB of one string cost 8 MB. The scan counts the structure
 * outside strings as the body streams in. The weights are upper bounds measured on Node 20 (x64,
 * heap after a full GC): an object with its array slot 56-72 bytes (an empty array 40); a
 * property 110 when it takes its object to a shape not seen before (V8 makes a new hidden class,
 * descriptors and maybe a key string: what unique or shuffled keys cost) but 24 when objects
 * before it took the same step (real objects repeat their keys in the same order, sharing
 * hidden classes); an array element 8; a string value 24 besides its characters (a short
 * string's header). Real reviews come out two to four times their measured heap.
 */

const OBJECT_OR_ARRAY_BYTES = 72;
const NEW_KEY_PROPERTY_BYTES = 112;
const SEEN_KEY_PROPERTY_BYTES = 24;
const ELEMENT_BYTES = 8;
const STRING_BYTES = 24;
/** Shape steps remembered per body; steps beyond count as new (the upper bound). */
const MAX_STEPS = 16_384;
/**
 * A shape with more distinct next steps than this counts every step as new: V8 stops sharing
 * hidden classes for it (objects turn into dictionaries, about 120 bytes for one property).
 */
const MAX_FANOUT = 1000;
/** Longer keys are not hashed (they count as new steps). */
const MAX_KEY_BYTES = 64;
/** Object nesting followed; deeper objects' properties count as new steps. */
const MAX_DEPTH = 256;
/** The shape of an object with no properties yet; -1 marks an array level. */
const EMPTY_SHAPE = 0x9e3779b1 | 0;
const ARRAY_LEVEL = -1;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;

/** Counts JSON structure across chunks (strings may span chunk boundaries). */
export class JsonCostScanner {
  private bytes = 0;
  private containers = 0;
  private newKeyProperties = 0;
  private seenKeyProperties = 0;
  private separators = 0;
  private strings = 0;
  private inString = false;
  private escaped = false;
  /** The last string's content in the current chunk, when short and plain enough to be remembered as a key (it is one if a colon follows). */
  private candidateStart = -1;
  private candidateEnd = -1;
  /** Shape steps (object shape, key) seen, hashed from a per-body seed so nobody can craft keys that pass for seen ones. */
  private readonly steps = new Set<number>();
  /** Distinct next steps seen from each shape. */
  private readonly fanout = new Map<number, number>();
  private readonly seed = (Math.random() * 0x1_0000_0000) | 0;
  /** The shape of the object open at each nesting level (ARRAY_LEVEL for arrays). */
  private readonly shapes = new Int32Array(MAX_DEPTH);
  private depth = 0;

  feed(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    this.candidateStart = -1;
    const n = chunk.length;
    // Next quote and backslash at or after i, found with indexOf (most of a real body is string
    // content) and remembered, so a long string of escapes is not rescanned for each one.
    let quote = -2;
    let backslash = -2;
    // Where the current string's content starts in this chunk (-1: it started in an earlier one).
    let start = -1;
    let plain = false;
    let i = 0;
    while (i < n) {
      if (this.inString) {
        if (this.escaped) {
          this.escaped = false;
          i++;
          continue;
        }
        if (quote !== -1 && quote < i) quote = chunk.indexOf(QUOTE, i);
        if (backslash !== -1 && backslash < i) backslash = chunk.indexOf(BACKSLASH, i);
        if (backslash !== -1 && (quote === -1 || backslash < quote)) {
          this.escaped = true;
          plain = false;
          i = backslash + 1;
          continue;
        }
        if (quote === -1) return;
        this.inString = false;
        const short = plain && start !== -1 && quote - start <= MAX_KEY_BYTES;
        this.candidateStart = short ? start : -1;
        this.candidateEnd = quote;
        i = quote + 1;
        continue;
      }
      const c = chunk[i]!;
      if (c === QUOTE) {
        this.inString = true;
        this.strings++;
        start = i + 1;
        plain = true;
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        this.containers++;
        if (this.depth < MAX_DEPTH) this.shapes[this.depth] = c === OPEN_BRACE ? EMPTY_SHAPE : ARRAY_LEVEL;
        this.depth++;
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        if (this.depth > 0) this.depth--;
      } else if (c === COLON) {
        this.countProperty(chunk);
      } else if (c === COMMA) {
        this.separators++;
      }
      i++;
    }
  }

  private countProperty(chunk: Uint8Array): void {
    const start = this.candidateStart;
    this.candidateStart = -1;
    const level = this.depth - 1;
    if (start === -1 || level < 0 || level >= MAX_DEPTH || this.shapes[level] === ARRAY_LEVEL) {
      this.newKeyProperties++;
      return;
    }
    // The step from the object's shape so far by this key: FNV-1a over the shape and the key's bytes.
    const shape = this.shapes[level]!;
    let step = Math.imul(this.seed ^ shape, 0x01000193);
    for (let k = start; k < this.candidateEnd; k++) step = Math.imul(step ^ chunk[k]!, 0x01000193);
    step = Math.imul(step ^ (this.candidateEnd - start), 0x01000193);
    this.shapes[level] = step === ARRAY_LEVEL ? EMPTY_SHAPE : step;
    const fanout = this.fanout.get(shape) ?? 0;
    if (this.steps.has(step) && fanout <= MAX_FANOUT) {
      this.seenKeyProperties++;
      return;
    }
    this.newKeyProperties++;
    if (this.steps.size < MAX_STEPS && !this.steps.has(step)) {
      this.steps.add(step);
      this.fanout.set(shape, fanout + 1);
    }
  }

  /** Bytes seen so far. */
  get length(): number {
    return this.bytes;
  }

  /**
   * Upper bound of the heap the parsed value takes: its characters (at most the body's length as
   * one-byte strings) plus the objects, arrays, properties, elements and string values counted.
   */
  get parsedBytes(): number {
    const properties = this.newKeyProperties + this.seenKeyProperties;
    // Every property has a key string, already counted with the property; the rest are values.
    const values = Math.max(0, this.strings - properties);
    return (
      this.bytes +
      this.containers * OBJECT_OR_ARRAY_BYTES +
      this.newKeyProperties * NEW_KEY_PROPERTY_BYTES +
      this.seenKeyProperties * SEEN_KEY_PROPERTY_BYTES +
      this.separators * ELEMENT_BYTES +
      values * STRING_BYTES
    );
  }
}
