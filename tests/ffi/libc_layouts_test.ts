import {
  C,
  iovec,
  linger,
  pollfd,
  sockaddr_in,
  sockaddr_in6,
  statx,
  tcp_info,
} from "../../ffi/libc.ts";
import { aarch64ProbeMissing, assertLayoutsMatchHeaders, type LayoutCheck } from "./_c_layout.ts";
import { needs } from "../_permissions.ts";
import { skipWithReason } from "../deploy/_qemu.ts";

const ignore = needs("write", "run"); // a C probe is compiled and run
const ignoreAarch64 = ignore || skipWithReason("aarch64 layout probes", aarch64ProbeMissing());

const LIBC: LayoutCheck = {
  prelude: "#define _GNU_SOURCE",
  headers: [
    "<sys/socket.h>",
    "<sys/mman.h>",
    "<fcntl.h>",
    "<sys/stat.h>",
    "<sys/uio.h>",
    "<netinet/in.h>",
    "<netinet/tcp.h>",
    "<poll.h>",
  ],
  layouts: [sockaddr_in, sockaddr_in6, linger, pollfd, tcp_info, statx, iovec],
  constants: C,
};

Deno.test("libc struct layouts and constants match the C headers", { ignore }, async () => {
  await assertLayoutsMatchHeaders(LIBC);
});

Deno.test(
  "libc struct layouts and constants match the aarch64 C headers (cross-compiled, run under qemu)",
  { ignore: ignoreAarch64 },
  async () => {
    await assertLayoutsMatchHeaders(LIBC, "aarch64");
  },
);
