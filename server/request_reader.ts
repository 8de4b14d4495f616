/**
 * Request heads off an HTTP/1.1 byte stream: bytes are read into one buffer
 * per connection (it grows up to the size limit, never beyond) and cut at
 * each head's blank line, so pipelined requests come out one by one. Only
 * heads are framed: the server serves GET and HEAD, and a request that
 * announces a body is answered and its connection closed (see
 * `http_connection.ts`), so no body is ever read as a head.
 *
 * @module
 */

import { HttpError } from "../protocol/http1.ts";

const LF = 0x0a;
const CR = 0x0d;
/** Bytes the buffer starts with; it doubles as heads need, up to the limit. */
const INITIAL_BYTES = 4096;

/** The reading half of a connection. */
export interface ByteSource {
  /** Reads into `buffer`; the byte count, or `null` at the end of input. */
  read(buffer: Uint8Array): Promise<number | null>;
}

/** Cuts request heads out of a byte stream, at most `maxBytes` each. */
export class RequestHeadReader {
  /** When bytes last came in (`performance.now()`). */
  lastRead: number = performance.now();
  readonly #source: ByteSource;
  readonly #maxBytes: number;
  #buffer: Uint8Array;
  /** Unconsumed bytes are `#buffer[#start, #end)`. */
  #start = 0;
  #end = 0;
  /** Where the search for the blank line resumes. */
  #scanned = 0;

  /** Reads from `source`; a head longer than `maxBytes` is refused with 431. */
  constructor(source: ByteSource, maxBytes: number) {
    this.#source = source;
    this.#maxBytes = maxBytes;
    this.#buffer = new Uint8Array(Math.min(INITIAL_BYTES, maxBytes));
  }

  /** Whether part of a request head has come in and waits for the rest. */
  get partial(): boolean {
    this.#skipBlankLines();
    return this.#end > this.#start;
  }

  /**
   * The next request head, its blank line included, as a view valid until
   * the next call; `null` once the input ends (a head cut short by the end
   * is dropped: nobody is left to answer). Throws HttpError 431 for a head
   * longer than `maxBytes`.
   */
  async next(): Promise<Uint8Array | null> {
    for (;;) {
      this.#skipBlankLines();
      const end = this.#headEnd();
      if (end > 0) {
        const head = this.#buffer.subarray(this.#start, end);
        this.#start = this.#scanned = end;
        return head;
      }
      if (!(await this.#fill())) return null;
    }
  }

  /** Reads and drops input until it ends or reading fails. */
  async discard(): Promise<void> {
    this.#start = this.#end = this.#scanned = 0;
    try {
      while ((await this.#source.read(this.#buffer)) !== null) this.lastRead = performance.now();
    } catch {
      // The connection was closed or reset: there is nothing left to drop.
    }
  }

  /** RFC 9112 §2.2: empty lines before a request line are ignored. */
  #skipBlankLines() {
    const buffer = this.#buffer;
    while (this.#start < this.#end) {
      if (buffer[this.#start] === LF) this.#start++;
      else if (
        buffer[this.#start] === CR && this.#start + 1 < this.#end &&
        buffer[this.#start + 1] === LF
      ) {
        this.#start += 2;
      } else break;
    }
    if (this.#scanned < this.#start) this.#scanned = this.#start;
  }

  /**
   * The index just past the head's blank line, or 0 if it has not come in.
   * A bare LF ends lines too here, so that a head with one is cut where the
   * client meant and refused by the parser (400), not waited on forever.
   */
  #headEnd(): number {
    const buffer = this.#buffer;
    for (let at = this.#scanned; at < this.#end; at++) {
      at = buffer.indexOf(LF, at);
      if (at < 0 || at >= this.#end) break;
      const previous = at - 1 >= this.#start ? buffer[at - 1] : -1;
      if (
        previous === LF ||
        (previous === CR && at - 2 >= this.#start && buffer[at - 2] === LF)
      ) {
        return at + 1;
      }
    }
    this.#scanned = this.#end;
    return 0;
  }

  /** Reads more input; false at its end. */
  async #fill(): Promise<boolean> {
    const held = this.#end - this.#start;
    if (held >= this.#maxBytes) {
      throw new HttpError(431, `request head larger than ${this.#maxBytes} bytes`);
    }
    if (this.#start > 0) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#scanned -= this.#start;
      this.#start = 0;
      this.#end = held;
    }
    if (this.#end === this.#buffer.byteLength) {
      const grown = new Uint8Array(Math.min(this.#buffer.byteLength * 2, this.#maxBytes));
      grown.set(this.#buffer);
      this.#buffer = grown;
    }
    const room = this.#buffer.subarray(this.#end);
    const read = await this.#source.read(room);
    if (read === null) return false;
    this.#end += read;
    this.lastRead = performance.now();
    return true;
  }
}
