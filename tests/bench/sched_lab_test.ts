/**
 * Smoke run of `deno task bench sched --quick` (it boots the lab itself):
 * the whole pipeline from traces to the final line, with every response
 * checked. Ratios are printed, never asserted.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { needs } from "../_permissions.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const inLab = !needs("env") && Deno.env.get("LAB") === "1";

Deno.test(
  "bench sched --quick replays a trace under srpt and ps in the lab and prints its SCHED line",
  {
    // Inside the lab this file has nothing to do (and cannot start another lab).
    ignore: needs("read", "write", "run", "env", "sys", "net", "ffi") || inLab,
  },
  async () => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-P=bench", "scripts/bench/main.ts", "sched", "--quick", "--duration=8"],
      cwd: REPO,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    console.log(stdout.trim().split("\n").slice(-10).join("\n"));
    assert.equal(output.code, 0, `bench sched failed:\n${stderr.slice(-3000)}`);
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
