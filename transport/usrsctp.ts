/**
 * `usrsctp`: SCTP in user space over UDP encapsulation (RFC 6951), through
 * libusrsctp, with one-to-one style sockets. Works without kernel SCTP and
 * without privileges (containers, NAT, this project's build host), and talks
 * to kernel SCTP peers that enable UDP encapsulation (`sysctl
 * net.sctp.udp_port=9899 net.sctp.encap_port=9899`).
 *
 * **One stack per process.** usrsctp keeps its whole state in the library,
 * shared by every isolate (Worker) of the process, and sends and receives all
 * its associations' packets through one UDP port:
 *
 * - `listen` runs the stack on `options.udpPort` (default 9899): that is where
 *   peers send to. A later `listen` asking for another UDP port throws.
 * - `connect` in a process that has not listened yet runs the stack on a free
 *   UDP port the OS picks (usrsctp cannot pick one: `usrsctp_init(0)` starts a
 *   stack without any UDP socket).
 * - `connect` sends to the peer's stack at `options.udpPort`. When one process
 *   holds both ends (tests), that is its own stack, which works.
 *
 * The stack starts on the first `prepare` (main thread) and runs until the
 * process exits: `usrsctp_finish` only succeeds once every socket of every
 * isolate is closed, and process exit releases the stack's threads and UDP
 * socket anyway.
 *
 * **Messages.** Each `usrsctp_sendv` queues one whole message or nothing
 * (boundaries and per-stream order are kept), so Workers sending on different
 * streams need no lock. A message must fit in the send buffer, which `send`
 * raises when it does not. Explicit end-of-record mode (`SCTP_EXPLICIT_EOR`)
 * is not used: it would lock the association to one stream until a message is
 * complete, and sends on other streams would fail with EINVAL. SCTP has no
 * empty messages.
 *
 * **Data paths.** On the event loop (`channel`), the socket is made
 * nonblocking (`usrsctp_set_non_blocking`): sends and receives go on until
 * one fails with EWOULDBLOCK, and the association then waits for the stack's
 * upcall, a native one that rings a pipe the reactor watches
 * (`usrsctp_readiness.ts`). With `dataPath: "workers"`, the socket stays
 * blocking and a reader and a writer Worker make blocking calls. Clients
 * connect in an I/O Worker either way.
 *
 * @module
 */

import {
  C,
  check,
  copyFromAddress,
  encodeSockaddr,
  errno,
  lastError,
  libc,
  setBufferSizes,
  sockaddrPort,
} from "../ffi/libc.ts";
import { Errno, NativeError } from "../ffi/errors.ts";
import {
  libusrsctp,
  sctp_assoc_change,
  sctp_event,
  sctp_initmsg,
  sctp_paddrparams,
  sctp_rcvinfo,
  sctp_sack_info,
  sctp_sndinfo,
  sctp_status,
  sctp_udpencaps,
  USRSCTP,
} from "../ffi/libusrsctp.ts";
import { StructBuffer } from "../ffi/struct.ts";
import { BufferPool } from "./bytes.ts";
import type { Channel, Established, ReadinessSource, SocketDriver } from "./driver.ts";
import { notificationReader, ReceiveBuffer } from "./sctp_shared.ts";
import { isClosing, LOOPBACK_PATH_MTU, TransportError } from "./types.ts";
import type {
  AssociationOptions,
  Message,
  OutgoingMessage,
  PathInfo,
  SocketHandle,
} from "./types.ts";
import { upcallReadiness } from "./usrsctp_readiness.ts";

/** What a notification means for the reader: go on, or end; throws on an abort. */
const onNotification = notificationReader(USRSCTP, sctp_assoc_change, "usrsctp");

/** Per-thread scratch: a send or receive allocates only the received message. */
const sendInfo = new StructBuffer(sctp_sndinfo);
const recvInfo = new StructBuffer(sctp_rcvinfo);
const recvInfoLength = new Uint32Array(1);
const recvInfoLengthBytes = new Uint8Array(recvInfoLength.buffer);
const recvInfoType = new Uint32Array(1);
const recvInfoTypeBytes = new Uint8Array(recvInfoType.buffer);
const recvFlags = new Int32Array(1);
const recvFlagsBytes = new Uint8Array(recvFlags.buffer);
const scratch = new ReceiveBuffer();
const optionLength = new Uint32Array(1);
const optionLengthBytes = new Uint8Array(optionLength.buffer);
const intOption = new Int32Array(1);
const intOptionBytes = new Uint8Array(intOption.buffer);

/**
 * Per-thread copy of the message being sent from a native address. usrsctp
 * reads the message with plain loads in this process, so a file mapping that
 * shrank under it (a file truncated or rewritten in place) would raise SIGBUS
 * and end the process; `copyFromAddress` fails that one send with EFAULT
 * instead, as the kernel's send calls do. Grown to the largest message sent,
 * never shrunk.
 */
let sendCopy = new Uint8Array(0);
/**
 * The message whose bytes `sendCopy` holds, if one did not fit: a
 * nonblocking send is retried at every wake-up until there is room, and
 * copying 64 KiB for each try would cost more than the send.
 */
let sendCopyOf: object | undefined;

/** Listening sockets of this isolate (the main thread's), which `shutdown` stops differently. */
const listening = new Set<bigint>();

function so(socket: bigint): Deno.PointerObject {
  return Deno.UnsafePointer.create(socket)!;
}

/**
 * Binds a throwaway UDP socket to `port` (0: any free port) and returns the
 * port. usrsctp_init does not report a UDP port it could not bind (the stack
 * then runs without UDP and every association times out), so the port is
 * tried here first; another process may still take it in between.
 */
function probeUdpPort(port: number): number {
  const socket = check("socket(SOCK_DGRAM)", libc().socket(C.AF_INET, C.SOCK_DGRAM, 0));
  try {
    const addr = encodeSockaddr("0.0.0.0", port);
    if (libc().bind(socket, addr, addr.byteLength) < 0) {
      const cause = lastError("bind");
      throw new TransportError(
        `usrsctp: cannot run the SCTP-over-UDP stack on UDP port ${port}: ${cause.message}`,
        { cause },
      );
    }
    optionLength[0] = addr.byteLength;
    check("getsockname", libc().getsockname(socket, addr, optionLengthBytes));
    return sockaddrPort(addr);
  } finally {
    libc().close(socket);
  }
}

/** Socket buffer for the stack's UDP sockets (the kernel caps it at net.core.rmem_max/wmem_max). */
const UDP_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * usrsctp gives its UDP encapsulation sockets the system's default buffers
 * (about 200 KiB), which a burst of a few hundred packets overflows; every
 * dropped packet then costs a retransmission timeout of at least 1 s. The
 * library does not expose those sockets, so they are found among this
 * process's descriptors by type and bound port, and their buffers raised.
 */
function widenUdpBuffers(port: number) {
  const type = new Int32Array(1);
  const length = new Uint32Array(1);
  const address = new Uint8Array(28);
  for (let fd = 3; fd < 1024; fd++) {
    length[0] = 4;
    const isSocket = libc().getsockopt(
      fd,
      C.SOL_SOCKET,
      C.SO_TYPE,
      new Uint8Array(type.buffer),
      new Uint8Array(length.buffer),
    ) === 0;
    if (!isSocket || type[0] !== C.SOCK_DGRAM) continue;
    length[0] = address.byteLength;
    if (libc().getsockname(fd, address, new Uint8Array(length.buffer)) !== 0) continue;
    if (sockaddrPort(address) !== port) continue;
    setBufferSizes(fd, UDP_BUFFER_BYTES, UDP_BUFFER_BYTES);
  }
}

/**
 * The UDP port a process that holds both ends (tests, the demo) should use as
 * `udpPort`: its running stack's port, or else one that is free right now.
 */
export function localUdpPort(): number {
  return libusrsctp().usrsctp_sysctl_get_sctp_udp_tunneling_port() || probeUdpPort(0);
}

function openSocket(family: number): Deno.PointerObject {
  const socket = libusrsctp().usrsctp_socket(
    family,
    C.SOCK_STREAM,
    USRSCTP.IPPROTO_SCTP,
    null,
    null,
    0,
    null,
  );
  if (socket === null) throw lastError("usrsctp_socket");
  return socket;
}

function setOption(
  socket: Deno.PointerObject,
  level: number,
  name: number,
  value: Uint8Array<ArrayBuffer>,
  call: string,
) {
  check(call, libusrsctp().usrsctp_setsockopt(socket, level, name, value, value.byteLength));
}

function setIntOption(
  socket: Deno.PointerObject,
  level: number,
  name: number,
  value: number,
  call: string,
) {
  intOption[0] = value;
  setOption(socket, level, name, intOptionBytes, call);
}

function getIntOption(socket: Deno.PointerObject, level: number, name: number, call: string) {
  optionLength[0] = 4;
  check(
    call,
    libusrsctp().usrsctp_getsockopt(socket, level, name, intOptionBytes, optionLengthBytes),
  );
  return intOption[0];
}

/**
 * The largest path MTU an accepted association is raised to. It keeps cutting
 * messages at 1,444 bytes (see `setPathMtu`), so a larger packet bundles
 * several pieces, and usrsctp hands a packet to the kernel as one buffer per
 * mbuf, at most 32 (MAXLEN_MBUF_CHAIN in its user_socket.c): it drops a
 * longer chain without a word, and again at every retransmission of the same
 * pieces, until the association aborts. A piece above 1,040 bytes is passed
 * by reference, as up to four mbufs (its header, two clusters of the message,
 * padding); smaller ones are copied into whole clusters, one more after each
 * piece passed by reference. 6,144 bytes hold at most five pieces above
 * 1,040 bytes: 28 mbufs at worst. At 16 KiB, the tests' 1,000 concurrent
 * files aborted; at 6,144 bytes a C program on libusrsctp sends 64 KiB
 * messages from an accepted association 1.6 times as fast as at 1,500.
 */
export const ACCEPTED_MAX_PATH_MTU = 6144;

/** The path MTU `options` ask for to a peer at `address` (a sockaddr); 0 for discovery. */
function pathMtuFor(address: Uint8Array, options: Required<AssociationOptions>): number {
  if (options.pathMtu !== "auto") return options.pathMtu;
  return isLoopback(address) ? LOOPBACK_PATH_MTU : 0;
}

/** Whether sockaddr `address` is 127.0.0.0/8 or ::1. */
function isLoopback(address: Uint8Array): boolean {
  const family = new DataView(address.buffer, address.byteOffset).getUint16(0, true);
  if (family === C.AF_INET) return address[4] === 127;
  return family === C.AF_INET6 && address.subarray(8, 23).every((b) => b === 0) &&
    address[23] === 1;
}

/**
 * Turns path MTU discovery off at `pathMtu` bytes (0: leaves it on) on every
 * path of `socket`: a client socket before it connects, or an association a
 * listener accepted. usrsctp 0.9.5 loses a listener's setting on the path it
 * accepts an association from (the peer's source address is added again
 * while the cookie is processed, and that resets the path's flags, so the
 * first packet lowers it to the 1,500 bytes of usrsctp's routes), and it
 * never raises the size it cuts messages at: an accepted association then
 * bundles several 1,444-byte pieces into each packet of `pathMtu` bytes.
 */
function setPathMtu(socket: Deno.PointerObject, pathMtu: number) {
  if (pathMtu === 0) return;
  const params = new StructBuffer(sctp_paddrparams)
    .set("spp_assoc_id", USRSCTP.SCTP_FUTURE_ASSOC)
    .set("spp_pathmtu", pathMtu)
    .set("spp_flags", USRSCTP.SPP_PMTUD_DISABLE);
  // The wildcard address: every path.
  params.slice("spp_address").set(encodeSockaddr("0.0.0.0", 0));
  setOption(
    socket,
    USRSCTP.IPPROTO_SCTP,
    USRSCTP.SCTP_PEER_ADDR_PARAMS,
    params.bytes,
    "usrsctp_setsockopt(SCTP_PEER_ADDR_PARAMS)",
  );
}

/** Socket options of a listener or client; accepted sockets inherit them from their listener. */
function configure(socket: Deno.PointerObject, options: Required<AssociationOptions>) {
  const sctp = USRSCTP.IPPROTO_SCTP;
  const init = new StructBuffer(sctp_initmsg)
    .set("sinit_num_ostreams", options.streams)
    .set("sinit_max_instreams", options.streams);
  setOption(socket, sctp, USRSCTP.SCTP_INITMSG, init.bytes, "usrsctp_setsockopt(SCTP_INITMSG)");
  setIntOption(socket, sctp, USRSCTP.SCTP_NODELAY, 1, "usrsctp_setsockopt(SCTP_NODELAY)");
  setIntOption(socket, sctp, USRSCTP.SCTP_RECVRCVINFO, 1, "usrsctp_setsockopt(SCTP_RECVRCVINFO)");
  // Association events tell an abort (COMM_LOST) from an orderly end (SHUTDOWN_COMP).
  const events = new StructBuffer(sctp_event)
    .set("se_assoc_id", USRSCTP.SCTP_FUTURE_ASSOC)
    .set("se_type", USRSCTP.SCTP_ASSOC_CHANGE)
    .set("se_on", 1);
  setOption(socket, sctp, USRSCTP.SCTP_EVENT, events.bytes, "usrsctp_setsockopt(SCTP_EVENT)");
  if (options.sackFrequency > 0 || options.sackDelay > 0) {
    // Zeros leave the stack's own values (RFC 6458 8.1.19).
    const sack = new StructBuffer(sctp_sack_info)
      .set("sack_assoc_id", USRSCTP.SCTP_FUTURE_ASSOC)
      .set("sack_delay", options.sackDelay)
      .set("sack_freq", options.sackFrequency);
    setOption(
      socket,
      sctp,
      USRSCTP.SCTP_DELAYED_SACK,
      sack.bytes,
      "usrsctp_setsockopt(SCTP_DELAYED_SACK)",
    );
  }
  if (options.sendBufferSize > 0) {
    setIntOption(
      socket,
      C.SOL_SOCKET,
      C.SO_SNDBUF,
      options.sendBufferSize,
      "usrsctp_setsockopt(SO_SNDBUF)",
    );
  }
  if (options.receiveBufferSize > 0) {
    setIntOption(
      socket,
      C.SOL_SOCKET,
      C.SO_RCVBUF,
      options.receiveBufferSize,
      "usrsctp_setsockopt(SO_RCVBUF)",
    );
  }
}

function readStatus(socket: Deno.PointerObject): StructBuffer<keyof typeof sctp_status.fields> {
  const status = new StructBuffer(sctp_status);
  optionLength[0] = sctp_status.size;
  check(
    "usrsctp_getsockopt(SCTP_STATUS)",
    libusrsctp().usrsctp_getsockopt(
      socket,
      USRSCTP.IPPROTO_SCTP,
      USRSCTP.SCTP_STATUS,
      status.bytes,
      optionLengthBytes,
    ),
  );
  return status;
}

function established(socket: Deno.PointerObject, status = readStatus(socket)): Established {
  return {
    socket: BigInt(Deno.UnsafePointer.value(socket)),
    outboundStreams: status.get("sstat_outstrms"),
    inboundStreams: status.get("sstat_instrms"),
  };
}

/** The SCTP port a listener was bound to (usrsctp_bind picks one for port 0). */
function boundPort(socket: Deno.PointerObject): number {
  const addresses = new BigUint64Array(1);
  const count = libusrsctp().usrsctp_getladdrs(
    socket,
    USRSCTP.SCTP_FUTURE_ASSOC,
    new Uint8Array(addresses.buffer),
  );
  if (count < 0) throw lastError("usrsctp_getladdrs");
  const first = Deno.UnsafePointer.create(addresses[0]);
  if (count === 0 || first === null) {
    throw new TransportError("usrsctp: a bound listener has no local address");
  }
  try {
    // sin_port and sin6_port: same offset, network byte order.
    const view = new Deno.UnsafePointerView(first);
    return (view.getUint8(2) << 8) | view.getUint8(3);
  } finally {
    libusrsctp().usrsctp_freeladdrs(first);
  }
}

/**
 * Makes the send buffer hold a `length`-byte message: usrsctp refuses a
 * message larger than the buffer (EMSGSIZE) instead of waiting. Returns
 * whether the buffer was too small.
 */
function raiseSendBuffer(socket: Deno.PointerObject, length: number): boolean {
  const size = getIntOption(socket, C.SOL_SOCKET, C.SO_SNDBUF, "usrsctp_getsockopt(SO_SNDBUF)");
  if (size >= length) return false;
  setIntOption(socket, C.SOL_SOCKET, C.SO_SNDBUF, length, "usrsctp_setsockopt(SO_SNDBUF)");
  return true;
}

/**
 * How many handshakes `connect` tries while the server refuses them. usrsctp
 * draws an ephemeral SCTP port among those its own stack has free, but a
 * server tells associations apart by address and SCTP port, not by the UDP
 * port under them: another process's stack on this host (a proxy beside a
 * client, say) may hold the same port toward the same server, which then
 * aborts the handshake as if nothing listened. A refusal on every attempt is
 * a real one.
 */
const CONNECT_ATTEMPTS = 4;

/** Sets `socket` up as a client of `addr` and connects it (blocking). */
function handshake(
  socket: Deno.PointerObject,
  addr: Uint8Array<ArrayBuffer>,
  options: Required<AssociationOptions>,
): void {
  configure(socket, options);
  setPathMtu(socket, pathMtuFor(addr, options));
  const encaps = new StructBuffer(sctp_udpencaps).set("sue_address.ss_family", C.AF_INET6);
  new DataView(encaps.bytes.buffer).setUint16(
    sctp_udpencaps.fields.sue_port.offset,
    options.udpPort,
    false,
  );
  setOption(
    socket,
    USRSCTP.IPPROTO_SCTP,
    USRSCTP.SCTP_REMOTE_UDP_ENCAPS_PORT,
    encaps.bytes,
    "usrsctp_setsockopt(SCTP_REMOTE_UDP_ENCAPS_PORT)",
  );
  check("usrsctp_connect", libusrsctp().usrsctp_connect(socket, addr, addr.byteLength));
}

/** A refused handshake: the peer answered our INIT or COOKIE-ECHO with an ABORT. */
function isRefusal(error: unknown): boolean {
  return error instanceof NativeError && error.call === "usrsctp_connect" &&
    error.errno === Errno.ECONNREFUSED;
}

/** Calls `body`, closing `socket` if it throws. */
function closingOnError<T>(socket: Deno.PointerObject, body: () => T): T {
  try {
    return body();
  } catch (error) {
    libusrsctp().usrsctp_close(socket);
    throw error;
  }
}

/**
 * Queues one whole message of `length` bytes from `source` on `stream`: true
 * once queued, false when the socket is nonblocking and its send buffer has
 * no room for the message now. JS memory is sent as it is; a native address
 * (a mapped file) is read through `sendCopy` (see there). `message`
 * identifies a message tried again, whose copy is still good.
 */
function sendOne(
  socket: Deno.PointerObject,
  stream: number,
  source: Uint8Array | Deno.PointerValue,
  length: number,
  message?: object,
): boolean {
  if (length === 0) throw new RangeError("usrsctp cannot send an empty message");
  let data: Uint8Array;
  if (source instanceof Uint8Array) data = source;
  else {
    if (sendCopy.byteLength < length) sendCopy = new Uint8Array(length);
    if (message === undefined || sendCopyOf !== message) {
      sendCopyOf = undefined;
      copyFromAddress(sendCopy, source, length);
    }
    data = sendCopy;
  }
  sendInfo.set("snd_sid", stream);
  for (;;) {
    // Queues the whole message at once (a copy) or fails: never a part. A
    // blocking socket first waits until the message fits in the send buffer.
    const n = libusrsctp().usrsctp_sendv(
      socket,
      data,
      BigInt(length),
      null,
      0,
      sendInfo.bytes,
      sctp_sndinfo.size,
      USRSCTP.SCTP_SENDV_SNDINFO,
      0,
    );
    if (n >= 0) {
      sendCopyOf = undefined;
      return true;
    }
    if (errno() === Errno.EAGAIN) {
      if (data === sendCopy) sendCopyOf = message;
      return false;
    }
    const error = lastError("usrsctp_sendv");
    // usrsctp's errno for "this socket has no association (any more)".
    if (error.errno === Errno.ENOENT) {
      throw new TransportError("usrsctp: the association is gone (aborted or closed)", {
        cause: error,
      });
    }
    if (error.errno !== Errno.EMSGSIZE || !raiseSendBuffer(socket, length)) throw error;
  }
}

/**
 * Reads the rest of the current message into `buffer`: the message, `null`
 * at an orderly end, or `undefined` when a nonblocking socket has nothing
 * more now (the part read so far stays in `buffer`).
 */
function receiveInto(
  buffer: ReceiveBuffer,
  socket: Deno.PointerObject,
  limit: number,
  copy?: (bytes: Uint8Array) => Uint8Array<ArrayBuffer>,
): Message | null | undefined {
  for (;;) {
    const space = buffer.space();
    recvInfoLength[0] = sctp_rcvinfo.size;
    recvFlags[0] = 0;
    const n = Number(
      libusrsctp().usrsctp_recvv(
        socket,
        space,
        BigInt(space.byteLength),
        null,
        null,
        recvInfo.bytes,
        recvInfoLengthBytes,
        recvInfoTypeBytes,
        recvFlagsBytes,
      ),
    );
    if (n < 0) {
      if (errno() === Errno.EAGAIN) return undefined;
      throw lastError("usrsctp_recvv");
    }
    if (n === 0) {
      if (buffer.received > 0) throw new TransportError("usrsctp: peer closed inside a message");
      return null;
    }
    buffer.advance(n);
    // A large message (or notification) arrives in several reads.
    if ((recvFlags[0] & USRSCTP.MSG_EOR) === 0) continue;
    if (recvFlags[0] & USRSCTP.MSG_NOTIFICATION) {
      if (onNotification(buffer.current()) === "end") return null;
      buffer.start(limit);
      continue;
    }
    return buffer.take(recvInfo.get("rcv_sid"), copy);
  }
}

/** How often a blocking send polls a socket the event loop made nonblocking. */
const SEND_POLL_MS = 1;
const sendPoll = new Int32Array(new SharedArrayBuffer(4));

/**
 * An association's socket driven from the event loop: nonblocking calls, and
 * the stack's upcall to wait for more data or room.
 */
class UsrsctpChannel implements Channel {
  readonly readiness: ReadinessSource;
  readonly #socket: Deno.PointerObject;
  readonly #limit: number;
  /** Its own buffer: a message in part received waits here for the next call. */
  readonly #buffer = new ReceiveBuffer();
  readonly #pool = new BufferPool();
  readonly #copy = (bytes: Uint8Array) => this.#pool.copy(bytes);

  constructor(handle: SocketHandle, maxMessageSize: number) {
    this.#socket = so(handle.socket);
    this.#limit = maxMessageSize;
    this.#buffer.start(maxMessageSize);
    check(
      "usrsctp_set_non_blocking",
      libusrsctp().usrsctp_set_non_blocking(this.#socket, 1),
    );
    this.readiness = upcallReadiness(this.#socket);
  }

  send(messages: readonly OutgoingMessage[], from: number): number {
    let at = from;
    for (; at < messages.length; at++) {
      const message = messages[at];
      const sent = message.address === undefined
        ? sendOne(this.#socket, message.stream, message.data, message.data.byteLength)
        : sendOne(
          this.#socket,
          message.stream,
          Deno.UnsafePointer.create(message.address),
          message.length,
          message,
        );
      if (!sent) break;
    }
    return at - from;
  }

  receive(): Message | null | undefined {
    return receiveInto(this.#buffer, this.#socket, this.#limit, this.#copy);
  }

  recycle(data: Uint8Array): void {
    this.#pool.give(data);
  }
}

/** The usrsctp driver. */
export const usrsctpDriver: SocketDriver = {
  streamSchedulers: ["fcfs"],

  prepare(options, listenPort) {
    const { udpPort } = options;
    if (!Number.isInteger(udpPort) || udpPort < 1 || udpPort > 65535) {
      throw new RangeError(`udpPort must be an integer from 1 to 65535, got ${udpPort}`);
    }
    // Process-wide, so it also sees a stack another isolate started.
    const running = libusrsctp().usrsctp_sysctl_get_sctp_udp_tunneling_port();
    if (running === 0) {
      const port = probeUdpPort(listenPort === undefined ? 0 : udpPort);
      // No output callback (no AF_CONN sockets), no debug output.
      libusrsctp().usrsctp_init(port, null, null);
      widenUdpBuffers(port);
    } else if (listenPort !== undefined && running !== udpPort) {
      throw new TransportError(
        `usrsctp: this process's SCTP-over-UDP stack already runs on UDP port ${running}, ` +
          `so it cannot listen with udpPort ${udpPort} (one stack per process: ` +
          "listen before connecting, with the same udpPort everywhere)",
      );
    }
  },

  listen(host, port, options) {
    const addr = encodeSockaddr(host, port);
    const socket = openSocket(addr[0] === C.AF_INET ? C.AF_INET : C.AF_INET6);
    return closingOnError(socket, () => {
      configure(socket, options);
      check("usrsctp_bind", libusrsctp().usrsctp_bind(socket, addr, addr.byteLength));
      check("usrsctp_listen", libusrsctp().usrsctp_listen(socket, 511));
      const bound = port === 0 ? boundPort(socket) : port;
      const handle = BigInt(Deno.UnsafePointer.value(socket));
      listening.add(handle);
      return { socket: handle, port: bound };
    });
  },

  accept(listener, options) {
    const socket = libusrsctp().usrsctp_accept(so(listener), null, null);
    if (socket === null) {
      const error = lastError("usrsctp_accept");
      // The listener was stopped by `shutdown` (see there).
      if (error.errno === Errno.ECONNABORTED) return null;
      throw error;
    }
    return closingOnError(socket, () => {
      const status = readStatus(socket);
      const peer = status.slice("sstat_primary.spinfo_address");
      setPathMtu(socket, Math.min(pathMtuFor(peer, options), ACCEPTED_MAX_PATH_MTU));
      return established(socket, status);
    });
  },

  connect(host, port, options) {
    const addr = encodeSockaddr(host, port);
    // Refused sockets stay open until the end: each keeps its port bound, so
    // the stack draws a different one for the next attempt.
    const refused: Deno.PointerObject[] = [];
    try {
      for (;;) {
        const socket = openSocket(addr[0] === C.AF_INET ? C.AF_INET : C.AF_INET6);
        try {
          handshake(socket, addr, options);
        } catch (error) {
          if (isRefusal(error) && refused.length + 1 < CONNECT_ATTEMPTS) {
            refused.push(socket);
            continue;
          }
          libusrsctp().usrsctp_close(socket);
          throw error;
        }
        return closingOnError(socket, () => established(socket));
      }
    } finally {
      for (const socket of refused) libusrsctp().usrsctp_close(socket);
    }
  },

  send(handle, stream, pointer, length) {
    const socket = so(handle.socket);
    // A socket the event loop drives is nonblocking: a Worker holding its
    // handle polls for room, and gives up once the association is closing.
    while (!sendOne(socket, stream, pointer, length)) {
      if (isClosing(handle)) {
        throw new TransportError("usrsctp: association ended while sending");
      }
      Atomics.wait(sendPoll, 0, 0, SEND_POLL_MS);
    }
  },

  receive(socket, maxMessageSize): Message | null {
    scratch.start(maxMessageSize);
    const message = receiveInto(scratch, so(socket), maxMessageSize);
    if (message === undefined) {
      throw new TransportError("usrsctp: a blocking receive found a nonblocking socket");
    }
    return message;
  },

  channel: (handle, maxMessageSize) => new UsrsctpChannel(handle, maxMessageSize),

  pathInfo(socket): PathInfo {
    const status = readStatus(so(socket));
    return {
      rttMs: status.get("sstat_primary.spinfo_srtt"),
      cwndBytes: status.get("sstat_primary.spinfo_cwnd"),
      mtu: status.get("sstat_primary.spinfo_mtu"),
    };
  },

  shutdown(socket) {
    const s = so(socket);
    if (listening.has(socket)) {
      // A blocked usrsctp_accept sleeps on one process-wide condition that
      // only a new association signals. SHUT_RD marks the listener as done;
      // wakeup_one then signals the condition, and accept, seeing the mark,
      // fails with ECONNABORTED.
      check("usrsctp_shutdown", libusrsctp().usrsctp_shutdown(s, C.SHUT_RD));
      libusrsctp().wakeup_one(null);
      return;
    }
    // SHUT_RDWR ends a blocked receive at once and sends SHUTDOWN once the
    // queued messages are delivered. ENOTCONN: the association is gone already.
    if (libusrsctp().usrsctp_shutdown(s, C.SHUT_RDWR) < 0) {
      const error = lastError("usrsctp_shutdown");
      if (error.errno !== Errno.ENOTCONN) throw error;
    }
  },

  abort(socket) {
    const s = so(socket);
    const info = new StructBuffer(sctp_sndinfo).set("snd_flags", USRSCTP.SCTP_ABORT);
    // A nonblocking socket checks for room before it looks at SCTP_ABORT,
    // and a full send queue would refuse the abort with EWOULDBLOCK: abort
    // in blocking mode (it does not wait), then leave the event loop's
    // socket nonblocking again, or its next receive would block the loop.
    const nonblocking = libusrsctp().usrsctp_get_non_blocking(s) === 1;
    if (nonblocking) libusrsctp().usrsctp_set_non_blocking(s, 0);
    // Sends ABORT and frees the association, which wakes its blocked reader
    // and writers; fails harmlessly if it is gone already. usrsctp_sendv
    // refuses a null data pointer even for 0 bytes.
    libusrsctp().usrsctp_sendv(
      s,
      info.bytes,
      0n,
      null,
      0,
      info.bytes,
      sctp_sndinfo.size,
      USRSCTP.SCTP_SENDV_SNDINFO,
      0,
    );
    if (nonblocking) libusrsctp().usrsctp_set_non_blocking(s, 1);
  },

  close(socket) {
    listening.delete(socket);
    const s = so(socket);
    // The event loop unsets its upcall when it lets go of the socket; this
    // makes sure, whatever path ended the association, that no bell rings
    // for a socket nobody owns.
    libusrsctp().usrsctp_set_upcall(s, null, null);
    libusrsctp().usrsctp_close(s);
  },
};
