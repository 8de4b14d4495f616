/**
 * `deno task bench <transports|files|sched|thesis|scale> [options]`: runs one benchmark.
 * `deno task bench <name> --help` shows its options.
 *
 * @module
 */

const BENCHMARKS: Record<string, string> = {
  transports: "./transports.ts",
  files: "./files.ts",
  sched: "./sched.ts",
  thesis: "./thesis.ts",
  perf: "./perf.ts",
  udp: "./udp.ts",
  scale: "./scale.ts",
};

const USAGE = `Usage: deno task bench <benchmark> [options]

Benchmarks (each prints ratios measured in one run; --help for its options):
  transports   one-way message throughput: usrsctp / kernel SCTP vs tcpmux vs plain TCP
  files        file serving over one association (scf, rr) vs the TCP HTTP/1.1 baseline
  sched        response times at a bottleneck in the lab: every policy vs the simulated ideal
  thesis       the reference thesis's 5.2-5.5 and seed 004 in the lab, with nginx, plots, verdicts
  perf         proxy cache hits vs nginx and the runtime's own server (Deno.serve), wrk on this host
  udp          SCTP over UDP (kernel and usrsctp, both ways) vs native kernel SCTP, in the lab
  scale        1..3 servers, each behind its own link, through IPVS and the proxy's path hashing`;

const [name, ...args] = Deno.args;
if (!name || name === "-h" || name === "--help") {
  console.log(USAGE);
  Deno.exit(name ? 0 : 2);
}
const module = BENCHMARKS[name];
if (!module) {
  console.error(`bench: unknown benchmark "${name}"\n\n${USAGE}`);
  Deno.exit(2);
}
const { main } = await import(module);
try {
  await main(args);
} catch (error) {
  console.error(`bench ${name}: ${(error as Error).message}`);
  Deno.exit((error as Error).name === "ConfigError" ? 2 : 1);
}
