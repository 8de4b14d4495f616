/**
 * Kernel SCTP over UDP (RFC 6951, Linux 5.11+), for paths that drop IP
 * protocol 132 (NATs, home routers, cloud firewalls). Two settings make it:
 *
 * - `net.sctp.udp_port`, per network namespace: the UDP port the kernel
 *   receives encapsulated SCTP on, and sends it from. A socket copies it when
 *   it is created, so it must be set before.
 * - the peer's UDP port, per socket (`SCTP_REMOTE_UDP_ENCAPS_PORT`): set only
 *   on a connecting socket. A server answers each peer from the UDP port its
 *   packets came from (what a NAT made of it), so its sockets are left alone.
 *
 * @module
 */

import { C, lastError, libc } from "../ffi/libc.ts";
import { Errno, type NativeError } from "../ffi/errors.ts";
import { FileDescriptor } from "../ffi/file_descriptor.ts";
import { SCTP, sctp_udpencaps } from "../ffi/libsctp.ts";
import { StructBuffer } from "../ffi/struct.ts";
import { TransportError } from "./types.ts";

const UDP_PORT_SYSCTL = "/proc/sys/net/sctp/udp_port";

/** The command that sets up SCTP over UDP on `port` for this network namespace. */
export function sysctlCommand(port: number): string {
  return `sysctl -w net.sctp.udp_port=${port} net.sctp.encap_port=${port}`;
}

/**
 * `net.sctp.udp_port` of this network namespace. Read through libc: Deno
 * grants /proc/sys only to fully privileged programs.
 */
function readUdpPort(): number {
  let file: FileDescriptor;
  try {
    file = FileDescriptor.open(UDP_PORT_SYSCTL, C.O_RDONLY);
  } catch (cause) {
    if ((cause as NativeError).errno === Errno.ENOENT) {
      throw new TransportError(
        `kernel SCTP over UDP needs Linux 5.11 or later with SCTP loaded (\`modprobe sctp\`): ` +
          `${UDP_PORT_SYSCTL} does not exist`,
        { cause },
      );
    }
    throw cause;
  }
  using sysctl = file;
  const text = new Uint8Array(16);
  const length = sysctl.read(text, 0);
  return Number(new TextDecoder().decode(text.subarray(0, length)).trim());
}

/**
 * Makes sure this network namespace's kernel SCTP runs over UDP: a listener
 * needs `net.sctp.udp_port` to be `port` (where its peers send to), a
 * connecting side any UDP port (it sends from it). Sets it when it is 0 and
 * this process may (root, and Deno grants /proc/sys only with --allow-all);
 * otherwise throws a {@link TransportError} that says what to run.
 */
export function ensureUdpTunnel(port: number, listening: boolean): void {
  const current = readUdpPort();
  if (current === port || (current !== 0 && !listening)) return;
  if (current !== 0) {
    throw new TransportError(
      `kernel SCTP over UDP: this network namespace receives it on UDP port ${current} ` +
        `(net.sctp.udp_port), not ${port}: listen with udp port ${current}, or run ` +
        `\`${sysctlCommand(port)}\``,
    );
  }
  try {
    Deno.writeTextFileSync(UDP_PORT_SYSCTL, String(port));
  } catch (cause) {
    throw new TransportError(
      `kernel SCTP over UDP is off in this network namespace (net.sctp.udp_port is 0) and ` +
        `this process cannot turn it on (${(cause as Error).message}); run as root: ` +
        `\`${sysctlCommand(port)}\``,
      { cause },
    );
  }
}

/**
 * Sends the associations `socket` makes to the peer's UDP port `port`
 * (before `connect`).
 */
export function setRemoteUdpPort(socket: number, port: number): void {
  // Any known family with a zero address means "the whole socket"; AF_INET
  // does for IPv6 sockets too.
  const encaps = new StructBuffer(sctp_udpencaps).set("sue_address.ss_family", C.AF_INET);
  new DataView(encaps.bytes.buffer).setUint16(sctp_udpencaps.fields.sue_port.offset, port, false);
  const result = libc().setsockopt(
    socket,
    SCTP.SOL_SCTP,
    SCTP.SCTP_REMOTE_UDP_ENCAPS_PORT,
    encaps.bytes,
    sctp_udpencaps.size,
  );
  if (result >= 0) return;
  const error = lastError("setsockopt(SCTP_REMOTE_UDP_ENCAPS_PORT)");
  if (error.errno === Errno.ENOPROTOOPT) {
    throw new TransportError(
      "kernel SCTP over UDP needs Linux 5.11 or later (SCTP_REMOTE_UDP_ENCAPS_PORT is unknown)",
      { cause: error },
    );
  }
  throw error;
}
