/**
 * Messages between an association session and its sender Workers.
 *
 * @module
 */

import type { SocketHandle } from "../transport/types.ts";
import type { SerializedError } from "../transport/worker_protocol.ts";

/** Commands to a sender Worker. */
export type SenderCommand =
  | {
    type: "init";
    handle: SocketHandle;
    stream: number;
    chunkSize: number;
    runBytes: number;
    /** Int32: id + 1 of the response to stop at the next run boundary. */
    cancelled: SharedArrayBuffer;
  }
  | {
    type: "send";
    id: number;
    /** Response head text. */
    head: string;
    /** Body length in bytes. */
    length: number;
    /** Address of the body in a live mapping, or */
    pointer?: bigint;
    /** the body itself (short error texts). */
    text?: Uint8Array;
  };

/** A sender's report when a response is done. */
export interface SenderReport {
  id: number;
  /** Body bytes sent. */
  sent: number;
  cancelled?: boolean;
  error?: SerializedError;
}
