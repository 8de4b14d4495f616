/**
 * `deno task bench files [--quick]`: file serving throughput over one
 * association vs the plain TCP HTTP/1.1 baseline, as ratios measured in one
 * run.
 *
 * Workload: a seeded tree of `--files` files whose sizes are uniform in
 * 0..1 MiB (as in the reference thesis; `--sizes loguniform` draws them
 * log-uniformly in 64 B..1 MiB instead), and `--requests` seeded random paths
 * (uniform popularity). `--concurrency` requests are kept outstanding: over
 * one association (FlowClient, `--streams` streams) for the SCTP transports
 * and tcpmux, under each policy; over `--concurrency` keep-alive connections
 * to the same server over `--transport tcp` for the TCP baseline (`tcp`, the
 * benchmark's HTTP/1.1 client of `bench thesis`). So every row is one server
 * path, and MB/s is body bytes received over the timed phase's wall time,
 * as in `bench thesis`. `deno-serve` (Deno.serve and fetch) is a second,
 * foreign baseline. Every response's status (200) and body length are
 * checked; failures are counted. A short untimed warm-up precedes each timed
 * phase. Client and server share one process; one configuration runs at a
 * time.
 *
 * On the host: usrsctp and tcpmux (scf, rr) vs the TCP baselines. In the lab
 * (one boot; the script re-runs itself with --inside-lab; loopback at MTU
 * 1500): kernel SCTP (scf, rr) vs the TCP baselines.
 *
 * @module
 */

import {
  FlowClient,
  localUdpPort,
  POLICY_NAMES,
  startServer,
  startTcpBaseline,
} from "../../mod.ts";
import type { PolicyName, TransportName } from "../../mod.ts";
import { ConfigError, helpText, parseOptions } from "../../cli/options.ts";
import { runInLab } from "../lab/lab.ts";
import { HttpConnection, openPipe } from "./thesis/http_client.ts";
import {
  denoArgv,
  labOutFile,
  loadAverage,
  prng,
  progress,
  REPO,
  round,
  runMain,
  table,
  writeResults,
} from "./common.ts";

const OPTIONS = {
  quick: { kind: "boolean", default: false, help: "few files and requests (a smoke run)" },
  where: {
    kind: "string",
    default: "both",
    choices: ["both", "host", "lab"],
    help: "run natively on the host, in the lab (kernel SCTP), or both",
  },
  files: { kind: "integer", default: 200, min: 1, help: "files in the tree" },
  sizes: {
    kind: "string",
    default: "uniform",
    choices: ["uniform", "loguniform"],
    help: "file size distribution up to 1 MiB",
  },
  requests: { kind: "integer", default: 10000, min: 1, help: "requests per timed phase (host)" },
  labRequests: {
    kind: "integer",
    default: 2000,
    min: 1,
    help: "requests per timed phase in the lab (one slow CPU)",
  },
  concurrency: { kind: "integer", default: 32, min: 1, help: "requests outstanding at once" },
  streams: { kind: "integer", default: 8, min: 1, max: 1024, help: "streams per association" },
  policies: { kind: "string", default: "scf,rr", help: "comma-separated policies to measure" },
  seed: { kind: "integer", default: 1, min: 0, help: "seed of file sizes and request paths" },
  stallSeconds: {
    kind: "integer",
    default: 60,
    min: 1,
    help: "end a phase when no response completes for this long (the rest count as errors)",
  },
  only: {
    kind: "string",
    default: "",
    help: "comma-separated servers to run (tcp, deno-serve, usrsctp, tcpmux, kernel); default all",
  },
  labTimeout: { kind: "integer", default: 1800, min: 60, help: "seconds before the lab is killed" },
  insideLab: { kind: "boolean", default: false, help: "(internal) run the lab part here" },
  labOut: { kind: "string", default: "", help: "(internal) file for the lab's results" },
} as const;

const USAGE = `Usage: deno task bench files [options]

File serving: a seeded tree of random-size files, seeded random requests, C outstanding at
once. Host: usrsctp and tcpmux over one association (policies scf and rr) vs the same
server over HTTP/1.1 on TCP (keep-alive, C connections), and Deno.serve with fetch as a
second baseline. Lab (User-Mode Linux, one CPU): kernel SCTP (scf, rr) vs the same
baselines. Prints files/s, MB/s (10^6 bytes), mean response time
and ratios measured in the same run; writes results/bench/files-<timestamp>.json.`;

const MIB = 1024 * 1024;
type Values = NonNullable<Awaited<ReturnType<typeof parseOptions<typeof OPTIONS>>>>["values"];

interface Tree {
  root: string;
  paths: string[];
  sizes: number[];
  totalBytes: number;
}

/** Writes the seeded tree under a new temporary directory. */
async function writeTree(values: Values): Promise<Tree> {
  const root = await Deno.makeTempDir({ prefix: "flowsched-bench-files-" });
  const random = prng(values.seed);
  // File bodies are windows of one seeded random pool (content does not matter here).
  const pool = new Uint8Array(2 * MIB);
  const words = new Uint32Array(pool.buffer);
  for (let i = 0; i < words.length; i++) words[i] = random() * 2 ** 32;
  const paths: string[] = [];
  const sizes: number[] = [];
  for (let i = 0; i < values.files; i++) {
    const size = values.sizes === "uniform"
      ? Math.floor(random() * (MIB + 1))
      : Math.round(Math.exp(Math.log(64) + random() * (Math.log(MIB) - Math.log(64))));
    const dir = `d${i % 10}`;
    const path = `/${dir}/f${String(i).padStart(5, "0")}.bin`;
    await Deno.mkdir(root + "/" + dir, { recursive: true });
    const at = Math.floor(random() * (pool.length - size));
    await Deno.writeFile(root + path, pool.subarray(at, at + size));
    paths.push(path);
    sizes.push(size);
  }
  return { root, paths, sizes, totalBytes: sizes.reduce((a, b) => a + b, 0) };
}

/** Seeded request sequence: indices into the tree. */
function requestList(values: Values, tree: Tree, count: number, salt: number): number[] {
  const random = prng(values.seed * 7919 + salt);
  return Array.from({ length: count }, () => Math.floor(random() * tree.paths.length));
}

interface Phase {
  where: "host" | "lab";
  server: string;
  policy: string;
  requests: number;
  errors: number;
  stalled: boolean;
  firstError?: string;
  seconds: number;
  bytes: number;
  filesPerSecond: number;
  mbPerSecond: number;
  meanMs: number;
  p99Ms: number;
  ratioToTcp?: number;
}

/**
 * Fetches `list` with `concurrency` outstanding; `fetchOne` returns [status,
 * body length]. If no response completes for `stallSeconds`, the phase ends:
 * every request not completed by then counts as an error.
 */
async function drive(
  tree: Tree,
  list: number[],
  concurrency: number,
  stallSeconds: number,
  fetchOne: (path: string) => Promise<[number, number]>,
) {
  let next = 0;
  let errors = 0;
  let completed = 0;
  let firstError: string | undefined;
  let bytes = 0;
  let stalled = false;
  const times: number[] = [];
  const t0 = performance.now();
  let lastDone = t0;
  const worker = async () => {
    while (next < list.length && !stalled) {
      const index = list[next++];
      const started = performance.now();
      let failure: string | undefined;
      let length = 0;
      try {
        const [status, got] = await fetchOne(tree.paths[index]);
        length = got;
        if (status !== 200 || length !== tree.sizes[index]) {
          failure = `${tree.paths[index]}: status ${status}, ${length} bytes, expected ${
            tree.sizes[index]
          }`;
        }
      } catch (error) {
        failure = (error as Error).message;
      }
      if (stalled) return;
      if (failure) {
        errors++;
        firstError ??= failure;
      } else {
        bytes += length;
      }
      completed++;
      lastDone = performance.now();
      times.push(lastDone - started);
      if (completed % Math.ceil(list.length / 5) === 0 && completed < list.length) {
        progress("files", `  ${completed}/${list.length} done`);
      }
    }
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watchdog = new Promise<void>((resolve) => {
    timer = setInterval(() => {
      if (performance.now() - lastDone > stallSeconds * 1000) resolve();
    }, 1000);
  });
  const finished = await Promise.race([
    Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, worker)).then(() =>
      true
    ),
    watchdog.then(() => false),
  ]);
  clearInterval(timer);
  if (!finished) {
    stalled = true;
    errors += list.length - completed;
    firstError = `stalled: no response for ${stallSeconds} s after ${completed} of ${list.length}` +
      (firstError ? `; earlier: ${firstError}` : "");
  }
  const seconds = (lastDone - t0) / 1000;
  times.sort((a, b) => a - b);
  return {
    seconds,
    bytes,
    errors,
    stalled,
    firstError,
    meanMs: times.reduce((a, b) => a + b, 0) / times.length,
    p99Ms: times[Math.min(times.length - 1, Math.floor(times.length * 0.99))],
  };
}

/** Waits for `promise` at most `ms`; says whether it settled. */
function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.then(() => true, () => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]).finally(() => clearTimeout(timer));
}

function phase(
  where: "host" | "lab",
  server: string,
  policy: string,
  requests: number,
  r: Awaited<ReturnType<typeof drive>>,
): Phase {
  const done = requests - r.errors;
  progress(
    "files",
    `  ${round(done / r.seconds, 0)} files/s, ${round(r.bytes / r.seconds / 1e6)} MB/s, ` +
      `${r.errors} errors${r.firstError ? ` (first: ${r.firstError})` : ""}`,
  );
  return {
    where,
    server,
    policy,
    requests,
    errors: r.errors,
    stalled: r.stalled,
    firstError: r.firstError,
    seconds: r.seconds,
    bytes: r.bytes,
    filesPerSecond: done / r.seconds,
    mbPerSecond: r.bytes / r.seconds / 1e6,
    meanMs: r.meanMs,
    p99Ms: r.p99Ms,
  };
}

/**
 * The TCP rows: flowsched's own server over `--transport tcp` (same file
 * layer and scheduler as the association rows) through the benchmark's
 * HTTP/1.1 client on `concurrency` keep-alive connections; and, as a second
 * baseline, Deno.serve with fetch.
 */
async function benchTcp(where: "host" | "lab", values: Values, tree: Tree, requests: number) {
  progress(
    "files",
    `tcp (flowsched HTTP/1.1, keep-alive): ${requests} requests, C=${values.concurrency}`,
  );
  const server = await startServer({
    transport: "tcp",
    host: "127.0.0.1",
    port: 0,
    root: tree.root,
    policy: "scf",
    logLevel: "warn",
    maxAssociations: values.concurrency + 1,
  });
  const idle: HttpConnection[] = [];
  try {
    const fetchOne = async (path: string): Promise<[number, number]> => {
      const http = idle.pop() ??
        new HttpConnection(await openPipe("tcp", "127.0.0.1", server.port), "127.0.0.1");
      try {
        const answer = await http.get(path, { keepBody: false, close: false });
        return [answer.status, answer.length];
      } finally {
        if (http.usable) idle.push(http);
        else http.close();
      }
    };
    const r = await warmAndRun(values, tree, requests, fetchOne);
    return phase(where, "tcp", "scf", requests, r);
  } finally {
    for (const http of idle) http.close();
    await server.close();
  }
}

async function benchDenoServe(where: "host" | "lab", values: Values, tree: Tree, requests: number) {
  progress("files", `deno-serve (Deno.serve, keep-alive, fetch): ${requests} requests`);
  await using server = await startTcpBaseline({ root: tree.root, port: 0, keepAlive: true });
  const client = Deno.createHttpClient({});
  try {
    const fetchOne = async (path: string): Promise<[number, number]> => {
      const response = await fetch(`http://127.0.0.1:${server.port}${path}`, { client });
      const body = await response.bytes();
      return [response.status, body.byteLength];
    };
    const r = await warmAndRun(values, tree, requests, fetchOne);
    return phase(where, "deno-serve", "-", requests, r);
  } finally {
    client.close();
  }
}

async function benchFlow(
  where: "host" | "lab",
  transport: TransportName,
  policy: PolicyName,
  values: Values,
  tree: Tree,
  requests: number,
) {
  progress(
    "files",
    `${transport} ${policy}: ${requests} requests, C=${values.concurrency}, ${values.streams} streams`,
  );
  const udpPort = transport === "usrsctp" ? localUdpPort() : undefined;
  const server = await startServer({
    transport,
    host: "127.0.0.1",
    port: 0,
    root: tree.root,
    policy,
    streams: values.streams,
    logLevel: "warn",
    udpPort,
  });
  let client: FlowClient | undefined;
  let r: Awaited<ReturnType<typeof drive>> | undefined;
  try {
    client = await FlowClient.connect(
      { transport, host: "127.0.0.1", port: server.port },
      { streams: values.streams, udpPort },
    );
    const fetchOne = async (path: string): Promise<[number, number]> => {
      const response = await client!.request(path);
      const body = await response.bytes();
      return [response.status, body.byteLength];
    };
    r = await warmAndRun(values, tree, requests, fetchOne);
    return phase(where, transport, policy, requests, r);
  } finally {
    // After a stall, a graceful close could wait forever: abort instead, and bound the wait.
    if (client) {
      const closing = r?.stalled ? client.association.abort() : client.close();
      if (!(await within(closing, 10_000))) progress("files", "  client did not close in 10 s");
    }
    if (!(await within(server.close(), 10_000))) {
      progress("files", "  server did not close in 10 s");
    }
  }
}

/** An untimed warm-up (a tenth of the requests, at most 200), then the timed phase. */
async function warmAndRun(
  values: Values,
  tree: Tree,
  requests: number,
  fetchOne: (path: string) => Promise<[number, number]>,
) {
  const warmup = requestList(values, tree, Math.min(200, Math.ceil(requests / 10)), 1);
  const w = await drive(tree, warmup, values.concurrency, values.stallSeconds, fetchOne);
  if (w.stalled) return { ...w, firstError: `warm-up ${w.firstError}` };
  return await drive(
    tree,
    requestList(values, tree, requests, 0),
    values.concurrency,
    values.stallSeconds,
    fetchOne,
  );
}

/** Runs every configuration of one place (host or lab), one at a time. */
async function runPlace(where: "host" | "lab", values: Values): Promise<Phase[]> {
  const requests = where === "lab" ? values.labRequests : values.requests;
  const tree = await writeTree(values);
  progress(
    "files",
    `${where}: tree of ${tree.paths.length} files (${values.sizes}), ${
      round(tree.totalBytes / 1e6)
    } MB, in ${tree.root}`,
  );
  const only = values.only.split(",").filter(Boolean);
  const wanted = (name: string) => only.length === 0 || only.includes(name);
  const transports = (where === "lab" ? ["kernel"] : ["usrsctp", "tcpmux"]).filter(
    wanted,
  ) as TransportName[];
  const policies = values.policies.split(",").filter(Boolean) as PolicyName[];
  const phases: Phase[] = [];
  try {
    if (wanted("tcp")) phases.push(await benchTcp(where, values, tree, requests));
    if (wanted("deno-serve")) phases.push(await benchDenoServe(where, values, tree, requests));
    for (const transport of transports) {
      for (const policy of policies) {
        phases.push(await benchFlow(where, transport, policy, values, tree, requests));
      }
    }
  } finally {
    await Deno.remove(tree.root, { recursive: true });
  }
  const tcp = phases.find((p) => p.server === "tcp");
  for (const p of phases) p.ratioToTcp = p.filesPerSecond / (tcp?.filesPerSecond ?? NaN);
  return phases;
}

async function main(args: string[]) {
  const parsed = await parseOptions(args, OPTIONS);
  if (!parsed) {
    console.log(helpText(USAGE, OPTIONS));
    return;
  }
  const values = parsed.values;
  if (values.quick) {
    const given = (flag: string) => args.some((a) => a.startsWith(flag));
    if (!given("--files")) values.files = 50;
    if (!given("--requests")) values.requests = 500;
    if (!given("--lab-requests")) values.labRequests = 200;
  }
  for (const policy of values.policies.split(",")) {
    if (!POLICY_NAMES.includes(policy as PolicyName)) {
      throw new ConfigError(`--policies: unknown policy "${policy}" (${POLICY_NAMES.join(", ")})`);
    }
  }
  if (values.insideLab) {
    await Deno.writeTextFile(values.labOut, JSON.stringify(await runPlace("lab", values)));
    return;
  }
  const load: Record<string, number[] | null> = { start: loadAverage() };
  const phases: Phase[] = [];
  if (values.where !== "lab") phases.push(...await runPlace("host", values));
  if (values.where !== "host") {
    progress("files", "lab: booting (kernel SCTP vs TCP baseline, loopback MTU 1500)");
    const labOut = await labOutFile("files");
    const forward = args.filter((a) => !a.startsWith("--where"));
    const result = await runInLab({
      command: denoArgv("files.ts", ["--inside-lab", `--lab-out=${labOut}`, ...forward]),
      cwd: REPO,
      output: "inherit",
      timeoutSeconds: values.labTimeout,
    });
    if (result.code !== 0) throw new Error(`lab run failed (exit code ${result.code})`);
    phases.push(...JSON.parse(await Deno.readTextFile(labOut)));
    await Deno.remove(labOut);
  }
  load.end = loadAverage();
  const path = await writeResults("files", { options: values, loadAverage: load, phases });
  console.log(
    `\nFile serving: ${values.files} files (${values.sizes} 0–1 MiB, seed ${values.seed}), ` +
      `C=${values.concurrency}, ${values.streams} streams; ` +
      `MB = 10^6 bytes; × tcp = files/s ratio in the same run`,
  );
  console.log(table(
    [
      "where",
      "server",
      "policy",
      "requests",
      "errors",
      "files/s",
      "MB/s",
      "mean ms",
      "p99 ms",
      "× tcp",
    ],
    phases.map((p) => [
      p.where,
      p.server,
      p.policy,
      p.requests,
      p.errors,
      round(p.filesPerSecond, 0),
      round(p.mbPerSecond, 1),
      round(p.meanMs, 1),
      round(p.p99Ms, 1),
      round(p.ratioToTcp!, 2),
    ]),
  ));
  console.log(`\nload average at start ${load.start?.join(" ")}, at end ${load.end?.join(" ")}`);
  console.log(`results: ${path}`);
  const errors = phases.reduce((n, p) => n + p.errors, 0);
  if (errors > 0) {
    console.error(`bench files: ${errors} failed requests (see the errors column)`);
    Deno.exitCode = 1;
  }
}

export { main };

if (import.meta.main) await runMain("files", main);
