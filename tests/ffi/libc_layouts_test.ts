import { C, iovec, linger, sockaddr_in, sockaddr_in6, statx, tcp_info } from "../../ffi/libc.ts";
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
      "<sys/stat.h>",
      "<sys/uio.h>",
      "<netinet/in.h>",
      "<netinet/tcp.h>",
    ],
    layouts: [sockaddr_in, sockaddr_in6, linger, tcp_info, statx, iovec],
    constants: C,
  });
});
