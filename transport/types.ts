/**
 * The association contract every transport implements: messages on numbered
 * streams, with boundaries and per-stream order kept, plus path information
 * for schedulers that need it.
 *
 * @module
 */

import type { TransportName } from "./drivers.ts";

export type { TransportName };

/** One complete message received on a stream. */
export interface Message {
  /** The stream it arrived on. */
  readonly stream: number;
  /**
   * The message's bytes, whole (or cut short: see `truncated`). A large
   * message may be a view of the start of a larger buffer.
   */
  readonly data: Uint8Array<ArrayBuffer>;
  /**
   * Set when the message was longer than `maxMessageSize`: `data` holds its
   * first `maxMessageSize` bytes, and the rest was read and dropped, so the
   * association goes on.
   */
  readonly truncated?: true;
}

/** What the path currently looks like, read from SCTP_STATUS or TCP_INFO. */
export interface PathInfo {
  /** Smoothed round-trip time in milliseconds. */
  readonly rttMs: number;
  /** Congestion window in bytes. */
  readonly cwndBytes: number;
  /** Path MTU in bytes. */
  readonly mtu: number;
}

/** Options for opening an association (connect or listen). */
export interface AssociationOptions {
  /**
   * Outgoing streams to ask for (and incoming streams to allow).
   * @default 8
   */
  streams?: number;
  /**
   * Socket send buffer size in bytes (0 keeps the system default).
   * @default 4194304
   */
  sendBufferSize?: number;
  /**
   * Socket receive buffer size in bytes (0 keeps the system default). Kernel
   * SCTP keeps its own default where the system would cap the request below
   * it (`net.core.rmem_max`; see `transport/kernel.ts`).
   * @default 4194304
   */
  receiveBufferSize?: number;
  /**
   * The UDP port of SCTP over UDP (RFC 6951): the peer's when connecting, this
   * stack's when listening. usrsctp always runs over UDP; kernel SCTP only
   * with `udpEncapsulation`.
   * @default 9899
   */
  udpPort?: number;
  /**
   * kernel only: carry SCTP inside UDP on `udpPort` (Linux 5.11+), to pass
   * NATs and firewalls that drop IP protocol 132. Needs the network
   * namespace's `net.sctp.udp_port` set (see `transport/kernel.ts`).
   * @default false
   */
  udpEncapsulation?: boolean;
  /**
   * kernel only: the stack's own stream scheduler for what waits in the send
   * buffer. `prio` drains lower-numbered streams first (stream i has
   * priority i); `fcfs` keeps the order of sending; `rr` takes streams in turn.
   * @default "fcfs"
   */
  streamScheduler?: StreamScheduler;
  /**
   * The longest message received whole, in bytes. A longer one is delivered
   * cut to this length with `truncated` set (its other bytes are dropped as
   * they arrive), so a peer cannot make this side buffer more.
   * @default 67108864
   */
  maxMessageSize?: number;
  /**
   * tcpmux only: seconds a peer has to send its hello after the TCP
   * connection is made (accepting goes on for others meanwhile).
   * @default 5
   */
  handshakeTimeout?: number;
  /**
   * Seconds sends may wait without a single message going out before the
   * association is aborted (a peer that stopped reading); 0 waits forever.
   * @default 0
   */
  sendTimeout?: number;
  /**
   * usrsctp only: the largest packet an association sends, in bytes, with
   * path MTU discovery off. usrsctp carries SCTP in UDP datagrams and starts
   * its discovery at 1,500 bytes whatever the link, so a 64 KiB message is
   * some 45 packets, each a pass through both stacks. 0
   * leaves discovery on; `"auto"` is `LOOPBACK_PATH_MTU` for a peer at a
   * loopback address, else 0. A larger value suits a LAN with jumbo frames
   * (9000); one above the link's MTU makes the kernel fragment every
   * datagram. A listener applies it to each association it accepts, capped
   * at 6,144 bytes (usrsctp 0.9.5 keeps cutting their messages at 1,444
   * bytes, and drops packets that bundle too many pieces).
   * @default "auto"
   */
  pathMtu?: number | "auto";
  /**
   * SCTP only (kernel and usrsctp): the packets this side receives before it
   * acknowledges them (a SACK) without waiting for `sackDelay`; 1 acknowledges
   * every packet. Fewer acknowledgements cost the sender less per message,
   * but a sender whose window holds fewer than this many packets waits for
   * `sackDelay` each time: with usrsctp at a 16 KiB path MTU, 8 held 64 KiB
   * messages to one per `sackDelay` (300 took 50 s instead of 0.09 s), while
   * 3 and 4 cost nothing. On kernel SCTP, 1 turns delayed acknowledgements
   * off, and `sackDelay` with them (it then reads back as 0); usrsctp keeps
   * it. 0 keeps the stack's own (2, as RFC 9260 asks). A listener's
   * associations take it from the listener.
   * @default 0
   */
  sackFrequency?: number;
  /**
   * SCTP only: milliseconds this side may hold a SACK, at most 500 (RFC
   * 9260's limit); kernel SCTP rounds it up to whole clock ticks (10 ms at
   * HZ 100). 0 keeps the stack's own (200 ms, or the kernel's
   * `net.sctp.sack_timeout`).
   * @default 0
   */
  sackDelay?: number;
  /**
   * Where an established association moves its messages. `event-loop`:
   * nonblocking calls on the main thread, waiting only when the socket
   * buffer is full or empty (on epoll for kernel and tcpmux, on the stack's
   * upcall for usrsctp); a kernel or tcpmux client then connects on the
   * event loop too, starting no Worker (a usrsctp client connects in an I/O
   * Worker). `workers`: blocking calls in a reader and a writer Worker, each
   * message a thread hop (the earlier design, kept for comparison).
   * @default "event-loop"
   */
  dataPath?: DataPath;
}

/**
 * The usrsctp path MTU for peers on this host (`AssociationOptions.pathMtu`
 * "auto"). On loopback, 3,000 messages of 64 KiB from a C program on
 * libusrsctp took 0.75 s at this MTU and 2.1 s at the default 1,500; 16 KiB
 * was as fast as larger ones there, and faster for 1 KiB messages.
 */
export const LOOPBACK_PATH_MTU = 16384;

/** The largest `AssociationOptions.pathMtu`: with usrsctp 0.9.5, 64,000 stalled every transfer. */
export const MAX_PATH_MTU = 63000;

/** Where an association's messages are moved; see `AssociationOptions.dataPath`. */
export type DataPath = "event-loop" | "workers";

/** All data paths, for validation and help texts. */
export const DATA_PATHS: readonly DataPath[] = ["event-loop", "workers"];

/** Options for listening: association options plus what to do with failed peers. */
export interface ListenOptions extends AssociationOptions {
  /**
   * Called for each incoming connection that failed before it became an
   * association (for example a tcpmux peer that sent no hello in time, or a
   * bad one); the listener goes on accepting. Errors are dropped without it.
   */
  onAcceptError?: (error: Error) => void;
  /**
   * Associations of this listener open at once (accepted and not yet
   * closed). One more is refused where it is accepted, before any of its
   * I/O Workers start: it is sent `refusal` on stream 0 (if given), closed
   * a second later, and reported to `onAcceptError`. 0: no limit.
   * @default 0
   */
  maxAssociations?: number;
  /** What a refused association is sent on stream 0 before it is closed. */
  refusal?: Uint8Array<ArrayBuffer>;
}

/** Stream schedulers of the Linux SCTP stack (`SCTP_STREAM_SCHEDULER`). */
export type StreamScheduler = "fcfs" | "prio" | "rr";

/** All stream scheduler names, for validation and help texts. */
export const STREAM_SCHEDULERS: readonly StreamScheduler[] = ["fcfs", "prio", "rr"];

/**
 * A structured-cloneable reference to an open association's socket, for
 * Workers that send on it directly (see `SharedAssociation.handle`).
 */
export interface SocketHandle {
  /** The transport whose driver can send on `socket`. */
  readonly transport: TransportName;
  /** The file descriptor (kernel, tcpmux) or `struct socket *` (usrsctp). */
  readonly socket: bigint;
  /**
   * State shared by every thread using the socket, as Int32 slots:
   * `SHARED_WRITE_LOCK` serialises whole-message writes on byte-stream
   * transports; `SHARED_CLOSING` turns 1 once close or abort has begun, so
   * a send waiting for buffer space gives up instead of waiting forever;
   * `SHARED_SENT` counts messages sent, for the send timeout.
   */
  readonly shared: SharedArrayBuffer;
}

/** Int32 slot of `SocketHandle.shared`: the write lock. */
export const SHARED_WRITE_LOCK = 0;
/** Int32 slot of `SocketHandle.shared`: 1 once the association is closing. */
export const SHARED_CLOSING = 1;
/** Int32 slot of `SocketHandle.shared`: messages the writer has sent (wraps), its progress. */
export const SHARED_SENT = 2;
/** Bytes of `SocketHandle.shared`: one Int32 per slot. */
export const SHARED_BYTES = 12;

/** Whether close or abort has begun on the association of `handle`. */
export function isClosing(handle: SocketHandle): boolean {
  return Atomics.load(new Int32Array(handle.shared), SHARED_CLOSING) === 1;
}

/**
 * One message of a batch: bytes, or `length` bytes at a native address (an
 * `mmap`ed file, sent without a copy into JS memory).
 */
export type OutgoingMessage =
  | { readonly stream: number; readonly data: Uint8Array; readonly address?: undefined }
  | { readonly stream: number; readonly address: bigint; readonly length: number };

/** One association: messages on numbered streams to and from one peer. */
export interface Association extends AsyncDisposable {
  /** The transport carrying it. */
  readonly transport: TransportName;
  /** Negotiated number of outgoing streams (valid stream ids: 0 .. outboundStreams-1). */
  readonly outboundStreams: number;
  /** Negotiated number of incoming streams. */
  readonly inboundStreams: number;
  /** Sends `data` as one message on `stream`. */
  send(stream: number, data: Uint8Array): Promise<void>;
  /**
   * Sends `length` bytes at `pointer` as one message on `stream`, without
   * copying them into JS memory. The memory must stay valid until the promise
   * settles.
   */
  sendFrom(stream: number, pointer: Deno.PointerValue, length: number): Promise<void>;
  /**
   * Sends `messages` in order, as one hand-over to the association's writer
   * (one thread hop for the whole batch). Sends made in the same turn of the
   * event loop are joined into one batch. Bytes and addressed memory must
   * stay unchanged and valid until the promise settles.
   */
  sendBatch(messages: readonly OutgoingMessage[]): Promise<void>;
  /** The next complete message, or `null` once the peer has closed. Rejects on abort. */
  receive(): Promise<Message | null>;
  /**
   * Gives a received message's bytes back: a later message may be received
   * into the same memory, which is cheaper than fresh memory. Call it only
   * once nothing uses `data` (or a view of it) any more. Optional; where the
   * data path cannot reuse memory (I/O Workers) it does nothing.
   */
  recycle(data: Uint8Array): void;
  /** Current path information. */
  pathInfo(): PathInfo;
  /** Sends what is queued, then shuts down gracefully. Safe to call twice. */
  close(): Promise<void>;
  /** Tears the association down at once (SCTP ABORT, TCP RST). Safe to call twice. */
  abort(): Promise<void>;
}

/**
 * An association whose socket Workers may also send on directly, with a
 * driver's `send`. Every association `connect` and `listen` give is one; the
 * public API does not say so, because no public function takes the handle.
 */
export interface SharedAssociation extends Association {
  /**
   * A handle Workers use to send on this association themselves. Each call
   * must be matched by `releaseHandle()` once no Worker uses it any more: the
   * socket is freed only after that, so no Worker ever sends on a reused fd.
   */
  handle(): SocketHandle;
  /** Returns a handle taken with `handle()`. */
  releaseHandle(): void;
}

/** A listening endpoint that yields incoming associations. */
export interface Listener extends AsyncDisposable, AsyncIterable<Association> {
  /** The transport it listens on. */
  readonly transport: TransportName;
  /** The port actually bound (useful after asking for port 0). */
  readonly port: number;
  /** The next association; rejects once the listener is closed. */
  accept(): Promise<Association>;
  /** Stops listening. Safe to call twice. */
  close(): Promise<void>;
}

/** Thrown for transport failures outside a native call (framing, negotiation, closed use). */
export class TransportError extends Error {
  /** Always `"TransportError"`. */
  override name = "TransportError";
}

/** An incoming peer failed its handshake and was refused; the listener goes on. */
export class HandshakeError extends TransportError {
  /** Always `"HandshakeError"`. */
  override name = "HandshakeError";
}
