/**
 * The analysis of `bench sched`: measured runs against the simulated ideal of
 * the same traces, into CSV and JSON under results/sched/, and (for the
 * committed report) Markdown, SVG plots and the headline JSON under
 * docs/results/.
 *
 * @module
 */

import { join } from "node:path";
import { REPO, round } from "../common.ts";
import { RESPONSE_OVERHEAD_BYTES, type RunResult, WIRE_EFFICIENCY } from "../sched.ts";
import { barChart, cdfChart, lineChart, writeSvg } from "./plot.ts";
import { type SimPolicy, simulate } from "./simulate.ts";
import {
  mean,
  type ResponseRecord,
  slowdownBySize,
  stretchSummary,
  summarize,
  type Summary,
} from "./stats.ts";
import type { TraceRequest } from "./workload.ts";

/** What the report needs besides the runs. */
export interface ReportOptions {
  /** Bottleneck rate in bytes per second. */
  rate: number;
  /** Base RTT of each client index in ms. */
  rttMs: Record<number, number>;
  /** The run directory (traces). */
  dir: string;
  /** Also write docs/results/scheduling/ and docs/results/scheduling.json. */
  docs: boolean;
  /** The setup, stated in the report. */
  setup: Record<string, string | number>;
}

/** One line of the summary: a policy at a load, measured or ideal, averaged over seeds. */
interface Row {
  shape: string;
  load: number;
  policy: string;
  kind: "measured" | "ideal";
  seeds: number;
  mean: number;
  meanMin: number;
  meanMax: number;
  p50: number;
  p99: number;
  slowdown: number;
  top1Slowdown: number;
  stretchAbove1?: number;
  maxStretch?: number;
  failed?: number;
  cpu?: number;
}

const IDEAL: SimPolicy[] = ["srpt", "ps", "fifo", "scf", "srrt"];

type Records = ResponseRecord[] & { clients?: number[] };

/** Writes the outputs; returns the last line `bench sched` prints. */
export async function report(results: RunResult[], options: ReportOptions): Promise<string> {
  const { rttMs } = options;
  // The ideal link carries bodies at the payload rate, plus each response's overhead.
  const rate = options.rate * WIRE_EFFICIENCY;
  const cost = (size: number) => size + RESPONSE_OVERHEAD_BYTES;
  const slowdownOf = (size: number, rt: number, client: number) =>
    rt / (cost(size) / rate + rttMs[client] / 1000);
  const csv = ["shape,load,seed,policy,kind,index,client,size,arrival_ms,response_ms,slowdown"];
  const groups = new Map<
    string,
    { measured: Map<string, Records[]>; ideal: Map<string, Records[]> }
  >();
  const extra = new Map<string, { failed: number; cpu: number[] }>();
  const traces = new Map<string, TraceRequest[]>();
  const groupOf = (shape: string, load: number) => {
    const key = `${shape} ${load}`;
    if (!groups.has(key)) groups.set(key, { measured: new Map(), ideal: new Map() });
    return groups.get(key)!;
  };
  const push = (map: Map<string, Records[]>, policy: string, records: Records) => {
    if (!map.has(policy)) map.set(policy, []);
    map.get(policy)!.push(records);
  };

  for (const run of results) {
    const records: Records = [];
    records.clients = [];
    const sorted = [...run.records].sort((a, b) => a.index - b.index);
    for (const r of sorted) {
      const rt = (r.done - r.at) / 1000;
      records.push({ size: r.size, responseTime: rt, slowdown: slowdownOf(r.size, rt, r.client) });
      records.clients.push(r.client);
      csv.push(
        [run.shape, run.load, run.seed, run.policy, "measured", r.index, r.client, r.size]
          .concat([round(r.at, 2), round(r.done - r.at, 2), round(records.at(-1)!.slowdown, 3)])
          .join(","),
      );
    }
    push(groupOf(run.shape, run.load).measured, run.policy, records);
    const key = `${run.shape} ${run.load} ${run.policy}`;
    const info = extra.get(key) ?? { failed: 0, cpu: [] };
    info.failed += run.records.filter((r) => !r.ok).length;
    info.cpu.push(run.cpu);
    extra.set(key, info);
    if (!traces.has(run.trace)) {
      traces.set(run.trace, JSON.parse(await Deno.readTextFile(run.trace)));
    }
  }
  // The ideal of each trace, once per trace.
  const simulated = new Set<string>();
  for (const run of results) {
    if (simulated.has(run.trace)) continue;
    simulated.add(run.trace);
    const trace = traces.get(run.trace)!;
    const requests = trace.map((r) => ({ at: r.at, size: cost(r.size), rttMs: rttMs[r.client] }));
    for (const policy of IDEAL) {
      const records: Records = simulate(requests, policy, { rate }).map((r, i) => ({
        size: trace[i].size,
        responseTime: r.responseTime,
        slowdown: slowdownOf(trace[i].size, r.responseTime, trace[i].client),
      }));
      records.clients = trace.map((r) => r.client);
      push(groupOf(run.shape, run.load).ideal, policy, records);
    }
  }

  const rows: Row[] = [];
  for (const [key, group] of groups) {
    const [shape, loadText] = key.split(" ");
    const load = Number(loadText);
    const ps = group.measured.get("ps");
    for (const kind of ["measured", "ideal"] as const) {
      for (const [policy, runs] of group[kind]) {
        const summaries: Summary[] = runs.map((records) => summarize(records));
        const stretch = kind === "measured" && ps && policy !== "ps"
          ? runs.map((records, i) => stretchSummary(records, ps[i]))
          : undefined;
        const info = extra.get(`${shape} ${load} ${policy}`);
        rows.push({
          shape,
          load,
          policy,
          kind,
          seeds: runs.length,
          mean: mean(summaries.map((s) => s.meanResponseTime)),
          meanMin: Math.min(...summaries.map((s) => s.meanResponseTime)),
          meanMax: Math.max(...summaries.map((s) => s.meanResponseTime)),
          p50: mean(summaries.map((s) => s.p50ResponseTime)),
          p99: mean(summaries.map((s) => s.p99ResponseTime)),
          slowdown: mean(summaries.map((s) => s.meanSlowdown)),
          top1Slowdown: mean(summaries.map((s) => s.top1MeanSlowdown)),
          stretchAbove1: stretch && mean(stretch.map((s) => s.shareAbove1)),
          maxStretch: stretch && Math.max(...stretch.map((s) => s.max)),
          failed: kind === "measured" ? info?.failed : undefined,
          cpu: kind === "measured" && info ? mean(info.cpu) : undefined,
        });
      }
    }
  }

  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const out = join(REPO, "results", "sched", stamp);
  await Deno.mkdir(out, { recursive: true });
  await Deno.writeTextFile(join(out, "requests.csv"), csv.join("\n") + "\n");
  await Deno.writeTextFile(
    join(out, "summary.json"),
    JSON.stringify({ setup: options.setup, rows }, null, 2) + "\n",
  );

  const find = (shape: string, load: number, policy: string, kind = "measured") =>
    rows.find((r) =>
      r.shape === shape && r.load === load && r.policy === policy && r.kind === kind
    );
  const headLoad = rows.some((r) => r.load === 0.9) ? 0.9 : rows[0].load;
  const srpt = find("one", headLoad, "srpt");
  const ps = find("one", headLoad, "ps");
  const ratio = (a?: number, b?: number) =>
    a !== undefined && b !== undefined ? round(a / b, 3) : null;
  const headline = {
    load: headLoad,
    srpt_over_ps_mean: ratio(srpt?.mean, ps?.mean),
    srpt_over_ideal_mean: ratio(srpt?.mean, find("one", headLoad, "srpt", "ideal")?.mean),
    top1pct_slowdown_srpt_over_ps: ratio(srpt?.top1Slowdown, ps?.top1Slowdown),
    srrt_over_srpt_mean_mixed_rtt: ratio(
      find("mixed", 0.9, "srrt")?.mean,
      find("mixed", 0.9, "srpt")?.mean,
    ),
    scf_over_ps_mean: ratio(find("one", headLoad, "scf")?.mean, ps?.mean),
    max_stretch_srpt: srpt?.maxStretch !== undefined ? round(srpt.maxStretch, 2) : null,
  };
  await Deno.writeTextFile(join(out, "headline.json"), JSON.stringify(headline, null, 2) + "\n");
  console.log(table(rows));
  console.log(`results: ${out}`);
  if (options.docs) await writeDocs(rows, groups, headline, options);
  return `SCHED load=${headLoad} srpt/ps=${headline.srpt_over_ps_mean} ` +
    `srpt/ideal=${headline.srpt_over_ideal_mean} ` +
    `top1-slowdown srpt/ps=${headline.top1pct_slowdown_srpt_over_ps}`;
}

/** The goals of the scheduling issue against the headline, met or missed. */
function goals(headline: Record<string, number | null>): string {
  const line = (what: string, value: number | null, goal: number, better: "below" | "above") => {
    const met = value !== null && (better === "below" ? value <= goal : value >= goal);
    return `| ${what} | ${value ?? "not measured"} | ${better === "below" ? "≤" : "≥"} ${goal} | ${
      value === null ? "—" : met ? "met" : "missed"
    } |`;
  };
  return [
    "| goal | measured | target | |",
    "| --- | --- | --- | --- |",
    line("SRPT mean response time / PS's", headline.srpt_over_ps_mean, 0.5, "below"),
    line("SRPT mean / the simulated ideal SRPT", headline.srpt_over_ideal_mean, 1.3, "below"),
    line(
      "largest 1%: mean slowdown under SRPT / under PS",
      headline.top1pct_slowdown_srpt_over_ps,
      1.2,
      "below",
    ),
    line(
      "SRRT / SRPT mean, two RTTs (seed 002: 0.925)",
      headline.srrt_over_srpt_mean_mixed_rtt,
      0.925,
      "below",
    ),
  ].join("\n");
}

function table(rows: Row[]): string {
  const ms = (s: number) => round(s * 1000, 1);
  const lines = [
    "shape  load  policy  kind      seeds  mean ms  p50 ms  p99 ms  slowdown  top1 sd  stretch>1  max stretch  failed  cpu",
  ];
  for (const r of rows) {
    lines.push(
      [
        r.shape.padEnd(5),
        String(r.load).padEnd(4),
        r.policy.padEnd(6),
        r.kind.padEnd(8),
        String(r.seeds).padStart(5),
        String(ms(r.mean)).padStart(7),
        String(ms(r.p50)).padStart(6),
        String(ms(r.p99)).padStart(6),
        String(round(r.slowdown, 2)).padStart(8),
        String(round(r.top1Slowdown, 2)).padStart(7),
        (r.stretchAbove1 !== undefined ? `${round(100 * r.stretchAbove1, 1)}%` : "").padStart(9),
        (r.maxStretch !== undefined ? String(round(r.maxStretch, 2)) : "").padStart(11),
        String(r.failed ?? "").padStart(6),
        r.cpu !== undefined ? `${round(100 * r.cpu, 0)}%` : "",
      ].join("  "),
    );
  }
  return lines.join("\n");
}

async function writeDocs(
  rows: Row[],
  groups: Map<string, { measured: Map<string, Records[]>; ideal: Map<string, Records[]> }>,
  headline: Record<string, number | null>,
  options: ReportOptions,
) {
  const docs = join(REPO, "docs", "results", "scheduling");
  await Deno.mkdir(docs, { recursive: true });
  const one = rows.filter((r) => r.shape === "one");
  const ms = (s: number) => round(s * 1000, 2);
  const plots: string[] = [];
  const plot = async (name: string, svg: Promise<string>) => {
    await writeSvg(join(docs, name), await svg);
    plots.push(name);
  };
  await plot(
    "mean-response-time-vs-load.svg",
    lineChart({
      title: "Mean response time vs load (one association; ideal = fluid simulation)",
      x: "load",
      y: "mean response time (ms)",
      series: "policy",
      dash: "kind",
      logY: true,
      data: one.map((r) => ({
        load: r.load,
        "mean response time (ms)": ms(r.mean),
        policy: r.policy,
        kind: r.kind,
      })),
    }),
  );
  const head = groups.get(`one ${headline.load}`);
  if (head) {
    const buckets = [...head.measured].flatMap(([policy, runs]) =>
      slowdownBySize(runs.flat()).map((b) => ({
        "size percentile": b.toPercentile,
        "mean slowdown": round(b.meanSlowdown, 3),
        policy,
      }))
    );
    await plot(
      "slowdown-by-size.svg",
      lineChart({
        title:
          `Mean slowdown by size percentile at load ${headline.load} (does the top 1% suffer?)`,
        x: "size percentile",
        y: "mean slowdown",
        series: "policy",
        logY: true,
        data: buckets,
      }),
    );
    const series: Record<string, number[]> = {};
    for (const [policy, runs] of head.measured) {
      series[policy] = runs.flat().map((r) => r.responseTime * 1000);
    }
    series["ideal srpt"] = (head.ideal.get("srpt") ?? []).flat().map((r) => r.responseTime * 1000);
    await plot(
      "response-time-cdf.svg",
      cdfChart({
        title: `Response time CDF at load ${headline.load}`,
        x: "response time (ms)",
        series,
        logX: true,
      }),
    );
  }
  const overIdeal = one.filter((r) => r.kind === "measured").flatMap((r) => {
    const ideal = one.find((i) => i.kind === "ideal" && i.policy === r.policy && i.load === r.load);
    return ideal
      ? [{
        policy: r.policy,
        load: String(r.load),
        "measured / ideal": round(r.mean / ideal.mean, 3),
      }]
      : [];
  });
  await plot(
    "measured-over-ideal.svg",
    barChart({
      title: "Measured mean response time / ideal of the same policy",
      x: "policy",
      y: "measured / ideal",
      series: "load",
      data: overIdeal,
    }),
  );
  const mixed = groups.get("mixed 0.9");
  if (mixed) {
    const data = [...mixed.measured].flatMap(([policy, runs]) =>
      [0, 1].map((client) => {
        const times = runs.flatMap((records) =>
          records.filter((_, i) => records.clients![i] === client).map((r) => r.responseTime)
        );
        return {
          policy,
          client: `RTT ${options.rttMs[client]} ms`,
          "mean response time (ms)": round(mean(times) * 1000, 1),
        };
      })
    );
    await plot(
      "mixed-rtt.svg",
      barChart({
        title: "Two clients with different RTTs at load 0.9: mean response time",
        x: "policy",
        y: "mean response time (ms)",
        series: "client",
        data,
      }),
    );
  }
  await Deno.writeTextFile(
    join(docs, "summary.json"),
    JSON.stringify({ setup: options.setup, headline, rows }, null, 2) + "\n",
  );
  await Deno.writeTextFile(
    join(REPO, "docs", "results", "scheduling.json"),
    JSON.stringify(headline, null, 2) + "\n",
  );
  const setup = Object.entries(options.setup).map(([k, v]) => `- ${k}: ${v}`).join("\n");
  await Deno.writeTextFile(
    join(docs, "report.md"),
    `# Scheduling at a bottleneck: measured against the ideal

Produced by \`deno task bench sched --report\` from the raw runs; the numbers below are
means over seeds of per-run means. Response time = completion at the client − the
request's scheduled arrival (open loop). Slowdown = response time / (size / rate + base RTT).
The ideal is a fluid simulation of each policy on the same trace at the bottleneck's payload
rate (${WIRE_EFFICIENCY} of the tbf rate), each response costing its body plus
${RESPONSE_OVERHEAD_BYTES} bytes (head, control message, packet headers), plus one base RTT.
Loads are offered loads of that payload rate.

## Setup

${setup}

## Headline (load ${headline.load}, one association)

\`\`\`json
${JSON.stringify(headline, null, 2)}
\`\`\`

${goals(headline)}

## All rows

\`\`\`
${table(rows)}
\`\`\`

## Plots

${plots.map((p) => `![${p}](${p})`).join("\n\n")}
`,
  );
}
