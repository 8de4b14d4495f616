/**
 * Runs the scale-out suites (tests/scale/*_in_lab.ts) inside the User-Mode
 * Linux lab with 3 server namespaces behind the proxy namespace.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runInLab } from "../../scripts/lab/lab.ts";
import { needs } from "../_permissions.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));

Deno.test({
  name: "scale-out inside the lab: IPVS and the proxy's path-hashed upstreams over 3 servers",
  // Inside the lab this host-side driver has nothing to do (and cannot boot another lab).
  ignore: needs("read", "write", "env", "run") || Deno.env.get("LAB") === "1",
  async fn() {
    const suites = [];
    for await (const entry of Deno.readDir(new URL(".", import.meta.url))) {
      if (entry.name.endsWith("_in_lab.ts")) suites.push(`tests/scale/${entry.name}`);
    }
    const result = await runInLab({
      command: [Deno.execPath(), "test", "-P=test", "--no-check", ...suites.sort()],
      cwd: REPO,
      servers: 3,
      output: "piped",
      timeoutSeconds: 600,
    });
    console.log(result.stdout);
    if (result.stderr?.trim()) console.error(result.stderr);
    assert.equal(result.timedOut, false, "the lab run timed out");
    assert.equal(result.code, 0, "tests failed inside the lab (output above)");
  },
});
