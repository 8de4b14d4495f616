/** What the benchmark smoke tests share: running `deno task bench <name>` as a user would. */

import { fileURLToPath } from "node:url";
import { needs } from "../_permissions.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Why a benchmark smoke test cannot run here: permissions missing, or we are
 * inside the lab already (a benchmark boots its own lab). False when it can.
 */
export const benchIgnored: boolean = needs("read", "write", "run", "env", "sys", "net", "ffi") ||
  Deno.env.get("LAB") === "1";

/** Runs `scripts/bench/main.ts` with `args` from the repository; its exit code and output. */
export async function runBench(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P=bench", "scripts/bench/main.ts", ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return {
    code: output.code,
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr),
  };
}
