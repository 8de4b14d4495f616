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

Deno.test("usrsctp struct layouts and constants match <usrsctp.h> and <dlfcn.h>", async () => {
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
});
