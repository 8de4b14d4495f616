/**
 * Is the peer's usrsctp stack still running? A killed usrsctp process sends
 * no ABORT, and while its last packets' retransmission timer runs (RTO.min is
 * 1 s) a live association is just as silent, so silence alone cannot tell
 * them apart quickly. But a killed process's UDP port is closed: a datagram
 * sent to it from a connected UDP socket comes back as ICMP port unreachable,
 * which the next non-blocking `recv` reports as ECONNREFUSED. The probe is one
 * byte, which an SCTP stack discards as a malformed packet.
 *
 * Only usrsctp needs this: a killed kernel-SCTP or tcpmux server's kernel
 * aborts the association itself.
 *
 * @module
 */

import { Errno } from "../ffi/errors.ts";
import { C, check, closingOnError, encodeSockaddr, errno, libc } from "../ffi/libc.ts";

/** A connected UDP socket towards a peer's encapsulation port. */
export class UdpLivenessProbe implements Disposable {
  #fd: number;
  readonly #byte = new Uint8Array(1);

  constructor(host: string, udpPort: number) {
    const address = encodeSockaddr(host, udpPort);
    const family = address.byteLength === 16 ? C.AF_INET : C.AF_INET6;
    const fd = check("socket(SOCK_DGRAM)", libc().socket(family, C.SOCK_DGRAM, 0));
    this.#fd = closingOnError(fd, () => {
      check(`connect(UDP ${host}:${udpPort})`, libc().connect(fd, address, address.byteLength));
      return fd;
    });
  }

  /** Sends one probe datagram. */
  send(): void {
    if (this.#fd < 0) return;
    libc().send(this.#fd, Deno.UnsafePointer.of(this.#byte), 1n, C.MSG_NOSIGNAL);
  }

  /** Whether an earlier probe was refused (the peer's port is closed). */
  refused(): boolean {
    if (this.#fd < 0) return false;
    const n = libc().recv(this.#fd, Deno.UnsafePointer.of(this.#byte), 1n, C.MSG_DONTWAIT);
    return n < 0n && errno() === Errno.ECONNREFUSED;
  }

  /** Closes the socket. Safe to call twice. */
  close(): void {
    if (this.#fd >= 0) libc().close(this.#fd);
    this.#fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
