/**
 * Smoke run of `deno task bench thesis --quick` (it boots the lab itself):
 * every experiment, every row (nginx over TCP and over SCTP included), each
 * body checked for its length and a sample for its sha256. Ratios and
 * verdicts are printed, never asserted: the run must only complete with no
 * failed request and its report must name every experiment.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { benchIgnored, runBench } from "./_bench.ts";
import { EXPERIMENTS } from "../../scripts/bench/thesis/results.ts";

Deno.test(
  "bench thesis --quick runs 5.2-5.5 and 004 in the lab with no failed request and reports each",
  {
    // Inside the lab this file has nothing to do (and cannot start another lab).
    ignore: benchIgnored,
  },
  async () => {
    const { code, stdout, stderr } = await runBench(["thesis", "--quick"]);
    const headline = stdout.slice(stdout.indexOf("## Headline"), stdout.indexOf("\n## 5.2"));
    console.log(headline.trim());
    assert.equal(code, 0, `bench thesis failed:\n${stderr.slice(-3000)}`);
    for (const experiment of EXPERIMENTS) {
      assert.match(
        headline,
        new RegExp(`^\\| ${experiment.replace(".", "\\.")}: .*\\| (agrees|disagrees) \\|$`, "m"),
        `a verdict for ${experiment}`,
      );
    }
    const dir = /results in (\S+);/.exec(stderr)?.[1];
    assert.ok(dir, "the run names its results directory");
    for (const experiment of EXPERIMENTS) {
      const csv = await Deno.readTextFile(join(dir, `${experiment}.csv`));
      const lines = csv.trim().split("\n");
      assert.ok(lines.length >= 4, `${experiment}.csv has a line per row`);
      // No request failed: the "failed" column (after "requests") is 0 on every line.
      const header = lines[0].split(",");
      const failed = header.indexOf("failed");
      for (const line of lines.slice(1)) assert.equal(line.split(",")[failed], "0", line);
    }
    await Deno.remove(dir, { recursive: true });
  },
);
