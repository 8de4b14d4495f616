/**
 * TCP on nonblocking libc sockets that wait on `reactor.ts`: a listener and
 * its connections, for the proxy's HTTP/1.1 front.
 *
 * Why not `Deno.listen`: a `Deno.Conn` write of a large body costs the
 * runtime's resource and op machinery on every partial write, and the proxy
 * answered 1 MiB hits at 0.75–0.95× nginx through it; a plain `send` from the
 * same memory, retried on readiness, answers them at nginx's rate
 * (docs/results/performance.md). Calls here never block: each is tried, and
 * only a call that would block waits for the socket to be ready.
 *
 * @module
 */

import {
  C,
  check,
  decodeSockaddr,
  encodeSockaddr,
  errno,
  libc,
  nativeError,
  setIntOption,
  sockaddr_in6,
} from "../ffi/libc.ts";
import { Errno } from "../ffi/errors.ts";
import { listenOn } from "./libc_stream.ts";
import { forget, READABLE, ready, WRITABLE } from "./reactor.ts";

/**
 * accept4 errors after which accepting goes on at once: an interrupted call,
 * and a connection that failed before it could be taken (accept(2): Linux
 * passes the new socket's pending network errors on to accept).
 */
const ACCEPT_AGAIN = new Set<number>([
  Errno.EINTR,
  Errno.ECONNABORTED,
  Errno.EPROTO,
  Errno.ENOPROTOOPT,
  Errno.ENETDOWN,
  Errno.ENETUNREACH,
  Errno.EHOSTDOWN,
  Errno.EHOSTUNREACH,
  Errno.ENONET,
  Errno.EOPNOTSUPP,
]);

/** A call on a listener or connection that was closed (maybe while the call waited). */
export class SocketClosed extends Error {
  /** Always `"SocketClosed"`. */
  override name = "SocketClosed";
}

/** Where and how a `TcpListener` listens. */
export interface TcpListenOptions {
  /** An IP address (or `localhost`). */
  readonly hostname: string;
  /** The TCP port (0: any free port). */
  readonly port: number;
  /** SO_REUSEPORT: beside other listeners on the same port, which share its connections. */
  readonly reusePort?: boolean;
}

/** A listening TCP socket. */
export class TcpListener implements Disposable {
  /** Where it listens (the port the kernel picked, for port 0). */
  readonly addr: Deno.NetAddr;
  #fd: number;
  readonly #peer = new Uint8Array(sockaddr_in6.size);
  readonly #peerLength = new Uint32Array(1);
  readonly #peerLengthBytes = new Uint8Array(this.#peerLength.buffer);

  private constructor(fd: number, addr: Deno.NetAddr) {
    this.#fd = fd;
    this.addr = addr;
  }

  /** Binds and listens; throws the failing call's error (EADDRINUSE, say). */
  static listen(options: TcpListenOptions): TcpListener {
    const { socket, port } = listenOn(options.hostname, options.port, openSocket, (fd) => {
      if (options.reusePort) {
        setIntOption(fd, C.SOL_SOCKET, C.SO_REUSEPORT, 1, "setsockopt(SO_REUSEPORT)");
      }
    });
    const { hostname } = decodeSockaddr(encodeSockaddr(options.hostname, port));
    return new TcpListener(Number(socket), { transport: "tcp", hostname, port });
  }

  /**
   * The next connection (nonblocking, close-on-exec); throws `SocketClosed`
   * once the listener is closed, and the error of a failed accept (EMFILE,
   * say), after which accepting may be tried again.
   */
  async accept(): Promise<TcpSocket> {
    for (;;) {
      const fd = this.#open();
      this.#peerLength[0] = this.#peer.byteLength;
      const socket = libc().accept4(
        fd,
        this.#peer,
        this.#peerLengthBytes,
        C.SOCK_NONBLOCK | C.SOCK_CLOEXEC,
      );
      if (socket >= 0) {
        const { hostname, port } = decodeSockaddr(this.#peer);
        return new TcpSocket(socket, { transport: "tcp", hostname, port });
      }
      const code = errno();
      if (code === Errno.EAGAIN) await ready(fd, READABLE);
      else if (!ACCEPT_AGAIN.has(code)) throw nativeError("accept4", code);
    }
  }

  /** Stops listening; an `accept` waiting meanwhile throws `SocketClosed`. Idempotent. */
  close(): void {
    this.#fd = closeSocket(this.#fd);
  }

  /** Closes the listener, as `close()` does. */
  [Symbol.dispose](): void {
    this.close();
  }

  #open(): number {
    if (this.#fd < 0) throw new SocketClosed("listener closed");
    return this.#fd;
  }
}

/**
 * A connected TCP socket. Reads and writes may run at the same time (one of
 * each); `close` ends both, and a call waiting then throws `SocketClosed`.
 */
export class TcpSocket implements Disposable {
  /** The peer's address. */
  readonly remoteAddr: Deno.NetAddr;
  #fd: number;

  /** Takes `fd`, a connected nonblocking socket, which `close` closes. */
  constructor(fd: number, remoteAddr: Deno.NetAddr) {
    this.#fd = fd;
    this.remoteAddr = remoteAddr;
  }

  /** Reads into `buffer`: the byte count, or `null` once the peer has ended its side. */
  async read(buffer: Uint8Array): Promise<number | null> {
    for (;;) {
      const fd = this.#open();
      const n = Number(libc().read(fd, buffer, BigInt(buffer.byteLength)));
      if (n > 0) return n;
      if (n === 0) return buffer.byteLength === 0 ? 0 : null;
      await this.#wait(fd, READABLE, "read");
    }
  }

  /**
   * Writes as much of `bytes` as the socket takes now, at least one byte
   * (waiting until it takes any); returns how many. The kernel reads `bytes`,
   * so a file's mapping may be written (a file that shrank fails with
   * EFAULT). With `more`, the bytes wait to go out with the next write
   * (MSG_MORE): a head written before its body shares the body's segments.
   */
  async write(bytes: Uint8Array, more = false): Promise<number> {
    const flags = C.MSG_NOSIGNAL | (more ? C.MSG_MORE : 0);
    for (;;) {
      const fd = this.#open();
      const n = Number(libc().send_buffer(fd, bytes, BigInt(bytes.byteLength), flags));
      if (n >= 0) return n;
      await this.#wait(fd, WRITABLE, "send");
    }
  }

  /** TCP_NODELAY: segments go out as written, not held back for an acknowledgement. */
  setNoDelay(on: boolean): void {
    setIntOption(this.#open(), C.IPPROTO_TCP, C.TCP_NODELAY, on ? 1 : 0, "setsockopt(TCP_NODELAY)");
  }

  /** Ends the writing side (the peer reads its end); reading goes on. */
  closeWrite(): void {
    check("shutdown", libc().shutdown(this.#open(), C.SHUT_WR));
  }

  /** Closes the socket. Idempotent. */
  close(): void {
    this.#fd = closeSocket(this.#fd);
  }

  /** Closes the socket, as `close()` does. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** After a failed call: waits if it would have blocked, returns if it was interrupted, else throws. */
  async #wait(fd: number, what: typeof READABLE | typeof WRITABLE, call: string) {
    // errno before any error object: a would-block is the common case, and needs none.
    const code = errno();
    if (code === Errno.EAGAIN) await ready(fd, what);
    else if (code !== Errno.EINTR) throw nativeError(call, code);
  }

  #open(): number {
    if (this.#fd < 0) throw new SocketClosed("connection closed");
    return this.#fd;
  }
}

function openSocket(family: number): number {
  return check(
    "socket",
    libc().socket(family, C.SOCK_STREAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0),
  );
}

/** Stops watching and closes `fd` unless it is closed already (-1); returns -1. */
function closeSocket(fd: number): number {
  if (fd < 0) return -1;
  // Before the close: a socket accepted later may get the same number.
  forget(fd);
  libc().close(fd);
  return -1;
}
