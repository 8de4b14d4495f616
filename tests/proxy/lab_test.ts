/**
 * Runs the proxy's kernel-SCTP suite inside the User-Mode Linux lab, with a
 * 50 ms round trip between proxy and server (25 ms each way on link `ps`).
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runInLab } from "../../scripts/lab/lab.ts";
import { needs } from "../_permissions.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));

Deno.test({
  name:
    "the proxy passes its kernel-SCTP suite inside the lab at 50 ms RTT between proxy and server",
  // Inside the lab this host-side driver has nothing to do (and cannot boot another lab).
  ignore: needs("read", "write", "env", "run") || Deno.env.get("LAB") === "1",
  async fn() {
    const result = await runInLab({
      command: [Deno.execPath(), "test", "-P=test", "--no-check", "tests/proxy/kernel_in_lab.ts"],
      cwd: REPO,
      links: ["ps:delay=25ms"],
      output: "piped",
      timeoutSeconds: 600,
    });
    console.log(result.stdout);
    if (result.stderr?.trim()) console.error(result.stderr);
    assert.equal(result.timedOut, false, "the lab run timed out");
    assert.equal(result.code, 0, "tests failed inside the lab (output above)");
  },
});
