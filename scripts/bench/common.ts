/**
 * Small helpers shared by the benchmark scripts: a seeded PRNG, medians,
 * progress lines, the results table, result files, and child processes
 * (roles of the same script, possibly inside a lab network namespace).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { ConfigError } from "../../cli/options.ts";

/** The repository root (two levels above this file). */
export const REPO = dirname(dirname(dirname(fileURLToPath(import.meta.url))));

/** A seeded PRNG (mulberry32): uniform in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Runs a benchmark's `main` with the process arguments: its error becomes a
 * one-line message and exit code 2 for a bad option, 1 otherwise.
 */
export async function runMain(name: string, main: (args: string[]) => Promise<void>) {
  try {
    await main(Deno.args);
  } catch (error) {
    console.error(`bench ${name}: ${(error as Error).message}`);
    Deno.exit((error as Error).name === "ConfigError" ? 2 : 1);
  }
}

/** The sha256 of `data`, in hex. */
export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The median of a non-empty list. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** One progress line on stderr, prefixed with the seconds since start. */
const started = performance.now();
export function progress(name: string, line: string): void {
  const s = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  console.error(`[${name} ${s}s${Deno.env.get("LAB") ? " lab" : ""}] ${line}`);
}

/** Formats rows as a fixed-width table; numbers are right-aligned. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const numeric = header.map((_, i) => rows.every((r) => typeof r[i] === "number"));
  const line = (r: string[]) =>
    r.map((c, i) => numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])).join("  ")
      .trimEnd();
  return [line(cells[0]), widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)]
    .join("\n");
}

/** `x` rounded to `digits` decimals, as a number (for tables and JSON). */
export const round = (x: number, digits = 1): number => Number(x.toFixed(digits));

/** Writes `data` to results/bench/<name>-<timestamp>.json; returns the path. */
export async function writeResults(name: string, data: unknown): Promise<string> {
  const dir = join(REPO, "results", "bench");
  await Deno.mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const path = join(dir, `${name}-${stamp}.json`);
  await Deno.writeTextFile(path, JSON.stringify(data, null, 2) + "\n");
  return path;
}

/** The machine's load average (1, 5, 15 min), or null where it cannot be read. */
export function loadAverage(): number[] | null {
  try {
    return Deno.loadavg().map((x) => round(x, 2));
  } catch {
    return null;
  }
}

/** argv that runs `script` (a file in this directory) with Deno and the bench permissions. */
export function denoArgv(script: string, args: string[]): string[] {
  return [
    Deno.execPath(),
    "run",
    "--no-check",
    `--config=${join(REPO, "deno.json")}`,
    "-P=bench",
    join(REPO, "scripts", "bench", script),
    ...args,
  ];
}

/**
 * argv that runs `script` (a path from the repository root) with Deno, the
 * repository's config and the permission set `permissions`; `extra` goes
 * before the script (e.g. `--no-code-cache`).
 */
export function repoDenoArgv(
  script: string,
  args: string[],
  permissions: string,
  extra: string[] = [],
): string[] {
  return [
    Deno.execPath(),
    "run",
    "--no-check",
    ...extra,
    `--config=${join(REPO, "deno.json")}`,
    `-P=${permissions}`,
    join(REPO, script),
    ...args,
  ];
}

/** Where and how {@link nginxConfig}'s nginx serves. */
export interface NginxSetup {
  /** Its pid file, error log and temporary files go here. */
  dir: string;
  /** The document root (world-readable: the workers run as nobody). */
  root: string;
  /** `address:port`. */
  listen: string;
  /** Worker processes. @default 1 */
  workers?: number;
  /**
   * Over SCTP (lksctp's `withsctp`): without TCP_CORK and TCP_NODELAY, which
   * SCTP sockets refuse.
   */
  sctp?: boolean;
}

/** An nginx config as a user would write it for static files. */
export function nginxConfig(setup: NginxSetup): string {
  const { dir, root, listen, workers = 1, sctp = false } = setup;
  return `worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  ${sctp ? "tcp_nopush off;\n  tcp_nodelay off;" : "tcp_nopush on;"}
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/body;
  types { text/html html; text/css css; application/javascript js; image/png png; }
  server { listen ${listen}; root ${root}; }
}
`;
}

/** A child process whose stdout lines are read one at a time. */
export class Child {
  readonly process: Deno.ChildProcess;
  readonly #lines: AsyncIterator<string>;

  constructor(argv: string[]) {
    this.process = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
      cwd: REPO,
    }).spawn();
    this.#lines = this.process.stdout
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(lineSplitter())[Symbol.asyncIterator]();
  }

  /** The next stdout line; throws if the process ended first. */
  async line(): Promise<string> {
    const next = await this.#lines.next();
    if (next.done) {
      const status = await this.process.status;
      throw new Error(`child process ended (exit code ${status.code}) before printing a result`);
    }
    return next.value;
  }

  /** Ends the process (SIGTERM) and waits for it. */
  async stop(): Promise<void> {
    try {
      this.process.kill("SIGTERM");
    } catch {
      // already gone
    }
    await this.process.status;
    await this.#lines.return?.();
  }
}

function lineSplitter(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const p of parts) controller.enqueue(p);
    },
    flush(controller) {
      if (rest) controller.enqueue(rest);
    },
  });
}

/** A fresh, host-visible file (under results/bench/) for results a lab run hands back. */
export async function labOutFile(name: string): Promise<string> {
  const dir = join(REPO, "results", "bench");
  await Deno.mkdir(dir, { recursive: true });
  return await Deno.makeTempFile({ dir, prefix: `.${name}-lab-`, suffix: ".json" });
}

/**
 * Calls `attempt` until it succeeds (a server may still be starting), for up
 * to `seconds`; then rethrows its last error.
 */
export async function retry<T>(attempt: () => Promise<T>, seconds: number): Promise<T> {
  for (const deadline = Date.now() + seconds * 1000;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/**
 * The comma-separated items of `text`, each one of `allowed`; throws a
 * ConfigError naming the flag, the bad item (a `what`) and what is allowed.
 */
export function listOf<T extends string>(
  text: string,
  allowed: readonly T[],
  flag: string,
  what: string,
): T[] {
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) {
      throw new ConfigError(`${flag}: unknown ${what} "${item}"; use ${allowed.join(", ")}`);
    }
  }
  return items as T[];
}
