/**
 * Listening, accepting and connecting on libc stream sockets, shared by the
 * drivers that use them (kernel SCTP's one-to-one sockets and tcpmux's TCP):
 * the same options, the same accept loop, the same way a shut-down listener
 * ends it, and the same connect on the event loop (`connectWithoutBlocking`).
 *
 * @module
 */

import {
  bindAndListen,
  C,
  check,
  closingOnError,
  encodeSockaddr,
  lastError,
  libc,
  nativeError,
  pollfd,
  setIntOption,
  setNonblocking,
  takeSocketError,
} from "../ffi/libc.ts";
import { Errno, type NativeError } from "../ffi/errors.ts";
import { StructBuffer } from "../ffi/struct.ts";
import type { Established, SocketDriver } from "./driver.ts";
import { forget, readyWithin, WRITABLE } from "./reactor.ts";
import type { AssociationOptions } from "./types.ts";

/** How a driver on libc stream sockets opens, configures and completes a connection. */
export interface StreamSocketKind {
  /** A new socket of `family`. */
  open(family: number): number;
  /** Socket options, set before listen, accept's return and connect. */
  configure(socket: number, options: Required<AssociationOptions>): void;
  /** Completes a connected or accepted socket (negotiation, stream counts). */
  establish(socket: number, options: Required<AssociationOptions>): Established;
}

/** `listen`, `accept` and `connect` of a driver on libc stream sockets. */
export function streamEndpoints(
  kind: StreamSocketKind,
): Pick<SocketDriver, "listen" | "accept" | "connect"> {
  return {
    listen: (host, port, options) =>
      listenOn(host, port, kind.open, (socket) => kind.configure(socket, options)),
    accept: (listening, options) =>
      acceptOn(listening, (socket) => {
        kind.configure(socket, options);
        return kind.establish(socket, options);
      }),
    connect: (host, port, options) =>
      connectTo(host, port, kind.open, (socket, connect) => {
        kind.configure(socket, options);
        connect();
        return kind.establish(socket, options);
      }),
  };
}

/**
 * Opens a socket for `host` with `open(family)`, lets `configure` set its
 * options, then binds and listens; returns the socket and the bound port.
 */
export function listenOn(
  host: string,
  port: number,
  open: (family: number) => number,
  configure: (socket: number) => void,
): { socket: bigint; port: number } {
  const addr = encodeSockaddr(host, port);
  const socket = open(addr[0] === C.AF_INET ? C.AF_INET : C.AF_INET6);
  return closingOnError(socket, () => {
    setIntOption(socket, C.SOL_SOCKET, C.SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)");
    configure(socket);
    return { socket: BigInt(socket), port: bindAndListen(socket, addr) };
  });
}

/**
 * *Blocking*: the next connection on `listening`, set up by `establish`
 * (closed if that throws); `null` once the listener was shut down.
 */
export function acceptOn(
  listening: bigint,
  establish: (socket: number) => Established,
): Established | null {
  const socket = acceptSocket(listening);
  return socket === null ? null : closingOnError(socket, () => establish(socket));
}

/**
 * *Blocking*: the next connected socket on `listening`, or `null` once the
 * listener was shut down, which makes accept fail with EINVAL. With `peer`,
 * the peer's address is written into `peer.address`.
 */
export function acceptSocket(
  listening: bigint,
  peer?: { address: Uint8Array<ArrayBuffer> },
): number | null {
  const length = new Uint32Array(1);
  for (;;) {
    length[0] = peer?.address.byteLength ?? 0;
    const socket = libc().accept(
      Number(listening),
      peer ? Deno.UnsafePointer.of(peer.address) : null,
      peer ? Deno.UnsafePointer.of(length) : null,
    );
    if (socket >= 0) return socket;
    const error = lastError("accept");
    if (error.errno === Errno.EINTR || error.errno === Errno.ECONNABORTED) continue;
    if (error.errno === Errno.EINVAL) return null;
    throw error;
  }
}

/**
 * *Blocking*: opens a socket for `host` with `open(family)` and connects it;
 * `establish` sets it up before the connect (socket options) and after.
 */
export function connectTo(
  host: string,
  port: number,
  open: (family: number) => number,
  establish: (socket: number, connect: () => void) => Established,
): Established {
  const addr = encodeSockaddr(host, port);
  const socket = open(addr[0] === C.AF_INET ? C.AF_INET : C.AF_INET6);
  return closingOnError(
    socket,
    () => establish(socket, () => check("connect", libc().connect(socket, addr, addr.byteLength))),
  );
}

/** How a driver on libc stream sockets connects from the event loop. */
export interface LoopConnect {
  /** Socket options, set before the connect. */
  configure(socket: number): void;
  /** Milliseconds the connect may take: as long as the blocking connect waits. */
  readonly timeoutMs: number;
  /** The error of a connect still in progress at the deadline (`cause`: its EINPROGRESS). */
  timedOut(cause: NativeError): Error;
  /**
   * The error of a connect that failed with the socket error `code`, as a
   * blocking connect reports it. @default the `connect` error of `code`
   */
  failed?(code: number): Error;
  /**
   * Completes the connected socket (negotiation, stream counts) without
   * blocking: nonblocking calls, and waits on `reactor.ts`.
   */
  establish(socket: number): Established | Promise<Established>;
}

/**
 * Opens a socket for `host` with `open(family)` and connects it without
 * blocking the event loop: the socket is nonblocking until connected (then
 * blocking again, as every other socket of ours, for Workers the handle is
 * lent to), and the wait for the answer is a wait on the reactor. Errors are
 * those of a blocking connect: the same `connect` error for a refusal or an
 * unreachable peer, and `timedOut` after the same time. On failure the
 * socket is closed; on success it is no longer watched by the reactor.
 */
export async function connectWithoutBlocking(
  host: string,
  port: number,
  open: (family: number) => number,
  how: LoopConnect,
): Promise<Established> {
  const addr = encodeSockaddr(host, port);
  const socket = open(addr[0] === C.AF_INET ? C.AF_INET : C.AF_INET6);
  try {
    how.configure(socket);
    setNonblocking(socket, true);
    await connected(socket, addr, how);
    setNonblocking(socket, false);
    const established = await how.establish(socket);
    forget(socket);
    return established;
  } catch (error) {
    // Before the close: a later socket may get the same number.
    forget(socket);
    libc().close(socket);
    throw error;
  }
}

/** Starts the connect of nonblocking `socket` and waits until it is made or has failed. */
async function connected(socket: number, addr: Uint8Array<ArrayBuffer>, how: LoopConnect) {
  if (libc().connect(socket, addr, addr.byteLength) === 0) return;
  const inProgress = lastError("connect");
  if (inProgress.errno !== Errno.EINPROGRESS) throw inProgress;
  const failed = how.failed ?? ((code: number) => nativeError("connect", code));
  const deadline = performance.now() + how.timeoutMs;
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0 || !(await readyWithin(socket, WRITABLE, left))) {
      throw how.timedOut(inProgress);
    }
    const code = takeSocketError(socket);
    if (code !== 0) throw failed(code);
    const events = pollNow(socket);
    if (events & C.POLLOUT) return;
    // Ended without an error to tell (no such case is known).
    if (events & (C.POLLERR | C.POLLHUP)) throw failed(Errno.ECONNREFUSED);
    // Otherwise a spurious wake-up: still in progress.
  }
}

const polled = new StructBuffer(pollfd);

/** The events `socket` has now (`poll` with a timeout of 0: it does not wait). */
function pollNow(socket: number): number {
  polled.set("fd", socket).set("events", C.POLLOUT).set("revents", 0);
  check("poll", libc().poll(polled.bytes, 1n, 0));
  return polled.get("revents");
}
