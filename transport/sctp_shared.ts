/**
 * What the two SCTP drivers (kernel and usrsctp) share: the buffer a message
 * is reassembled in, and what an association-change notification means.
 * Each library has its own constants, so they come in as arguments.
 *
 * @module
 */

import { TransportError } from "./types.ts";

/** A read never goes into less than this, so a notification always fits whole. */
const MIN_READ_BYTES = 64 * 1024;
/** Larger messages are refused rather than buffered: a hostile peer cannot exhaust memory. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * A per-thread buffer a message is read into piece by piece; it grows by
 * doubling up to {@link MAX_MESSAGE_BYTES}, so only the finished message is
 * allocated per receive.
 */
export class ReceiveBuffer {
  /** The buffer; replaced when it grows. */
  bytes = new Uint8Array(256 * 1024);
  readonly #name: string;

  /** @param name the transport, for the error a too-large message gets */
  constructor(name: string) {
    this.#name = name;
  }

  /** Makes room for the next read after `length` bytes already received. */
  reserve(length: number): void {
    if (this.bytes.byteLength - length >= MIN_READ_BYTES) return;
    if (this.bytes.byteLength >= MAX_MESSAGE_BYTES) {
      throw new TransportError(`${this.#name}: message exceeds ${MAX_MESSAGE_BYTES} bytes`);
    }
    const grown = new Uint8Array(this.bytes.byteLength * 2);
    grown.set(this.bytes.subarray(0, length));
    this.bytes = grown;
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
