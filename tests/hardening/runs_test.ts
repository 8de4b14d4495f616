/**
 * The hardening runs in their bounded forms (`--quick`): what they count as
 * never allowed must stay at zero. The long forms are run by hand:
 * `deno task harden <run>`.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runKill } from "../../scripts/hardening/kill.ts";
import { runSoak } from "../../scripts/hardening/soak.ts";
import { needs } from "../_permissions.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const inLab = Deno.env.get("LAB") === "1";

Deno.test({
  name: "harden kill --quick: nothing partial is served across kill -9 of server and proxy",
  ignore: needs("read", "write", "net", "run", "env", "ffi") || inLab,
  async fn() {
    const report = await runKill({
      rounds: 4,
      transport: "tcpmux",
      clients: 8,
      files: 24,
      quick: true,
    });
    assert.ok(report.fetches > 0);
    assert.equal(report.wrong, 0, "a body claimed completeness with wrong bytes");
    assert.equal(report.staleTmp, 0, "a restarted proxy found .tmp files of the dead one");
    assert.equal(report.slowServerKills, 0, "a request in flight outlived the server by > 1 s");
  },
});

Deno.test({
  name: "harden soak --quick: no wrong bodies, no dropped requests, no leaked fds or threads",
  ignore: needs("read", "write", "net", "run", "env", "ffi") || inLab,
  async fn() {
    const report = await runSoak({
      duration: 30,
      interval: 2,
      clients: 8,
      transport: "usrsctp",
      quick: true,
    });
    assert.equal(report.wrong, 0);
    assert.equal(report.failed, 0);
    assert.deepEqual(report.leaked, { fds: 0, threads: 0 });
  },
});

Deno.test({
  name:
    "harden loss --quick: every file through the proxy over 3% loss is identical (lab, kernel SCTP)",
  ignore: needs("read", "write", "net", "run", "env", "ffi") || inLab,
  async fn() {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["task", "harden", "loss", "--quick"],
      cwd: REPO,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    console.log(stdout);
    assert.equal(output.code, 0, "harden loss failed (output above)");
    assert.match(stdout, /^PASS$/m);
  },
});
