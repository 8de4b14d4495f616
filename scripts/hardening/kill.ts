/**
 * `deno task harden kill`: `kill -9` of the server and of the proxy in the
 * middle of transfers, round after round, under load from several clients
 * fetching through the proxy. Every body is checked against its sha256.
 *
 * What must hold, and is counted:
 * - no response ever claims to be complete with wrong or missing bytes
 *   (nothing partial is served, from the cache or otherwise);
 * - when the server dies, every request in flight ends within 1 s: with its
 *   whole body, an error status (502), or a body cut short that the client can
 *   tell from Content-Length;
 * - when the proxy dies and starts again on the same cache directory, that
 *   directory holds no `.tmp` left from the dead process once the new one
 *   listens, and every file fetched afterwards is right.
 *
 * @module
 */

import { helpText, type OptionValues, parseOptions } from "../../cli/options.ts";
import { prng, progress, table } from "../bench/common.ts";
import {
  fetchChecked,
  freeTcpPort,
  freeUdpPort,
  makeFiles,
  type Outcome,
  type RunningProxy,
  type Service,
  type SiteFile,
  startProxy,
  startServer,
  tmpFiles,
} from "./stack.ts";

const OPTIONS = {
  rounds: { kind: "integer", default: 20, min: 1, help: "kills (server and proxy alternate)" },
  transport: {
    kind: "string",
    default: "tcpmux",
    choices: ["tcpmux", "usrsctp"],
    help: "server transport (kernel SCTP: see tests/hardening, in the lab)",
  },
  clients: { kind: "integer", default: 8, min: 1, help: "clients fetching at once" },
  files: { kind: "integer", default: 60, min: 4, help: "files in the site (1 KiB to 8 MiB)" },
  quick: { kind: "boolean", default: false, help: "4 rounds, 24 files: a smoke run" },
} as const;

type Values = OptionValues<typeof OPTIONS>;

const USAGE = `Usage: deno task harden kill [options]

Kills the server and the proxy (SIGKILL, alternating) mid-transfer under load, restarts them, and
checks that nothing partial is served, that requests in flight end within 1 s of a server's death,
and that a restarted proxy finds no stale .tmp in its cache.`;

/** What one round saw. */
export interface RoundResult {
  readonly round: number;
  readonly victim: "server" | "proxy";
  /** Requests in flight when the victim died. */
  readonly inFlight: number;
  /** Of those, how many still completed with every byte right. */
  readonly completed: number;
  /** The longest any in-flight request took to end after the kill, ms. */
  readonly slowestEndMs: number;
  /** Bodies that claimed completeness but were wrong: must be 0. */
  readonly wrong: number;
  /** `.tmp` files found in the cache right after the proxy restarted. */
  readonly staleTmp: number;
  /** Fetches in the round, by outcome. */
  readonly outcomes: Record<string, number>;
}

/** Totals over all rounds, and whether every rule held. */
export interface KillReport {
  readonly rounds: RoundResult[];
  readonly fetches: number;
  readonly wrong: number;
  readonly staleTmp: number;
  /** Server kills where some request in flight took more than 1 s to end. */
  readonly slowServerKills: number;
  readonly passed: boolean;
}

interface FetchRecord {
  readonly start: number;
  end: number;
  outcome?: Outcome;
}

/** Runs the kill rounds with the given options; see the module doc. */
export async function runKill(values: Values): Promise<KillReport> {
  const rounds = values.quick ? 4 : values.rounds;
  const fileCount = values.quick ? 24 : values.files;
  const root = await Deno.makeTempDir({ prefix: "flowsched-kill-site-" });
  const cache = await Deno.makeTempDir({ prefix: "flowsched-kill-cache-" });
  const files = await makeFiles(root, fileCount, { minBytes: 1024, maxBytes: 8 << 20 });
  const port = freeTcpPort();
  const udpPort = await freeUdpPort();
  const proxyPort = freeTcpPort();
  const serverSpec = {
    root,
    transport: values.transport,
    host: "127.0.0.1",
    port,
    udpPort,
    // A paced server keeps transfers in flight long enough to be cut by the kill.
    args: ["--pace=80mbit"],
  };
  const proxySpec = {
    listen: `127.0.0.1:${proxyPort}`,
    upstream: `${values.transport}://127.0.0.1:${port}`,
    cache,
    args: [`--udp-port=${udpPort}`, "--no-prefetch", `--cache-size=${4 << 20}`],
  };
  let server: Service = await startServer(serverSpec);
  let proxy: RunningProxy = await startProxy(proxySpec);
  const random = prng(21);
  const results: RoundResult[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      const victim = round % 2 === 1 ? "server" : "proxy";
      const records: FetchRecord[] = [];
      const load = new AbortController();
      const clients = Array.from(
        { length: values.clients },
        () => client(proxy.base, files, random, records, load.signal),
      );
      await sleep(400 + random() * 800);
      const killedAt = performance.now();
      let staleTmp = 0;
      if (victim === "server") {
        await server.stop();
        await sleep(1200);
        server = await startServer(serverSpec);
      } else {
        await proxy.service.stop();
        const orphans = await tmpFiles(cache);
        proxy = await startProxy(proxySpec);
        // The new process's own downloads are new files: count the dead one's that remain.
        const now = await tmpFiles(cache);
        staleTmp = [...orphans].filter(([path, id]) => now.get(path) === id).length;
      }
      await sleep(1000);
      load.abort();
      await Promise.all(clients);
      // Afterwards everything is served right, from the cache or fetched anew.
      const after = await Promise.all(files.map((file) => fetchChecked(proxy.base, file)));
      const inFlight = records.filter((r) => r.start < killedAt && r.end > killedAt);
      const outcomes: Record<string, number> = {};
      for (const r of records) count(outcomes, r.outcome!.kind);
      for (const outcome of after) count(outcomes, `after:${outcome.kind}`);
      const result: RoundResult = {
        round,
        victim,
        inFlight: inFlight.length,
        completed: inFlight.filter((r) => r.outcome!.kind === "ok").length,
        slowestEndMs: Math.round(
          Math.max(
            0,
            ...inFlight.filter((r) => r.outcome!.kind !== "ok").map((r) => r.end - killedAt),
          ),
        ),
        wrong: records.filter((r) => r.outcome!.kind === "wrong").length +
          after.filter((o) => o.kind !== "ok").length,
        staleTmp,
        outcomes,
      };
      results.push(result);
      progress(
        "kill",
        `round ${round}/${rounds}: killed the ${victim}; ${result.inFlight} in flight, ${result.completed} completed, slowest end ${result.slowestEndMs} ms, wrong ${result.wrong}, stale .tmp ${staleTmp}`,
      );
    }
  } finally {
    await proxy.service.stop("SIGTERM");
    await server.stop("SIGTERM");
    await Deno.remove(root, { recursive: true });
    await Deno.remove(cache, { recursive: true });
  }
  const sum = (f: (r: RoundResult) => number) => results.reduce((a, r) => a + f(r), 0);
  const slowServerKills =
    results.filter((r) => r.victim === "server" && r.slowestEndMs > 1000).length;
  const report = {
    rounds: results,
    fetches: sum((r) => Object.values(r.outcomes).reduce((a, b) => a + b, 0)),
    wrong: sum((r) => r.wrong),
    staleTmp: sum((r) => r.staleTmp),
    slowServerKills,
  };
  return {
    ...report,
    passed: report.wrong === 0 && report.staleTmp === 0 && slowServerKills === 0,
  };
}

/** `deno task harden kill`. */
export async function main(args: string[]): Promise<void> {
  const parsed = await parseOptions(args, OPTIONS);
  if (!parsed) return console.log(helpText(USAGE, OPTIONS));
  const report = await runKill(parsed.values);
  console.log(table(
    ["round", "killed", "in flight", "completed", "slowest end ms", "wrong", "stale .tmp"],
    report.rounds.map((r) => [
      r.round,
      r.victim,
      r.inFlight,
      r.completed,
      r.slowestEndMs,
      r.wrong,
      r.staleTmp,
    ]),
  ));
  console.log(
    `${report.fetches} fetches; wrong bodies ${report.wrong}; stale .tmp ${report.staleTmp}; server kills with a request ending after 1 s: ${report.slowServerKills}`,
  );
  console.log(report.passed ? "PASS" : "FAIL");
  if (!report.passed) Deno.exitCode = 1;
}

async function client(
  base: string,
  files: readonly SiteFile[],
  random: () => number,
  records: FetchRecord[],
  signal: AbortSignal,
): Promise<void> {
  while (!signal.aborted) {
    const file = files[Math.floor(random() * files.length)];
    const record: FetchRecord = { start: performance.now(), end: 0 };
    records.push(record);
    record.outcome = await fetchChecked(base, file);
    record.end = performance.now();
    // A refused connection fails at once: don't spin while the proxy restarts.
    if (record.outcome.kind !== "ok") await sleep(50);
  }
}

function count(into: Record<string, number>, key: string) {
  into[key] = (into[key] ?? 0) + 1;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
