/**
 * The report of `bench scale`: `runs.csv` (one line per timed phase), a
 * Markdown summary with the aggregate MB/s per front and server count, its
 * ratio to 1 server and the goal, and a bar chart.
 *
 * @module
 */

import { join } from "node:path";
import { median, round } from "../common.ts";
import { barChart, writeSvg } from "../sched/plot.ts";
import { FRONTS, type ScaleResults } from "./results.ts";

/** Where {@linkcode scaleReport} writes. */
export interface ScaleReportOptions {
  /** Directory for `runs.csv` and `summary.json` (and the plot when `docs` is null). */
  dir: string;
  /** Directory for `summary.md` and the plot (the committed report), or null for none. */
  docs: string | null;
}

/** One front and server count, over its repeats. */
export interface ScaleRow {
  front: string;
  servers: number;
  /** Median MB/s (1e6 bytes) over the repeats, and its range. */
  mbps: number;
  minMbps: number;
  maxMbps: number;
  /** Median MB/s over the median with 1 server, same front. */
  ratio: number;
  /** The median over the links' raw capacity (servers × rate / 8). */
  ofCapacity: number;
  /** Each server's share of what was given (associations or requests), summed over repeats. */
  shares: number[];
  requests: number;
  failed: number;
}

/** The ratio with 3 servers that the scale-out is meant to reach (issue #17). */
export const GOAL_RATIO_3 = 2.7;

const UNIT_BITS: Record<string, number> = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 };

function rateBytesPerSecond(rate: string): number {
  const match = /^([\d.]+)(bit|kbit|mbit|gbit)$/.exec(rate);
  return match ? Number(match[1]) * UNIT_BITS[match[2]] / 8 : NaN;
}

/** Aggregates the runs per front and server count. */
export function scaleRows(results: ScaleResults): ScaleRow[] {
  const linkBytes = rateBytesPerSecond(String(results.setup.rate));
  const rows: ScaleRow[] = [];
  for (const front of FRONTS) {
    const counts = [...new Set(results.runs.filter((r) => r.front === front).map((r) => r.servers))]
      .sort((a, b) => a - b);
    let base = NaN;
    for (const servers of counts) {
      const runs = results.runs.filter((r) => r.front === front && r.servers === servers);
      const mbps = runs.map((r) => r.bytes / r.seconds / 1e6);
      const mid = median(mbps);
      if (servers === 1) base = mid;
      rows.push({
        front,
        servers,
        mbps: mid,
        minMbps: Math.min(...mbps),
        maxMbps: Math.max(...mbps),
        ratio: mid / base,
        ofCapacity: mid * 1e6 / (servers * linkBytes),
        shares: runs[0].shares.map((_, i) => runs.reduce((n, r) => n + r.shares[i], 0)),
        requests: runs.reduce((n, r) => n + r.requests, 0),
        failed: runs.reduce((n, r) => n + r.failed, 0),
      });
    }
  }
  return rows;
}

function percentShares(shares: number[]): string {
  const total = shares.reduce((a, b) => a + b, 0);
  return shares.map((n) => `${Math.round(100 * n / total)}%`).join(" / ");
}

function csv(results: ScaleResults): string {
  const header =
    "front,servers,repeat,seconds,requests,failed,bytes,mbps,lab_cpu,server_cpu_ms,front_cpu_ms,shares,rebalanced";
  const lines = results.runs.map((r) =>
    [
      r.front,
      r.servers,
      r.repeat,
      round(r.seconds, 3),
      r.requests,
      r.failed,
      r.bytes,
      round(r.bytes / r.seconds / 1e6, 3),
      round(r.labCpu, 3),
      Math.round(r.serverCpuMs),
      Math.round(r.frontCpuMs),
      r.shares.join("/"),
      r.rebalanced ?? "",
    ].join(",")
  );
  return [header, ...lines].join("\n") + "\n";
}

function markdown(results: ScaleResults, rows: ScaleRow[]): string {
  const { setup } = results;
  const most = Math.max(...rows.map((r) => r.servers));
  const measured = FRONTS.filter((front) => rows.some((r) => r.front === front));
  const verdicts = measured.map((front) => {
    const row = rows.find((r) => r.front === front && r.servers === 3);
    if (!row) return `- ${front}: no run with 3 servers`;
    const met = row.ratio >= GOAL_RATIO_3 ? "meets" : "misses";
    const busiest = Math.max(...row.shares) / row.shares.reduce((a, b) => a + b, 0);
    const cap = front === "ipvs" ? "" : `; the busiest server took ${round(100 * busiest, 0)}% ` +
      `of the requests, which caps the ratio at ${
        round(1 / busiest, 2)
      }× while links are the limit`;
    return `- **${front}: ${round(row.ratio, 2)}×** with 3 servers: ${met} the goal of ` +
      `≥ ${GOAL_RATIO_3}× (${round(100 * row.ofCapacity, 0)}% of the three links' raw rate${cap})`;
  });
  const table = [
    "| front | servers | MB/s (median) | range | × 1 server | of link capacity | per server | requests | failed |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) =>
      `| ${r.front} | ${r.servers} | ${round(r.mbps, 2)} | ${round(r.minMbps, 2)}–${
        round(r.maxMbps, 2)
      } | ${round(r.ratio, 2)} | ${round(100 * r.ofCapacity, 0)}% | ${
        r.servers > 1 ? percentShares(r.shares) : "—"
      } | ${r.requests} | ${r.failed} |`
    ),
  ];
  return `# Scale-out: 1 to ${most} servers behind IPVS and behind the proxy

Made by \`deno task bench scale${setup.repeats === 1 ? " --quick" : ""}\` on ${
    results.started.slice(0, 10)
  }.
Each server sits behind its own link of **${setup.rate}** (${setup.delayMs} ms one way) from
the proxy namespace; the lab has one CPU (${setup.lab}), so the links, not cores, are what
is scaled. ${setup.repeats} timed phase(s) of ${setup.secondsPerPhase} s per row; ${setup.files}.

- **ipvs**: Linux IPVS in the proxy namespace (\`deno task ipvs\`, round robin, NAT) in front of
  the servers; the client opens ${setup.associations} kernel-SCTP associations to the virtual
  address and keeps ${setup.workers} requests in flight. "Per server" is associations.
- **proxy**: flowsched's proxy with one \`--upstream\` per server and no cache, each path sent to
  one server by rendezvous hashing; the client keeps ${setup.workers} persistent HTTP/1.1
  connections busy. "Per server" is requests.
- **proxy-bounded**: the same with \`--hash-balance-factor 125\` (consistent hashing with bounded
  loads): a path goes to its next server while its own holds over 125% of the mean requests in
  flight. ${rebalancedText(results)}

${verdicts.join("\n")}

${table.join("\n")}

![aggregate MB/s](aggregate.svg)
`;
}

function rebalancedText(results: ScaleResults): string {
  const runs = results.runs.filter((r) => r.front === "proxy-bounded" && r.servers > 1);
  const moved = runs.reduce((n, r) => n + (r.rebalanced ?? 0), 0);
  const all = runs.reduce((n, r) => n + r.shares.reduce((a, b) => a + b, 0), 0);
  return all > 0
    ? `With 2 or more servers, ${round(100 * moved / all, 1)}% of its requests went off their ` +
      "path's server."
    : "";
}

/** Writes the CSV, the summary and the plot; returns the summary (Markdown). */
export async function scaleReport(
  results: ScaleResults,
  options: ScaleReportOptions,
): Promise<string> {
  const rows = scaleRows(results);
  await Deno.writeTextFile(join(options.dir, "runs.csv"), csv(results));
  await Deno.writeTextFile(join(options.dir, "summary.json"), JSON.stringify(rows, null, 2));
  const summary = markdown(results, rows);
  const svg = await barChart({
    title: `Aggregate throughput, each server behind ${results.setup.rate}`,
    x: "servers",
    y: "MB/s",
    series: "front",
    errorLow: "min",
    errorHigh: "max",
    data: rows.map((r) => ({
      servers: r.servers,
      front: r.front,
      "MB/s": round(r.mbps, 3),
      min: round(r.minMbps, 3),
      max: round(r.maxMbps, 3),
    })),
  });
  for (const dir of [options.dir, options.docs]) {
    if (!dir) continue;
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(join(dir, "summary.md"), summary);
    await writeSvg(join(dir, "aggregate.svg"), svg);
  }
  return summary;
}
