/**
 * Linux kernel SCTP through `libsctp.so.1` (lksctp-tools): the symbols, the
 * constants of `<netinet/sctp.h>` and the struct layouts the `kernel`
 * transport uses. Socket-level calls (socket, bind, setsockopt, ...) come from
 * `libc.ts`. One symbol table, opened lazily once per isolate.
 *
 * @module
 */

import { defineStruct } from "./struct.ts";

/** libsctp's symbols, each commented with its C prototype. */
export const libsctpSymbols = {
  // int sctp_send(int s, const void *msg, size_t len,
  //               const struct sctp_sndrcvinfo *sinfo, int flags)
  // Unlike sctp_sendmsg and sctp_sendv, it passes `flags` on to sendmsg(), so
  // MSG_NOSIGNAL works.
  sctp_send: { parameters: ["i32", "pointer", "usize", "buffer", "i32"], result: "i32" },
  // The same for a message in JS memory: a buffer argument costs a fast call,
  // where Deno.UnsafePointer.of costs ~0.2 µs per message.
  sctp_send_buffer: {
    name: "sctp_send",
    parameters: ["i32", "buffer", "usize", "buffer", "i32"],
    result: "i32",
  },
  // int sctp_recvmsg(int s, void *msg, size_t len, struct sockaddr *from,
  //                  socklen_t *fromlen, struct sctp_sndrcvinfo *sinfo, int *msg_flags)
  // *msg_flags is both the recvmsg() flags in and the message's flags out.
  sctp_recvmsg: {
    parameters: ["i32", "buffer", "usize", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded symbols of libsctp. */
export type Libsctp = Deno.DynamicLibrary<typeof libsctpSymbols>["symbols"];

let loaded: Libsctp | undefined;

/** libsctp's symbols, opened on first use in this isolate. */
export function libsctp(): Libsctp {
  if (!loaded) {
    try {
      loaded = Deno.dlopen("libsctp.so.1", libsctpSymbols).symbols;
    } catch (cause) {
      throw new Error(
        "cannot load libsctp.so.1, the kernel SCTP library of lksctp-tools " +
          "(Debian: apt-get install libsctp1)",
        { cause },
      );
    }
  }
  return loaded;
}

/** Kernel SCTP constants (checked against `<netinet/sctp.h>` by the layout test). */
export const SCTP = {
  SOL_SCTP: 132,
  // socket options
  SCTP_INITMSG: 2,
  SCTP_NODELAY: 3,
  SCTP_EVENTS: 11,
  SCTP_STATUS: 14,
  SCTP_DELAYED_SACK: 16,
  SCTP_STREAM_SCHEDULER: 123,
  SCTP_STREAM_SCHEDULER_VALUE: 124,
  // SCTP over UDP (RFC 6951), Linux 5.11+: the peer's UDP port
  SCTP_REMOTE_UDP_ENCAPS_PORT: 132,
  // enum sctp_sched_type: the stack's stream schedulers (Linux 5.0+)
  SCTP_SS_FCFS: 0,
  SCTP_SS_PRIO: 1,
  SCTP_SS_RR: 2,
  // msg_flags
  MSG_EOR: 0x80,
  MSG_NOTIFICATION: 0x8000,
  // notification types (sn_type) and SCTP_ASSOC_CHANGE states (sac_state)
  SCTP_ASSOC_CHANGE: 0x8001,
  SCTP_COMM_LOST: 1,
  // enum sctp_sstat_state: sstat_state of a live association
  SCTP_ESTABLISHED: 4,
  SCTP_SHUTDOWN_COMP: 3,
  SCTP_CANT_STR_ASSOC: 4,
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
 * after `sack_freq` packets (1: every packet) or `sack_delay` ms; 0 leaves a
 * value as it is.
 */
export const sctp_sack_info = defineStruct("sctp_sack_info", 12, {
  sack_assoc_id: { offset: 0, type: "i32" },
  sack_delay: { offset: 4, type: "u32" },
  sack_freq: { offset: 8, type: "u32" },
});

/** `struct sctp_sndrcvinfo`: per-message stream and flags, for sending and receiving. */
export const sctp_sndrcvinfo = defineStruct("sctp_sndrcvinfo", 32, {
  sinfo_stream: { offset: 0, type: "u16" },
  sinfo_ssn: { offset: 2, type: "u16" },
  sinfo_flags: { offset: 4, type: "u16" },
  sinfo_ppid: { offset: 8, type: "u32" },
  sinfo_context: { offset: 12, type: "u32" },
  sinfo_timetolive: { offset: 16, type: "u32" },
  sinfo_tsn: { offset: 20, type: "u32" },
  sinfo_cumtsn: { offset: 24, type: "u32" },
  sinfo_assoc_id: { offset: 28, type: "i32" },
});

/** `struct sctp_assoc_value` (SCTP_STREAM_SCHEDULER and other per-association values). */
export const sctp_assoc_value = defineStruct("sctp_assoc_value", 8, {
  assoc_id: { offset: 0, type: "i32" },
  assoc_value: { offset: 4, type: "u32" },
});

/**
 * `struct sctp_udpencaps` (SCTP_REMOTE_UDP_ENCAPS_PORT, Linux 5.11+): the
 * peer's UDP port, in network byte order. A wildcard address (a known family,
 * address all zero) sets it for the socket's future associations; the kernel
 * refuses an unknown family (0) with EINVAL.
 */
export const sctp_udpencaps = defineStruct("sctp_udpencaps", 144, {
  sue_assoc_id: { offset: 0, type: "i32" },
  "sue_address.ss_family": { offset: 8, type: "u16" },
  sue_port: { offset: 136, type: "bytes", length: 2 },
});

/** `struct sctp_stream_value` (SCTP_STREAM_SCHEDULER_VALUE): a stream's priority or weight. */
export const sctp_stream_value = defineStruct("sctp_stream_value", 8, {
  assoc_id: { offset: 0, type: "i32" },
  stream_id: { offset: 4, type: "u16" },
  stream_value: { offset: 6, type: "u16" },
});

/** `struct sctp_event_subscribe` (SCTP_EVENTS): one on/off byte per event kind. */
export const sctp_event_subscribe = defineStruct("sctp_event_subscribe", 14, {
  sctp_data_io_event: { offset: 0, type: "u8" },
  sctp_association_event: { offset: 1, type: "u8" },
  sctp_address_event: { offset: 2, type: "u8" },
  sctp_send_failure_event: { offset: 3, type: "u8" },
  sctp_peer_error_event: { offset: 4, type: "u8" },
  sctp_shutdown_event: { offset: 5, type: "u8" },
  sctp_partial_delivery_event: { offset: 6, type: "u8" },
  sctp_adaptation_layer_event: { offset: 7, type: "u8" },
  sctp_authentication_event: { offset: 8, type: "u8" },
  sctp_sender_dry_event: { offset: 9, type: "u8" },
  sctp_stream_reset_event: { offset: 10, type: "u8" },
  sctp_assoc_reset_event: { offset: 11, type: "u8" },
  sctp_stream_change_event: { offset: 12, type: "u8" },
  sctp_send_failure_event_event: { offset: 13, type: "u8" },
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
  sac_assoc_id: { offset: 16, type: "i32" },
});

/**
 * `struct sctp_status` (SCTP_STATUS) with its primary path's
 * `struct sctp_paddrinfo` (packed) inlined as `sstat_primary.*` fields.
 * `spinfo_srtt` is in kernel ticks (jiffies: Linux 6.1 copies
 * `transport->srtt` unconverted), `spinfo_rto` in milliseconds.
 */
export const sctp_status = defineStruct("sctp_status", 176, {
  sstat_assoc_id: { offset: 0, type: "i32" },
  sstat_state: { offset: 4, type: "i32" },
  sstat_rwnd: { offset: 8, type: "u32" },
  sstat_unackdata: { offset: 12, type: "u16" },
  sstat_penddata: { offset: 14, type: "u16" },
  sstat_instrms: { offset: 16, type: "u16" },
  sstat_outstrms: { offset: 18, type: "u16" },
  sstat_fragmentation_point: { offset: 20, type: "u32" },
  "sstat_primary.spinfo_assoc_id": { offset: 24, type: "i32" },
  "sstat_primary.spinfo_state": { offset: 156, type: "i32" },
  "sstat_primary.spinfo_cwnd": { offset: 160, type: "u32" },
  "sstat_primary.spinfo_srtt": { offset: 164, type: "u32" },
  "sstat_primary.spinfo_rto": { offset: 168, type: "u32" },
  "sstat_primary.spinfo_mtu": { offset: 172, type: "u32" },
});
