/**
 * `deno task harden <run> [options]`: runs one hardening check against real
 * server and proxy processes. `deno task harden <run> --help` shows its
 * options; each prints what it counted and ends with PASS or FAIL.
 *
 * @module
 */

const RUNS: Record<string, string> = {
  kill: "./kill.ts",
  soak: "./soak.ts",
  loss: "./loss.ts",
  overload: "./overload.ts",
};

const USAGE = `Usage: deno task harden <run> [options]

Runs (each counts what must never happen, prints a summary and PASS or FAIL):
  kill       kill -9 of the server and the proxy mid-transfer, repeatedly, under load
  soak       long mixed load; RSS, descriptors and threads sampled for leaks
  overload   many associations and TCP clients at once: served or refused cleanly, then recovery
  loss       in the lab: files through the proxy over lossy links, every body's sha256 checked`;

const [name, ...args] = Deno.args;
if (!name || name === "-h" || name === "--help") {
  console.log(USAGE);
  Deno.exit(name ? 0 : 2);
}
const module = RUNS[name];
if (!module) {
  console.error(`harden: unknown run "${name}"\n\n${USAGE}`);
  Deno.exit(2);
}
const { main } = await import(module);
try {
  await main(args);
} catch (error) {
  console.error(`harden ${name}: ${(error as Error).message}`);
  Deno.exit((error as Error).name === "ConfigError" ? 2 : 1);
}
