/**
 * Smoke run of `deno task bench scale --quick --servers 2` (it boots the lab
 * itself): every front with 1 and 2 servers, each body checked for its length
 * and a sample for its sha256. Throughputs and ratios are printed, never
 * asserted: the run must complete with no failed request, report every front
 * and write a line per run.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { benchIgnored, runBench } from "./_bench.ts";
import { FRONTS } from "../../scripts/bench/scale/results.ts";

Deno.test(
  "bench scale --quick runs IPVS and the proxy in front of 1 and 2 servers with no failed request",
  {
    // Inside the lab this file has nothing to do (and cannot start another lab).
    ignore: benchIgnored,
  },
  async () => {
    const { code, stdout, stderr } = await runBench(["scale", "--quick", "--servers", "2"]);
    const table = stdout.slice(stdout.indexOf("| front"), stdout.indexOf("![aggregate"));
    console.log(table.trim());
    assert.equal(code, 0, `bench scale failed:\n${stderr.slice(-3000)}`);
    for (const front of FRONTS) {
      for (const servers of [1, 2]) {
        assert.match(
          table,
          new RegExp(`^\\| ${front} \\| ${servers} \\|`, "m"),
          `${front} × ${servers}`,
        );
      }
    }
    const dir = /results in (\S+);/.exec(stderr)?.[1];
    assert.ok(dir, "the run names its results directory");
    const lines = (await Deno.readTextFile(join(dir, "runs.csv"))).trim().split("\n");
    assert.equal(lines.length, 1 + FRONTS.length * 2, "a line per run");
    const failed = lines[0].split(",").indexOf("failed");
    for (const line of lines.slice(1)) assert.equal(line.split(",")[failed], "0", line);
    await Deno.remove(dir, { recursive: true });
  },
);
