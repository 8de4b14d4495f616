/**
 * The report of `bench thesis`: per-run CSV files and the aggregated rows
 * (`summary.json`), a Markdown summary that sets each claim of the thesis
 * (chapter 5) and of the seed paper 004 against what was measured, and SVG
 * plots.
 *
 * @module
 */

import { join } from "node:path";
import { round } from "../common.ts";
import { barChart, cdfChart, lineChart, type Row, writeSvg } from "../sched/plot.ts";
import { mean, quantile } from "../sched/stats.ts";
import { type Experiment, EXPERIMENTS, type ThesisResults, type ThesisRun } from "./results.ts";

/** Where {@linkcode thesisReport} writes. */
export interface ThesisReportOptions {
  /** Directory for the CSV files and `summary.json` (and the plots when `docs` is null). */
  dir: string;
  /** Directory for `summary.md` and the plots (the committed report), or null for none. */
  docs: string | null;
  /** Markdown file of hand-written interpretation, one `## <experiment>` section each, or null. */
  notes: string | null;
}

/** The rows each experiment is made of, in the order the report shows them. */
export const THESIS_ROWS: Record<Experiment, readonly string[]> = {
  "5.2": ["flowsched sctp", "flowsched tcp", "nginx sctp", "nginx tcp"],
  "5.3": ["scf uniform", "rr uniform", "scf zipf", "rr zipf"],
  "5.4": ["sctp scf", "tcpmux scf", "tcpmux rr", "tcp x8", "nginx tcp x8"],
  "5.5": [
    "tcp non-persistent",
    "tcp persistent",
    "sctp proxy prefetch",
    "sctp proxy no-prefetch",
    "nginx tcp non-persistent",
    "nginx tcp persistent",
  ],
  "004": [
    "tcp non-persistent",
    "tcp persistent",
    "sctp association",
    "nginx tcp non-persistent",
    "nginx tcp persistent",
    "nginx sctp non-persistent",
  ],
};

/** What one run measured, derived from its record. NaN where a value cannot be had. */
export interface RunMetrics {
  /** Body bytes over the phase's wall time, in MB/s (1e6 bytes). */
  mbps: number;
  /** Requests (5.5: page loads), failed ones included, per second. */
  requestsPerSecond: number;
  /** Mean latency of the successful fetches, in ms. */
  meanMs: number;
  /** Median latency of the successful fetches, in ms. */
  p50Ms: number;
  /** 95th percentile latency of the successful fetches, in ms. */
  p95Ms: number;
  /** Server CPU time per request, in ms. */
  serverCpuMsPerRequest: number;
  /** The proxy's CPU time per request, in ms (NaN without a proxy). */
  proxyCpuMsPerRequest: number;
  /** CPU time of the whole lab (server, client, kernel) per request, in ms. */
  labCpuMsPerRequest: number;
  /** Connections (or associations) the client opened per second. */
  connectionsPerSecond: number;
}

/** One metric's median over repeats and its range. */
export interface Spread {
  /** Median over the repeats that have a value (NaN, null in JSON, if none has). */
  median: number;
  /** Smallest value. */
  min: number;
  /** Largest value. */
  max: number;
}

/** One (experiment, row) over its repeats: a line of `summary.json`. */
export type RowSummary =
  & Pick<ThesisRun, "experiment" | "row" | "server" | "transport" | "proxy" | "variant">
  & {
    /** Number of runs (repeats). */
    repeats: number;
    /** Requests over all repeats. */
    requests: number;
    /** Failed requests over all repeats. */
    failed: number;
  }
  & { [K in keyof RunMetrics]: Spread };

/** The verdict of one claim. */
export type Verdict = "agrees" | "disagrees" | "not measured";

/** One claim of the thesis or the seed paper set against the measurement. */
export interface ClaimResult {
  /** The experiment it belongs to. */
  experiment: Experiment;
  /** The claim, briefly. */
  claim: string;
  /** What the source says, as a number where it gives one. */
  source: string;
  /** The rule that decides the verdict. */
  rule: string;
  /** The measured ratios the rule is applied to, by label (NaN, null in JSON, if a row is missing). */
  ratios: Record<string, number>;
  /** Whether the measurement agrees. */
  verdict: Verdict;
}

type Metric = keyof RunMetrics;

/** A ratio of one metric's medians between two rows of an experiment. */
interface RatioSpec {
  label: string;
  of: string;
  over: string;
  metric: Metric;
}

/** A claim: it agrees if every one of its ratios passes `test`. */
interface ClaimSpec {
  claim: string;
  source: string;
  rule: string;
  ratios: RatioSpec[];
  test: (ratio: number) => boolean;
}

type PlotSpec =
  | { kind: "bars"; file: string; title: string; metric: Metric; yTitle: string }
  | { kind: "overTime"; file: string; title: string }
  | { kind: "cdf"; file: string; title: string }
  | { kind: "cpu"; file: string; title: string };

interface ExperimentSpec {
  title: string;
  quote: string;
  setup: string;
  ratios: RatioSpec[];
  claims: ClaimSpec[];
  plots: PlotSpec[];
}

const ratio = (label: string, of: string, over: string, metric: Metric): RatioSpec => ({
  label,
  of,
  over,
  metric,
});

const within = (lo: number, hi: number) => ({
  rule: `in [${lo}, ${hi}]`,
  test: (x: number) => x >= lo && x <= hi,
});

const SCTP_OVER_TCP = within(0.35, 0.7);
const SAME = within(0.9, 1.1);

const SPECS: Record<Experiment, ExperimentSpec> = {
  "5.2": {
    title: "Single stream: TCP vs SCTP",
    quote: "TCP outperformed SCTP in terms of raw throughput, having a nearly 100% increase in " +
      "performance. (thesis §5.2.1)",
    setup: "One TCP connection or one single-stream SCTP association, sequential requests, " +
      "files of uniform size in 0–1 MiB.",
    ratios: [
      ratio("flowsched SCTP / TCP (MB/s)", "flowsched sctp", "flowsched tcp", "mbps"),
      ratio("nginx SCTP / TCP (MB/s)", "nginx sctp", "nginx tcp", "mbps"),
      ratio("flowsched / nginx over SCTP (MB/s)", "flowsched sctp", "nginx sctp", "mbps"),
      ratio("flowsched / nginx over TCP (MB/s)", "flowsched tcp", "nginx tcp", "mbps"),
    ],
    claims: [{
      claim: "single stream: SCTP / TCP throughput (flowsched)",
      source: "≈ 0.5 (TCP ≈ 2× SCTP)",
      ...SCTP_OVER_TCP,
      ratios: [ratio("SCTP / TCP", "flowsched sctp", "flowsched tcp", "mbps")],
    }],
    plots: [
      {
        kind: "bars",
        file: "5.2-throughput.svg",
        title: "5.2 single stream: throughput (median, min–max over repeats)",
        metric: "mbps",
        yTitle: "MB/s",
      },
      {
        kind: "overTime",
        file: "5.2-throughput-over-time.svg",
        title: "5.2 single stream: throughput over time (median repeat, 1 s bins)",
      },
    ],
  },
  "5.3": {
    title: "Scheduling policies over kernel SCTP: SCF vs RR",
    quote: "both scheduling strategies yield similar throughput under the tested conditions, " +
      "where requests were distributed randomly rather than following a Zipf-like distribution " +
      "[…] SCF tends to outperform RR when request sizes follow Zipfian patterns. (thesis §5.3)",
    setup: "Client → flowsched proxy (cache and prefetch off) → kernel SCTP server, " +
      "8 persistent client connections. uniform: the uniform 0–1 MiB files, uniform " +
      "popularity (the thesis's workload); zipf: heavy-tailed sizes (bounded Pareto) and " +
      "Zipf popularity, the web-like case where size-based scheduling should pay.",
    ratios: [
      ratio("SCF / RR, uniform (MB/s)", "scf uniform", "rr uniform", "mbps"),
      ratio("SCF / RR, Zipf (MB/s)", "scf zipf", "rr zipf", "mbps"),
      ratio("SCF / RR, uniform (mean response time)", "scf uniform", "rr uniform", "meanMs"),
      ratio("SCF / RR, Zipf (mean response time)", "scf zipf", "rr zipf", "meanMs"),
    ],
    claims: [
      {
        claim: "uniform popularity: SCF / RR throughput",
        source: "≈ 1 (similar)",
        ...SAME,
        ratios: [ratio("SCF / RR", "scf uniform", "rr uniform", "mbps")],
      },
      {
        claim: "Zipf popularity, heavy-tailed sizes: SCF / RR mean response time",
        source: "< 1 (SCF better; cited, not measured, in the thesis)",
        rule: "below 0.95",
        test: (x) => x < 0.95,
        ratios: [ratio("SCF / RR", "scf zipf", "rr zipf", "meanMs")],
      },
    ],
    plots: [
      {
        kind: "overTime",
        file: "5.3-throughput-over-time.svg",
        title: "5.3 SCF vs RR over kernel SCTP: throughput over time (median repeat, 1 s bins)",
      },
      {
        kind: "bars",
        file: "5.3-response-time.svg",
        title: "5.3 SCF vs RR: mean response time (median, min–max over repeats)",
        metric: "meanMs",
        yTitle: "mean response time (ms)",
      },
      {
        kind: "bars",
        file: "5.3-throughput.svg",
        title: "5.3 SCF vs RR: throughput (median, min–max over repeats)",
        metric: "mbps",
        yTitle: "MB/s",
      },
    ],
  },
  "5.4": {
    title: "SCTP emulated over TCP (tcpmux)",
    quote: "the overall throughput of this configuration remained roughly twice as high as that " +
      "of the native SCTP implementation […] no significant performance differences between the " +
      "SCF and Round Robin scheduling policies. (thesis §5.4)",
    setup: "Client → flowsched proxy → server over kernel SCTP or tcpmux; " +
      '"tcp x8" is the client straight to flowsched\'s HTTP-over-TCP server on 8 connections.',
    ratios: [
      ratio("tcpmux / kernel SCTP, SCF (MB/s)", "tcpmux scf", "sctp scf", "mbps"),
      ratio("SCF / RR over tcpmux (MB/s)", "tcpmux scf", "tcpmux rr", "mbps"),
      ratio("direct TCP x8 / tcpmux via proxy (MB/s)", "tcp x8", "tcpmux scf", "mbps"),
      ratio("flowsched / nginx, TCP x8 (MB/s)", "tcp x8", "nginx tcp x8", "mbps"),
    ],
    claims: [
      {
        claim: "tcpmux / kernel SCTP throughput",
        source: "≈ 2",
        ...within(1.5, 2.7),
        ratios: [ratio("tcpmux / SCTP", "tcpmux scf", "sctp scf", "mbps")],
      },
      {
        claim: "over tcpmux: SCF / RR throughput",
        source: "≈ 1 (no significant difference)",
        ...SAME,
        ratios: [ratio("SCF / RR", "tcpmux scf", "tcpmux rr", "mbps")],
      },
    ],
    plots: [
      {
        kind: "bars",
        file: "5.4-throughput.svg",
        title: "5.4 SCTP vs tcpmux vs TCP: throughput (median, min–max over repeats)",
        metric: "mbps",
        yTitle: "MB/s",
      },
      {
        kind: "overTime",
        file: "5.4-throughput-over-time.svg",
        title: "5.4 throughput over time (median repeat, 1 s bins)",
      },
    ],
  },
  "5.5": {
    title: "Browser request pattern and prefetching",
    quote: "SCTP maintains consistent throughput due to parallel delivery via streams, but " +
      "overall remains approximately twice as slow as the TCP server, both in persistent and " +
      "non-persistent modes. (thesis §5.5)",
    setup: "Page loads: an HTML page, then every resource it embeds. A fetch is one page load; " +
      "its latency is the page-load time.",
    ratios: [
      ratio(
        "SCTP proxy (no prefetch) / TCP persistent (MB/s)",
        "sctp proxy no-prefetch",
        "tcp persistent",
        "mbps",
      ),
      ratio(
        "SCTP proxy (no prefetch) / TCP non-persistent (MB/s)",
        "sctp proxy no-prefetch",
        "tcp non-persistent",
        "mbps",
      ),
      ratio(
        "prefetch / no prefetch (median page load)",
        "sctp proxy prefetch",
        "sctp proxy no-prefetch",
        "p50Ms",
      ),
      ratio(
        "flowsched / nginx, TCP persistent (median page load)",
        "tcp persistent",
        "nginx tcp persistent",
        "p50Ms",
      ),
    ],
    claims: [{
      claim: "page loads: SCTP / TCP persistent throughput",
      source: "≈ 0.5",
      ...SCTP_OVER_TCP,
      ratios: [ratio("SCTP / TCP", "sctp proxy no-prefetch", "tcp persistent", "mbps")],
    }],
    plots: [
      {
        kind: "bars",
        file: "5.5-page-load.svg",
        title: "5.5 median page-load time (median of repeats, min–max)",
        metric: "p50Ms",
        yTitle: "median page-load time (ms)",
      },
      { kind: "cdf", file: "5.5-page-load-cdf.svg", title: "5.5 page-load time CDF (all repeats)" },
      {
        kind: "bars",
        file: "5.5-throughput.svg",
        title: "5.5 page loads: throughput (median, min–max over repeats)",
        metric: "mbps",
        yTitle: "MB/s",
      },
    ],
  },
  "004": {
    title: "Short connections vs one long-lived association (seed paper 004, FALTCON)",
    quote: "connection establishment (control path) takes up 46% of TCP layer in terms of CPU " +
      "cycles and 40% are used for actual packet transmission (data path). (004 §1, §2.2.2)",
    setup: "Small files, closed loop: a connection per request, or one kept open.",
    ratios: [
      ratio(
        "TCP non-persistent / persistent (lab CPU ms per request)",
        "tcp non-persistent",
        "tcp persistent",
        "labCpuMsPerRequest",
      ),
      ratio(
        "TCP non-persistent / SCTP association (lab CPU ms per request)",
        "tcp non-persistent",
        "sctp association",
        "labCpuMsPerRequest",
      ),
      ratio(
        "TCP non-persistent / persistent (server CPU ms per request)",
        "tcp non-persistent",
        "tcp persistent",
        "serverCpuMsPerRequest",
      ),
      ratio(
        "TCP persistent / non-persistent (req/s)",
        "tcp persistent",
        "tcp non-persistent",
        "requestsPerSecond",
      ),
      ratio(
        "SCTP association / TCP non-persistent (req/s)",
        "sctp association",
        "tcp non-persistent",
        "requestsPerSecond",
      ),
      ratio(
        "nginx TCP non-persistent / persistent (lab CPU ms per request)",
        "nginx tcp non-persistent",
        "nginx tcp persistent",
        "labCpuMsPerRequest",
      ),
    ],
    claims: [{
      claim: "a connection per request costs more CPU than a long-lived one",
      source: "control path ≈ data path (46% vs 40% of TCP cycles)",
      rule: "lab CPU ms/request of TCP non-persistent over TCP persistent and over the SCTP " +
        "association, each at least 1.3",
      test: (x) => x >= 1.3,
      ratios: [
        ratio("vs TCP persistent", "tcp non-persistent", "tcp persistent", "labCpuMsPerRequest"),
        ratio(
          "vs SCTP association",
          "tcp non-persistent",
          "sctp association",
          "labCpuMsPerRequest",
        ),
      ],
    }],
    plots: [
      {
        kind: "bars",
        file: "004-requests.svg",
        title: "004 small files: requests per second (median, min–max over repeats)",
        metric: "requestsPerSecond",
        yTitle: "req/s",
      },
      {
        kind: "cpu",
        file: "004-cpu.svg",
        title: "004 CPU per request: server and whole lab (median, min–max over repeats)",
      },
    ],
  },
};

const CSV_HEADER = [
  "experiment",
  "row",
  "server",
  "transport",
  "proxy",
  "variant",
  "repeat",
  "seconds",
  "requests",
  "failed",
  "bytes",
  "MB/s",
  "req/s",
  "mean ms",
  "p50 ms",
  "p95 ms",
  "labCpu",
  "serverCpuMs",
  "serverCpuMs per request",
  "proxyCpuMs",
  "proxyCpuMs per request",
  "connections",
];

/** a / b, NaN unless both are finite and b is positive. */
const per = (a: number, b: number) => Number.isFinite(a) && b > 0 ? a / b : NaN;

/** What one run measured. */
function metricsOf(run: ThesisRun): RunMetrics {
  const ms = run.fetches.filter((f) => f.ok).map((f) => f.ms);
  const some = ms.length > 0;
  return {
    mbps: per(run.bytes / 1e6, run.seconds),
    requestsPerSecond: per(run.requests, run.seconds),
    meanMs: some ? mean(ms) : NaN,
    p50Ms: some ? quantile(ms, 0.5) : NaN,
    p95Ms: some ? quantile(ms, 0.95) : NaN,
    serverCpuMsPerRequest: per(run.serverCpuMs, run.requests),
    proxyCpuMsPerRequest: per(run.proxyCpuMs ?? NaN, run.requests),
    labCpuMsPerRequest: per(run.labCpu * run.seconds * 1000, run.requests),
    connectionsPerSecond: per(run.connections, run.seconds),
  };
}

function spread(values: number[]): Spread {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return { median: NaN, min: NaN, max: NaN };
  return { median: quantile(finite, 0.5), min: Math.min(...finite), max: Math.max(...finite) };
}

/** The runs of each experiment, then of each row, in first-seen order. */
function group(runs: readonly ThesisRun[]): Map<Experiment, Map<string, ThesisRun[]>> {
  const groups = new Map<Experiment, Map<string, ThesisRun[]>>();
  for (const run of runs) {
    const rows = groups.get(run.experiment) ?? new Map<string, ThesisRun[]>();
    groups.set(run.experiment, rows);
    rows.set(run.row, [...rows.get(run.row) ?? [], run]);
  }
  return groups;
}

function summarizeRow(runs: ThesisRun[]): RowSummary {
  const [{ experiment, row, server, transport, proxy, variant }] = runs;
  const metrics = runs.map(metricsOf);
  const over = (key: Metric) => spread(metrics.map((m) => m[key]));
  return {
    experiment,
    row,
    server,
    transport,
    proxy,
    variant,
    repeats: runs.length,
    requests: runs.reduce((sum, r) => sum + r.requests, 0),
    failed: runs.reduce((sum, r) => sum + r.failed, 0),
    mbps: over("mbps"),
    requestsPerSecond: over("requestsPerSecond"),
    meanMs: over("meanMs"),
    p50Ms: over("p50Ms"),
    p95Ms: over("p95Ms"),
    serverCpuMsPerRequest: over("serverCpuMsPerRequest"),
    proxyCpuMsPerRequest: over("proxyCpuMsPerRequest"),
    labCpuMsPerRequest: over("labCpuMsPerRequest"),
    connectionsPerSecond: over("connectionsPerSecond"),
  };
}

/** The expected rows first, in their order, then any others the runs have. */
function rowOrder(experiment: Experiment, measured: Iterable<string>): string[] {
  return [...new Set([...THESIS_ROWS[experiment], ...measured])];
}

function ratioValue(rows: Map<string, RowSummary>, spec: RatioSpec): number {
  const of = rows.get(spec.of)?.[spec.metric].median ?? NaN;
  const over = rows.get(spec.over)?.[spec.metric].median ?? NaN;
  return Number.isFinite(of) && over > 0 ? of / over : NaN;
}

function judge(
  experiment: Experiment,
  spec: ClaimSpec,
  rows: Map<string, RowSummary>,
): ClaimResult {
  const values = spec.ratios.map((r) => ratioValue(rows, r));
  const verdict: Verdict = values.some((v) => !Number.isFinite(v))
    ? "not measured"
    : values.every(spec.test)
    ? "agrees"
    : "disagrees";
  return {
    experiment,
    claim: spec.claim,
    source: spec.source,
    rule: `agrees if ${spec.rule}`,
    ratios: Object.fromEntries(spec.ratios.map((r, i) => [r.label, values[i]])),
    verdict,
  };
}

function csvField(value: string | number | boolean): string {
  const text = String(value);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

const variantText = (variant: ThesisRun["variant"]) =>
  Object.entries(variant).map(([k, v]) => `${k}=${v}`).join(";");

function csvLine(run: ThesisRun): string {
  const m = metricsOf(run);
  const num = (x: number) => Number.isFinite(x) ? round(x, 4) : "";
  return [
    run.experiment,
    run.row,
    run.server,
    run.transport,
    run.proxy,
    variantText(run.variant),
    run.repeat,
    run.seconds,
    run.requests,
    run.failed,
    run.bytes,
    num(m.mbps),
    num(m.requestsPerSecond),
    num(m.meanMs),
    num(m.p50Ms),
    num(m.p95Ms),
    run.labCpu,
    run.serverCpuMs,
    num(m.serverCpuMsPerRequest),
    run.proxyCpuMs ?? "",
    num(m.proxyCpuMsPerRequest),
    run.connections,
  ].map(csvField).join(",");
}

/** A number for a table: fewer decimals the larger it is; "—" for none. */
function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return "—";
  const size = Math.abs(x);
  return String(round(x, size >= 100 ? 0 : size >= 10 ? 1 : size >= 0.1 ? 2 : 3));
}

const fmtSpread = (s: Spread) =>
  s.min === s.max ? fmt(s.median) : `${fmt(s.median)} [${fmt(s.min)}–${fmt(s.max)}]`;

function rowTable(experiment: Experiment, rows: Map<string, RowSummary>): string {
  const lines = [
    "| row | configuration | runs | MB/s median [min–max] | req/s | mean ms | p50 ms | p95 ms " +
    "| failed | server CPU ms/req | proxy CPU ms/req | lab CPU ms/req | conn/s |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const name of rowOrder(experiment, rows.keys())) {
    const r = rows.get(name);
    if (!r) {
      lines.push(`| ${name} | not measured |${" |".repeat(11)}`);
      continue;
    }
    const via = r.proxy ? " via proxy" : "";
    const variant = Object.entries(r.variant).map(([k, v]) => `${k}=${v}`).join(" ");
    const cells = [
      r.row,
      `${r.server}, ${r.transport}${via}${variant ? `; ${variant}` : ""}`,
      String(r.repeats),
      fmtSpread(r.mbps),
      fmtSpread(r.requestsPerSecond),
      fmtSpread(r.meanMs),
      fmtSpread(r.p50Ms),
      fmtSpread(r.p95Ms),
      `${r.failed} of ${r.requests}`,
      fmtSpread(r.serverCpuMsPerRequest),
      fmtSpread(r.proxyCpuMsPerRequest),
      fmtSpread(r.labCpuMsPerRequest),
      fmtSpread(r.connectionsPerSecond),
    ];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

const ratioText = (x: number) => Number.isFinite(x) ? String(round(x, 2)) : "not measured";

/** The claim's ratios, labelled when there is more than one. */
function oursText(claim: ClaimResult): string {
  const entries = Object.entries(claim.ratios);
  return entries.length === 1
    ? ratioText(entries[0][1])
    : entries.map(([label, x]) => `${label}: ${ratioText(x)}`).join("; ");
}

const minMax = (s: Spread) => ({ low: s.min, high: s.max });

/**
 * MB/s in 1-second bins over the phase, each point at its bin's middle. The
 * tail after the last whole second (requests in flight at the deadline) is
 * left out: a bin a few ms wide would show a spike.
 */
function binned(run: ThesisRun): { second: number; mbps: number }[] {
  const bins = Array.from({ length: Math.max(1, Math.floor(run.seconds)) }, () => 0);
  for (const f of run.fetches) {
    const i = Math.floor(f.t / 1000);
    if (i >= 0 && i < bins.length) bins[i] += f.bytes;
  }
  return bins.map((bytes, i) => ({ second: i + 0.5, mbps: round(bytes / 1e6, 4) }));
}

/** The repeat whose MB/s is the median of a row's repeats (the lower one of an even count). */
function medianRun(runs: ThesisRun[]): ThesisRun {
  const sorted = [...runs].sort((a, b) => a.bytes / a.seconds - b.bytes / b.seconds);
  return sorted[(sorted.length - 1) >> 1];
}

/** Renders an experiment's plots that have data; returns the file names written. */
async function plotExperiment(
  spec: ExperimentSpec,
  order: string[],
  rows: Map<string, RowSummary>,
  runs: Map<string, ThesisRun[]>,
  dir: string,
): Promise<string[]> {
  const written: string[] = [];
  const width = Math.max(480, 130 * order.length);
  for (const plot of spec.plots) {
    let svg: Promise<string> | null = null;
    if (plot.kind === "bars") {
      const data: Row[] = order.flatMap((name) => {
        const s = rows.get(name)?.[plot.metric];
        return s && Number.isFinite(s.median)
          ? [{ row: name, [plot.yTitle]: s.median, ...minMax(s) }]
          : [];
      });
      if (data.length > 0) {
        svg = barChart({
          title: plot.title,
          x: "row",
          y: plot.yTitle,
          data,
          errorLow: "low",
          errorHigh: "high",
          width,
        });
      }
    } else if (plot.kind === "overTime") {
      const data: Row[] = order.flatMap((name) => {
        const all = runs.get(name);
        return all?.length ? binned(medianRun(all)).map((b) => ({ ...b, row: name })) : [];
      });
      if (data.length > 0) {
        svg = lineChart({
          title: plot.title,
          x: "second",
          y: "mbps",
          series: "row",
          xTitle: "time (s)",
          yTitle: "MB/s",
          data,
        });
      }
    } else if (plot.kind === "cdf") {
      const series = Object.fromEntries(order.flatMap((name) => {
        const ms = (runs.get(name) ?? []).flatMap((r) => r.fetches)
          .filter((f) => f.ok).map((f) => f.ms);
        return ms.length > 0 ? [[name, ms]] : [];
      }));
      if (Object.keys(series).length > 0) {
        svg = cdfChart({ title: plot.title, x: "page-load time (ms)", series });
      }
    } else {
      const data: Row[] = order.flatMap((name) => {
        const r = rows.get(name);
        if (!r) return [];
        return ([["server", r.serverCpuMsPerRequest], ["lab", r.labCpuMsPerRequest]] as const)
          .filter(([, s]) => Number.isFinite(s.median))
          .map(([cpu, s]) => ({ row: name, cpu, "CPU ms per request": s.median, ...minMax(s) }));
      });
      if (data.length > 0) {
        svg = barChart({
          title: plot.title,
          x: "row",
          y: "CPU ms per request",
          series: "cpu",
          data,
          errorLow: "low",
          errorHigh: "high",
          width,
        });
      }
    }
    if (svg) {
      await writeSvg(join(dir, plot.file), await svg);
      written.push(plot.file);
    }
  }
  return written;
}

/** The `## <experiment>` sections of the notes file, by experiment; none if it does not exist. */
async function readNotes(path: string | null): Promise<Map<string, string>> {
  const sections = new Map<string, string>();
  if (path === null) return sections;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return sections;
    throw error;
  }
  for (const part of text.split(/^## /m).slice(1)) {
    const [heading, ...body] = part.split("\n");
    const id = heading.trim().split(/\s+/)[0];
    const content = body.join("\n").trim();
    if (content) sections.set(id, content);
  }
  return sections;
}

/**
 * Writes the report of one `bench thesis` run and returns its Markdown.
 *
 * Into `options.dir`: `<experiment>.csv` (one line per run) for each
 * experiment that ran, and `summary.json` (setup, aggregated rows, claims,
 * failures). The plots go to `options.docs` with `summary.md` when it is set,
 * otherwise to `options.dir`. Rows or whole experiments that did not run are
 * reported as "not measured".
 *
 * @example
 * ```ts
 * const markdown = await thesisReport(results, { dir: "results/thesis/x", docs: null, notes: null });
 * console.log(markdown);
 * ```
 */
export async function thesisReport(
  results: ThesisResults,
  options: ThesisReportOptions,
): Promise<string> {
  const { dir, docs } = options;
  const plotDir = docs ?? dir;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.mkdir(plotDir, { recursive: true });
  const groups = group(results.runs);
  const notes = await readNotes(options.notes);

  const summaries: RowSummary[] = [];
  const claims: ClaimResult[] = [];
  const sections: string[] = [];
  const failures: string[] = [];
  for (const experiment of EXPERIMENTS) {
    const spec = SPECS[experiment];
    const runs = groups.get(experiment) ?? new Map<string, ThesisRun[]>();
    const all = [...runs.values()].flat();
    if (all.length > 0) {
      await Deno.writeTextFile(
        join(dir, `${experiment}.csv`),
        [CSV_HEADER.map(csvField).join(","), ...all.map(csvLine)].join("\n") + "\n",
      );
    }
    const rows = new Map([...runs].map(([name, list]) => [name, summarizeRow(list)]));
    summaries.push(...rows.values());
    const judged = spec.claims.map((c) => judge(experiment, c, rows));
    claims.push(...judged);
    const failed = all.reduce((sum, r) => sum + r.failed, 0);
    const requests = all.reduce((sum, r) => sum + r.requests, 0);
    failures.push(
      all.length > 0
        ? `- ${experiment}: ${failed} of ${requests}`
        : `- ${experiment}: not measured`,
    );

    const order = rowOrder(experiment, runs.keys());
    const plots = await plotExperiment(spec, order, rows, runs, plotDir);
    const why = notes.get(experiment);
    sections.push(
      [
        `## ${experiment} ${spec.title}`,
        `> ${spec.quote}`,
        spec.setup,
        rowTable(experiment, rows),
        "Headline ratios (of medians):\n\n" +
        spec.ratios.map((r) => `- ${r.label}: ${ratioText(ratioValue(rows, r))}`).join("\n"),
        judged.map((c) =>
          `Verdict on "${c.claim}" (source: ${c.source}): **${c.verdict}**; ` +
          `ours ${oursText(c)}, ${c.rule}.`
        ).join("\n\n"),
        ...(why ? [`### Why\n\n${why}`] : []),
        plots.length > 0
          ? `Plots:\n\n${plots.map((p) => `![${p}](${p})`).join("\n\n")}`
          : "Plots: not measured.",
      ].join("\n\n"),
    );
  }
  const failed = results.runs.reduce((sum, r) => sum + r.failed, 0);
  const requests = results.runs.reduce((sum, r) => sum + r.requests, 0);

  await Deno.writeTextFile(
    join(dir, "summary.json"),
    JSON.stringify(
      { started: results.started, setup: results.setup, rows: summaries, claims, failed, requests },
      null,
      2,
    ) + "\n",
  );

  const setup = Object.entries({ started: results.started, ...results.setup })
    .map(([k, v]) => `- ${k}: ${v}`).join("\n");
  const headline = [
    "| claim | thesis (seed paper for 004) | ours | verdict |",
    "| --- | --- | --- | --- |",
    ...claims.map((c) =>
      `| ${c.experiment}: ${c.claim} | ${c.source} | ${oursText(c)} | ${c.verdict} |`
    ),
  ].join("\n");
  const markdown = `# Thesis chapter 5 and seed paper 004, reproduced

Produced by \`deno task bench thesis\`. Each row is one configuration over its repeats:
the median, [min–max] where the repeats differ. MB/s = body bytes received / wall time of
the timed phase / 10^6; req/s counts failed requests too; latencies are over the successful
requests (5.5: page loads); lab CPU ms per request = the lab's busy share × wall time / requests.
Ratios are ratios of medians.${docs ? "" : ` Plots are in ${plotDir}.`}

## Setup

${setup}

## Headline

${headline}

${sections.join("\n\n")}

## Failures

Total failed requests: ${failed} of ${requests}.

${failures.join("\n")}
`;
  if (docs) await Deno.writeTextFile(join(docs, "summary.md"), markdown);
  return markdown;
}
