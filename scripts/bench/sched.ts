/**
 * `deno task bench sched [--quick]`: response times where responses queue.
 *
 * In the lab, the server (kernel SCTP) sits behind a bottleneck: a tbf rate
 * plus delay on the proxy↔server link. An open-loop load generator replays a
 * Poisson trace of heavy-tailed requests at loads ρ of that rate, the same
 * trace for every policy. Two client shapes:
 *
 * - `one`: one association carrying every request (the proxy's case), from
 *   the proxy namespace (RTT 2 × the ps delay);
 * - `mixed`: two associations, one from the proxy namespace and one from the
 *   client namespace behind the extra cp delay, so RTTs differ (SRRT's case).
 *
 * The same traces go through a fluid simulation of the ideal policies at the
 * bottleneck rate (plus one RTT per response): the limit each measured policy
 * is compared with. Output: per-request CSV and JSON under results/sched/,
 * and with `--report` a Markdown report with SVG plots in
 * docs/results/scheduling/ plus docs/results/scheduling.json.
 *
 * @module
 */

import { cpus } from "node:os";
import { join } from "node:path";
import { ConfigError, helpText, type OptionTable, parseOptions } from "../../cli/options.ts";
import { FlowClient } from "../../protocol/client.ts";
import { POLICY_NAMES, type PolicyName } from "../../server/policies/mod.ts";
import { runInLab } from "../lab/lab.ts";
import { SCTP_SYSCTLS, setSctpTimers } from "../lab/sctp_timers.ts";
import {
  nginxConfig,
  progress,
  REPO,
  repoDenoArgv,
  retry,
  round,
  runMain,
  sha256Hex,
} from "./common.ts";
import {
  boundedPareto,
  fileBytes,
  fileSet,
  poissonTrace,
  type TraceRequest,
  writeFileSet,
} from "./sched/workload.ts";
import { report } from "./sched/report.ts";

const USAGE = `Usage: deno task bench sched [options]

Replays Poisson traces of heavy-tailed requests against the server behind a
bottleneck link in the lab, once per policy, and compares mean response time,
slowdown and starvation with each other and with a simulated ideal.`;

const OPTIONS = {
  quick: {
    kind: "boolean",
    default: false,
    help: "one load (0.9), one seed, srpt and ps, one association (a few minutes)",
  },
  loads: { kind: "string", default: "0.5,0.7,0.9,0.95", help: "loads ρ of the bottleneck rate" },
  policies: {
    kind: "string",
    default: "srpt,ps,scf,fifo,srrt,sizeclass",
    help: "policies to measure (sizeclass runs with the kernel's prio stream scheduler)",
  },
  seeds: { kind: "integer", default: 3, min: 1, max: 20, help: "traces per load (seeds 1..n)" },
  duration: { kind: "integer", default: 25, min: 2, help: "seconds of arrivals per run" },
  rate: { kind: "rate", default: "1mbit", help: "bottleneck rate on the proxy↔server link" },
  delay: { kind: "integer", default: 5, min: 0, help: "one-way delay of that link in ms" },
  farDelay: {
    kind: "integer",
    default: 70,
    min: 0,
    help: "extra one-way delay in ms of the client↔proxy link (the far client of `mixed`)",
  },
  mixed: { kind: "boolean", default: true, help: "also run the mixed-RTT shape at ρ = 0.9" },
  nginx: {
    kind: "boolean",
    default: true,
    help: "also replay each trace against nginx over TCP (many connections), if installed",
  },
  files: { kind: "integer", default: 2000, min: 10, help: "files in the set" },
  popularity: {
    kind: "string",
    default: "zipf",
    choices: ["zipf", "uniform"],
    help: "how requests pick files",
  },
  streams: { kind: "integer", default: 8, min: 1, help: "streams per association" },
  runBytes: { kind: "integer", default: 4096, min: 512, help: "server: body bytes per run" },
  laneDepth: {
    kind: "integer",
    default: 1,
    min: 1,
    help: "server: runs queued per association (the send buffer already covers the link)",
  },
  sendBufferSize: {
    kind: "integer",
    default: 4096,
    min: 0,
    help: "server: socket send buffer (the kernel doubles it)",
  },
  report: {
    kind: "boolean",
    default: false,
    help: "write docs/results/scheduling/ (report, plots) and docs/results/scheduling.json",
  },
  labTimeout: { kind: "integer", default: 3600, min: 60, help: "seconds before the lab is killed" },
  role: { kind: "string", default: "", help: "(internal) load | lab" },
  plan: { kind: "string", default: "", help: "(internal) plan file" },
  trace: { kind: "string", default: "", help: "(internal) trace file of the load role" },
  client: { kind: "integer", default: 0, min: 0, help: "(internal) client index" },
  server: { kind: "string", default: "", help: "(internal) server URL" },
  out: { kind: "string", default: "", help: "(internal) output file" },
  from: {
    kind: "string",
    default: "",
    help:
      "analyse the run directory of an earlier run again (.lab/sched-<time>), with the same options",
  },
} as const satisfies OptionTable;

type Values = Awaited<ReturnType<typeof parseOptions<typeof OPTIONS>>> & object;
type Options = Values["values"];

/** The baseline a user would run instead: nginx over TCP, one connection per request in flight. */
const NGINX = "nginx-tcp";

/** One measured run: a trace replayed against one policy (or nginx). */
interface RunSpec {
  shape: "one" | "mixed";
  load: number;
  seed: number;
  policy: PolicyName | typeof NGINX;
  trace: string;
  clients: number;
}

/** What the load generator records per request (times in ms since the trace's start). */
export interface Measured {
  index: number;
  client: number;
  size: number;
  at: number;
  done: number;
  ok: boolean;
}

/** What the lab hands back per run. */
export interface RunResult extends RunSpec {
  records: Measured[];
  /** Share of the lab's one CPU in use during the run (server, clients and kernel). */
  cpu: number;
  wallSeconds: number;
}

const FILE_SEED = 7;
/** Send buffer of the `sizeclass` runs: large, so the whole queue waits in the stack. */
const STACK_SEND_BUFFER = 4 * 1024 * 1024;
/**
 * Runs queued per association for `sizeclass`: no limit to speak of, so every
 * run goes to the stack at once and its prio scheduler orders all of them
 * (a writer blocked on a full buffer would hold later runs in arrival order).
 */
const STACK_LANE_DEPTH = 4096;
/**
 * The link's bytes per response beyond its body: the response head (~250 B)
 * and the control message travel in a packet of their own (NODELAY), with
 * Ethernet, IP, SCTP and DATA chunk headers (62 B).
 */
export const RESPONSE_OVERHEAD_BYTES = 320;
/** Body bytes per byte on the wire in full packets: 1438 of 1514 at MTU 1500. */
export const WIRE_EFFICIENCY = 0.95;
/** SCTP timers for a WAN link with a small queue (see `inLab`). */
const LAB_SERVER = "10.10.2.2";

function listOf<T extends string>(text: string, allowed: readonly string[], flag: string): T[] {
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!allowed.includes(item)) {
      throw new ConfigError(`--${flag}: unknown "${item}"; use ${allowed.join(", ")}`);
    }
  }
  return items as T[];
}

function loadsOf(text: string): number[] {
  return text.split(",").map((s) => {
    const load = Number(s);
    if (!(load > 0 && load < 1)) throw new ConfigError(`--loads: "${s}" is not between 0 and 1`);
    return load;
  });
}

/** Host side: files, traces and the plan; the lab run; the analysis. */
async function orchestrate(values: Options, args: string[]) {
  if (values.quick) {
    const given = (flag: string) => args.some((a) => a.startsWith(flag));
    if (!given("--loads")) values.loads = "0.9";
    if (!given("--seeds")) values.seeds = 1;
    if (!given("--policies")) values.policies = "srpt,ps";
    if (!given("--mixed")) values.mixed = false;
    if (!given("--nginx")) values.nginx = false;
    if (!given("--duration")) values.duration = 20;
  }
  const policies: RunSpec["policy"][] = listOf<PolicyName>(
    values.policies,
    POLICY_NAMES,
    "policies",
  );
  if (values.nginx) {
    if (await hasNginx()) policies.push(NGINX);
    else {progress(
        "sched",
        "nginx is not installed (apt-get install nginx-light): no nginx baseline",
      );}
  }
  const loads = loadsOf(values.loads);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  // Under the repository, not /tmp: the lab mounts its own /tmp.
  const dir = join(REPO, ".lab", `sched-${stamp}`);
  await Deno.mkdir(join(dir, "site"), { recursive: true });
  progress("sched", `writing ${values.files} files (bounded Pareto sizes) to ${dir}/site`);
  const files = fileSet(FILE_SEED, values.files, (rand) => boundedPareto(rand));
  await writeFileSet(join(dir, "site"), files, FILE_SEED);
  const wire = files.map((f) => ({ ...f, size: f.size + RESPONSE_OVERHEAD_BYTES }));

  const plan: RunSpec[] = [];
  const addRuns = async (shape: RunSpec["shape"], load: number, seed: number, only?: string[]) => {
    const clients = shape === "one" ? 1 : 2;
    // The load is of what crosses the link: bodies in packets, plus each response's overhead.
    const trace = poissonTrace({
      seed,
      files: wire,
      load,
      bottleneckBytesPerSecond: values.rate * WIRE_EFFICIENCY,
      durationSeconds: values.duration,
      popularity: values.popularity as "zipf" | "uniform",
      clients,
    });
    const path = join(dir, `trace-${shape}-${load}-${seed}.json`);
    await Deno.writeTextFile(
      path,
      JSON.stringify(trace.map((r) => ({ ...r, size: files[r.file].size }))),
    );
    for (const policy of policies) {
      if (!only || only.includes(policy)) {
        plan.push({ shape, load, seed, policy, trace: path, clients });
      }
    }
  };
  for (const load of loads) {
    for (let seed = 1; seed <= values.seeds; seed++) await addRuns("one", load, seed);
  }
  if (values.mixed) {
    for (let seed = 1; seed <= values.seeds; seed++) {
      await addRuns("mixed", 0.9, seed, ["srpt", "srrt", "ps", NGINX]);
    }
  }
  const planPath = join(dir, "plan.json");
  await Deno.writeTextFile(planPath, JSON.stringify(plan));
  const perRun = values.duration + 6;
  progress(
    "sched",
    `${plan.length} runs of about ${perRun} s each in the lab (~${
      Math.ceil(plan.length * perRun / 60)
    } min), bottleneck ${values.rate * 8 / 1e6} Mbit/s, RTT ${2 * values.delay} ms` +
      (values.mixed ? ` and ${2 * (values.delay + values.farDelay)} ms` : ""),
  );
  const lab = await runInLab({
    command: [
      Deno.execPath(),
      "run",
      "--no-check",
      `--config=${join(REPO, "deno.json")}`,
      "-P=bench",
      join(REPO, "scripts", "bench", "sched.ts"),
      "--role=lab",
      `--plan=${planPath}`,
      `--out=${join(dir, "results.json")}`,
      ...args.filter((a) => !a.startsWith("--report")),
    ],
    links: [
      `ps:delay=${values.delay}ms,rate=${values.rate * 8 / 1000}kbit,queue=100ms`,
      `cp:delay=${values.farDelay}ms`,
    ],
    cwd: REPO,
    output: "inherit",
    timeoutSeconds: values.labTimeout,
  });
  if (lab.code !== 0) throw new Error(`the lab run failed (exit code ${lab.code})`);
  await Deno.remove(join(dir, "site"), { recursive: true });
  console.log(await analyse(dir, values));
}

/** The report of a finished run directory (`results.json`, traces); returns the SCHED line. */
async function analyse(dir: string, values: Options): Promise<string> {
  const results: RunResult[] = JSON.parse(await Deno.readTextFile(join(dir, "results.json")));
  return await report(results, {
    rate: values.rate,
    rttMs: { 0: 2 * values.delay, 1: 2 * (values.delay + values.farDelay) },
    dir,
    docs: values.report,
    setup: {
      transport: "kernel SCTP (lab)",
      streams: values.streams,
      runBytes: values.runBytes,
      laneDepth: values.laneDepth,
      sizeclass:
        `stream scheduler prio, lane depth ${STACK_LANE_DEPTH}, send buffer ${STACK_SEND_BUFFER}`,
      mixed: "wire runs 1, send buffer 16384",
      responseOverheadBytes: RESPONSE_OVERHEAD_BYTES,
      wireEfficiency: WIRE_EFFICIENCY,
      sendBufferSize: values.sendBufferSize,
      rateMbit: values.rate * 8 / 1e6,
      delayMs: values.delay,
      farDelayMs: values.farDelay,
      durationSeconds: values.duration,
      tbfQueueMs: 100,
      sctpSysctls: SCTP_SYSCTLS.join(" "),
      files: values.files,
      popularity: values.popularity,
      seeds: values.seeds,
    },
  });
}

/** Busy and total CPU time of the machine so far, in ms, over all its CPUs (the lab has one). */
function cpuTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus()) {
    busy += times.user + times.nice + times.sys + times.irq;
    total += times.user + times.nice + times.sys + times.irq + times.idle;
  }
  return { busy, total };
}

async function hasNginx(): Promise<boolean> {
  try {
    return (await new Deno.Command("nginx", { args: ["-v"], stderr: "null" }).output()).success;
  } catch {
    return false;
  }
}

/** Starts the server of a run: flowsched under its policy, or nginx. */
async function startRunServer(
  run: RunSpec,
  port: number,
  dir: string,
  values: Options,
): Promise<{ url: string; process: Deno.ChildProcess }> {
  const root = join(dir, "site");
  if (run.policy === NGINX) {
    const config = join(dir, `nginx-${port}.conf`);
    await Deno.writeTextFile(config, nginxConfig({ dir, root, listen: `${LAB_SERVER}:${port}` }));
    return {
      url: `http://${LAB_SERVER}:${port}`,
      process: spawn("server", ["nginx", "-c", config, "-g", "daemon off;"]),
    };
  }
  // The stack's mechanism: size classes on streams, and the kernel's prio scheduler drains
  // the send buffer by class, so the whole queue goes to the stack.
  let stack = [`--lane-depth=${values.laneDepth}`, `--send-buffer-size=${values.sendBufferSize}`];
  if (run.policy === "sizeclass") {
    stack = [
      "--stream-scheduler=prio",
      `--lane-depth=${STACK_LANE_DEPTH}`,
      `--send-buffer-size=${STACK_SEND_BUFFER}`,
    ];
  } else if (run.shape === "mixed") {
    // One run in flight server-wide, so the policy chooses across the two clients (what
    // tells SRRT from SRPT); the far client's buffer must cover its 160 ms path.
    stack = ["--wire-runs=1", `--lane-depth=${values.laneDepth}`, "--send-buffer-size=16384"];
  }
  const process = spawn(
    "server",
    repoDenoArgv("server/main.ts", [
      "--transport=kernel",
      `--host=${LAB_SERVER}`,
      `--port=${port}`,
      `--root=${root}`,
      `--policy=${run.policy}`,
      `--streams=${values.streams}`,
      `--run-bytes=${values.runBytes}`,
      // The kernel takes a message only whole into the send buffer.
      `--chunk-size=${Math.min(values.runBytes, values.sendBufferSize, 65536)}`,
      ...stack,
      "--log-level=warn",
    ], "server"),
  );
  return { url: `kernel://${LAB_SERVER}:${port}`, process };
}

function spawn(netns: string, argv: string[]): Deno.ChildProcess {
  return new Deno.Command("ip", {
    args: ["netns", "exec", netns, ...argv],
    cwd: REPO,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
}

/** Lab side: one server per run, the load generators, the records back to the host. */
async function inLab(values: Options) {
  const plan: RunSpec[] = JSON.parse(await Deno.readTextFile(values.plan));
  await setSctpTimers();
  const dir = join(values.plan, "..");
  const results: RunResult[] = [];
  for (const [i, run] of plan.entries()) {
    const server = await startRunServer(run, 9400 + i, dir, values);
    const started = performance.now();
    const cpuAtStart = cpuTimes();
    const outs = Array.from({ length: run.clients }, (_, c) => join(dir, `run-${i}-${c}.json`));
    const loads = outs.map((out, client) =>
      spawn(
        client === 0 ? "proxy" : "client",
        repoDenoArgv("scripts/bench/sched.ts", [
          "--role=load",
          `--trace=${run.trace}`,
          `--client=${client}`,
          `--server=${server.url}`,
          `--streams=${values.streams}`,
          `--out=${out}`,
        ], "bench"),
      ).status
    );
    const statuses = await Promise.all(loads);
    const wallSeconds = (performance.now() - started) / 1000;
    const cpuAtEnd = cpuTimes();
    const cpu = (cpuAtEnd.busy - cpuAtStart.busy) / (cpuAtEnd.total - cpuAtStart.total);
    server.process.kill("SIGTERM");
    await server.process.status;
    if (statuses.some((s) => !s.success)) throw new Error(`run ${i}: a load generator failed`);
    const records: Measured[] = [];
    for (const out of outs) records.push(...JSON.parse(await Deno.readTextFile(out)));
    results.push({ ...run, records, cpu, wallSeconds });
    const failed = records.filter((r) => !r.ok).length;
    const meanMs = records.reduce((s, r) => s + r.done - r.at, 0) / records.length;
    progress(
      "sched",
      `run ${i + 1}/${plan.length} ${run.shape} ρ=${run.load} seed ${run.seed} ${run.policy}: ` +
        `${records.length} responses, mean ${round(meanMs, 1)} ms, ${failed} failed, ` +
        `lab CPU busy ${round(100 * cpu, 0)}%`,
    );
  }
  await Deno.writeTextFile(values.out, JSON.stringify(results));
}

/** How the load generator fetches: over an association, or HTTP over TCP (nginx). */
async function requester(values: Options): Promise<{
  fetch(path: string): Promise<{ status: number; body: Uint8Array }>;
  close(): Promise<void>;
}> {
  if (values.server.startsWith("http://")) {
    // fetch keeps a pool of keep-alive connections, opening more while requests are in flight.
    await retry(() => fetch(values.server).then((r) => r.body?.cancel()), 15);
    return {
      fetch: async (path) => {
        const response = await fetch(values.server + path);
        return { status: response.status, body: await response.bytes() };
      },
      close: () => Promise.resolve(),
    };
  }
  const client = await retry(
    () => FlowClient.connect(values.server, { streams: values.streams }),
    15,
  );
  return {
    fetch: async (path) => {
      const response = await client.request(path);
      return { status: response.status, body: await response.bytes() };
    },
    close: () => client.close(),
  };
}

/** Load role: replays this client's part of a trace, open loop, over one association. */
async function load(values: Options) {
  const trace: TraceRequest[] = JSON.parse(await Deno.readTextFile(values.trace));
  const mine = trace.map((r, index) => ({ ...r, index })).filter((r) => r.client === values.client);
  const get = await requester(values);
  const t0 = performance.now() + 300;
  const records: Measured[] = [];
  const pending: Promise<void>[] = [];
  for (const request of mine) {
    const wait = t0 + request.at * 1000 - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    pending.push((async () => {
      let ok = false;
      try {
        const { status, body } = await get.fetch(request.path);
        ok = status === 200 && body.byteLength === request.size &&
          // A sample is checked byte for byte: every 25th request.
          (request.index % 25 !== 0 ||
            sha256Hex(body) === sha256Hex(fileBytes(FILE_SEED, request.file, request.size)));
      } catch {
        ok = false;
      }
      records.push({
        index: request.index,
        client: values.client,
        size: request.size,
        at: request.at * 1000,
        done: performance.now() - t0,
        ok,
      });
    })());
  }
  await Promise.all(pending);
  await get.close();
  await Deno.writeTextFile(values.out, JSON.stringify(records));
}

async function main(args: string[]) {
  const parsed = await parseOptions(args, OPTIONS);
  if (!parsed) {
    console.log(helpText(USAGE, OPTIONS));
    return;
  }
  const { values } = parsed;
  if (values.role === "load") return await load(values);
  if (values.role === "lab") return await inLab(values);
  if (values.from) return console.log(await analyse(values.from, values));
  await orchestrate(values, args);
}

export { main };

if (import.meta.main) await runMain("sched", main);
