import {
  SCTP,
  sctp_assoc_change,
  sctp_assoc_value,
  sctp_event_subscribe,
  sctp_initmsg,
  sctp_sack_info,
  sctp_sndrcvinfo,
  sctp_status,
  sctp_stream_value,
  sctp_udpencaps,
} from "../../ffi/libsctp.ts";
import { timeval } from "../../ffi/libc.ts";
import { aarch64ProbeMissing, assertLayoutsMatchHeaders, type LayoutCheck } from "./_c_layout.ts";
import { needs } from "../_permissions.ts";
import { skipWithReason } from "../deploy/_qemu.ts";

const ignore = needs("write", "run"); // a C probe is compiled and run
const ignoreAarch64 = ignore ||
  skipWithReason("aarch64 layout probes", aarch64ProbeMissing());

const LIBSCTP: LayoutCheck = {
  headers: ["<sys/socket.h>", "<netinet/sctp.h>"],
  layouts: [
    sctp_initmsg,
    sctp_sack_info,
    sctp_sndrcvinfo,
    sctp_event_subscribe,
    sctp_assoc_change,
    sctp_status,
    sctp_assoc_value,
    sctp_stream_value,
    sctp_udpencaps,
  ],
  constants: SCTP,
};

const TIMEVAL: LayoutCheck = { headers: ["<sys/time.h>"], layouts: [timeval] };

Deno.test("libsctp struct layouts and constants match <netinet/sctp.h>", { ignore }, async () => {
  await assertLayoutsMatchHeaders(LIBSCTP);
});

Deno.test(
  "libsctp struct layouts and constants match the arm64 <netinet/sctp.h> (cross-compiled, run under qemu)",
  { ignore: ignoreAarch64 },
  async () => {
    await assertLayoutsMatchHeaders(LIBSCTP, "aarch64");
  },
);

Deno.test("the timeval layout the kernel transport's SO_RCVTIMEO probe uses matches <sys/time.h>", {
  ignore,
}, async () => {
  await assertLayoutsMatchHeaders(TIMEVAL);
});

Deno.test("the timeval layout matches the aarch64 <sys/time.h> (cross-compiled, run under qemu)", {
  ignore: ignoreAarch64,
}, async () => {
  await assertLayoutsMatchHeaders(TIMEVAL, "aarch64");
});
