/**
 * How many runs each property of tests/fuzz gets: small enough that the whole
 * folder takes under 30 s, raised for long runs with `FLOWSCHED_FUZZ_RUNS`.
 *
 * @module
 */

/** `runs`, or the value of FLOWSCHED_FUZZ_RUNS when it is set (and readable). */
export function fuzzRuns(runs: number): number {
  const variable = "FLOWSCHED_FUZZ_RUNS";
  if (Deno.permissions.querySync({ name: "env", variable }).state !== "granted") return runs;
  const value = Deno.env.get(variable);
  if (value === undefined || value === "") return runs;
  const wanted = Number(value);
  if (!Number.isInteger(wanted) || wanted < 1) {
    throw new Error(`${variable} must be a positive integer, not "${value}"`);
  }
  return wanted;
}
