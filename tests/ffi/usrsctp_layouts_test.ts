import {
  sctp_assoc_change,
  sctp_event,
  sctp_initmsg,
  sctp_paddrinfo,
  sctp_paddrparams,
  sctp_rcvinfo,
  sctp_sack_info,
  sctp_sndinfo,
  sctp_status,
  sctp_udpencaps,
  USRSCTP,
} from "../../ffi/libusrsctp.ts";
import { RTLD } from "../../ffi/libdl.ts";
import { aarch64ProbeMissing, assertLayoutsMatchHeaders, type LayoutCheck } from "./_c_layout.ts";
import { needs } from "../_permissions.ts";
import { skipWithReason } from "../deploy/_qemu.ts";

const ignore = needs("write", "run"); // a C probe is compiled and run
const ignoreAarch64 = ignore ||
  skipWithReason("aarch64 layout probes", aarch64ProbeMissing());

const USRSCTP_CHECK: LayoutCheck = {
  headers: ["<usrsctp.h>", "<dlfcn.h>"],
  layouts: [
    sctp_initmsg,
    sctp_sack_info,
    sctp_sndinfo,
    sctp_rcvinfo,
    sctp_event,
    sctp_udpencaps,
    sctp_assoc_change,
    sctp_paddrinfo,
    sctp_paddrparams,
    sctp_status,
  ],
  constants: { ...USRSCTP, ...RTLD },
};

Deno.test(
  "usrsctp struct layouts and constants match <usrsctp.h> and <dlfcn.h>",
  { ignore },
  async () => {
    await assertLayoutsMatchHeaders(USRSCTP_CHECK);
  },
);

Deno.test(
  "usrsctp struct layouts and constants match the arm64 <usrsctp.h> and <dlfcn.h> (cross-compiled, run under qemu)",
  { ignore: ignoreAarch64 },
  async () => {
    await assertLayoutsMatchHeaders(USRSCTP_CHECK, "aarch64");
  },
);
