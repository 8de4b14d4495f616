import {
  C,
  epollEventLayout,
  iovec,
  linger,
  msghdr,
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
    "<sys/epoll.h>",
    "<sys/eventfd.h>",
    "<stdio.h>",
  ],
  layouts: [sockaddr_in, sockaddr_in6, linger, pollfd, tcp_info, statx, iovec, msghdr],
  constants: C,
};

/** The same checks with the `epoll_event` layout of `arch` (it differs between targets). */
const libcOf = (arch: "x86_64" | "aarch64"): LayoutCheck => ({
  ...LIBC,
  layouts: [...LIBC.layouts, epollEventLayout(arch)],
});

Deno.test("libc struct layouts and constants match the C headers", { ignore }, async () => {
  await assertLayoutsMatchHeaders(libcOf("x86_64"));
});

Deno.test(
  "libc struct layouts and constants match the aarch64 C headers (cross-compiled, run under qemu)",
  { ignore: ignoreAarch64 },
  async () => {
    await assertLayoutsMatchHeaders(libcOf("aarch64"), "aarch64");
  },
);
