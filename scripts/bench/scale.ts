/**
 * `deno task bench scale [--quick] [--report]`: aggregate throughput of 1, 2
 * and 3 flowsched servers, each behind its own rate-limited link (10 Mbit by
 * default), through Linux IPVS and through the proxy's path-hashed upstreams.
 *
 * Lab (`--servers 3`): client ──cp── proxy ──ps, ps2, ps3── server, server2,
 * server3. The proxy namespace is the front: IPVS's director for the virtual
 * address 10.10.9.9:7100 (NAT), or the proxy with one `--upstream` per
 * server and no cache (every request goes to a server). The lab has one CPU,
 * so the links, not cores, are the resource being scaled.
 *
 * - ipvs: one client process in the client namespace opens `--associations`
 *   kernel-SCTP associations to the virtual address (round robin spreads
 *   them) and keeps `--workers` requests in flight over them.
 * - proxy: one client process keeps `--workers` persistent HTTP/1.1
 *   connections to the proxy busy; the proxy sends each path to one server by
 *   rendezvous hashing, over one kernel-SCTP association per server.
 * - proxy-bounded: the same with `--hash-balance-factor 125`: a path goes to
 *   its next server while its own holds over 125% of the mean requests in
 *   flight.
 *
 * Every body's length is checked and every 10th body's sha256. Rows run in
 * turn, `--repeats` times; the ratio is the median MB/s with n servers over
 * the median with 1, per front.
 *
 * @module
 */

import { join } from "node:path";
import {
  ConfigError,
  helpText,
  type OptionTable,
  parseOptions,
  parseRate,
} from "../../cli/options.ts";
import { LAB_ADDRESSES, runInLab, serverAddress, serverNamespace } from "../lab/lab.ts";
import { Service, startProxy, startServer } from "../hardening/stack.ts";
import { IpvsService } from "../scale/ipvs.ts";
import { denoArgv, listOf, prng, progress, REPO, round, runMain, sha256Hex } from "./common.ts";
import { fileBytes, fileSet, uniformSize, writeFileSet } from "./sched/workload.ts";
import type { Expected, LoadJob, LoadOutcome } from "./thesis/load.ts";
import { type Front, FRONTS, type ScaleResults, type ScaleRun } from "./scale/results.ts";
import { scaleReport } from "./scale/report.ts";

const USAGE = `Usage: deno task bench scale [options]

Aggregate MB/s of 1..N flowsched servers, each behind its own rate-limited link in the lab,
through Linux IPVS (kernel SCTP, round robin) and through the proxy's path-hashed upstreams;
the ratio to 1 server for each. Writes runs.json, runs.csv, summary.md and a plot under
results/scale/<time>/ (with --report, also docs/results/scale/).`;

const OPTIONS = {
  quick: {
    kind: "boolean",
    default: false,
    help: "one repeat of 3 s per row, 60 files (a smoke run, about 2 minutes)",
  },
  servers: { kind: "integer", default: 3, min: 1, max: 8, help: "the most servers measured" },
  rate: { kind: "string", default: "10mbit", help: "rate of each server's link" },
  delay: { kind: "integer", default: 5, min: 0, help: "one-way delay in ms of each server's link" },
  repeats: { kind: "integer", default: 3, min: 1, max: 20, help: "timed phases per row" },
  seconds: { kind: "integer", default: 10, min: 1, help: "seconds per timed phase" },
  files: { kind: "integer", default: 600, min: 10, help: "files, sizes uniform in 64-192 KiB" },
  associations: {
    kind: "integer",
    default: 6,
    min: 1,
    help: "ipvs: client associations (spread by IPVS)",
  },
  workers: { kind: "integer", default: 12, min: 1, help: "requests the client keeps in flight" },
  fronts: {
    kind: "string",
    default: FRONTS.join(","),
    help: "comma-separated fronts to measure",
  },
  seed: { kind: "integer", default: 1, min: 0, help: "seed of files and request sequence" },
  report: {
    kind: "boolean",
    default: false,
    help: "write the committed report: docs/results/scale/ (summary.md, plot)",
  },
  from: {
    kind: "string",
    default: "",
    help: "report again on an earlier run (results/scale/<time>), without running",
  },
  labTimeout: { kind: "integer", default: 3600, min: 60, help: "seconds before the lab is killed" },
  role: { kind: "string", default: "", help: "(internal) lab" },
  out: { kind: "string", default: "", help: "(internal) results file" },
} as const satisfies OptionTable;

type Options = NonNullable<Awaited<ReturnType<typeof parseOptions<typeof OPTIONS>>>>["values"];

const PORT = 7100;
const VIRTUAL = `10.10.9.9:${PORT}`;
const PROXY_LISTEN = `${LAB_ADDRESSES.LAB_PROXY_IP}:8080`;
const SEQUENCE_LENGTH = 20_000;
const KIB = 1024;
/** proxy-bounded: no server holds more than 125% of the mean requests in flight. */
const BALANCE_FACTOR = 125;

/** Runs `argv` in network namespace `netns`; resolves with its stdout. */
async function inNamespace(netns: string, argv: string[]): Promise<string> {
  const output = await new Deno.Command("ip", {
    args: ["netns", "exec", netns, ...argv],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  if (!output.success) {
    throw new Error(`${argv.join(" ")} in ${netns}: ${text.decode(output.stderr).trim()}`);
  }
  return text.decode(output.stdout);
}

/** The client process: one load phase from the client namespace. */
async function runClient(job: LoadJob, work: string, name: string): Promise<LoadOutcome> {
  const jobFile = join(work, `job-${name}.json`);
  const outFile = join(work, `out-${name}.json`);
  await Deno.writeTextFile(jobFile, JSON.stringify(job));
  // Its stderr passes through: it tells what the first failed requests were.
  const { success } = await new Deno.Command("ip", {
    args: ["netns", "exec", "client", ...denoArgv("thesis/load.ts", [jobFile, outFile])],
    cwd: REPO,
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (!success) throw new Error(`the client of ${name} failed`);
  return JSON.parse(await Deno.readTextFile(outFile));
}

/** IPVS in front of servers 1..n: the virtual service, health-checked; resolves once all are in. */
async function startIpvs(n: number): Promise<Service> {
  const reals = Array.from({ length: n }, (_, i) => `${serverAddress(i + 1)}:${PORT}`);
  const front = new Service("ipvs", [
    "run",
    "-P=ipvs",
    "--no-check",
    "scripts/ipvs.ts",
    VIRTUAL,
    ...reals,
    "--log-level=warn",
  ], "proxy");
  const table = ipvsTable();
  for (const deadline = Date.now() + 30_000;;) {
    const inService = await table.realServers().catch(() => new Map());
    if (inService.size === n) return front;
    if (Date.now() > deadline) {
      await front.stop("SIGTERM");
      throw new Error(`IPVS: ${inService.size} of ${n} servers in service after 30 s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The director's table, read with ipvsadm in the proxy namespace. */
function ipvsTable(): IpvsService {
  return new IpvsService({
    virtual: VIRTUAL,
    ipvsadm: (args) => inNamespace("proxy", ["ipvsadm", ...args]),
  });
}

/**
 * The proxy in front of servers 1..n, without a cache, bounded loads at
 * `balanceFactor` percent (0: off); resolves once every association is up.
 */
async function startFront(n: number, work: string, balanceFactor: number): Promise<Service> {
  const cache = join(work, `cache-${n}`);
  const { service } = await startProxy({
    listen: PROXY_LISTEN,
    upstream: Array.from({ length: n }, (_, i) => `kernel://${serverAddress(i + 1)}:${PORT}`),
    cache,
    netns: "proxy",
    args: ["--cache-size=0", "--stats-access=public", `--hash-balance-factor=${balanceFactor}`],
  });
  for (const deadline = Date.now() + 30_000;;) {
    const up = service.lines.filter((line) => line.includes("upstream association up")).length;
    if (up >= n) return service;
    if (Date.now() > deadline) {
      await service.stop("SIGTERM");
      throw new Error(`proxy: ${up} of ${n} upstream associations up after 30 s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Requests (proxy) or associations (ipvs) each server took during a row, and
 * the requests the proxy sent off their path's server.
 */
async function shares(front: Front, n: number): Promise<{ taken: number[]; rebalanced?: number }> {
  if (front === "ipvs") {
    const table = await ipvsTable().realServers();
    const taken = Array.from(
      { length: n },
      (_, i) => table.get(`${serverAddress(i + 1)}:${PORT}`)?.associations ?? 0,
    );
    return { taken };
  }
  const stats = JSON.parse(
    await inNamespace("proxy", ["curl", "-sS", `http://${PROXY_LISTEN}/_flowsched/stats`]),
  );
  return {
    taken: (stats.upstreams as { requests: number }[]).map((u) => u.requests),
    rebalanced: stats.rebalanced,
  };
}

/** Lab side: every row, `repeats` times; the records back to the host. */
async function inLab(values: Options) {
  const work = "/tmp/scale";
  const root = join(work, "site");
  await Deno.mkdir(root, { recursive: true });
  progress("scale", `writing ${values.files} files`);
  const set = fileSet(values.seed, values.files, (r) => uniformSize(r, 64 * KIB, 192 * KIB));
  await writeFileSet(root, set, values.seed);
  const files: Record<string, Expected> = {};
  set.forEach((f, i) => {
    files[f.path] = { size: f.size, sha256: sha256Hex(fileBytes(values.seed, i, f.size)) };
  });
  const rand = prng(values.seed + 2);
  const sequence = Array.from(
    { length: SEQUENCE_LENGTH },
    () => set[Math.floor(rand() * set.length)].path,
  );
  await inNamespace("proxy", ["ip", "addr", "add", `${VIRTUAL.split(":")[0]}/32`, "dev", "lo"]);

  const servers: Service[] = [];
  const runs: ScaleRun[] = [];
  try {
    for (let k = 1; k <= values.servers; k++) {
      servers.push(
        await startServer({
          root,
          transport: "kernel",
          host: serverAddress(k),
          port: PORT,
          netns: serverNamespace(k),
          args: ["--max-associations=64"],
        }),
      );
    }
    const counts = Array.from({ length: values.servers }, (_, i) => i + 1);
    const fronts = frontsOf(values.fronts);
    const total = values.repeats * fronts.length * counts.length;
    for (let repeat = 0; repeat < values.repeats; repeat++) {
      for (const front of fronts) {
        for (const n of counts) {
          const started = front === "ipvs"
            ? await startIpvs(n)
            : await startFront(n, work, front === "proxy-bounded" ? BALANCE_FACTOR : 0);
          let outcome: LoadOutcome;
          let taken: number[];
          let rebalanced: number | undefined;
          try {
            const job: LoadJob = {
              mode: front === "ipvs" ? "flow" : "http",
              target: front === "ipvs" ? `kernel://${VIRTUAL}` : PROXY_LISTEN,
              transport: "tcp",
              persistent: true,
              workers: values.workers,
              streams: 4,
              associations: values.associations,
              seconds: values.seconds,
              sequence,
              files,
              hashEvery: 10,
              serverPids: servers.slice(0, n).map((server) => server.process.pid),
              proxyPids: [started.process.pid],
            };
            outcome = await runClient(job, work, `${front}-${n}-${repeat}`);
            ({ taken, rebalanced } = await shares(front, n));
          } finally {
            await started.stop("SIGTERM");
          }
          // What the front had to say: a server out of service, an upstream down.
          for (const line of started.lines) {
            if (/"level":"(warn|error)"/.test(line)) progress("scale", `${front}: ${line}`);
          }
          const failed = outcome.fetches.filter((f) => !f.ok).length;
          const bytes = outcome.fetches.reduce((sum, f) => sum + f.bytes, 0);
          runs.push({
            front,
            servers: n,
            repeat,
            seconds: outcome.seconds,
            requests: outcome.fetches.length,
            failed,
            bytes,
            labCpu: outcome.labCpu,
            serverCpuMs: outcome.serverCpuMs,
            frontCpuMs: outcome.proxyCpuMs,
            shares: taken,
            ...(rebalanced === undefined ? {} : { rebalanced }),
          });
          progress(
            "scale",
            `${runs.length}/${total} ${front} × ${n}: ${
              round(bytes / outcome.seconds / 1e6, 2)
            } MB/s, ${failed} failed, shares ${taken.join("/")}, lab CPU ${
              round(100 * outcome.labCpu, 0)
            }% (servers ${round(outcome.serverCpuMs / 10 / outcome.seconds, 0)}%, front ${
              round(outcome.proxyCpuMs / 10 / outcome.seconds, 0)
            }%)`,
          );
        }
      }
    }
  } finally {
    for (const server of servers) await server.stop("SIGTERM");
  }
  const results: ScaleResults = {
    started: new Date().toISOString(),
    setup: {
      rate: values.rate,
      delayMs: values.delay,
      repeats: values.repeats,
      secondsPerPhase: values.seconds,
      files: `${values.files} files, sizes uniform in 64–192 KiB, requested uniformly`,
      associations: values.associations,
      workers: values.workers,
      kernel: Deno.osRelease(),
      lab: "User-Mode Linux, 1 CPU; client, fronts and servers share it",
    },
    runs,
  };
  await Deno.writeTextFile(values.out, JSON.stringify(results));
}

function frontsOf(text: string): Front[] {
  return listOf(text, FRONTS, "--fronts", "front");
}

/** Host side: the lab run, then the report. */
async function orchestrate(values: Options, args: string[]) {
  const given = (flag: string) => args.some((a) => a.startsWith(flag));
  if (values.quick) {
    if (!given("--repeats")) values.repeats = 1;
    if (!given("--seconds")) values.seconds = 3;
    if (!given("--files")) values.files = 60;
  }
  const rows = frontsOf(values.fronts).length * values.servers;
  progress(
    "scale",
    `${rows} rows × ${values.repeats} repeats of ${values.seconds} s in the lab ` +
      `(~${Math.ceil(rows * values.repeats * (values.seconds + 6) / 60) + 1} min)`,
  );
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const dir = join(REPO, "results", "scale", stamp);
  await Deno.mkdir(dir, { recursive: true });
  const out = join(dir, "runs.json");
  const links = Array.from(
    { length: values.servers },
    (_, i) =>
      `ps${i === 0 ? "" : i + 1}:rate=${values.rate}${
        values.delay ? `,delay=${values.delay}ms` : ""
      }`,
  );
  const lab = await runInLab({
    command: denoArgv("scale.ts", [
      "--role=lab",
      `--out=${out}`,
      `--servers=${values.servers}`,
      `--rate=${values.rate}`,
      `--delay=${values.delay}`,
      `--repeats=${values.repeats}`,
      `--seconds=${values.seconds}`,
      `--files=${values.files}`,
      `--associations=${values.associations}`,
      `--workers=${values.workers}`,
      `--seed=${values.seed}`,
      `--fronts=${values.fronts}`,
    ]),
    servers: values.servers,
    links,
    cwd: REPO,
    output: "inherit",
    timeoutSeconds: values.labTimeout,
  });
  if (lab.code !== 0) throw new Error(`the lab run failed (exit code ${lab.code})`);
  await report(JSON.parse(await Deno.readTextFile(out)), dir, values);
}

/** The report of a finished run; throws if any request failed. */
async function report(results: ScaleResults, dir: string, values: Options) {
  const docs = values.report ? join(REPO, "docs", "results", "scale") : null;
  console.log(await scaleReport(results, { dir, docs }));
  const failed = results.runs.reduce((n, r) => n + r.failed, 0);
  progress("scale", `results in ${dir}${docs ? ` and ${docs}` : ""}; ${failed} requests failed`);
  if (failed > 0) throw new Error(`${failed} requests failed (see the summary)`);
}

async function main(args: string[]) {
  const parsed = await parseOptions(args, OPTIONS);
  if (!parsed) {
    console.log(helpText(USAGE, OPTIONS));
    return;
  }
  const { values } = parsed;
  if (!parseRate(values.rate)) {
    throw new ConfigError(`--rate "${values.rate}" is not a rate like 10mbit`);
  }
  if (values.role === "lab") return await inLab(values);
  if (values.from) {
    const results = JSON.parse(await Deno.readTextFile(join(values.from, "runs.json")));
    return await report(results, values.from, values);
  }
  await orchestrate(values, args);
}

export { main };

if (import.meta.main) await runMain("scale", main);
