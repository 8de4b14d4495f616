/**
 * tcpmux frames moved without blocking, for the event-loop data path: many
 * frames go out in one gathered `sendmsg`, and frames come in through one
 * receive buffer, many per `recv`. The frame format is in `tcpmux.ts`.
 *
 * @module
 */

import { C, lastError, libc, msghdr } from "../ffi/libc.ts";
import { Errno } from "../ffi/errors.ts";
import { StructBuffer } from "../ffi/struct.ts";
import { BufferPool } from "./bytes.ts";
import type { Channel, ReadinessSource } from "./driver.ts";
import { fdReadiness } from "./reactor.ts";
import { SHARED_WRITE_LOCK, TransportError } from "./types.ts";
import type { Message, OutgoingMessage, SocketHandle } from "./types.ts";

/** u16 stream, u16 flags (0), u32 length, big-endian. */
export const FRAME_HEADER_BYTES = 8;
/** The largest frame sent (a receiver takes at most its `maxMessageSize` of any frame). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** Frames gathered into one sendmsg. */
const MAX_FRAMES = 64;
/**
 * Bodies from JS memory up to this size are copied beside their headers, so
 * a burst of small frames leaves as one iovec: taking the address of a
 * `Uint8Array` (`Deno.UnsafePointer.of`) costs more than copying a few KiB.
 * Larger bodies, and bodies in mapped files (which only the kernel may read,
 * see `loop_association.ts`), get an iovec of their own.
 */
const COPY_BYTES = 4096;
/** Room for the headers and copied bodies of MAX_FRAMES frames. */
const STAGE_BYTES = MAX_FRAMES * (FRAME_HEADER_BYTES + COPY_BYTES);
/** At most a staged run and a body per frame, and the last staged run. */
const MAX_VECTORS = 2 * MAX_FRAMES + 1;
/** The receive buffer: frames smaller than this arrive many per recv. */
const RECEIVE_BYTES = 256 * 1024;
/** A body with at least this much still to come is read straight into its message. */
const DIRECT_BYTES = 16 * 1024;

/** The nonblocking side of one tcpmux association. */
export class TcpmuxChannel implements Channel {
  readonly fd: number;
  readonly readiness: ReadinessSource;
  readonly #lock: Int32Array;
  readonly #limit: number;
  // Sending: the staged bytes (headers, small bodies) and iovecs of one
  // sendmsg. Buffers this size live outside V8's heap and never move, so
  // their addresses are taken once.
  readonly #stage = new Uint8Array(STAGE_BYTES);
  readonly #stageView = new DataView(this.#stage.buffer);
  readonly #stageBase = pointerValue(this.#stage);
  readonly #vectors = new BigUint64Array(2 * MAX_VECTORS);
  readonly #vectorsBase = pointerValue(this.#vectors);
  readonly #message = new StructBuffer(msghdr);
  /** Bytes of the first unsent frame already sent. */
  #partial = 0;
  /** Whether we hold the handle's write lock (taken per burst; kept while a frame is in part sent). */
  #locked = false;
  // Receiving: buffered bytes in #input[#start, #end), and the frame body being filled.
  readonly #input = new Uint8Array(RECEIVE_BYTES);
  readonly #inputView = new DataView(this.#input.buffer);
  #start = 0;
  #end = 0;
  #body: Uint8Array<ArrayBuffer> | undefined;
  #bodyFill = 0;
  /** Bytes of the current frame's body still to come (kept or dropped). */
  #bodyLeft = 0;
  #bodyStream = 0;
  #truncated = false;
  readonly #pool = new BufferPool();

  constructor(handle: SocketHandle, maxMessageSize: number) {
    this.fd = Number(handle.socket);
    this.readiness = fdReadiness(this.fd);
    this.#lock = new Int32Array(handle.shared);
    this.#limit = maxMessageSize;
  }

  send(messages: readonly OutgoingMessage[], from: number): number {
    let done = 0;
    while (from + done < messages.length) {
      // Workers holding the association's handle write whole frames under the same lock.
      if (!this.#locked) {
        if (Atomics.compareExchange(this.#lock, SHARED_WRITE_LOCK, 0, 1) !== 0) break;
        this.#locked = true;
      }
      const frames = this.#gather(messages, from + done);
      const n = libc().sendmsg(this.fd, this.#message.bytes, C.MSG_DONTWAIT | C.MSG_NOSIGNAL);
      if (n < 0n) {
        const error = lastError("sendmsg");
        if (error.errno === Errno.EINTR) continue;
        if (error.errno === Errno.EAGAIN) break;
        throw error;
      }
      let left = Number(n) + this.#partial;
      for (let i = 0; i < frames; i++) {
        const frame = FRAME_HEADER_BYTES + lengthOf(messages[from + done]);
        if (left < frame) break;
        left -= frame;
        done++;
      }
      this.#partial = left;
    }
    if (this.#locked && this.#partial === 0) {
      this.#locked = false;
      Atomics.store(this.#lock, SHARED_WRITE_LOCK, 0);
      Atomics.notify(this.#lock, SHARED_WRITE_LOCK, 1);
    }
    return done;
  }

  receive(): Message | null | undefined {
    for (;;) {
      if (this.#body) {
        const got = this.#fillBody();
        if (got === "wait") return undefined;
        if (got === "end") throw new TransportError("tcpmux: peer closed inside a message");
        if (got !== "more") return got;
        continue;
      }
      if (this.#end - this.#start >= FRAME_HEADER_BYTES) {
        const message = this.#startFrame();
        if (message) return message;
        continue;
      }
      const got = this.#read();
      if (got === "wait") return undefined;
      if (got === "end") {
        if (this.#end > this.#start) {
          throw new TransportError("tcpmux: peer closed inside a frame header");
        }
        return null;
      }
    }
  }

  recycle(data: Uint8Array): void {
    this.#pool.give(data);
  }

  /** Fills the iovecs and msghdr for frames from `first` on; returns how many frames. */
  #gather(messages: readonly OutgoingMessage[], first: number): number {
    let vectors = 0;
    let staged = 0;
    // Where the staged bytes not yet in an iovec begin.
    let run = 0;
    let frames = 0;
    for (; frames < MAX_FRAMES && first + frames < messages.length; frames++) {
      const message = messages[first + frames];
      const length = lengthOf(message);
      if (length > MAX_MESSAGE_BYTES) {
        throw new RangeError(`tcpmux message of ${length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
      }
      this.#stageView.setUint16(staged, message.stream);
      this.#stageView.setUint16(staged + 2, 0);
      this.#stageView.setUint32(staged + 4, length);
      staged += FRAME_HEADER_BYTES;
      if (message.address === undefined && length <= COPY_BYTES) {
        this.#stage.set(message.data, staged);
        staged += length;
        continue;
      }
      vectors = this.#vector(vectors, this.#stageBase + BigInt(run), staged - run);
      run = staged;
      vectors = this.#vector(vectors, message.address ?? pointerValue(message.data), length);
    }
    vectors = this.#vector(vectors, this.#stageBase + BigInt(run), staged - run);
    // Leaves out what an earlier sendmsg sent of the first frame.
    let skipped = 0;
    for (let skip = this.#partial; skip > 0;) {
      const length = Number(this.#vectors[2 * skipped + 1]);
      if (skip < length) {
        this.#vectors[2 * skipped] += BigInt(skip);
        this.#vectors[2 * skipped + 1] = BigInt(length - skip);
        break;
      }
      skip -= length;
      skipped++;
    }
    this.#message.set("msg_iov", Number(this.#vectorsBase) + 16 * skipped)
      .set("msg_iovlen", vectors - skipped);
    return frames;
  }

  /** Sets iovec `index` to `length` bytes at `address` (none if empty); returns the next index. */
  #vector(index: number, address: bigint, length: number): number {
    if (length === 0) return index;
    this.#vectors[2 * index] = address;
    this.#vectors[2 * index + 1] = BigInt(length);
    return index + 1;
  }

  /** Parses the header at #start; returns the message if its whole body is buffered. */
  #startFrame(): Message | undefined {
    const stream = this.#inputView.getUint16(this.#start);
    const length = this.#inputView.getUint32(this.#start + 4);
    this.#start += FRAME_HEADER_BYTES;
    if (length <= this.#limit && this.#end - this.#start >= length) {
      const data = this.#pool.copy(this.#input.subarray(this.#start, this.#start + length));
      this.#start += length;
      return { stream, data };
    }
    const kept = Math.min(length, this.#limit);
    this.#body = this.#pool.take(kept) ?? new Uint8Array(kept);
    this.#bodyFill = 0;
    this.#bodyLeft = length;
    this.#bodyStream = stream;
    this.#truncated = length > this.#limit;
    return undefined;
  }

  /**
   * Moves buffered bytes into the current body, then reads more (straight
   * into the body when much of it is still to come): the finished message,
   * or how the read went.
   */
  #fillBody(): Message | "more" | "wait" | "end" {
    const body = this.#body!;
    const take = Math.min(this.#end - this.#start, this.#bodyLeft);
    if (take > 0) {
      const keep = Math.min(take, body.byteLength - this.#bodyFill);
      body.set(this.#input.subarray(this.#start, this.#start + keep), this.#bodyFill);
      this.#bodyFill += keep;
      this.#start += take;
      this.#bodyLeft -= take;
    }
    if (this.#bodyLeft === 0) {
      this.#body = undefined;
      const stream = this.#bodyStream;
      return this.#truncated ? { stream, data: body, truncated: true } : { stream, data: body };
    }
    const room = body.byteLength - this.#bodyFill;
    if (room < DIRECT_BYTES) return this.#read();
    const n = this.#recv(body, this.#bodyFill, Math.min(room, this.#bodyLeft));
    if (n === -1) return "wait";
    if (n === 0) return "end";
    this.#bodyFill += n;
    this.#bodyLeft -= n;
    return "more";
  }

  /** Reads into the receive buffer: "more", "wait" (would block) or "end" (orderly end). */
  #read(): "more" | "wait" | "end" {
    if (this.#start > 0) {
      this.#input.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    const n = this.#recv(this.#input, this.#end, RECEIVE_BYTES - this.#end);
    if (n === -1) return "wait";
    if (n === 0) return "end";
    this.#end += n;
    return "more";
  }

  /** One nonblocking recv into `into` at `at`: bytes read, 0 at an orderly end, -1 would block. */
  #recv(into: Uint8Array<ArrayBuffer>, at: number, length: number): number {
    for (;;) {
      const n = libc().recv(
        this.fd,
        Deno.UnsafePointer.offset(Deno.UnsafePointer.of(into)!, at),
        BigInt(length),
        C.MSG_DONTWAIT,
      );
      if (n >= 0n) return Number(n);
      const error = lastError("recv");
      if (error.errno === Errno.EINTR) continue;
      if (error.errno === Errno.EAGAIN) return -1;
      throw error;
    }
  }
}

function lengthOf(message: OutgoingMessage): number {
  return message.address === undefined ? message.data.byteLength : message.length;
}

function pointerValue(bytes: ArrayBufferView): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
}
