/**
 * Smoke run of `deno task bench udp --quick` (it boots the lab itself): every
 * pairing of kernel SCTP and usrsctp, native and over UDP, fetches its files
 * with every body checked. Rates are printed, never asserted: the run must
 * complete and report every pairing.
 */

import assert from "node:assert/strict";
import { benchIgnored, runBench } from "./_bench.ts";

Deno.test(
  "bench udp --quick measures every pairing over UDP against native kernel SCTP",
  {
    // Inside the lab this file has nothing to do (and cannot start another lab).
    ignore: benchIgnored,
  },
  async () => {
    const { code, stdout, stderr } = await runBench(["udp", "--quick"]);
    console.log(stdout.trim());
    assert.equal(code, 0, `bench udp failed:\n${stderr.slice(-3000)}`);
    for (
      const pairing of [
        "kernel → kernel, native",
        "kernel → kernel, UDP",
        "usrsctp → kernel, UDP",
        "kernel → usrsctp, UDP",
        "usrsctp → usrsctp",
      ]
    ) {
      assert.match(stdout, new RegExp(`^${pairing}\\s+\\d`, "m"), pairing);
    }
    const results = /results: (\S+\.json)/.exec(stdout)?.[1];
    assert.ok(results, "the run names its results file");
    await Deno.remove(results);
  },
);
