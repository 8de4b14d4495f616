import {
  SCTP,
  sctp_assoc_change,
  sctp_event_subscribe,
  sctp_initmsg,
  sctp_sndrcvinfo,
  sctp_status,
} from "../../ffi/libsctp.ts";
import { timeval } from "../../ffi/libc.ts";
import { assertLayoutsMatchHeaders } from "./_c_layout.ts";

Deno.test("libsctp struct layouts and constants match <netinet/sctp.h>", async () => {
  await assertLayoutsMatchHeaders({
    headers: ["<sys/socket.h>", "<netinet/sctp.h>"],
    layouts: [sctp_initmsg, sctp_sndrcvinfo, sctp_event_subscribe, sctp_assoc_change, sctp_status],
    constants: SCTP,
  });
});

Deno.test("the timeval layout the kernel transport's SO_RCVTIMEO probe uses matches <sys/time.h>", async () => {
  await assertLayoutsMatchHeaders({ headers: ["<sys/time.h>"], layouts: [timeval] });
});
