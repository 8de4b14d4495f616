/**
 * What the two SCTP drivers (kernel and usrsctp) share: the buffer a message
 * is reassembled in, and what an association-change notification means.
 * Each library has its own constants, so they come in as arguments.
 *
 * @module
 */

import { copyOf } from "./bytes.ts";
import { type Message, TransportError } from "./types.ts";

/** A read never goes into less than this, so a notification always fits whole. */
const MIN_READ_BYTES = 64 * 1024;
/** The buffer a thread starts with, and goes back to after a larger message. */
const INITIAL_BYTES = 256 * 1024;
/**
 * A buffer grown past this goes out with its message: one large message must
 * not pin its size in the reading thread for the life of the association.
 */
const KEEP_BYTES = 1024 * 1024;

/**
 * A per-thread buffer a message is reassembled in, read by read. It grows by
 * doubling up to the message size limit (plus one read), so only the finished
 * message is allocated per receive. A message over the limit keeps its first
 * `limit` bytes; later reads overwrite the space after them, so its other
 * bytes are dropped as they arrive.
 */
export class ReceiveBuffer {
  #bytes = new Uint8Array(INITIAL_BYTES);
  #limit = 0;
  /** Bytes of the current message received so far. */
  #received = 0;

  /** Starts a message that keeps at most `limit` bytes. */
  start(limit: number): void {
    this.#limit = limit;
    this.#received = 0;
  }

  /** Bytes of the current message received so far. */
  get received(): number {
    return this.#received;
  }

  /** Where the next read goes: at least 64 KiB (a whole notification fits). */
  space(): Uint8Array<ArrayBuffer> {
    const kept = this.#kept();
    if (this.#bytes.byteLength - kept < MIN_READ_BYTES) {
      const size = Math.min(this.#bytes.byteLength * 2, this.#limit + MIN_READ_BYTES);
      const grown = new Uint8Array(Math.max(size, kept + MIN_READ_BYTES));
      grown.set(this.#bytes.subarray(0, kept));
      this.#bytes = grown;
    }
    return this.#bytes.subarray(kept);
  }

  /** Counts `n` bytes just read into `space()`. */
  advance(n: number): void {
    this.#received += n;
  }

  /** The kept bytes of the current message (a view, valid until the next read). */
  current(): Uint8Array<ArrayBuffer> {
    return this.#bytes.subarray(0, this.#kept());
  }

  /**
   * The finished message. It is copied out of the buffer (with `copy`), unless the buffer
   * grew past 1 MiB for it: then the buffer itself becomes the message (no
   * copy; it leaves this thread with the message when that is transferred),
   * and the next message starts in a fresh small one.
   */
  take(stream: number, copy: (bytes: Uint8Array) => Uint8Array<ArrayBuffer> = copyOf): Message {
    const kept = this.#kept();
    let data: Uint8Array<ArrayBuffer>;
    if (this.#bytes.byteLength > KEEP_BYTES) {
      data = this.#bytes.subarray(0, kept);
      this.#bytes = new Uint8Array(INITIAL_BYTES);
    } else {
      data = copy(this.#bytes.subarray(0, kept));
    }
    const truncated = this.#received > this.#limit;
    this.#received = 0;
    return truncated ? { stream, data, truncated: true } : { stream, data };
  }

  /** The size of the buffer now (for tests). */
  get capacity(): number {
    return this.#bytes.byteLength;
  }

  #kept(): number {
    return Math.min(this.#received, this.#limit);
  }
}

/** A stack's SCTP_ASSOC_CHANGE constants (each library has its own values). */
export interface AssocChangeConstants {
  readonly SCTP_ASSOC_CHANGE: number;
  readonly SCTP_SHUTDOWN_COMP: number;
  readonly SCTP_COMM_LOST: number;
  readonly SCTP_CANT_STR_ASSOC: number;
}

/** Where `sac_type` and `sac_state` lie in a stack's `struct sctp_assoc_change`. */
export interface AssocChangeLayout {
  readonly fields: {
    readonly sac_type: { readonly offset: number };
    readonly sac_state: { readonly offset: number };
  };
}

/**
 * A reader of one stack's notifications: it says whether the reader goes on
 * (`skip`) or the association ended in order (`end`), and throws when the
 * association was aborted.
 */
export function notificationReader(
  constants: AssocChangeConstants,
  layout: AssocChangeLayout,
  name: string,
): (notification: Uint8Array) => "skip" | "end" {
  const typeOffset = layout.fields.sac_type.offset;
  const stateOffset = layout.fields.sac_state.offset;
  return (notification) => {
    const view = new DataView(notification.buffer, notification.byteOffset);
    if (view.getUint16(typeOffset, true) !== constants.SCTP_ASSOC_CHANGE) return "skip";
    const state = view.getUint16(stateOffset, true);
    if (state === constants.SCTP_SHUTDOWN_COMP) return "end";
    if (state === constants.SCTP_COMM_LOST || state === constants.SCTP_CANT_STR_ASSOC) {
      throw new TransportError(`${name}: association aborted (peer ABORT or path failure)`);
    }
    return "skip";
  };
}
