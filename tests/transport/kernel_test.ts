/**
 * Host-side tests of the kernel transport. The host kernel may lack SCTP, so
 * the conformance suite runs inside the User-Mode Linux lab
 * (`kernel_in_lab.ts`); here we check the lab run and the error a host
 * without kernel SCTP gives.
 */

import assert from "node:assert/strict";
import { needs } from "../_permissions.ts";
import { fileURLToPath } from "node:url";
import { connect, listen } from "../../mod.ts";
import { C, libc } from "../../ffi/libc.ts";
import { runInLab } from "../../scripts/lab/lab.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
/** Inside the lab, this file has nothing to do (and cannot start another lab). */
const inLab = !needs("env") && Deno.env.get("LAB") === "1";

function hostHasKernelSctp(): boolean {
  const socket = libc().socket(C.AF_INET, C.SOCK_STREAM, C.IPPROTO_SCTP);
  if (socket < 0) return false;
  libc().close(socket);
  return true;
}

Deno.test({
  name:
    "kernel transport, the server over it, and usrsctp interop pass their suites inside the User-Mode Linux lab",
  ignore: needs("read", "write", "run") || inLab,
  async fn() {
    const result = await runInLab({
      command: [
        Deno.execPath(),
        "test",
        "-P=test",
        "--no-check",
        "tests/transport/kernel_in_lab.ts",
        "tests/server/kernel_in_lab.ts",
        "tests/server/interop_in_lab.ts",
      ],
      cwd: REPO,
      output: "piped",
      timeoutSeconds: 900,
    });
    console.log(result.stdout);
    if (result.stderr?.trim()) console.error(result.stderr);
    assert.equal(result.timedOut, false, "the lab run timed out");
    assert.equal(result.code, 0, "tests failed inside the lab (output above)");
  },
});

Deno.test({
  name: "kernel transport on a host without kernel SCTP fails with an error naming the problem",
  // Where the host does have kernel SCTP there is no such error to check.
  ignore: needs("read") || inLab || hostHasKernelSctp(),
  async fn() {
    const says = (error: Error) => {
      assert.match(error.message, /kernel SCTP is unavailable/);
      assert.match(error.message, /EPROTONOSUPPORT/);
      assert.match(error.message, /lab/);
      assert.match(error.message, /usrsctp/);
      return true;
    };
    await assert.rejects(connect("kernel", "127.0.0.1", 9), says);
    assert.throws(() => listen("kernel", "127.0.0.1", 0), says);
  },
});

Deno.test({
  name:
    "kernel SCTP over UDP on a host without kernel SCTP fails naming the kernel it needs, before any socket",
  ignore: needs("read") || inLab || hostHasKernelSctp(),
  async fn() {
    const says = (error: Error) => {
      assert.match(error.message, /kernel SCTP over UDP needs Linux 5\.11 or later/);
      assert.match(error.message, /modprobe sctp/);
      return true;
    };
    await assert.rejects(
      async () => await connect("kernel", "127.0.0.1", 9, { udpEncapsulation: true }),
      says,
    );
    assert.throws(() => listen("kernel", "127.0.0.1", 0, { udpEncapsulation: true }), says);
  },
});
