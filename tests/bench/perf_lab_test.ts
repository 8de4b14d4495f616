/**
 * Smoke run of `deno task bench perf --quick` (it boots the lab itself):
 * nginx, Deno.serve and the proxy (on one thread and on two) answering every
 * file byte for byte, one short wrk round each; usrsctp against its C anchor
 * and under file serving; then `deno task get` and withsctp curl over kernel
 * SCTP with every fetched file compared. Rates and ratios are printed, never
 * asserted: the run must complete and report every row.
 */

import assert from "node:assert/strict";
import { benchIgnored, runBench } from "./_bench.ts";

Deno.test(
  "bench perf --quick measures proxy hits against nginx and the client against nginx over SCTP",
  {
    // Inside the lab this file has nothing to do (and cannot start another lab).
    ignore: benchIgnored,
  },
  async () => {
    const { code, stdout, stderr } = await runBench(["perf", "--quick"]);
    console.log(stdout.trim());
    assert.equal(code, 0, `bench perf failed:\n${stderr.slice(-3000)}`);
    for (const size of ["1 KiB", "1 MiB"]) {
      for (const server of ["nginx", "deno-serve", "proxy", "proxy --threads 2"]) {
        assert.match(
          stdout,
          new RegExp(`^hit ${size}, \\S+ \\S+\\s+${server}\\s+\\d`, "m"),
          `${size} ${server}`,
        );
      }
    }
    for (const row of ["usrsctp transport vs C, 64 KiB", "usrsctp transport vs C, 1 KiB"]) {
      assert.match(stdout, new RegExp(`^${row}\\s+\\d`, "m"), row);
    }
    assert.match(stdout, /^files over usrsctp vs the transport/m);
    for (const fetch of ["8 x 1 MiB", "1 tiny file"]) {
      for (const client of ["deno task get", "withsctp curl"]) {
        assert.match(stdout, new RegExp(`^${fetch}\\s+${client}`, "m"), `${fetch} ${client}`);
      }
    }
    const results = /results: (\S+\.json)/.exec(stdout)?.[1];
    assert.ok(results, "the run names its results file");
    await Deno.remove(results);
  },
);
