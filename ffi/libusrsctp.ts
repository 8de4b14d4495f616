/**
 * usrsctp, SCTP in user space over UDP encapsulation (RFC 6951), through
 * `libusrsctp.so.2`: the symbols, the constants of `<usrsctp.h>` and the
 * struct layouts the `usrsctp` transport uses. One symbol table, opened
 * lazily once per isolate; every isolate of the process shares the one stack
 * the library holds.
 *
 * usrsctp defines its own socket-option numbers and flags, and many differ
 * from the kernel's `<netinet/sctp.h>` (e.g. `SCTP_INITMSG` 3 vs 2,
 * `MSG_NOTIFICATION` 0x2000 vs 0x8000): use only the values below with
 * usrsctp calls. A failed call sets the calling thread's `errno`; read it with
 * `lastError` from `libc.ts` right after the (synchronous) call.
 *
 * @module
 */

import { pinLibrary } from "./libdl.ts";
import { defineStruct } from "./struct.ts";
import type { Field, StructLayout } from "./struct.ts";

/** libusrsctp's symbols, each commented with its C prototype from `<usrsctp.h>`. */
export const usrsctpSymbols = {
  // void usrsctp_init(uint16_t port,
  //     int (*conn_output)(void *addr, void *buffer, size_t length, uint8_t tos, uint8_t set_df),
  //     void (*debug_printf)(const char *format, ...))
  // Starts the stack's own timer and UDP receive threads (unlike
  // usrsctp_init_nothreads), which blocking calls on other threads rely on.
  usrsctp_init: { parameters: ["u16", "pointer", "pointer"], result: "void" },
  // struct socket *usrsctp_socket(int domain, int type, int protocol,
  //     int (*receive_cb)(...), int (*send_cb)(...), uint32_t sb_threshold, void *ulp_info)
  // Without callbacks the socket works with the blocking calls below.
  usrsctp_socket: {
    parameters: ["i32", "i32", "i32", "pointer", "pointer", "u32", "pointer"],
    result: "pointer",
  },
  // int usrsctp_bind(struct socket *so, struct sockaddr *name, socklen_t namelen)
  usrsctp_bind: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  // int usrsctp_listen(struct socket *so, int backlog)
  usrsctp_listen: { parameters: ["pointer", "i32"], result: "i32" },
  // struct socket *usrsctp_accept(struct socket *so, struct sockaddr *aname, socklen_t *anamelen)
  usrsctp_accept: { parameters: ["pointer", "pointer", "pointer"], result: "pointer" },
  // int usrsctp_connect(struct socket *so, struct sockaddr *name, socklen_t namelen)
  usrsctp_connect: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  // ssize_t usrsctp_sendv(struct socket *so, const void *data, size_t len,
  //     struct sockaddr *to, int addrcnt, void *info, socklen_t infolen,
  //     unsigned int infotype, int flags)
  // `data` is JS memory: a buffer argument costs a fast call, where
  // Deno.UnsafePointer.of costs ~0.2 µs per message.
  usrsctp_sendv: {
    parameters: ["pointer", "buffer", "usize", "pointer", "i32", "buffer", "u32", "u32", "i32"],
    result: "isize",
  },
  // ssize_t usrsctp_recvv(struct socket *so, void *dbuf, size_t len,
  //     struct sockaddr *from, socklen_t *fromlen, void *info, socklen_t *infolen,
  //     unsigned int *infotype, int *msg_flags)
  // *msg_flags is read as the input flags too, and *infolen must be reset
  // before every call (it is overwritten with the length filled in).
  usrsctp_recvv: {
    parameters: [
      "pointer",
      "buffer",
      "usize",
      "pointer",
      "pointer",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "isize",
  },
  // int usrsctp_setsockopt(struct socket *so, int level, int option_name,
  //     const void *option_value, socklen_t option_len)
  usrsctp_setsockopt: { parameters: ["pointer", "i32", "i32", "buffer", "u32"], result: "i32" },
  // int usrsctp_getsockopt(struct socket *so, int level, int option_name,
  //     void *option_value, socklen_t *option_len)
  usrsctp_getsockopt: {
    parameters: ["pointer", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
  // int usrsctp_getladdrs(struct socket *so, sctp_assoc_t id, struct sockaddr **raddrs)
  usrsctp_getladdrs: { parameters: ["pointer", "u32", "buffer"], result: "i32" },
  // void usrsctp_freeladdrs(struct sockaddr *addrs)
  usrsctp_freeladdrs: { parameters: ["pointer"], result: "void" },
  // int usrsctp_shutdown(struct socket *so, int how)
  usrsctp_shutdown: { parameters: ["pointer", "i32"], result: "i32" },
  // void usrsctp_close(struct socket *so)
  usrsctp_close: { parameters: ["pointer"], result: "void" },
  // int usrsctp_set_non_blocking(struct socket *so, int onoff)
  // Socket-wide (SS_NBIO): usrsctp_sendv and usrsctp_recvv then fail with
  // EWOULDBLOCK (EAGAIN) instead of waiting, whichever thread calls them.
  // usrsctp_sendv ignores MSG_DONTWAIT, so this is the only way to send
  // without blocking.
  usrsctp_set_non_blocking: { parameters: ["pointer", "i32"], result: "i32" },
  // int usrsctp_get_non_blocking(struct socket *so)   (1 or 0; -1 for a null socket)
  usrsctp_get_non_blocking: { parameters: ["pointer"], result: "i32" },
  // int usrsctp_set_upcall(struct socket *so,
  //     void (*upcall)(struct socket *, void *, int), void *arg)
  // The stack calls `upcall` on its own threads (UDP receive, timer) after
  // each packet for the socket's association that leaves it readable,
  // writable or in error, with no lock held. A null `upcall` stops further
  // calls, but not one another thread has already begun: the function and
  // its argument must stay valid after it is unset (see `usrsctp_readiness.ts`).
  usrsctp_set_upcall: { parameters: ["pointer", "function", "pointer"], result: "i32" },
  // int usrsctp_get_events(struct socket *so)
  // SCTP_EVENT_READ | SCTP_EVENT_WRITE | SCTP_EVENT_ERROR, as poll would see
  // them: WRITE means some space, not room for a given message.
  usrsctp_get_events: { parameters: ["pointer"], result: "i32" },
  // uint32_t usrsctp_sysctl_get_sctp_udp_tunneling_port(void)
  // The stack's UDP port: 0 until usrsctp_init, so it also tells whether the
  // process-wide stack is running.
  usrsctp_sysctl_get_sctp_udp_tunneling_port: { parameters: [], result: "u32" },
  // void wakeup_one(void *ident)   (user_socket.c; exported, not in <usrsctp.h>)
  // Broadcasts the one process-wide condition every blocked usrsctp_accept
  // waits on. Only a new association signals it otherwise, so this is the
  // only way to wake an accept after usrsctp_shutdown(SHUT_RD) on its
  // listener; `ident` is ignored.
  wakeup_one: { parameters: ["pointer"], result: "void" },
  // int ipport_firstauto, ipport_lastauto   (user_environment.c; exported, not in <usrsctp.h>)
  // The statics' addresses (null where a build does not export them). The
  // stack draws ephemeral SCTP ports from this range, 49152 to 65535; tests
  // narrow it to make a port collision certain.
  ipport_firstauto: { type: "pointer", optional: true },
  ipport_lastauto: { type: "pointer", optional: true },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded symbols of libusrsctp. */
export type Libusrsctp = Deno.DynamicLibrary<typeof usrsctpSymbols>["symbols"];

const LIBRARY = "libusrsctp.so.2";

let loaded: Libusrsctp | undefined;

/** libusrsctp's symbols, opened on first use in this isolate (and pinned: never unmapped). */
export function libusrsctp(): Libusrsctp {
  if (!loaded) {
    let symbols: Libusrsctp;
    try {
      symbols = Deno.dlopen(LIBRARY, usrsctpSymbols).symbols;
    } catch (cause) {
      throw new Error(
        `cannot load ${LIBRARY}, the userspace SCTP library (Debian: apt-get install libusrsctp2)`,
        { cause },
      );
    }
    // The stack's threads run the library's code for good, but Deno closes a
    // library with the isolate that opened it (a Worker ends; `deno test`
    // drops its runtime before the process exits), and the last close would
    // unmap it under them (SIGSEGV).
    pinLibrary(LIBRARY);
    loaded = symbols;
  }
  return loaded;
}

/** usrsctp constants (checked against `<usrsctp.h>` by the layout test). */
export const USRSCTP = {
  IPPROTO_SCTP: 132,
  // socket options (level IPPROTO_SCTP)
  SCTP_INITMSG: 0x03,
  SCTP_NODELAY: 0x04,
  SCTP_EVENT: 0x1e,
  SCTP_RECVRCVINFO: 0x1f,
  SCTP_REMOTE_UDP_ENCAPS_PORT: 0x24,
  SCTP_PEER_ADDR_PARAMS: 0x0a,
  SCTP_DELAYED_SACK: 0x0f,
  SCTP_STATUS: 0x100,
  // sctp_paddrparams.spp_flags
  SPP_PMTUD_DISABLE: 0x10,
  // sctp_assoc_t meaning "the socket's future associations"
  SCTP_FUTURE_ASSOC: 0,
  // msg_flags: usrsctp's own MSG_NOTIFICATION (the kernel's is 0x8000); MSG_EOR is libc's
  MSG_NOTIFICATION: 0x2000,
  MSG_EOR: 0x80,
  // usrsctp_sendv / usrsctp_recvv info types
  SCTP_SENDV_SNDINFO: 1,
  SCTP_RECVV_RCVINFO: 1,
  // snd_flags
  SCTP_ABORT: 0x0200,
  // usrsctp_get_events bits
  SCTP_EVENT_READ: 0x0001,
  SCTP_EVENT_WRITE: 0x0002,
  SCTP_EVENT_ERROR: 0x0004,
  // notification types (sn_type) and SCTP_ASSOC_CHANGE states (sac_state)
  SCTP_ASSOC_CHANGE: 0x0001,
  SCTP_COMM_LOST: 0x0002,
  SCTP_SHUTDOWN_COMP: 0x0004,
  SCTP_CANT_STR_ASSOC: 0x0005,
} as const;

/** `struct sctp_initmsg` (SCTP_INITMSG): streams to ask for on new associations. */
export const sctp_initmsg = defineStruct("sctp_initmsg", 8, {
  sinit_num_ostreams: { offset: 0, type: "u16" },
  sinit_max_instreams: { offset: 2, type: "u16" },
  sinit_max_attempts: { offset: 4, type: "u16" },
  sinit_max_init_timeo: { offset: 6, type: "u16" },
});

/**
 * `struct sctp_sack_info` (SCTP_DELAYED_SACK): when the receiver acknowledges,
 * after `sack_freq` packets or `sack_delay` ms; 0 leaves a value as it is.
 */
export const sctp_sack_info = defineStruct("sctp_sack_info", 12, {
  sack_assoc_id: { offset: 0, type: "u32" },
  sack_delay: { offset: 4, type: "u32" },
  sack_freq: { offset: 8, type: "u32" },
});

/** `struct sctp_sndinfo` (usrsctp_sendv, SCTP_SENDV_SNDINFO): stream and flags of one message. */
export const sctp_sndinfo = defineStruct("sctp_sndinfo", 16, {
  snd_sid: { offset: 0, type: "u16" },
  snd_flags: { offset: 2, type: "u16" },
  snd_ppid: { offset: 4, type: "u32" },
  snd_context: { offset: 8, type: "u32" },
  snd_assoc_id: { offset: 12, type: "u32" },
});

/** `struct sctp_rcvinfo` (usrsctp_recvv, SCTP_RECVV_RCVINFO once SCTP_RECVRCVINFO is on). */
export const sctp_rcvinfo = defineStruct("sctp_rcvinfo", 28, {
  rcv_sid: { offset: 0, type: "u16" },
  rcv_ssn: { offset: 2, type: "u16" },
  rcv_flags: { offset: 4, type: "u16" },
  rcv_ppid: { offset: 8, type: "u32" },
  rcv_tsn: { offset: 12, type: "u32" },
  rcv_cumtsn: { offset: 16, type: "u32" },
  rcv_context: { offset: 20, type: "u32" },
  rcv_assoc_id: { offset: 24, type: "u32" },
});

/** `struct sctp_event` (SCTP_EVENT): turns one notification type on or off. */
export const sctp_event = defineStruct("sctp_event", 8, {
  se_assoc_id: { offset: 0, type: "u32" },
  se_type: { offset: 4, type: "u16" },
  se_on: { offset: 6, type: "u8" },
});

/**
 * `struct sctp_udpencaps` (SCTP_REMOTE_UDP_ENCAPS_PORT): the peer's UDP port,
 * in network byte order. A wildcard address (family set, address all zero)
 * means every peer of the socket.
 */
export const sctp_udpencaps = defineStruct("sctp_udpencaps", 136, {
  "sue_address.ss_family": { offset: 0, type: "u16" },
  sue_assoc_id: { offset: 128, type: "u32" },
  sue_port: { offset: 132, type: "bytes", length: 2 },
});

/**
 * `struct sctp_assoc_change`, the SCTP_ASSOC_CHANGE notification; its first
 * field is every notification's `sn_type`.
 */
export const sctp_assoc_change = defineStruct("sctp_assoc_change", 20, {
  sac_type: { offset: 0, type: "u16" },
  sac_flags: { offset: 2, type: "u16" },
  sac_length: { offset: 4, type: "u32" },
  sac_state: { offset: 8, type: "u16" },
  sac_error: { offset: 10, type: "u16" },
  sac_outbound_streams: { offset: 12, type: "u16" },
  sac_inbound_streams: { offset: 14, type: "u16" },
  sac_assoc_id: { offset: 16, type: "u32" },
});

/**
 * `struct sctp_paddrinfo`: one peer address's path state. usrsctp reports
 * `spinfo_srtt` and `spinfo_rto` in milliseconds, `spinfo_cwnd` and
 * `spinfo_mtu` in bytes.
 */
export const sctp_paddrinfo = defineStruct("sctp_paddrinfo", 152, {
  spinfo_address: { offset: 0, type: "bytes", length: 128 },
  spinfo_assoc_id: { offset: 128, type: "u32" },
  spinfo_state: { offset: 132, type: "i32" },
  spinfo_cwnd: { offset: 136, type: "u32" },
  spinfo_srtt: { offset: 140, type: "u32" },
  spinfo_rto: { offset: 144, type: "u32" },
  spinfo_mtu: { offset: 148, type: "u32" },
});

/**
 * `struct sctp_paddrparams` (SCTP_PEER_ADDR_PARAMS): path settings, here the
 * path MTU with discovery off, for a socket's future associations.
 */
export const sctp_paddrparams = defineStruct("sctp_paddrparams", 152, {
  spp_address: { offset: 0, type: "bytes", length: 128 },
  spp_assoc_id: { offset: 128, type: "u32" },
  spp_hbinterval: { offset: 132, type: "u32" },
  spp_pathmtu: { offset: 136, type: "u32" },
  spp_flags: { offset: 140, type: "u32" },
  spp_ipv6_flowlabel: { offset: 144, type: "u32" },
  spp_pathmaxrxt: { offset: 148, type: "u16" },
  spp_dscp: { offset: 150, type: "u8" },
});

/** The fields of `inner`, placed at `offset` inside an outer struct as `name.field`. */
function embed<P extends string, F extends string>(
  name: P,
  offset: number,
  inner: StructLayout<F>,
): Record<`${P}.${F}`, Field> {
  const fields = Object.entries<Field>(inner.fields).map(([field, f]) => [
    `${name}.${field}`,
    { ...f, offset: offset + f.offset },
  ]);
  return Object.fromEntries(fields) as Record<`${P}.${F}`, Field>;
}

/**
 * `struct sctp_status` (SCTP_STATUS) with its primary path's
 * `struct sctp_paddrinfo` inlined as `sstat_primary.*` fields.
 */
export const sctp_status = defineStruct("sctp_status", 176, {
  sstat_assoc_id: { offset: 0, type: "u32" },
  sstat_state: { offset: 4, type: "i32" },
  sstat_rwnd: { offset: 8, type: "u32" },
  sstat_unackdata: { offset: 12, type: "u16" },
  sstat_penddata: { offset: 14, type: "u16" },
  sstat_instrms: { offset: 16, type: "u16" },
  sstat_outstrms: { offset: 18, type: "u16" },
  sstat_fragmentation_point: { offset: 20, type: "u32" },
  ...embed("sstat_primary", 24, sctp_paddrinfo),
});
