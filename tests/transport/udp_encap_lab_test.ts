/**
 * Runs the SCTP-over-UDP suite (udp_encap_in_lab.ts) inside the User-Mode
 * Linux lab: a router that masquerades and drops SCTP between proxy and
 * kernel-SCTP server.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runInLab } from "../../scripts/lab/lab.ts";
import { needs } from "../_permissions.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));

Deno.test({
  name:
    "kernel SCTP over UDP passes its NAT suite inside the lab (native SCTP refused clearly, 500 files over UDP: kernel and usrsctp proxies, kernel and usrsctp servers)",
  // Inside the lab this host-side driver has nothing to do (and cannot boot another lab).
  ignore: needs("read", "write", "env", "run") || Deno.env.get("LAB") === "1",
  async fn() {
    const result = await runInLab({
      command: [
        Deno.execPath(),
        "test",
        "-P=test",
        "--no-check",
        "tests/transport/udp_encap_in_lab.ts",
      ],
      cwd: REPO,
      output: "piped",
      timeoutSeconds: 600,
    });
    console.log(result.stdout);
    if (result.stderr?.trim()) console.error(result.stderr);
    assert.equal(result.timedOut, false, "the lab run timed out");
    assert.equal(result.code, 0, "tests failed inside the lab (output above)");
  },
});
