/**
 * Smoke run of `deno task bench sched --quick` (it boots the lab itself):
 * the whole pipeline from traces to the final line, with every response
 * checked. Ratios are printed, never asserted.
 */

import assert from "node:assert/strict";
import { benchIgnored, runBench } from "./_bench.ts";

Deno.test(
  "bench sched --quick replays a trace under srpt and ps in the lab and prints its SCHED line",
  {
    // Inside the lab this file has nothing to do (and cannot start another lab).
    ignore: benchIgnored,
  },
  async () => {
    const { code, stdout, stderr } = await runBench(["sched", "--quick", "--duration=8"]);
    console.log(stdout.trim().split("\n").slice(-10).join("\n"));
    assert.equal(code, 0, `bench sched failed:\n${stderr.slice(-3000)}`);
    const lines = stdout.trim().split("\n");
    assert.match(
      lines.at(-1)!,
      /^SCHED load=0\.9 srpt\/ps=[\d.]+ srpt\/ideal=[\d.]+ top1-slowdown srpt\/ps=[\d.]+$/,
    );
    for (const policy of ["srpt", "ps"]) {
      const row = lines.find((l) => new RegExp(`^one\\s+0\\.9\\s+${policy}\\s+measured`).test(l));
      assert.ok(row, `a measured row for ${policy}`);
      // The "failed" column: every response arrived with its size, sampled ones byte for byte.
      assert.match(row, /\s0\s+\d+%$/, `no failed responses under ${policy}: ${row}`);
    }
  },
);
