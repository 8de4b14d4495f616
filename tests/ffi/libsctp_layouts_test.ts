import {
  SCTP,
  sctp_assoc_change,
  sctp_assoc_value,
  sctp_event_subscribe,
  sctp_initmsg,
  sctp_sndrcvinfo,
  sctp_status,
  sctp_stream_value,
} from "../../ffi/libsctp.ts";
import { timeval } from "../../ffi/libc.ts";
import { assertLayoutsMatchHeaders } from "./_c_layout.ts";
import { needs } from "../_permissions.ts";

const ignore = needs("write", "run"); // a C probe is compiled and run

Deno.test("libsctp struct layouts and constants match <netinet/sctp.h>", { ignore }, async () => {
  await assertLayoutsMatchHeaders({
    headers: ["<sys/socket.h>", "<netinet/sctp.h>"],
    layouts: [
      sctp_initmsg,
      sctp_sndrcvinfo,
      sctp_event_subscribe,
      sctp_assoc_change,
      sctp_status,
      sctp_assoc_value,
      sctp_stream_value,
    ],
    constants: SCTP,
  });
});

Deno.test("the timeval layout the kernel transport's SO_RCVTIMEO probe uses matches <sys/time.h>", {
  ignore,
}, async () => {
  await assertLayoutsMatchHeaders({ headers: ["<sys/time.h>"], layouts: [timeval] });
});
