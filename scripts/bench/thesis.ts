/**
 * `deno task bench thesis [--quick]`: the reference thesis's chapter 5 (5.2
 * to 5.5) and the seed paper 004's short-connection cost, in one lab boot,
 * with nginx over TCP and over kernel SCTP (lksctp's `withsctp`) in the same
 * runs.
 *
 * Lab: client 10.10.1.1 ──cp── proxy ──ps── server 10.10.2.2. The ps link
 * is the thesis's LAN (`--ps-delay`, default 1 ms one way); the cp link is a
 * browser's WAN path (`--cp-delay`, default 25 ms), crossed only by 5.5.
 * Every other client runs in the proxy namespace, so all server traffic
 * crosses ps and nothing else.
 *
 * - 5.2: one connection / one stream, sequential requests for uniform
 *   0–1 MiB files: flowsched over kernel SCTP and over TCP, nginx over both.
 * - 5.3: 8 HTTP connections to flowsched's proxy (cache and prefetch off),
 *   one kernel SCTP association to the server under SCF or RR: the uniform
 *   files, and a web-like set (heavy-tailed sizes, Zipf popularity).
 * - 5.4: the same through tcpmux instead of kernel SCTP, and straight to the
 *   server over 8 TCP connections (flowsched, nginx).
 * - 5.5: page loads (HTML, then what it embeds, 6 requests at a time) over
 *   non-persistent and persistent TCP, and through the proxy (kernel SCTP
 *   upstream) with and without prefetching.
 * - 004: small files (64 B–2 KiB), 8 clients: a TCP connection per request
 *   vs persistent connections vs one association; requests per second and
 *   CPU per request.
 *
 * Each row is a timed phase of `--seconds` at a closed-loop client (its own
 * process), after a short warm-up; rows run in turn, `--repeats` times.
 * Output: CSV and JSON under results/thesis/<time>/; with `--report`, the
 * committed report in docs/results/thesis/.
 *
 * @module
 */

import { join } from "node:path";
import { helpText, type OptionTable, parseOptions } from "../../cli/options.ts";
import { runInLab } from "../lab/lab.ts";
import {
  denoArgv,
  listOf,
  nginxConfig,
  prng,
  progress,
  REPO,
  repoDenoArgv,
  round,
  runMain,
  sha256Hex,
} from "./common.ts";
import {
  boundedPareto,
  fileBytes,
  fileSet,
  uniformSize,
  writeFileSet,
  zipfSampler,
} from "./sched/workload.ts";
import type { Expected, LoadJob, LoadOutcome } from "./thesis/load.ts";
import {
  type Experiment,
  EXPERIMENTS,
  type ThesisResults,
  type ThesisRun,
} from "./thesis/results.ts";
import { makeSite } from "./thesis/site.ts";
import { thesisReport } from "./thesis/report.ts";

const USAGE = `Usage: deno task bench thesis [options]

Reproduces the reference thesis's experiments 5.2-5.5 and seed 004's
short-connection cost in one lab boot, against nginx over TCP and over
kernel SCTP; writes CSV, JSON, SVG plots and a summary with verdicts.`;

const OPTIONS = {
  quick: {
    kind: "boolean",
    default: false,
    help: "one repeat of 2 s per row, few files and pages (a smoke run, under 5 minutes)",
  },
  only: {
    kind: "string",
    default: EXPERIMENTS.join(","),
    help: "comma-separated experiments to run",
  },
  repeats: { kind: "integer", default: 3, min: 1, max: 20, help: "timed phases per row" },
  seconds: { kind: "integer", default: 8, min: 1, help: "seconds per timed phase" },
  files: { kind: "integer", default: 200, min: 10, help: "files of uniform 0-1 MiB sizes" },
  pages: { kind: "integer", default: 20, min: 1, help: "pages of the 5.5 site" },
  seed: { kind: "integer", default: 1, min: 0, help: "seed of files and request sequences" },
  cpDelay: {
    kind: "integer",
    default: 25,
    min: 0,
    help: "one-way delay in ms of the client↔proxy link (5.5's browser path)",
  },
  psDelay: {
    kind: "integer",
    default: 1,
    min: 0,
    help: "one-way delay in ms of the proxy↔server link (every experiment)",
  },
  noNginx: { kind: "boolean", default: false, help: "skip the nginx rows (over TCP and withsctp)" },
  report: {
    kind: "boolean",
    default: false,
    help: "write the committed report: docs/results/thesis/ (summary.md, plots)",
  },
  from: {
    kind: "string",
    default: "",
    help: "report again on the runs of an earlier run (results/thesis/<time>), without running",
  },
  labTimeout: { kind: "integer", default: 3600, min: 60, help: "seconds before the lab is killed" },
  role: { kind: "string", default: "", help: "(internal) lab" },
  out: { kind: "string", default: "", help: "(internal) results file" },
} as const satisfies OptionTable;

type Options = NonNullable<Awaited<ReturnType<typeof parseOptions<typeof OPTIONS>>>>["values"];

const SERVER = "10.10.2.2";
const PROXY_CLIENT_SIDE = "10.10.1.2";
const SEQUENCE_LENGTH = 20_000;
/**
 * The thesis's uniform 0–1 MiB sizes; 5.3's web-like set (heavy-tailed sizes,
 * bounded Pareto α 1.1 in 1 KiB–1 MiB, requested with Zipf popularity); seed
 * 004's small requests (FALTCON: 64 B to 2 KiB).
 */
const MIB = 1024 * 1024;
const HEAVY = { alpha: 1.1, min: 1024, max: MIB };
const SMALL = { min: 64, max: 2048, count: 100 };

/** A server a row talks to. */
type ServerSpec =
  | { kind: "flowsched"; transport: "kernel" | "tcpmux" | "tcp"; policy: string; streams: number }
  | { kind: "nginx"; sctp: boolean };

/** One row of an experiment: what serves, what fetches. */
interface RowSpec {
  experiment: Experiment;
  row: string;
  server: ServerSpec;
  /** The proxy in front (its client side on loopback, or on the client link for 5.5). */
  proxy?: { prefetch: boolean; cache: boolean; upstream: "kernel" | "tcpmux" };
  variant: ThesisRun["variant"];
  /** Namespace of the client. */
  from: "proxy" | "client";
  job: Pick<LoadJob, "mode" | "transport" | "persistent" | "workers" | "streams"> & {
    sequence: keyof Sequences;
  };
}

interface Sequences {
  uniform: string[];
  zipf: string[];
  small: string[];
  pages: string[];
}

const http = (persistent: boolean, workers: number, transport: "tcp" | "sctp" = "tcp") => ({
  mode: "http" as const,
  transport,
  persistent,
  workers,
  streams: 1,
});
const flow = (workers: number, streams: number) => ({
  mode: "flow" as const,
  transport: "tcp" as const,
  persistent: true,
  workers,
  streams,
});
const pages = (persistent: boolean) => ({
  mode: "pages" as const,
  transport: "tcp" as const,
  persistent,
  workers: 6,
  streams: 1,
});
const flowsched = (transport: "kernel" | "tcpmux" | "tcp", policy = "scf", streams = 8) => ({
  kind: "flowsched" as const,
  transport,
  policy,
  streams,
});
const nginx = (sctp: boolean) => ({ kind: "nginx" as const, sctp });

/** Every row, in the order they run. */
function rows(withNginx: boolean): RowSpec[] {
  const all: (RowSpec & { nginx?: true })[] = [
    // 5.2: one connection or one stream, one request at a time.
    {
      experiment: "5.2",
      row: "flowsched sctp",
      server: flowsched("kernel", "scf", 1),
      variant: { streams: 1 },
      from: "proxy",
      job: { ...flow(1, 1), sequence: "uniform" },
    },
    {
      experiment: "5.2",
      row: "flowsched tcp",
      server: flowsched("tcp"),
      variant: { connections: 1 },
      from: "proxy",
      job: { ...http(true, 1), sequence: "uniform" },
    },
    {
      experiment: "5.2",
      row: "nginx sctp",
      server: nginx(true),
      variant: { streams: 1 },
      from: "proxy",
      job: { ...http(true, 1, "sctp"), sequence: "uniform" },
      nginx: true,
    },
    {
      experiment: "5.2",
      row: "nginx tcp",
      server: nginx(false),
      variant: { connections: 1 },
      from: "proxy",
      job: { ...http(true, 1), sequence: "uniform" },
      nginx: true,
    },
    // 5.3: SCF vs RR through the unoptimised proxy (no cache, no prefetch).
    ...(["uniform", "zipf"] as const).flatMap((popularity) =>
      (["scf", "rr"] as const).map((policy): RowSpec => ({
        experiment: "5.3",
        row: `${policy} ${popularity}`,
        server: flowsched("kernel", policy),
        proxy: { prefetch: false, cache: false, upstream: "kernel" },
        variant: { policy, popularity, connections: 8 },
        from: "proxy",
        job: { ...http(true, 8), sequence: popularity },
      }))
    ),
    // 5.4: SCTP emulated over TCP, and plain TCP connections.
    ...([["sctp scf", "kernel", "scf"], ["tcpmux scf", "tcpmux", "scf"], [
      "tcpmux rr",
      "tcpmux",
      "rr",
    ]] as const).map(([row, upstream, policy]): RowSpec => ({
      experiment: "5.4",
      row,
      server: flowsched(upstream, policy),
      proxy: { prefetch: false, cache: false, upstream },
      variant: { policy, connections: 8 },
      from: "proxy",
      job: { ...http(true, 8), sequence: "uniform" },
    })),
    {
      experiment: "5.4",
      row: "tcp x8",
      server: flowsched("tcp"),
      variant: { connections: 8 },
      from: "proxy",
      job: { ...http(true, 8), sequence: "uniform" },
    },
    {
      experiment: "5.4",
      row: "nginx tcp x8",
      server: nginx(false),
      variant: { connections: 8 },
      from: "proxy",
      job: { ...http(true, 8), sequence: "uniform" },
      nginx: true,
    },
    // 5.5: browser request patterns over the client's WAN link.
    ...([false, true] as const).map((persistent): RowSpec => ({
      experiment: "5.5",
      row: `tcp ${persistent ? "persistent" : "non-persistent"}`,
      server: flowsched("tcp"),
      variant: { persistent, parallel: 6 },
      from: "client",
      job: { ...pages(persistent), sequence: "pages" },
    })),
    ...([true, false] as const).map((prefetch): RowSpec => ({
      experiment: "5.5",
      row: `sctp proxy ${prefetch ? "prefetch" : "no-prefetch"}`,
      server: flowsched("kernel"),
      proxy: { prefetch, cache: true, upstream: "kernel" },
      variant: { prefetch, persistent: true, parallel: 6 },
      from: "client",
      job: { ...pages(true), sequence: "pages" },
    })),
    ...([false, true] as const).map((persistent) => ({
      experiment: "5.5" as const,
      row: `nginx tcp ${persistent ? "persistent" : "non-persistent"}`,
      server: nginx(false),
      variant: { persistent, parallel: 6 },
      from: "client" as const,
      job: { ...pages(persistent), sequence: "pages" as const },
      nginx: true as const,
    })),
    // 004: short connections vs long-lived ones, small files.
    ...([false, true] as const).map((persistent): RowSpec => ({
      experiment: "004",
      row: `tcp ${persistent ? "persistent" : "non-persistent"}`,
      server: flowsched("tcp"),
      variant: { persistent, clients: 8 },
      from: "proxy",
      job: { ...http(persistent, 8), sequence: "small" },
    })),
    {
      experiment: "004",
      row: "sctp association",
      server: flowsched("kernel"),
      variant: { persistent: true, clients: 8 },
      from: "proxy",
      job: { ...flow(8, 8), sequence: "small" },
    },
    ...([false, true] as const).map((persistent) => ({
      experiment: "004" as const,
      row: `nginx tcp ${persistent ? "persistent" : "non-persistent"}`,
      server: nginx(false),
      variant: { persistent, clients: 8 },
      from: "proxy" as const,
      job: { ...http(persistent, 8), sequence: "small" as const },
      nginx: true as const,
    })),
  ];
  return all.filter((r) => withNginx || !r.nginx);
}

/** Host side: the lab run, then the report. */
async function orchestrate(values: Options, args: string[]) {
  const given = (flag: string) => args.some((a) => a.startsWith(flag));
  if (values.quick) {
    if (!given("--repeats")) values.repeats = 1;
    if (!given("--seconds")) values.seconds = 2;
    if (!given("--files")) values.files = 40;
    if (!given("--pages")) values.pages = 4;
  }
  const only = experimentsOf(values.only);
  if (!values.noNginx && !await hasNginx()) {
    progress(
      "thesis",
      "nginx or withsctp is missing (scripts/bootstrap.sh installs them): no nginx rows",
    );
    values.noNginx = true;
  }
  const planned = rows(!values.noNginx).filter((r) => only.includes(r.experiment));
  const perRun = values.seconds + 3;
  progress(
    "thesis",
    `${planned.length} rows × ${values.repeats} repeats of ${values.seconds} s in the lab ` +
      `(~${Math.ceil(planned.length * values.repeats * perRun / 60)} min)`,
  );
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const dir = join(REPO, "results", "thesis", stamp);
  await Deno.mkdir(dir, { recursive: true });
  const out = join(dir, "runs.json");
  const lab = await runInLab({
    command: denoArgv("thesis.ts", [
      "--role=lab",
      `--out=${out}`,
      `--repeats=${values.repeats}`,
      `--seconds=${values.seconds}`,
      `--files=${values.files}`,
      `--pages=${values.pages}`,
      `--seed=${values.seed}`,
      `--only=${only.join(",")}`,
      ...(values.noNginx ? ["--no-nginx"] : []),
    ]),
    links: [`cp:delay=${values.cpDelay}ms`, `ps:delay=${values.psDelay}ms`],
    cwd: REPO,
    output: "inherit",
    timeoutSeconds: values.labTimeout,
  });
  if (lab.code !== 0) throw new Error(`the lab run failed (exit code ${lab.code})`);
  const results: ThesisResults = JSON.parse(await Deno.readTextFile(out));
  results.setup = {
    ...results.setup,
    cpDelayMs: values.cpDelay,
    psDelayMs: values.psDelay,
    lab: "User-Mode Linux, 1 CPU; client, proxy and servers share it",
  };
  await Deno.writeTextFile(out, JSON.stringify(results));
  await report(results, dir, values);
}

/** The report of a finished run; throws if any request failed. */
async function report(results: ThesisResults, dir: string, values: Options) {
  const docs = values.report ? join(REPO, "docs", "results", "thesis") : null;
  console.log(
    await thesisReport(results, {
      dir,
      docs,
      notes: join(REPO, "docs", "results", "thesis", "notes.md"),
    }),
  );
  const failed = results.runs.reduce((n, r) => n + r.failed, 0);
  progress("thesis", `results in ${dir}${docs ? ` and ${docs}` : ""}; ${failed} requests failed`);
  if (failed > 0) throw new Error(`${failed} requests failed (see the summary)`);
}

function experimentsOf(text: string): Experiment[] {
  return listOf(text, EXPERIMENTS, "--only", "experiment");
}

async function hasNginx(): Promise<boolean> {
  try {
    for (const command of ["nginx", "withsctp"]) {
      const probe = command === "nginx" ? ["-v"] : ["true"];
      await new Deno.Command(command, { args: probe, stdout: "null", stderr: "null" }).output();
    }
    return true;
  } catch {
    return false;
  }
}

/** The files and request sequences, written where every server reads them. */
async function prepareSite(root: string, values: Options) {
  const files: Record<string, Expected> = {};
  /** A set of `count` files under /<dir>/ with sizes from `size`, seeded by `seed`. */
  const writeSet = async (
    dir: string,
    seed: number,
    count: number,
    size: (r: () => number) => number,
  ) => {
    const set = fileSet(seed, count, size).map((f) => ({
      ...f,
      path: f.path.replace("/f/", `/${dir}/`),
    }));
    await writeFileSet(root, set, seed);
    set.forEach((f, i) => {
      files[f.path] = { size: f.size, sha256: sha256Hex(fileBytes(seed, i, f.size)) };
    });
    return set;
  };
  const uniform = await writeSet("f", values.seed, values.files, (r) => uniformSize(r, 1, MIB));
  const heavy = await writeSet(
    "h",
    values.seed + 3,
    values.files,
    (r) => boundedPareto(r, HEAVY.alpha, HEAVY.min, HEAVY.max),
  );
  const small = await writeSet(
    "s",
    values.seed + 1,
    SMALL.count,
    (r) => uniformSize(r, SMALL.min, SMALL.max),
  );
  const site = await makeSite(values.pages, { root, seed: values.seed });
  for (const f of site.files) files[f.path] = { size: f.size, sha256: f.sha256 };
  // nginx's workers run as nobody.
  await run(["chmod", "-R", "a+rX", root]);

  const rand = prng(values.seed + 2);
  const pick = (list: { path: string }[], index: () => number) =>
    Array.from({ length: SEQUENCE_LENGTH }, () => list[index()].path);
  const zipf = zipfSampler(rand, heavy.length);
  const sequences: Sequences = {
    uniform: pick(uniform, () => Math.floor(rand() * uniform.length)),
    zipf: pick(heavy, zipf),
    small: pick(small, () => Math.floor(rand() * small.length)),
    pages: site.pages.map((p) => p.path),
  };
  return { files, sequences };
}

async function run(argv: string[]) {
  const { success, stderr } = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stderr: "piped",
  })
    .output();
  if (!success) throw new Error(`${argv.join(" ")}: ${new TextDecoder().decode(stderr)}`);
}

function spawn(netns: string, argv: string[], quiet = false): Deno.ChildProcess {
  return new Deno.Command("ip", {
    args: ["netns", "exec", netns, ...argv],
    cwd: REPO,
    stdin: "null",
    stdout: quiet ? "null" : "inherit",
    stderr: "inherit",
  }).spawn();
}

/** Starts the processes of a row; returns them (the server's first) and the client's target. */
async function startRow(spec: RowSpec, port: number, work: string, root: string) {
  const processes: Deno.ChildProcess[] = [];
  const { server } = spec;
  let target: string;
  if (server.kind === "nginx") {
    const dir = join(work, `nginx-${port}`);
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(
      join(dir, "nginx.conf"),
      nginxConfig({ dir, root, listen: `${SERVER}:${port}`, sctp: server.sctp }),
    );
    const argv = ["nginx", "-c", join(dir, "nginx.conf"), "-g", "daemon off;"];
    processes.push(spawn("server", server.sctp ? ["withsctp", ...argv] : argv));
    target = `${SERVER}:${port}`;
  } else {
    processes.push(spawn(
      "server",
      repoDenoArgv(
        "server/main.ts",
        [
          `--transport=${server.transport}`,
          `--host=${SERVER}`,
          `--port=${port}`,
          `--root=${root}`,
          `--policy=${server.policy}`,
          `--streams=${server.streams}`,
          "--max-associations=64",
          "--log-level=warn",
        ],
        "server",
        ["--no-code-cache"],
      ),
    ));
    target = server.transport === "tcp"
      ? `${SERVER}:${port}`
      : `${server.transport}://${SERVER}:${port}`;
  }
  if (spec.proxy) {
    const listen = spec.from === "client" ? PROXY_CLIENT_SIDE : "127.0.0.1";
    const proxyPort = port + 1000;
    processes.push(spawn(
      "proxy",
      repoDenoArgv(
        "proxy/main.ts",
        [
          `--listen=${listen}:${proxyPort}`,
          `--upstream=${spec.proxy.upstream}://${SERVER}:${port}`,
          "--streams=8",
          `--cache=${join(work, `cache-${port}`)}`,
          ...(spec.proxy.cache ? [] : ["--cache-size=0"]),
          ...(spec.proxy.prefetch ? [] : ["--no-prefetch"]),
          "--log-level=warn",
        ],
        "proxy",
        ["--no-code-cache"],
      ),
    ));
    target = `${listen}:${proxyPort}`;
  }
  return { processes, target };
}

/** Lab side: every row, `repeats` times, rows in turn; the records back to the host. */
async function inLab(values: Options) {
  const work = "/tmp/thesis";
  const root = join(work, "site");
  await Deno.mkdir(root, { recursive: true, mode: 0o755 });
  progress("thesis", "writing the files and the 5.5 site");
  const { files, sequences } = await prepareSite(root, values);
  const only = experimentsOf(values.only);
  const planned = rows(!values.noNginx).filter((r) => only.includes(r.experiment));
  const runs: ThesisRun[] = [];
  let port = 9000;
  for (let repeat = 0; repeat < values.repeats; repeat++) {
    for (const [i, spec] of planned.entries()) {
      port += 2;
      const { processes, target } = await startRow(spec, port, work, root);
      const jobFile = join(work, `job-${port}.json`);
      const outFile = join(work, `out-${port}.json`);
      const job: LoadJob = {
        ...spec.job,
        sequence: sequences[spec.job.sequence],
        target,
        seconds: values.seconds,
        files,
        hashEvery: 10,
        serverPids: [processes[0].pid],
        proxyPids: processes.slice(1).map((p) => p.pid),
      };
      await Deno.writeTextFile(jobFile, JSON.stringify(job));
      const load = spawn(
        spec.from,
        repoDenoArgv("scripts/bench/thesis/load.ts", [jobFile, outFile], "bench"),
      );
      const status = await load.status;
      // The proxy first, so that it does not see its server go away.
      for (const p of processes.toReversed()) {
        p.kill("SIGTERM");
        await p.status;
      }
      if (!status.success) throw new Error(`${spec.experiment} ${spec.row}: the client failed`);
      const outcome: LoadOutcome = JSON.parse(await Deno.readTextFile(outFile));
      const failed = outcome.fetches.filter((f) => !f.ok).length;
      const bytes = outcome.fetches.reduce((n, f) => n + f.bytes, 0);
      runs.push({
        experiment: spec.experiment,
        row: spec.row,
        server: spec.server.kind,
        transport: spec.server.kind === "nginx"
          ? (spec.server.sctp ? "sctp" : "tcp")
          : spec.server.transport === "kernel"
          ? "sctp"
          : spec.server.transport,
        proxy: spec.proxy !== undefined,
        variant: spec.variant,
        repeat,
        seconds: outcome.seconds,
        requests: outcome.fetches.length,
        failed,
        bytes,
        labCpu: outcome.labCpu,
        serverCpuMs: outcome.serverCpuMs,
        ...(spec.proxy ? { proxyCpuMs: outcome.proxyCpuMs } : {}),
        connections: outcome.connections,
        fetches: outcome.fetches,
      });
      progress(
        "thesis",
        `${repeat * planned.length + i + 1}/${planned.length * values.repeats} ` +
          `${spec.experiment} ${spec.row}: ${round(bytes / outcome.seconds / 1e6, 2)} MB/s, ` +
          `${round(outcome.fetches.length / outcome.seconds, 1)} ${
            spec.job.mode === "pages" ? "pages" : "requests"
          }/s, ${failed} failed, lab CPU ${round(100 * outcome.labCpu, 0)}%`,
      );
    }
  }
  const results: ThesisResults = {
    started: new Date().toISOString(),
    setup: {
      repeats: values.repeats,
      secondsPerPhase: values.seconds,
      uniformFiles: `${values.files} files, sizes uniform in 1 B–1 MiB, requested uniformly`,
      zipfFiles: `${values.files} files, sizes bounded Pareto (α ${HEAVY.alpha}, ` +
        `${HEAVY.min} B–1 MiB), requested with Zipf popularity (s = 1)`,
      smallFiles: `${SMALL.count} files, sizes uniform in ${SMALL.min}–${SMALL.max} B`,
      pages: values.pages,
      seed: values.seed,
      kernel: Deno.osRelease(),
    },
    runs,
  };
  await Deno.writeTextFile(values.out, JSON.stringify(results));
}

async function main(args: string[]) {
  const parsed = await parseOptions(args, OPTIONS);
  if (!parsed) {
    console.log(helpText(USAGE, OPTIONS));
    return;
  }
  const { values } = parsed;
  if (values.role === "lab") return await inLab(values);
  if (values.from) {
    const results = JSON.parse(await Deno.readTextFile(join(values.from, "runs.json")));
    return await report(results, values.from, values);
  }
  await orchestrate(values, args);
}

export { main };

if (import.meta.main) await runMain("thesis", main);
