import { C, linger, pollfd, sockaddr_in, sockaddr_in6, tcp_info } from "../../ffi/libc.ts";
import { assertLayoutsMatchHeaders } from "./_c_layout.ts";
import { needs } from "../_permissions.ts";

const ignore = needs("write", "run"); // a C probe is compiled and run

Deno.test("libc struct layouts and constants match the C headers", { ignore }, async () => {
  await assertLayoutsMatchHeaders({
    prelude: "#define _GNU_SOURCE",
    headers: [
      "<sys/socket.h>",
      "<sys/mman.h>",
      "<fcntl.h>",
      "<netinet/in.h>",
      "<netinet/tcp.h>",
      "<poll.h>",
    ],
    layouts: [sockaddr_in, sockaddr_in6, linger, pollfd, tcp_info],
    constants: C,
  });
});
