/**
 * `tcpmux`: SCTP-like streams framed over one TCP connection — the thesis's
 * "SCTP over TCP" experiment, and a fallback where SCTP cannot pass.
 *
 * Wire format (all integers big-endian):
 * - hello, each side once after connecting: `"FSM1"`, u16 outgoing streams
 *   wanted, u16 incoming streams allowed (each at least 1, or the peer is
 *   refused). Each direction uses the minimum of what the sender wants and
 *   the receiver allows. A listener greets every accepted peer at once and
 *   waits for their hellos together, each for `handshakeTimeout` seconds.
 * - frame: u16 stream, u16 flags (0), u32 length, then `length` bytes: one
 *   whole message. Writers on several threads take `shared` per frame, so
 *   frames never interleave. A receiver keeps at most `maxMessageSize` bytes
 *   of a frame and drops the rest.
 *
 * Unlike SCTP, one TCP byte stream means head-of-line blocking across streams.
 *
 * @module
 */

import {
  C,
  check,
  lastError,
  libc,
  linger,
  setBufferSizes,
  setIntOption,
  tcp_info,
  timeval,
} from "../ffi/libc.ts";
import { Errno, type NativeError } from "../ffi/errors.ts";
import { StructBuffer } from "../ffi/struct.ts";
import type { Established, SocketDriver } from "./driver.ts";
import { acceptGreeted, type Greeting } from "./handshakes.ts";
import { connectWithoutBlocking, streamEndpoints } from "./libc_stream.ts";
import { READABLE, readyWithin } from "./reactor.ts";
import { FRAME_HEADER_BYTES, MAX_MESSAGE_BYTES, TcpmuxChannel } from "./tcpmux_channel.ts";
import { SHARED_CLOSING, SHARED_WRITE_LOCK, TransportError } from "./types.ts";
import type { AssociationOptions, Message, PathInfo, SocketHandle } from "./types.ts";

/** The first four bytes of a tcpmux hello: "FSM1". */
export const TCPMUX_MAGIC = 0x46534d31;
const HELLO_BYTES = 8;
/** Accepted peers that may be waiting to send their hello at once; beyond, the oldest goes. */
const MAX_WAITING_HANDSHAKES = 256;

/** Per-thread scratch for frame headers: sends and receives allocate only message bodies. */
const sendHeader = new Uint8Array(FRAME_HEADER_BYTES);
const sendHeaderView = new DataView(sendHeader.buffer);
const recvHeader = new Uint8Array(FRAME_HEADER_BYTES);
const recvHeaderView = new DataView(recvHeader.buffer);
const discarded = new Uint8Array(64 * 1024);

function fd(socket: bigint): number {
  return Number(socket);
}

/** A TCP socket of `family`. */
function openSocket(family: number): number {
  return check("socket", libc().socket(family, C.SOCK_STREAM, 0));
}

/**
 * Seconds a blocking send waits before it looks whether the association is
 * closing; also how long a blocking connect waits (it then fails with
 * EINPROGRESS), and so the event-loop connect too.
 */
const SEND_TIMEOUT_S = 1;

function configure(socket: number, options: Required<AssociationOptions>) {
  setIntOption(socket, C.IPPROTO_TCP, C.TCP_NODELAY, 1, "setsockopt(TCP_NODELAY)");
  setBufferSizes(socket, options.sendBufferSize, options.receiveBufferSize);
  setTimeoutOption(socket, C.SO_SNDTIMEO, SEND_TIMEOUT_S);
}

/** Sets SO_SNDTIMEO or SO_RCVTIMEO in whole seconds (0: wait forever). */
function setTimeoutOption(socket: number, name: number, seconds: number) {
  const timeout = new StructBuffer(timeval).set("tv_sec", seconds);
  check(
    "setsockopt(timeout)",
    libc().setsockopt(socket, C.SOL_SOCKET, name, timeout.bytes, timeval.size),
  );
}

/**
 * Sends all `length` bytes. SO_SNDTIMEO wakes a send blocked on a full buffer
 * every second; it goes on waiting unless `closing()` says the association
 * is being torn down (a blocked send is not woken by our own SHUT_RD).
 */
function sendAll(
  socket: number,
  pointer: Deno.PointerValue,
  length: number,
  flags: number,
  closing: () => boolean,
) {
  let sent = 0;
  while (sent < length) {
    const n = libc().send(
      socket,
      Deno.UnsafePointer.offset(pointer!, sent),
      BigInt(length - sent),
      flags | C.MSG_NOSIGNAL,
    );
    if (n < 0n) {
      const error = lastError("send");
      if (error.errno === Errno.EINTR) continue;
      if (error.errno === Errno.EAGAIN && !closing()) continue;
      if (error.errno === Errno.EAGAIN) {
        throw new TransportError("tcpmux: association closed while sending");
      }
      throw error;
    }
    sent += Number(n);
  }
}

/** Reads exactly `length` bytes; returns how many arrived before an orderly end. */
function receiveAll(socket: number, into: Uint8Array, length: number): number {
  const base = Deno.UnsafePointer.of(into)!;
  let got = 0;
  while (got < length) {
    const n = libc().recv(
      socket,
      Deno.UnsafePointer.offset(base, got),
      BigInt(length - got),
      C.MSG_WAITALL,
    );
    if (n < 0n) {
      const error = lastError("recv");
      if (error.errno === Errno.EINTR) continue;
      throw error;
    }
    if (n === 0n) return got;
    got += Number(n);
  }
  return got;
}

/** A tcpmux hello: outgoing streams `wanted`, incoming streams `allowed`. */
export function encodeHello(wanted: number, allowed: number): Uint8Array<ArrayBuffer> {
  const hello = new Uint8Array(HELLO_BYTES);
  const view = new DataView(hello.buffer);
  view.setUint32(0, TCPMUX_MAGIC);
  view.setUint16(4, wanted);
  view.setUint16(6, allowed);
  return hello;
}

/** The association the peer's `hello` makes with our `options`; throws for a bad hello. */
function negotiate(
  socket: number,
  hello: Uint8Array,
  options: Required<AssociationOptions>,
): Established {
  const view = new DataView(hello.buffer, hello.byteOffset, HELLO_BYTES);
  if (view.getUint32(0) !== TCPMUX_MAGIC) {
    throw new TransportError("tcpmux: peer is not a tcpmux endpoint (bad hello)");
  }
  const wanted = view.getUint16(4);
  const allowed = view.getUint16(6);
  if (wanted === 0 || allowed === 0) {
    // An association without streams one way could never carry a reply.
    throw new TransportError(
      `tcpmux: peer's hello asks for ${wanted} outgoing and allows ${allowed} incoming ` +
        "streams; each must be at least 1",
    );
  }
  return {
    socket: BigInt(socket),
    outboundStreams: Math.min(options.streams, allowed),
    inboundStreams: Math.min(options.streams, wanted),
  };
}

/** *Blocking*: the client side of the handshake, on a connected socket. */
function exchangeHello(socket: number, options: Required<AssociationOptions>): Established {
  const hello = encodeHello(options.streams, options.streams);
  sendAll(socket, Deno.UnsafePointer.of(hello), hello.byteLength, 0, () => false);
  const peer = new Uint8Array(HELLO_BYTES);
  setTimeoutOption(socket, C.SO_RCVTIMEO, options.handshakeTimeout);
  let got: number;
  try {
    got = receiveAll(socket, peer, HELLO_BYTES);
  } catch (error) {
    if ((error as NativeError).errno !== Errno.EAGAIN) throw error;
    throw new TransportError(`tcpmux: peer sent no hello within ${options.handshakeTimeout} s`);
  }
  if (got < HELLO_BYTES) throw new TransportError("tcpmux: peer closed before its hello");
  setTimeoutOption(socket, C.SO_RCVTIMEO, 0);
  return negotiate(socket, peer, options);
}

/**
 * The client side of the handshake from the event loop: `exchangeHello`
 * with nonblocking calls, waiting for the peer's hello on the reactor. It
 * reads no more than the hello: frames after it are the channel's.
 */
async function exchangeHelloOnLoop(
  socket: number,
  options: Required<AssociationOptions>,
): Promise<Established> {
  sendHello(socket, encodeHello(options.streams, options.streams));
  const peer = new Uint8Array(HELLO_BYTES);
  const deadline = performance.now() + options.handshakeTimeout * 1000;
  for (let got = 0; got < HELLO_BYTES;) {
    const n = libc().recv(
      socket,
      Deno.UnsafePointer.offset(Deno.UnsafePointer.of(peer)!, got),
      BigInt(HELLO_BYTES - got),
      C.MSG_DONTWAIT,
    );
    if (n > 0n) {
      got += Number(n);
      continue;
    }
    if (n === 0n) throw new TransportError("tcpmux: peer closed before its hello");
    const error = lastError("recv");
    if (error.errno === Errno.EINTR) continue;
    if (error.errno !== Errno.EAGAIN) throw error;
    const left = deadline - performance.now();
    if (left <= 0 || !(await readyWithin(socket, READABLE, left))) {
      throw new TransportError(`tcpmux: peer sent no hello within ${options.handshakeTimeout} s`);
    }
  }
  return negotiate(socket, peer, options);
}

/** Sends our hello on a fresh socket: its send buffer is empty, so 8 bytes go out at once. */
function sendHello(socket: number, hello: Uint8Array<ArrayBuffer>) {
  const n = libc().send(
    socket,
    Deno.UnsafePointer.of(hello),
    BigInt(hello.byteLength),
    C.MSG_DONTWAIT | C.MSG_NOSIGNAL,
  );
  if (n < 0n) throw lastError("send");
  if (n < hello.byteLength) throw new TransportError("tcpmux: our hello went out only in part");
}

/** The server side of the handshake, run for many peers at once (see `handshakes.ts`). */
function greeting(options: Required<AssociationOptions>): Greeting {
  const hello = encodeHello(options.streams, options.streams);
  return {
    name: "tcpmux",
    helloBytes: HELLO_BYTES,
    timeoutMs: options.handshakeTimeout * 1000,
    maxWaiting: MAX_WAITING_HANDSHAKES,
    greet(socket) {
      configure(socket, options);
      sendHello(socket, hello);
    },
    complete: (socket, peer) => negotiate(socket, peer, options),
  };
}

/** Reads and drops `length` bytes (the part of a message over the size limit). */
function discard(socket: number, length: number) {
  for (let left = length; left > 0;) {
    const n = receiveAll(socket, discarded, Math.min(left, discarded.byteLength));
    if (n === 0) throw new TransportError("tcpmux: peer closed inside a message");
    left -= n;
  }
}

/** The tcpmux driver. */
export const tcpmuxDriver: SocketDriver = {
  streamSchedulers: ["fcfs"],

  prepare() {},

  ...streamEndpoints({ open: openSocket, configure, establish: exchangeHello }),

  connectOnLoop: (host, port, options) =>
    connectWithoutBlocking(host, port, openSocket, {
      configure: (socket) => configure(socket, options),
      timeoutMs: SEND_TIMEOUT_S * 1000,
      // A blocking connect reports only its EINPROGRESS.
      timedOut: (cause) => cause,
      establish: (socket) => exchangeHelloOnLoop(socket, options),
    }),

  // Peers greet concurrently: a silent one holds up nobody (see `handshakes.ts`).
  accept: (listening, options) => acceptGreeted(listening, greeting(options)),

  send(handle: SocketHandle, stream, pointer, length) {
    if (length > MAX_MESSAGE_BYTES) {
      throw new RangeError(`tcpmux message of ${length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
    }
    const lock = new Int32Array(handle.shared);
    const closing = () => Atomics.load(lock, SHARED_CLOSING) === 1;
    while (Atomics.compareExchange(lock, SHARED_WRITE_LOCK, 0, 1) !== 0) {
      if (closing()) throw new TransportError("tcpmux: association closed while sending");
      Atomics.wait(lock, SHARED_WRITE_LOCK, 1, 1000);
    }
    try {
      sendHeaderView.setUint16(0, stream);
      sendHeaderView.setUint16(2, 0);
      sendHeaderView.setUint32(4, length);
      const socket = fd(handle.socket);
      sendAll(
        socket,
        Deno.UnsafePointer.of(sendHeader),
        FRAME_HEADER_BYTES,
        length > 0 ? C.MSG_MORE : 0,
        closing,
      );
      if (length > 0) sendAll(socket, pointer, length, 0, closing);
    } finally {
      Atomics.store(lock, SHARED_WRITE_LOCK, 0);
      Atomics.notify(lock, SHARED_WRITE_LOCK, 1);
    }
  },

  receive(socket, maxMessageSize): Message | null {
    const s = fd(socket);
    const got = receiveAll(s, recvHeader, FRAME_HEADER_BYTES);
    if (got === 0) return null;
    if (got < FRAME_HEADER_BYTES) {
      throw new TransportError("tcpmux: peer closed inside a frame header");
    }
    const stream = recvHeaderView.getUint16(0);
    const length = recvHeaderView.getUint32(4);
    const data = new Uint8Array(Math.min(length, maxMessageSize));
    if (receiveAll(s, data, data.byteLength) < data.byteLength) {
      throw new TransportError("tcpmux: peer closed inside a message");
    }
    if (length === data.byteLength) return { stream, data };
    discard(s, length - data.byteLength);
    return { stream, data, truncated: true };
  },

  pathInfo(socket): PathInfo {
    const info = new StructBuffer(tcp_info);
    const length = new Uint32Array([tcp_info.size]);
    check(
      "getsockopt(TCP_INFO)",
      libc().getsockopt(
        fd(socket),
        C.IPPROTO_TCP,
        C.TCP_INFO,
        info.bytes,
        new Uint8Array(length.buffer),
      ),
    );
    return {
      rttMs: info.get("tcpi_rtt") / 1000,
      cwndBytes: info.get("tcpi_snd_cwnd") * info.get("tcpi_snd_mss"),
      mtu: info.get("tcpi_pmtu"),
    };
  },

  shutdown(socket) {
    // SHUT_RDWR also wakes a thread blocked in recv or accept; ENOTCONN means already down.
    if (libc().shutdown(fd(socket), C.SHUT_RDWR) < 0) {
      const error = lastError("shutdown");
      if (error.errno !== Errno.ENOTCONN) throw error;
    }
  },

  abort(socket) {
    // Linger 0 turns the final close() into a RST; SHUT_RD wakes our reader without a FIN.
    const l = new StructBuffer(linger).set("l_onoff", 1).set("l_linger", 0);
    libc().setsockopt(fd(socket), C.SOL_SOCKET, C.SO_LINGER, l.bytes, linger.size);
    libc().shutdown(fd(socket), C.SHUT_RD);
  },

  close(socket) {
    check("close", libc().close(fd(socket)));
  },

  channel: (handle, maxMessageSize) => new TcpmuxChannel(handle, maxMessageSize),
};
