/**
 * Listening and accepting on libc stream sockets, shared by the drivers that
 * use them (kernel SCTP's one-to-one sockets and tcpmux's TCP): the same
 * options, the same accept loop, the same way a shut-down listener ends it.
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
  setIntOption,
} from "../ffi/libc.ts";
import { Errno } from "../ffi/errors.ts";
import type { Established, SocketDriver } from "./driver.ts";
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
