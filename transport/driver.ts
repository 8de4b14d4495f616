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
  OutgoingMessage,
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
  /**
   * Connects to `host:port` from the event loop, with no Worker and no
   * blocking call: what `connect` does, with the same errors after the same
   * time. Present only beside `channel`, for the event-loop data path.
   */
  connectOnLoop?(
    host: string,
    port: number,
    options: Required<AssociationOptions>,
  ): Promise<Established>;
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
  /**
   * The nonblocking side: the event-loop data path (`loop_association.ts`)
   * moves an association's messages with it on the main thread. Absent: the
   * association's I/O runs in Workers. It makes the socket nonblocking for
   * good, so a Worker holding the association's handle must cope (see `send`).
   */
  channel?(handle: SocketHandle, maxMessageSize: number): Channel;
}

/** What a channel can wait for: data or an end to read, or room to send. */
export type Readiness = "readable" | "writable";

/**
 * How the owner of a nonblocking socket waits once a call would block: the
 * reactor's epoll for file descriptors (`reactor.ts`), the stack's upcall for
 * usrsctp sockets (`usrsctp_readiness.ts`). Wake-ups may be spurious: the
 * owner retries, and waits again if the call would still block.
 */
export interface ReadinessSource {
  /**
   * Resolves once the socket may be `what` (or has an error), or `wake` or
   * `forget` was called. One wait per direction: a second call for the same
   * returns the same wait.
   */
  ready(what: Readiness): Promise<void>;
  /** Resolves every wait now, so the owner looks at its state again. */
  wake(): void;
  /**
   * Stops watching, resolving the waits; the socket may be closed once the
   * result settles (a promise where the source needs time to let go).
   */
  forget(): void | Promise<void>;
}

/**
 * One association's socket driven without blocking. Each call does what it
 * can now and says how far it got; it keeps the state of a message in part
 * sent or received between calls.
 */
export interface Channel {
  /** Where to wait when `send` or `receive` could not go on. */
  readonly readiness: ReadinessSource;
  /**
   * Sends `messages[from]`, then the ones after it, in order, until the
   * socket would block; returns how many went out whole. A message in part
   * sent (on a byte stream) goes on at the next call, which must start at it.
   */
  send(messages: readonly OutgoingMessage[], from: number): number;
  /**
   * The next whole message (cut to the size limit, marked `truncated`),
   * `null` at an orderly end, or `undefined` when none is complete yet.
   */
  receive(): Message | null | undefined;
  /** Takes back a received message's bytes for reuse (see `Association.recycle`). */
  recycle(data: Uint8Array): void;
  /**
   * Set, to the socket's send buffer size in bytes, where `readiness`
   * reports a full socket writable again as soon as any byte of its buffer
   * is free (kernel SCTP): the writer then holds off a full buffer for a
   * while instead (see `send_hold.ts`).
   */
  readonly holdOffSendBuffer?: number;
}
