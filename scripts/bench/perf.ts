/**
 * `deno task bench perf [--quick]`: the performance table of issue #15 in one
 * command, every row a ratio measured in one run.
 *
 * Proxy cache hits (host): `wrk` against three HTTP/1.1 servers of the same
 * files, rounds interleaved:
 * - nginx as a user would run it for static files (`worker_processes
 *   --nginx-workers`, sendfile on, access log off);
 * - the runtime's own server (`perf/ceiling.ts`: `Deno.serve` answering
 *   small files from memory and streaming large ones from the file), the
 *   ceiling of a proxy built on it (the proxy now has its own front);
 * - the flowsched proxy in front of a flowsched server (tcpmux, loopback),
 *   its cache filled before the timed rounds, so every timed request is a hit;
 * - the same proxy with `--threads` as many as nginx's workers (one port,
 *   `SO_REUSEPORT`), sharing the first one's cache directory, so both
 *   compare on the same number of cores.
 *
 * Two workloads: 100 files of 1 KiB, `wrk -t1 -c32` cycling through them
 * (requests/s), and 16 files of 1 MiB, `wrk -t1 -c8` (MB/s, 10^6 bytes of
 * body). Every server's answers are checked byte for byte against the files
 * first, and a round with a socket error or a non-2xx answer fails the run.
 * One untimed round per server and workload warms each one up first.
 *
 * usrsctp (host): `bench transports --where host` (one-way messages; the
 * Deno transport and `anchor/oneway_usrsctp.c` on libusrsctp's blocking API,
 * rounds interleaved) and `bench files --where host --only usrsctp` (file
 * serving over one association, policy scf): usrsctp Deno / C at 64 KiB and
 * 1 KiB (100,000 messages of 1 KiB), and file serving / the transport at
 * 64 KiB, with the transport sending from either end.
 *
 * The client over kernel SCTP (lab, one boot): `deno task get`, and the same
 * program through `deno run` (no task runner, as the installed
 * `flowsched-get` launcher runs it), fetching
 * `--get-files` files of 1 MiB over one association (8 streams), from the
 * client namespace to a flowsched server in the server namespace, against
 * `withsctp curl --parallel` fetching the same files from nginx over kernel
 * SCTP (`withsctp nginx`), rounds interleaved. Wall time of the whole command,
 * start-up included; a second set of rows fetches one 1-byte file, which is
 * all start-up. Every fetched file is compared with the original.
 *
 * @module
 */

import { join } from "node:path";
import { helpText, parseOptions } from "../../cli/options.ts";
import { freeTcpPort } from "../hardening/stack.ts";
import { LAB_ADDRESSES, runInLab } from "../lab/lab.ts";
import {
  denoArgv,
  labOutFile,
  loadAverage,
  median,
  nginxConfig,
  progress,
  REPO,
  repoDenoArgv,
  retry,
  round,
  runMain,
  sha256Hex,
  table,
  writeResults,
} from "./common.ts";

const OPTIONS = {
  quick: { kind: "boolean", default: false, help: "one short round per server (a smoke run)" },
  repeat: { kind: "integer", default: 3, min: 1, help: "rounds per server and workload (median)" },
  seconds: { kind: "integer", default: 5, min: 1, help: "length of one wrk round" },
  nginxWorkers: { kind: "integer", default: 2, min: 1, help: "nginx worker processes" },
  proxyArgs: {
    kind: "string",
    default: "",
    help: "extra proxy options, space-separated (to compare settings)",
  },
  where: {
    kind: "string",
    default: "both",
    choices: ["both", "host", "lab"],
    help: "proxy hits on the host, the client over kernel SCTP in the lab, or both",
  },
  getFiles: { kind: "integer", default: 120, min: 1, help: "1 MiB files a lab round fetches" },
  labTimeout: { kind: "integer", default: 1200, min: 60, help: "seconds before the lab is killed" },
  // Internal: how the script re-invokes itself.
  insideLab: { kind: "boolean", default: false, help: "(internal) run the lab part here" },
  labOut: { kind: "string", default: "", help: "(internal) file for the lab's rounds" },
} as const;

const USAGE = `Usage: deno task bench perf [options]

Proxy cache hits on this host: wrk against nginx, the runtime's own server (Deno.serve) and the
flowsched proxy (its cache filled first), 1 KiB files (wrk -t1 -c32, requests/s) and 1 MiB
files (wrk -t1 -c8, MB/s). usrsctp on this host: the transport against a C program on
libusrsctp (bench transports), and file serving over it (bench files). In the lab (kernel SCTP,
one boot): \`deno task get\` (and the same program through \`deno run\`, without the task
runner's second Deno process) fetching --get-files files of 1 MiB over one association against
withsctp curl --parallel from nginx over SCTP, start-up included, and all fetching one tiny file. Rounds are interleaved; the
tables give medians and ratios measured in the same run. Writes
results/bench/perf-<timestamp>.json.`;

type Values = NonNullable<Awaited<ReturnType<typeof parseOptions<typeof OPTIONS>>>>["values"];

const KIB = 1024;
const MIB = 1024 * KIB;

/** A workload: files of one size, and how wrk loads them. */
interface Workload {
  name: string;
  dir: string;
  files: number;
  size: number;
  connections: number;
}

const WORKLOADS: Workload[] = [
  { name: "1 KiB", dir: "small", files: 100, size: KIB, connections: 32 },
  { name: "1 MiB", dir: "big", files: 16, size: MIB, connections: 8 },
];

/** A server under test: its name and base URL. */
interface Target {
  name: "nginx" | "deno-serve" | "proxy" | "proxy-threads";
  url: string;
}

/** One wrk round. */
interface Round {
  target: Target["name"];
  workload: string;
  round: number;
  requestsPerSecond: number;
}

/** Writes the files of every workload under `root`; returns each URL path's sha256. */
async function writeSite(root: string): Promise<Map<string, string>> {
  const digests = new Map<string, string>();
  for (const w of WORKLOADS) {
    await Deno.mkdir(join(root, w.dir), { recursive: true });
    for (let i = 1; i <= w.files; i++) {
      const body = new Uint8Array(w.size);
      for (let at = 0; at < w.size; at += 65536) {
        crypto.getRandomValues(body.subarray(at, Math.min(w.size, at + 65536)));
      }
      await Deno.writeFile(join(root, w.dir, `${i}.bin`), body);
      digests.set(`/${w.dir}/${i}.bin`, sha256Hex(body));
    }
  }
  // nginx's workers run as nobody.
  await Deno.chmod(root, 0o755);
  for (const w of WORKLOADS) await Deno.chmod(join(root, w.dir), 0o755);
  return digests;
}

/** A wrk script cycling through a workload's paths. */
function wrkScript(w: Workload): string {
  return `local i = 0
request = function()
  i = (i % ${w.files}) + 1
  return wrk.format("GET", "/${w.dir}/" .. i .. ".bin")
end
`;
}

/** Fetches every path from `url` (until it answers) and compares each body with the file's. */
async function verify(target: Target, digests: Map<string, string>) {
  await retry(async () => await (await fetch(`${target.url}/small/1.bin`)).body?.cancel(), 30);
  for (const [path, digest] of digests) {
    const response = await fetch(target.url + path);
    const body = await response.bytes();
    if (response.status !== 200 || sha256Hex(body) !== digest) {
      throw new Error(
        `${target.name} answered ${path} with ${response.status}, ${body.byteLength} bytes that ` +
          "are not the file's",
      );
    }
  }
}

/** One wrk round; throws if wrk saw a socket error or a non-2xx answer. */
async function wrk(target: Target, w: Workload, script: string, seconds: number) {
  const { stdout, stderr, success } = await new Deno.Command("wrk", {
    args: ["-t1", `-c${w.connections}`, `-d${seconds}s`, "-s", script, target.url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!success || !rate) {
    throw new Error(
      `wrk against ${target.name} failed: ${text}${new TextDecoder().decode(stderr)}`,
    );
  }
  const bad = /(Socket errors:.*|Non-2xx or 3xx responses:.*)/.exec(text);
  if (bad) throw new Error(`wrk against ${target.name}, ${w.name}: ${bad[1]}`);
  return Number(rate[1]);
}

function spawn(argv: string[], stdout: "null" | "piped" = "null"): Deno.ChildProcess {
  return new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout,
    stderr: "inherit",
    cwd: REPO,
  }).spawn();
}

/** Starts nginx, the ceiling, the flowsched server and the proxy; returns the targets. */
async function startServers(work: string, root: string, values: Values) {
  const processes: Deno.ChildProcess[] = [];
  const nginxPort = freeTcpPort();
  const nginxDir = join(work, "nginx");
  await Deno.mkdir(nginxDir);
  await Deno.writeTextFile(
    join(nginxDir, "nginx.conf"),
    nginxConfig({
      dir: nginxDir,
      root,
      listen: `127.0.0.1:${nginxPort}`,
      workers: values.nginxWorkers,
    }),
  );
  processes.push(spawn(["nginx", "-c", join(nginxDir, "nginx.conf"), "-g", "daemon off;"]));

  const ceilingPort = freeTcpPort();
  processes.push(spawn(
    repoDenoArgv(
      "scripts/bench/perf/ceiling.ts",
      [`--root=${root}`, `--port=${ceilingPort}`],
      "bench",
    ),
  ));

  const serverPort = freeTcpPort();
  processes.push(spawn(repoDenoArgv("server/main.ts", [
    "--transport=tcpmux",
    "--host=127.0.0.1",
    `--port=${serverPort}`,
    `--root=${root}`,
    "--streams=8",
    "--log-level=warn",
  ], "server")));
  const proxyPort = freeTcpPort();
  const threadsPort = freeTcpPort();
  const cache = join("/dev/shm", `flowsched-perf-${proxyPort}`);
  for (const [port, threads] of [[proxyPort, 1], [threadsPort, values.nginxWorkers]]) {
    processes.push(spawn(repoDenoArgv("proxy/main.ts", [
      `--listen=127.0.0.1:${port}`,
      `--upstream=tcpmux://127.0.0.1:${serverPort}`,
      "--streams=8",
      `--cache=${cache}`,
      `--threads=${threads}`,
      "--log-level=warn",
      ...values.proxyArgs.split(" ").filter(Boolean),
    ], "proxy")));
  }
  const targets: Target[] = [
    { name: "nginx", url: `http://127.0.0.1:${nginxPort}` },
    { name: "deno-serve", url: `http://127.0.0.1:${ceilingPort}` },
    { name: "proxy", url: `http://127.0.0.1:${proxyPort}` },
    { name: "proxy-threads", url: `http://127.0.0.1:${threadsPort}` },
  ];
  return { processes, targets, cache };
}

async function hits(values: Values): Promise<Round[]> {
  const work = await Deno.makeTempDir({ prefix: "flowsched-perf-" });
  await Deno.chmod(work, 0o755);
  const root = join(work, "site");
  const digests = await writeSite(root);
  const scripts = new Map<string, string>();
  for (const w of WORKLOADS) {
    const path = join(work, `${w.dir}.lua`);
    await Deno.writeTextFile(path, wrkScript(w));
    scripts.set(w.name, path);
  }
  const { processes, targets, cache } = await startServers(work, root, values);
  const rounds: Round[] = [];
  try {
    // The proxy's fetch fills its cache: from here on every request to it is a hit.
    for (const target of targets) {
      await verify(target, digests);
      progress("perf", `${target.name} answers every file byte for byte`);
    }
    const repeat = values.quick ? 1 : values.repeat;
    const seconds = values.quick ? 1 : values.seconds;
    // Untimed: the JIT compiles the hot paths, and the proxy keeps its small bodies in memory.
    for (const w of WORKLOADS) {
      for (const target of targets) await wrk(target, w, scripts.get(w.name)!, seconds);
    }
    progress("perf", "warmed up");
    for (let r = 0; r < repeat; r++) {
      for (const w of WORKLOADS) {
        for (const target of targets) {
          const requestsPerSecond = await wrk(target, w, scripts.get(w.name)!, seconds);
          rounds.push({ target: target.name, workload: w.name, round: r, requestsPerSecond });
          progress(
            "perf",
            `round ${r + 1}/${repeat} ${w.name} ${target.name}: ${
              round(requestsPerSecond, 0)
            } req/s`,
          );
        }
      }
    }
  } finally {
    // The proxy first, then what it talks to.
    for (const p of processes.toReversed()) {
      try {
        p.kill("SIGTERM");
      } catch { /* already gone */ }
      await p.status;
    }
    await Deno.remove(work, { recursive: true }).catch(() => {});
    await Deno.remove(cache, { recursive: true }).catch(() => {});
  }
  return rounds;
}

/** What the usrsctp rows need from `bench transports` and `bench files`. */
export interface UsrsctpResult {
  /**
   * By measured name and message size: the median MB/s, and each round's
   * seconds (rounds interleave the names).
   */
  transport: Record<string, { mbPerSecond: number; seconds: number[] }>;
  /** MB/s of file serving over usrsctp (scf). */
  files: number;
}

/** Runs another benchmark of this directory; returns its results file's JSON. */
async function subBench(script: string, args: string[]): Promise<unknown> {
  const [command, ...rest] = denoArgv(script, args);
  const output = await new Deno.Command(command, {
    args: rest,
    cwd: REPO,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const path = /results: (\S+\.json)/.exec(text)?.[1];
  if (!output.success || !path) throw new Error(`${script} ${args.join(" ")} failed:\n${text}`);
  const data = JSON.parse(await Deno.readTextFile(path));
  await Deno.remove(path);
  return data;
}

/** 1 KiB messages per usrsctp measurement: about half a second for the C anchor. */
const SMALL_COUNT = 100_000;

async function usrsctp(values: Values): Promise<UsrsctpResult> {
  const quick = values.quick ? ["--quick"] : [];
  progress("perf", "usrsctp: bench transports --where host (the Deno transport and the C anchor)");
  // 20,000 messages of 1 KiB (bench transports' default) take a tenth of a
  // second, over which the C anchor's time swings threefold between runs.
  const counts = values.quick ? [] : [`--small-count=${SMALL_COUNT}`];
  const transports = await subBench("transports.ts", ["--where=host", ...quick, ...counts]) as {
    rows: {
      where: string;
      transport: string;
      size: number;
      mbPerSecond: number;
      seconds: number[];
    }[];
  };
  progress("perf", "usrsctp: bench files --where host --only usrsctp --policies scf");
  const files = await subBench("files.ts", [
    "--where=host",
    "--only=usrsctp",
    "--policies=scf",
    ...quick,
  ]) as { phases: { server: string; policy: string; mbPerSecond: number; errors: number }[] };
  const phase = files.phases.find((p) => p.server === "usrsctp" && p.policy === "scf");
  if (!phase || phase.errors > 0) throw new Error("bench files: usrsctp (scf) had errors");
  const transport: UsrsctpResult["transport"] = {};
  for (const row of transports.rows) {
    if (row.where === "host") transport[`${row.transport} ${row.size}`] = row;
  }
  return { transport, files: phase.mbPerSecond };
}

/** The usrsctp table: Deno / C by message size, and file serving / the transport. */
function usrsctpRows(result: UsrsctpResult): (string | number)[][] {
  const mb = (name: string, size: number) => result.transport[`${name} ${size}`]?.mbPerSecond;
  const seconds = (name: string, size: number) => result.transport[`${name} ${size}`]?.seconds;
  const rows: (string | number)[][] = [];
  for (const [label, size] of [["64 KiB", 64 * KIB], ["1 KiB", KIB]] as const) {
    const [deno, c] = [mb("usrsctp", size), mb("c-usrsctp", size)];
    // Deno / C within each round: the two ran seconds apart.
    const perRound = (seconds("usrsctp", size) ?? []).map((s, r) =>
      (seconds("c-usrsctp", size)?.[r] ?? NaN) / s
    );
    rows.push([
      `usrsctp transport vs C, ${label}`,
      round(deno, 1),
      round(c, 1),
      round(deno / c, 2),
      `${round(Math.min(...perRound), 2)}–${round(Math.max(...perRound), 2)}`,
    ]);
  }
  // File serving sends from accepted associations, which the transport caps
  // at ACCEPTED_MAX_PATH_MTU and usrsctp cuts messages on at 1,444 bytes:
  // usrsctp-down is the transport in that role, usrsctp the client sending.
  for (const [label, name] of [["server", "usrsctp-down"], ["client", "usrsctp"]] as const) {
    const transport = mb(name, 64 * KIB);
    rows.push([
      `files over usrsctp vs the transport, ${label} sending (64 KiB)`,
      round(result.files, 1),
      round(transport, 1),
      round(result.files / transport, 2),
      "",
    ]);
  }
  return rows;
}

/** How far apart the C anchor's fastest and slowest rounds may be before the table says so. */
const ANCHOR_SPREAD_NOTE = 1.5;

/**
 * A line for each message size whose C anchor rounds are far apart: on this
 * host the anchor runs in a fast and a slow mode, and Deno / C follows it
 * (docs/results/performance.md, "Dec 3, night").
 */
export function anchorSpreadNotes(result: UsrsctpResult): string[] {
  const notes: string[] = [];
  for (const [label, size] of [["64 KiB", 64 * KIB], ["1 KiB", KIB]] as const) {
    const seconds = result.transport[`c-usrsctp ${size}`]?.seconds ?? [];
    if (seconds.length < 2) continue;
    const [fastest, slowest] = [Math.min(...seconds), Math.max(...seconds)];
    const spread = slowest / fastest;
    if (spread < ANCHOR_SPREAD_NOTE) continue;
    notes.push(
      `note: the C anchor's ${label} rounds took ${round(fastest, 3)}–${round(slowest, 3)} s ` +
        `(${round(spread, 1)}× apart): it runs in a fast and a slow mode on this host, ` +
        `and the ratio follows its mode (docs/results/performance.md, "Dec 3, night")`,
    );
  }
  return notes;
}

/** One timed fetch in the lab. */
interface LabRound {
  /** `get`: `deno task get`; `get-run`: the same program through `deno run`, without the task runner. */
  client: "get" | "get-run" | "curl";
  what: "files" | "tiny";
  round: number;
  seconds: number;
}

const LAB_SERVER = LAB_ADDRESSES.LAB_SERVER_IP;

/** Runs `argv` in namespace `netns`; returns its wall time in seconds; throws on failure. */
async function timed(netns: string, argv: string[]): Promise<number> {
  const started = performance.now();
  const { success, stderr } = await new Deno.Command("ip", {
    args: ["netns", "exec", netns, ...argv],
    cwd: REPO,
    stdout: "null",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - started) / 1000;
  if (!success) {
    throw new Error(
      `${argv.slice(0, 4).join(" ")} ... failed: ${new TextDecoder().decode(stderr)}`,
    );
  }
  return seconds;
}

/** Compares every fetched file under `out` with the original; removes `out`. */
async function checkFetched(out: string, paths: string[], digests: Map<string, string>) {
  for (const path of paths) {
    const body = await Deno.readFile(join(out, path));
    if (sha256Hex(body) !== digests.get(path)) throw new Error(`${path} arrived corrupted`);
  }
  await Deno.remove(out, { recursive: true });
}

/** Lab side: the servers, then `get` and curl in turn; the rounds go to `--lab-out`. */
async function inLab(values: Values) {
  const work = "/tmp/perf";
  await Deno.remove(work, { recursive: true }).catch(() => {});
  const root = join(work, "site");
  await Deno.mkdir(join(root, "g"), { recursive: true });
  const digests = new Map<string, string>();
  const count = values.quick ? 8 : values.getFiles;
  for (let i = 1; i <= count; i++) {
    const body = crypto.getRandomValues(new Uint8Array(MIB).subarray(0, 65536));
    const file = new Uint8Array(MIB);
    for (let at = 0; at < MIB; at += body.length) file.set(body, at);
    file[0] = i & 0xff;
    await Deno.writeFile(join(root, "g", `${i}.bin`), file);
    digests.set(`/g/${i}.bin`, sha256Hex(file));
  }
  await Deno.writeFile(join(root, "g", "tiny.txt"), new Uint8Array([0x2e]));
  digests.set("/g/tiny.txt", sha256Hex(new Uint8Array([0x2e])));
  for (const dir of [work, root, join(root, "g")]) await Deno.chmod(dir, 0o755);
  const paths = Array.from({ length: count }, (_, i) => `/g/${i + 1}.bin`);

  const flowPort = 9000;
  const nginxPort = 8000;
  const nginxDir = join(work, "nginx");
  await Deno.mkdir(nginxDir);
  await Deno.writeTextFile(
    join(nginxDir, "nginx.conf"),
    nginxConfig({ dir: nginxDir, root, listen: `${LAB_SERVER}:${nginxPort}`, sctp: true }),
  );
  const servers = [
    ["withsctp", "nginx", "-c", join(nginxDir, "nginx.conf"), "-g", "daemon off;"],
    repoDenoArgv("server/main.ts", [
      "--transport=kernel",
      `--host=${LAB_SERVER}`,
      `--port=${flowPort}`,
      `--root=${root}`,
      "--streams=8",
      "--log-level=warn",
    ], "server"),
  ].map((argv) =>
    new Deno.Command("ip", {
      args: ["netns", "exec", "server", ...argv],
      cwd: REPO,
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn()
  );
  const getArgs = (targets: string[], out: string) => [
    `kernel://${LAB_SERVER}:${flowPort}${targets[0]}`,
    ...targets.slice(1),
    "-o",
    `${out}/`,
  ];
  const get = (targets: string[], out: string) => [
    Deno.execPath(),
    "task",
    "--quiet",
    "get",
    ...getArgs(targets, out),
  ];
  const getRun = (targets: string[], out: string) =>
    repoDenoArgv("scripts/get.ts", getArgs(targets, out), "client");
  const curl = (targets: string[], out: string) => [
    "withsctp",
    "curl",
    "-sf",
    "--parallel",
    "--create-dirs",
    ...targets.flatMap((p) => ["-o", join(out, p), `http://${LAB_SERVER}:${nginxPort}${p}`]),
  ];
  const rounds: LabRound[] = [];
  try {
    await retry(() => timed("client", curl(["/g/tiny.txt"], join(work, "probe"))), 30);
    await retry(() => timed("client", get(["/g/tiny.txt"], join(work, "probe"))), 30);
    const repeat = values.quick ? 1 : values.repeat;
    for (let r = 0; r < repeat; r++) {
      for (const what of ["files", "tiny"] as const) {
        const targets = what === "files" ? paths : ["/g/tiny.txt"];
        for (const client of ["get", "get-run", "curl"] as const) {
          const out = join(work, `out-${client}-${r}`);
          const argv = { get, "get-run": getRun, curl }[client](targets, out);
          const seconds = await timed("client", argv);
          await checkFetched(out, targets, digests);
          rounds.push({ client, what, round: r, seconds });
          progress("perf", `round ${r + 1}/${repeat} ${what} ${client}: ${seconds.toFixed(2)} s`);
        }
      }
    }
  } finally {
    for (const p of servers) {
      try {
        p.kill("SIGTERM");
      } catch { /* already gone */ }
      await p.status;
    }
  }
  await Deno.writeTextFile(values.labOut, JSON.stringify(rounds));
}

/** Host side of the lab part: boots it, runs {@link inLab} there, returns its rounds. */
async function lab(values: Values): Promise<LabRound[]> {
  const out = await labOutFile("perf");
  const forward = [
    `--lab-out=${out}`,
    `--repeat=${values.repeat}`,
    `--get-files=${values.getFiles}`,
    ...(values.quick ? ["--quick"] : []),
  ];
  const result = await runInLab({
    command: denoArgv("perf.ts", ["--inside-lab", ...forward]),
    cwd: REPO,
    output: "inherit",
    timeoutSeconds: values.labTimeout,
  });
  if (result.code !== 0) throw new Error(`the lab run failed (exit code ${result.code})`);
  const rounds: LabRound[] = JSON.parse(await Deno.readTextFile(out));
  await Deno.remove(out);
  return rounds;
}

/** The lab's table: per fetch, the median wall time and curl's over get's (≥ 1: get is faster). */
function summarizeLab(rounds: LabRound[], files: number) {
  const rows: (string | number)[][] = [];
  const summary = [];
  for (const what of ["files", "tiny"] as const) {
    const of = (client: LabRound["client"]) =>
      median(rounds.filter((r) => r.what === what && r.client === client).map((r) => r.seconds));
    const [get, getRun, curl] = [of("get"), of("get-run"), of("curl")];
    const label = what === "files" ? `${files} x 1 MiB` : "1 tiny file";
    const spread = (client: LabRound["client"]) =>
      rounds.filter((r) => r.what === what && r.client === client).map((r) => r.seconds.toFixed(2))
        .join(" ");
    rows.push([
      label,
      "deno task get → flowsched",
      round(get, 2),
      round(curl / get, 2),
      spread("get"),
    ]);
    rows.push([
      label,
      "deno run get.ts → flowsched",
      round(getRun, 2),
      round(curl / getRun, 2),
      spread("get-run"),
    ]);
    rows.push([label, "withsctp curl → nginx", round(curl, 2), 1, spread("curl")]);
    summary.push({
      what: label,
      getSeconds: get,
      getRunSeconds: getRun,
      curlSeconds: curl,
      getVsNginx: curl / get,
      getRunVsNginx: curl / getRun,
    });
  }
  return { rows, summary };
}

/** The table: per workload and server, the median and the ratio to nginx's median. */
function summarize(rounds: Round[], threads: number) {
  const rows: (string | number)[][] = [];
  const summary = [];
  for (const w of WORKLOADS) {
    const of = (name: Target["name"]) =>
      median(
        rounds.filter((r) => r.workload === w.name && r.target === name).map((r) =>
          r.requestsPerSecond
        ),
      );
    const nginx = of("nginx");
    for (const name of ["nginx", "deno-serve", "proxy", "proxy-threads"] as const) {
      const rate = of(name);
      const mbps = (rate * w.size) / 1e6;
      const spread = rounds.filter((r) => r.workload === w.name && r.target === name)
        .map((r) => round(r.requestsPerSecond, 0));
      rows.push([
        `hit ${w.name}, wrk -c${w.connections}`,
        name === "proxy-threads" ? `proxy --threads ${threads}` : name,
        round(rate, 0),
        round(mbps, 0),
        round(rate / nginx, 2),
        spread.join(" "),
      ]);
      summary.push({
        workload: w.name,
        target: name,
        requestsPerSecond: rate,
        mbPerSecond: mbps,
        vsNginx: rate / nginx,
      });
    }
  }
  return { rows, summary };
}

export async function main(args: string[]) {
  const parsed = await parseOptions(args, OPTIONS);
  if (!parsed) {
    console.log(helpText(USAGE, OPTIONS));
    return;
  }
  const { values } = parsed;
  if (values.insideLab) return await inLab(values);
  const load = { start: loadAverage(), end: null as number[] | null };
  const rounds = values.where === "lab" ? [] : await hits(values);
  const usrsctpResult = values.where === "lab" ? undefined : await usrsctp(values);
  const labRounds = values.where === "host" ? [] : await lab(values);
  load.end = loadAverage();
  const { rows, summary } = summarize(rounds, values.nginxWorkers);
  const files = values.quick ? 8 : values.getFiles;
  const labTable = summarizeLab(labRounds, files);
  const path = await writeResults("perf", {
    options: values,
    loadAverage: load,
    rounds,
    summary,
    usrsctp: usrsctpResult,
    lab: { rounds: labRounds, summary: labTable.summary },
  });
  if (rounds.length > 0) printHits(values, rows);
  if (usrsctpResult) {
    console.log("\nusrsctp on this host (MB = 10^6 bytes; medians of bench transports / files)");
    console.log(table(
      ["row", "MB/s", "baseline MB/s", "ratio", "ratio per round"],
      usrsctpRows(usrsctpResult),
    ));
    for (const note of anchorSpreadNotes(usrsctpResult)) console.log(note);
  }
  if (labRounds.length > 0) {
    console.log(
      `\nThe client over kernel SCTP in the lab, median of ${
        values.quick ? 1 : values.repeat
      } (wall time, start-up included; × = curl's time over get's)`,
    );
    console.log(
      table(["fetch", "client → server", "seconds", "× nginx", "rounds (s)"], labTable.rows),
    );
  }
  console.log(`\nload average ${JSON.stringify(load)}; results: ${path}`);
}

function printHits(values: Values, rows: (string | number)[][]) {
  console.log(
    `\nProxy cache hits vs nginx on this host, median of ${
      values.quick ? 1 : values.repeat
    } (MB = 10^6 bytes of body)`,
  );
  console.log(table(["row", "server", "req/s", "MB/s", "× nginx", "rounds (req/s)"], rows));
}

if (import.meta.main) await runMain("perf", main);
