import assert from "node:assert/strict";
import { needs } from "../_permissions.ts";

/**
 * Waits on a closed descriptor, then on a live one, in a process of its own:
 * a reactor that counted the refused socket as watched would keep its
 * epoll_wait, and so the process, alive for ever.
 */
const SCENARIO = `
import { C, check, libc } from "${new URL("../../ffi/libc.ts", import.meta.url).href}";
import { forget, READABLE, ready } from "${
  new URL("../../transport/reactor.ts", import.meta.url).href
}";
const closed = check("eventfd", libc().eventfd(0, C.EFD_CLOEXEC | C.EFD_NONBLOCK));
libc().close(closed);
try {
  ready(closed, READABLE);
  console.log("no error");
} catch (error) {
  console.log(error.call);
}
const live = check("eventfd", libc().eventfd(0, C.EFD_CLOEXEC | C.EFD_NONBLOCK));
const waiting = ready(live, READABLE);
libc().write(live, new Uint8Array(new BigUint64Array([1n]).buffer), 8n);
await waiting;
forget(live);
libc().close(live);
console.log("done");
`;

Deno.test(
  "a descriptor the reactor cannot watch fails its wait at once, and the process still ends",
  { ignore: needs("run", "ffi", "read") },
  async () => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", SCENARIO],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    });
    const { code, stdout, stderr } = await child.output();
    const decoder = new TextDecoder();
    assert.equal(code, 0, decoder.decode(stderr));
    assert.equal(decoder.decode(stdout), "epoll_ctl\ndone\n");
  },
);
