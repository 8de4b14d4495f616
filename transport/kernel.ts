/**
 * `kernel`: Linux kernel SCTP through libsctp (lksctp-tools), one-to-one
 * style sockets (`socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP)`). Each message
 * is one SCTP user message on its stream; the kernel keeps boundaries and
 * per-stream order, and a message is queued whole by one `sctp_send` call, so
 * senders on several threads need no lock.
 *
 * Needs a kernel with SCTP (`modprobe sctp`); where there is none (containers,
 * this project's build host) use the lab (`deno task lab`) or the usrsctp
 * transport. With `udpEncapsulation` it runs over UDP on `udpPort` (see
 * `kernel_udp.ts`), which also lets usrsctp peers in.
 *
 * @module
 */

import {
  C,
  check,
  getIntOption,
  lastError,
  libc,
  linger,
  nativeError,
  setBufferSizes,
  setIntOption,
  timeval,
} from "../ffi/libc.ts";
import { Errno, type NativeError } from "../ffi/errors.ts";
import {
  libsctp,
  SCTP,
  sctp_assoc_change,
  sctp_assoc_value,
  sctp_event_subscribe,
  sctp_initmsg,
  sctp_sack_info,
  sctp_sndrcvinfo,
  sctp_status,
  sctp_stream_value,
} from "../ffi/libsctp.ts";
import { StructBuffer } from "../ffi/struct.ts";
import type { Channel, Established, ReadinessSource, SocketDriver } from "./driver.ts";
import { connectTo, connectWithoutBlocking, streamEndpoints } from "./libc_stream.ts";
import { ensureUdpTunnel, setRemoteUdpPort } from "./kernel_udp.ts";
import { BufferPool } from "./bytes.ts";
import { fdReadiness } from "./reactor.ts";
import { notificationReader, ReceiveBuffer } from "./sctp_shared.ts";
import { isClosing, STREAM_SCHEDULERS, TransportError } from "./types.ts";
import type {
  AssociationOptions,
  Message,
  OutgoingMessage,
  PathInfo,
  SocketHandle,
} from "./types.ts";

/** What a notification means for the reader: go on, or end; throws on an abort. */
const onNotification = notificationReader(SCTP, sctp_assoc_change, "kernel SCTP");

/** Per-thread scratch: a send or receive allocates only the received message. */
const sendInfo = new StructBuffer(sctp_sndrcvinfo);
const recvInfo = new StructBuffer(sctp_sndrcvinfo);
const recvFlags = new Int32Array(1);
const recvFlagsBytes = new Uint8Array(recvFlags.buffer);
const scratch = new ReceiveBuffer();
const optionLength = new Uint32Array(1);
const optionLengthBytes = new Uint8Array(optionLength.buffer);

function fd(socket: bigint): number {
  return Number(socket);
}

function openSocket(family: number): number {
  const socket = libc().socket(family, C.SOCK_STREAM, C.IPPROTO_SCTP);
  if (socket >= 0) return socket;
  const error = lastError("socket(IPPROTO_SCTP)");
  if (error.errno === Errno.EPROTONOSUPPORT) {
    throw new TransportError(
      "kernel SCTP is unavailable: this kernel has no SCTP protocol (EPROTONOSUPPORT; " +
        "try `modprobe sctp`). Run inside the User-Mode Linux lab (`deno task lab`) " +
        "or use the usrsctp transport.",
      { cause: error },
    );
  }
  throw error;
}

function configure(socket: number, options: Required<AssociationOptions>) {
  const init = new StructBuffer(sctp_initmsg)
    .set("sinit_num_ostreams", options.streams)
    .set("sinit_max_instreams", options.streams);
  check(
    "setsockopt(SCTP_INITMSG)",
    libc().setsockopt(socket, SCTP.SOL_SCTP, SCTP.SCTP_INITMSG, init.bytes, sctp_initmsg.size),
  );
  // data_io fills sinfo_stream on receive; association events tell an abort
  // (COMM_LOST) from an orderly end (SHUTDOWN_COMP).
  const events = new StructBuffer(sctp_event_subscribe)
    .set("sctp_data_io_event", 1)
    .set("sctp_association_event", 1);
  check(
    "setsockopt(SCTP_EVENTS)",
    libc().setsockopt(
      socket,
      SCTP.SOL_SCTP,
      SCTP.SCTP_EVENTS,
      events.bytes,
      sctp_event_subscribe.size,
    ),
  );
  setIntOption(socket, SCTP.SOL_SCTP, SCTP.SCTP_NODELAY, 1, "setsockopt(SCTP_NODELAY)");
  if (options.sackFrequency > 0 || options.sackDelay > 0) {
    // Zeros leave the stack's own values; a one-to-one socket's id is ignored.
    const sack = new StructBuffer(sctp_sack_info)
      .set("sack_delay", options.sackDelay)
      .set("sack_freq", options.sackFrequency);
    check(
      "setsockopt(SCTP_DELAYED_SACK)",
      libc().setsockopt(
        socket,
        SCTP.SOL_SCTP,
        SCTP.SCTP_DELAYED_SACK,
        sack.bytes,
        sctp_sack_info.size,
      ),
    );
  }
  // A sender blocked for buffer space is not always woken when the
  // association is aborted (seen on 6.1 with several blocked senders), so
  // blocked sends wake up every second to check the association is alive.
  setSendTimeout(socket, 1);
  setBufferSizes(socket, options.sendBufferSize, receiveBufferSize(options.receiveBufferSize));
}

/** Per requested size: whether setting SO_RCVBUF to it leaves a smaller buffer than none. */
const receiveBufferShrinks = new Map<number, boolean>();

/**
 * The SO_RCVBUF to set for a wish of `bytes`: `bytes`, or 0 (keep the
 * default) where setting it would shrink the buffer. Linux caps a request
 * at 2 × net.core.rmem_max (425,984 bytes by default), below kernel SCTP's
 * own default (net.sctp.sctp_rmem[1], 865,500 bytes). In the smaller buffer
 * a 64 KiB message arrives by partial delivery in about 15 reads instead
 * of one or two, and the receiver in the lab moved about half as many bytes.
 * Found once per size on a throwaway socket (the cap is system-wide).
 */
function receiveBufferSize(bytes: number): number {
  if (bytes <= 0) return bytes;
  let shrinks = receiveBufferShrinks.get(bytes);
  if (shrinks === undefined) {
    const socket = openSocket(C.AF_INET);
    try {
      const before = getIntOption(socket, C.SOL_SOCKET, C.SO_RCVBUF, "getsockopt(SO_RCVBUF)");
      setIntOption(socket, C.SOL_SOCKET, C.SO_RCVBUF, bytes, "setsockopt(SO_RCVBUF)");
      shrinks = getIntOption(socket, C.SOL_SOCKET, C.SO_RCVBUF, "getsockopt(SO_RCVBUF)") < before;
    } finally {
      libc().close(socket);
    }
    receiveBufferShrinks.set(bytes, shrinks);
  }
  return shrinks ? 0 : bytes;
}

/** The options of a connecting socket: `configure`'s, and the peer's UDP port. */
function configureClient(socket: number, options: Required<AssociationOptions>) {
  configure(socket, options);
  if (options.udpEncapsulation) setRemoteUdpPort(socket, options.udpPort);
}

/** SO_SNDTIMEO: how long a blocking send, or connect, waits. */
function setSendTimeout(socket: number, seconds: number) {
  const timeout = new StructBuffer(timeval).set("tv_sec", seconds);
  check(
    "setsockopt(SO_SNDTIMEO)",
    libc().setsockopt(socket, C.SOL_SOCKET, C.SO_SNDTIMEO, timeout.bytes, timeval.size),
  );
}

/** Seconds a connect waits for the peer's answer to its INIT. */
const CONNECT_TIMEOUT_S = 10;

/** The error of a connect whose INIT went unanswered, with what to check. */
function unanswered(
  host: string,
  port: number,
  options: Required<AssociationOptions>,
  cause: Error,
) {
  const why = options.udpEncapsulation
    ? `the server is down or takes no SCTP over UDP on UDP port ${options.udpPort} ` +
      "(server: --udp-encapsulation), or the path drops that UDP port"
    : "the server is down, or the path drops SCTP (IP protocol 132: NATs and many firewalls " +
      `do); across such a path use SCTP over UDP: kernel://${host}:${port}?udp=9899, with the ` +
      "server started with --udp-encapsulation";
  return new TransportError(
    `kernel SCTP: no answer from ${host}:${port} within ${CONNECT_TIMEOUT_S} s: ${why}`,
    { cause },
  );
}

/**
 * The error a blocking connect gives for the socket error `code`: the
 * kernel's wait for the association (`sctp_wait_for_connect`) calls every
 * failure a refusal, unless the INIT was sent its last time (ETIMEDOUT).
 */
function connectFailure(code: number): NativeError {
  return nativeError("connect", code === Errno.ETIMEDOUT ? code : Errno.ECONNREFUSED);
}

function readStatus(socket: number): StructBuffer<keyof typeof sctp_status.fields> {
  const status = new StructBuffer(sctp_status);
  optionLength[0] = sctp_status.size;
  check(
    "getsockopt(SCTP_STATUS)",
    libc().getsockopt(socket, SCTP.SOL_SCTP, SCTP.SCTP_STATUS, status.bytes, optionLengthBytes),
  );
  return status;
}

/** Whether the association on `socket` can still carry data (SCTP_STATUS fails once it is gone). */
function alive(socket: number): boolean {
  try {
    return readStatus(socket).get("sstat_state") === SCTP.SCTP_ESTABLISHED;
  } catch {
    return false;
  }
}

const SCHEDULER_TYPES = {
  fcfs: SCTP.SCTP_SS_FCFS,
  prio: SCTP.SCTP_SS_PRIO,
  rr: SCTP.SCTP_SS_RR,
} as const;

/**
 * Selects the association's stream scheduler. Under `prio`, stream i gets
 * priority i (the kernel sends from the lowest value first), so whoever puts
 * a message on a lower stream has it overtake what waits on higher ones.
 */
function setStreamScheduler(
  socket: number,
  scheduler: AssociationOptions["streamScheduler"],
  streams: number,
) {
  if (scheduler === undefined || scheduler === "fcfs") return;
  const value = new StructBuffer(sctp_assoc_value).set("assoc_value", SCHEDULER_TYPES[scheduler]);
  check(
    "setsockopt(SCTP_STREAM_SCHEDULER)",
    libc().setsockopt(
      socket,
      SCTP.SOL_SCTP,
      SCTP.SCTP_STREAM_SCHEDULER,
      value.bytes,
      sctp_assoc_value.size,
    ),
  );
  if (scheduler !== "prio") return;
  const priority = new StructBuffer(sctp_stream_value);
  for (let stream = 0; stream < streams; stream++) {
    priority.set("stream_id", stream).set("stream_value", stream);
    check(
      "setsockopt(SCTP_STREAM_SCHEDULER_VALUE)",
      libc().setsockopt(
        socket,
        SCTP.SOL_SCTP,
        SCTP.SCTP_STREAM_SCHEDULER_VALUE,
        priority.bytes,
        sctp_stream_value.size,
      ),
    );
  }
}

function established(socket: number, options: Required<AssociationOptions>): Established {
  const status = readStatus(socket);
  setStreamScheduler(socket, options.streamScheduler, status.get("sstat_outstrms"));
  return {
    socket: BigInt(socket),
    outboundStreams: status.get("sstat_outstrms"),
    inboundStreams: status.get("sstat_instrms"),
  };
}

/**
 * Grows the send buffer to hold a `length`-byte message. The kernel queues a
 * message only whole and refuses one larger than the buffer (EMSGSIZE); it
 * doubles the size asked for and caps it at 2 × net.core.wmem_max.
 */
function growSendBuffer(socket: number, length: number) {
  setIntOption(socket, C.SOL_SOCKET, C.SO_SNDBUF, length, "setsockopt(SO_SNDBUF)");
  const size = getIntOption(socket, C.SOL_SOCKET, C.SO_SNDBUF, "getsockopt(SO_SNDBUF)");
  if (size < length) {
    throw new RangeError(
      `kernel SCTP message of ${length} bytes exceeds the largest socket send buffer ` +
        `(${size} bytes); raise sysctl net.core.wmem_max or send smaller messages`,
    );
  }
}

let jiffy: number | undefined;

/**
 * Milliseconds per kernel tick (1000 / CONFIG_HZ), the unit of SCTP_STATUS's
 * `spinfo_srtt`. Read once from a throwaway socket: the kernel stores
 * SO_RCVTIMEO in ticks and rounds 1 µs up to one tick, so reading it back
 * gives the tick length.
 */
function jiffyMs(): number {
  if (jiffy === undefined) {
    const socket = openSocket(C.AF_INET);
    try {
      const tv = new StructBuffer(timeval).set("tv_usec", 1);
      check(
        "setsockopt(SO_RCVTIMEO)",
        libc().setsockopt(socket, C.SOL_SOCKET, C.SO_RCVTIMEO, tv.bytes, timeval.size),
      );
      optionLength[0] = timeval.size;
      check(
        "getsockopt(SO_RCVTIMEO)",
        libc().getsockopt(socket, C.SOL_SOCKET, C.SO_RCVTIMEO, tv.clear().bytes, optionLengthBytes),
      );
      jiffy = (tv.get("tv_sec") * 1e6 + tv.get("tv_usec")) / 1000;
    } finally {
      libc().close(socket);
    }
  }
  return jiffy;
}

/**
 * Queues one whole message of `length` bytes from `source`, JS memory or a
 * native address (SCTP takes a message whole or not at all); false when the
 * send buffer has no room (with MSG_DONTWAIT, or once SO_SNDTIMEO ran out).
 * A message larger than the buffer grows it once.
 */
function sendOne(
  socket: number,
  stream: number,
  source: Uint8Array | Deno.PointerValue,
  length: number,
  flags: number,
): boolean {
  if (length === 0) throw new RangeError("kernel SCTP cannot send an empty message");
  sendInfo.set("sinfo_stream", stream);
  let grown = false;
  for (;;) {
    // MSG_NOSIGNAL: a dead association gives EPIPE, not a SIGPIPE.
    const n = source instanceof Uint8Array
      ? libsctp().sctp_send_buffer(
        socket,
        source,
        BigInt(length),
        sendInfo.bytes,
        flags | C.MSG_NOSIGNAL,
      )
      : libsctp().sctp_send(socket, source, BigInt(length), sendInfo.bytes, flags | C.MSG_NOSIGNAL);
    if (n >= 0) return true;
    const error = lastError("sctp_send");
    if (error.errno === Errno.EINTR) continue;
    if (error.errno === Errno.EAGAIN) return false;
    if (error.errno === Errno.EMSGSIZE && !grown) {
      growSendBuffer(socket, length);
      grown = true;
      continue;
    }
    throw error;
  }
}

/**
 * Reads the rest of the current message into `buffer`: the message, `null`
 * at an orderly end, or `undefined` when the socket has nothing more now
 * (with MSG_DONTWAIT; the part read so far stays in `buffer`).
 */
function receiveInto(
  buffer: ReceiveBuffer,
  socket: number,
  flags: number,
  copy?: (bytes: Uint8Array) => Uint8Array<ArrayBuffer>,
): Message | null | undefined {
  for (;;) {
    const space = buffer.space();
    // libsctp passes *msg_flags to recvmsg as its flags, and returns the message's flags there.
    recvFlags[0] = flags;
    const n = libsctp().sctp_recvmsg(
      socket,
      space,
      BigInt(space.byteLength),
      null,
      null,
      recvInfo.bytes,
      recvFlagsBytes,
    );
    if (n < 0) {
      const error = lastError("sctp_recvmsg");
      if (error.errno === Errno.EINTR) continue;
      if (error.errno === Errno.EAGAIN) return undefined;
      throw error;
    }
    if (n === 0) {
      if (buffer.received > 0) {
        throw new TransportError("kernel SCTP: peer closed inside a message");
      }
      return null;
    }
    if (recvFlags[0] & SCTP.MSG_NOTIFICATION) {
      if (onNotification(space.subarray(0, n)) === "end") return null;
      continue;
    }
    buffer.advance(n);
    if (recvFlags[0] & SCTP.MSG_EOR) {
      return buffer.take(recvInfo.get("sinfo_stream"), copy);
    }
  }
}

/** An association's socket driven with MSG_DONTWAIT from the event loop. */
class KernelChannel implements Channel {
  readonly fd: number;
  readonly readiness: ReadinessSource;
  /** Linux has no low-water mark for SCTP's send buffer: epoll says writable at its first free byte. */
  readonly holdOffSendBuffer: number;
  /** Its own buffer: a message in part received waits here for the next call. */
  readonly #buffer = new ReceiveBuffer();
  readonly #pool = new BufferPool();
  readonly #copy = (bytes: Uint8Array) => this.#pool.copy(bytes);

  constructor(handle: SocketHandle, maxMessageSize: number) {
    this.fd = fd(handle.socket);
    this.readiness = fdReadiness(this.fd);
    this.holdOffSendBuffer = getIntOption(
      this.fd,
      C.SOL_SOCKET,
      C.SO_SNDBUF,
      "getsockopt(SO_SNDBUF)",
    );
    this.#buffer.start(maxMessageSize);
  }

  send(messages: readonly OutgoingMessage[], from: number): number {
    let at = from;
    for (; at < messages.length; at++) {
      const message = messages[at];
      const sent = message.address === undefined
        ? sendOne(this.fd, message.stream, message.data, message.data.byteLength, C.MSG_DONTWAIT)
        : sendOne(
          this.fd,
          message.stream,
          Deno.UnsafePointer.create(message.address),
          message.length,
          C.MSG_DONTWAIT,
        );
      if (!sent) break;
    }
    return at - from;
  }

  receive(): Message | null | undefined {
    return receiveInto(this.#buffer, this.fd, C.MSG_DONTWAIT, this.#copy);
  }

  recycle(data: Uint8Array): void {
    this.#pool.give(data);
  }
}

/** The kernel SCTP driver. */
export const kernelDriver: SocketDriver = {
  streamSchedulers: STREAM_SCHEDULERS,

  prepare(options, listenPort) {
    if (options.udpEncapsulation) ensureUdpTunnel(options.udpPort, listenPort !== undefined);
  },

  // A stopped listener ends accept with EINVAL (see `shutdown`).
  ...streamEndpoints({ open: openSocket, configure, establish: established }),

  connect: (host, port, options) =>
    connectTo(host, port, openSocket, (socket, connect) => {
      configureClient(socket, options);
      // A blocking connect gives up with EINPROGRESS once SO_SNDTIMEO runs
      // out, while the kernel retries its INIT for minutes.
      setSendTimeout(socket, CONNECT_TIMEOUT_S);
      try {
        connect();
      } catch (error) {
        if ((error as NativeError).errno !== Errno.EINPROGRESS) throw error;
        throw unanswered(host, port, options, error as Error);
      }
      setSendTimeout(socket, 1);
      return established(socket, options);
    }),

  // The same, waiting for the INIT's answer on the reactor for as long.
  connectOnLoop: (host, port, options) =>
    connectWithoutBlocking(host, port, openSocket, {
      configure: (socket) => configureClient(socket, options),
      timeoutMs: CONNECT_TIMEOUT_S * 1000,
      timedOut: (cause) => unanswered(host, port, options, cause),
      failed: connectFailure,
      establish: (socket) => established(socket, options),
    }),

  send(handle, stream, pointer, length) {
    const socket = fd(handle.socket);
    // SO_SNDTIMEO wakes a send waiting for buffer space every second.
    while (!sendOne(socket, stream, pointer, length, 0)) {
      if (isClosing(handle) || !alive(socket)) {
        throw new TransportError("kernel SCTP: association ended while sending");
      }
    }
  },

  receive(socket, maxMessageSize): Message | null {
    scratch.start(maxMessageSize);
    const message = receiveInto(scratch, fd(socket), 0);
    if (message === undefined) throw new TransportError("kernel SCTP: receive timed out");
    return message;
  },

  channel: (handle, maxMessageSize) => new KernelChannel(handle, maxMessageSize),

  pathInfo(socket): PathInfo {
    const status = readStatus(fd(socket));
    return {
      rttMs: status.get("sstat_primary.spinfo_srtt") * jiffyMs(),
      cwndBytes: status.get("sstat_primary.spinfo_cwnd"),
      mtu: status.get("sstat_primary.spinfo_mtu"),
    };
  },

  shutdown(socket) {
    const s = fd(socket);
    // shutdown() does not wake a thread blocked in accept() on an SCTP
    // listener (its disconnect is unsupported, so the socket stays in
    // LISTEN). listen(fd, 0) stops listening first; the shutdown() below then
    // wakes accept(), which sees a socket no longer listening and fails with
    // EINVAL. On an association, listen() fails (EINVAL) and changes nothing.
    libc().listen(s, 0);
    if (libc().shutdown(s, C.SHUT_RDWR) < 0) {
      const error = lastError("shutdown");
      if (error.errno !== Errno.ENOTCONN) throw error;
    }
  },

  abort(socket) {
    const s = fd(socket);
    // One-to-one sockets refuse sendmsg's SCTP_ABORT flag (EINVAL). Linger 0
    // makes the final close() send ABORT instead; SHUT_RD wakes our reader
    // without telling the peer anything (SHUT_WR would start a graceful SHUTDOWN).
    const l = new StructBuffer(linger).set("l_onoff", 1).set("l_linger", 0);
    libc().setsockopt(s, C.SOL_SOCKET, C.SO_LINGER, l.bytes, linger.size);
    libc().shutdown(s, C.SHUT_RD);
  },

  close(socket) {
    check("close", libc().close(fd(socket)));
  },
};
