/**
 * What a transport implements: synchronous socket operations over one native
 * library. Calls marked *blocking* run only on Worker threads (see
 * `io_worker.ts`); the others are quick and may run anywhere.
 *
 * @module
 */

import type {
  AssociationOptions,
  Message,
  PathInfo,
  SocketHandle,
  StreamScheduler,
} from "./types.ts";

/** A connected or accepted socket with its negotiated stream counts. */
export interface Established {
  readonly socket: bigint;
  readonly outboundStreams: number;
  readonly inboundStreams: number;
}

/** Synchronous operations of one transport. */
export interface SocketDriver {
  /** The stack stream schedulers this transport can select (`fcfs` is its plain order). */
  readonly streamSchedulers: readonly StreamScheduler[];
  /** Prepares process-wide state (e.g. the usrsctp stack) before any Worker uses the driver. */
  prepare(options: Required<AssociationOptions>, listenPort?: number): void;
  /** Creates, binds and listens; returns the socket and the bound port. */
  listen(
    host: string,
    port: number,
    options: Required<AssociationOptions>,
  ): { socket: bigint; port: number };
  /** *Blocking*: the next association on a listening socket; `null` once `shutdown` was called on it. */
  accept(listening: bigint, options: Required<AssociationOptions>): Established | null;
  /** *Blocking*: connects to `host:port`. */
  connect(host: string, port: number, options: Required<AssociationOptions>): Established;
  /** *Blocking*: sends one whole message. */
  send(handle: SocketHandle, stream: number, pointer: Deno.PointerValue, length: number): void;
  /**
   * *Blocking*: the next whole message, or `null` at an orderly end. A
   * message longer than `maxMessageSize` comes cut to that length, marked
   * `truncated`; the rest of it is read and dropped.
   */
  receive(socket: bigint, maxMessageSize: number): Message | null;
  /** Path information of a live association. */
  pathInfo(socket: bigint): PathInfo;
  /** Graceful shutdown; wakes threads blocked in `receive` or `accept`. */
  shutdown(socket: bigint): void;
  /** Immediate teardown (ABORT/RST); wakes blocked threads. */
  abort(socket: bigint): void;
  /** Releases the socket once no thread uses it. */
  close(socket: bigint): void;
}
