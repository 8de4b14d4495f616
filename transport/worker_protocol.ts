/**
 * Messages between an association's main-thread object and its I/O Workers,
 * and the error (de)serialisation across that boundary.
 *
 * @module
 */

import { NativeError } from "../ffi/errors.ts";
import type { Established } from "./driver.ts";
import { TransportError } from "./types.ts";
import type { AssociationOptions, OutgoingMessage, SocketHandle, TransportName } from "./types.ts";

/**
 * What an acceptor admits: `open` (an Int32 the acceptor increments and the
 * main thread decrements once an association is closed) stays below `limit`
 * (0: no limit); the one more is sent `refusal` on stream 0 and closed.
 */
export interface Admission {
  readonly open: SharedArrayBuffer;
  readonly limit: number;
  readonly refusal?: Uint8Array<ArrayBuffer>;
}

/** Shared counter of received bytes the main thread has not consumed yet. */
export interface ReadCredit {
  readonly buffer: SharedArrayBuffer;
  /** Reading pauses above this many unconsumed bytes (see `creditOf`). */
  readonly limit: number;
}

/**
 * What a received message of `bytes` counts against the read credit: its
 * bytes plus the memory of its objects, so that a flood of tiny messages is
 * bounded by the credit as well as a few large ones.
 */
export function creditOf(bytes: number): number {
  return bytes + 512;
}

/** The first message a Worker gets: its role. */
export type WorkerCommand =
  | {
    role: "connect";
    transport: TransportName;
    host: string;
    port: number;
    options: Required<AssociationOptions>;
  }
  | {
    role: "accept";
    transport: TransportName;
    socket: bigint;
    options: Required<AssociationOptions>;
    admission: Admission;
  }
  | {
    role: "read";
    transport: TransportName;
    socket: bigint;
    credit: ReadCredit;
    maxMessageSize: number;
  }
  | { role: "write"; transport: TransportName; handle: SocketHandle };

/**
 * Batches of messages for a writer to send in order, handed over in one
 * postMessage; the writer reports each batch (by its id) once it is sent.
 */
export interface WriteRequest {
  readonly batches: readonly {
    readonly id: number;
    readonly messages: readonly OutgoingMessage[];
  }[];
}

/** An error as it crosses a Worker boundary. */
export interface SerializedError {
  name: string;
  message: string;
  errno?: number;
  call?: string;
}

/** What Workers report. */
export type WorkerEvent =
  | { type: "established"; established: Established; shared: SharedArrayBuffer }
  | { type: "accept-failed"; error: SerializedError }
  | { type: "refused"; socket: bigint; error: SerializedError }
  | { type: "message"; stream: number; data: Uint8Array<ArrayBuffer>; truncated?: true }
  | { type: "end" }
  | { type: "error"; error: SerializedError }
  | { type: "sent"; id: number; error?: SerializedError };

/** Flattens an error for postMessage. */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof NativeError) {
    return { name: error.name, message: error.message, errno: error.errno, call: error.call };
  }
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: "Error", message: String(error) };
}

/** Rebuilds an error posted by a Worker as the matching class. */
export function deserializeError(error: SerializedError): Error {
  if (error.errno !== undefined && error.call !== undefined) {
    // NativeError builds its message from call, text and errno; recover the text.
    const text = error.message.replace(/^[^:]*: /, "").replace(/ \(errno \d+\)$/, "");
    return new NativeError(error.call, error.errno, text);
  }
  return new TransportError(error.message);
}
