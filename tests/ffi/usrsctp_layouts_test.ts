import {
  LIBC_EXTRA,
  sctp_assoc_change,
  sctp_event,
  sctp_initmsg,
  sctp_paddrinfo,
  sctp_rcvinfo,
  sctp_sndinfo,
  sctp_status,
  sctp_udpencaps,
  USRSCTP,
} from "../../ffi/libusrsctp.ts";
import { assertLayoutsMatchHeaders } from "./_c_layout.ts";
import { needs } from "../_permissions.ts";

const ignore = needs("write", "run"); // a C probe is compiled and run

Deno.test(
  "usrsctp struct layouts and constants match <usrsctp.h> and <dlfcn.h>",
  { ignore },
  async () => {
    await assertLayoutsMatchHeaders({
      headers: ["<usrsctp.h>", "<dlfcn.h>"],
      layouts: [
        sctp_initmsg,
        sctp_sndinfo,
        sctp_rcvinfo,
        sctp_event,
        sctp_udpencaps,
        sctp_assoc_change,
        sctp_paddrinfo,
        sctp_status,
      ],
      constants: { ...USRSCTP, ...LIBC_EXTRA },
    });
  },
);
