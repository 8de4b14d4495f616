/**
 * Benchmark figures as SVG: Vega-Lite specs compiled and rendered headless
 * (renderer "none" lays text out with estimated metrics, so no canvas or
 * fonts are needed).
 *
 * @module
 */

import { dirname } from "node:path";
import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { cdf } from "./stats.ts";

/** A table row: field name to value. */
export type Row = Record<string, string | number>;

/** Options shared by every chart. */
export interface ChartOptions {
  /** Title above the chart. */
  title: string;
  /**
   * Width of the plotting area in pixels.
   * @default {480}
   */
  width?: number;
  /**
   * Height of the plotting area in pixels.
   * @default {300}
   */
  height?: number;
}

/** Options of {@linkcode lineChart}. */
export interface LineChartOptions extends ChartOptions {
  /** Field of the x values (quantitative); also the axis title unless `xTitle` is set. */
  x: string;
  /** Field of the y values (quantitative); also the axis title unless `yTitle` is set. */
  y: string;
  /** Field naming the line a row belongs to, if more than one line. */
  series?: string;
  /** The rows. */
  data: Row[];
  /** Title of the x axis. @default {x} */
  xTitle?: string;
  /** Title of the y axis. @default {y} */
  yTitle?: string;
  /** Logarithmic x axis. @default {false} */
  logX?: boolean;
  /** Logarithmic y axis. @default {false} */
  logY?: boolean;
  /** Field whose values get different dash patterns (e.g. measured vs ideal). */
  dash?: string;
}

/** Options of {@linkcode barChart}. */
export interface BarChartOptions extends ChartOptions {
  /** Field of the categories along x. */
  x: string;
  /** Field of the bar heights; also the axis title unless `yTitle` is set. */
  y: string;
  /** Field splitting each category into side-by-side bars, one per series. */
  series?: string;
  /** The rows. */
  data: Row[];
  /** Field of the lower end of each bar's error range (with `errorHigh`). */
  errorLow?: string;
  /** Field of the upper end of each bar's error range (with `errorLow`). */
  errorHigh?: string;
  /** Title of the x axis. @default {x} */
  xTitle?: string;
  /** Title of the y axis. @default {y} */
  yTitle?: string;
  /** Logarithmic y axis. @default {false} */
  logY?: boolean;
}

/** Options of {@linkcode cdfChart}. */
export interface CdfChartOptions extends ChartOptions {
  /** Title of the x axis: what the values are, with their unit. */
  x: string;
  /** The samples of each line, by series name. */
  series: Record<string, readonly number[]>;
  /** Logarithmic x axis. @default {false} */
  logX?: boolean;
  /** Most points drawn per line. @default {200} */
  points?: number;
}

/** Renders a Vega-Lite spec to an SVG string. */
async function render(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function frame(options: ChartOptions) {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: options.title,
    width: options.width ?? 480,
    height: options.height ?? 300,
    background: "white",
  } as const;
}

const scale = (log: boolean | undefined) => log ? { type: "log" as const } : {};

/**
 * A line chart with points, one line per value of `series`.
 *
 * @example
 * ```ts
 * const svg = await lineChart({
 *   title: "Mean response time", x: "load", y: "seconds", series: "policy",
 *   data: [{ load: 0.5, seconds: 0.1, policy: "ps" }, { load: 0.9, seconds: 0.4, policy: "ps" }],
 * });
 * ```
 */
export function lineChart(options: LineChartOptions): Promise<string> {
  const { x, y, series } = options;
  return render({
    ...frame(options),
    data: { values: options.data },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: x, type: "quantitative", title: options.xTitle ?? x, scale: scale(options.logX) },
      y: { field: y, type: "quantitative", title: options.yTitle ?? y, scale: scale(options.logY) },
      ...(series
        ? { color: { field: series, type: "nominal", title: series, scale: PALETTE } }
        : {}),
      ...(options.dash
        ? { strokeDash: { field: options.dash, type: "nominal", title: options.dash } }
        : {}),
    },
  });
}

/** Twenty colours, so that up to twenty series never share one. */
const PALETTE = { scheme: "tableau20" } as const;

/** A bar chart, bars grouped side by side per `series`, with optional error ranges. */
export function barChart(options: BarChartOptions): Promise<string> {
  const { x, y, series, errorLow, errorHigh } = options;
  const byX = {
    x: { field: x, type: "nominal" as const, title: options.xTitle ?? x, axis: { labelAngle: 0 } },
  };
  const bySeries = series ? { xOffset: { field: series, type: "nominal" as const } } : {};
  const yTitle = options.yTitle ?? y;
  const bars = {
    mark: { type: "bar" as const },
    encoding: {
      ...byX,
      ...bySeries,
      y: { field: y, type: "quantitative" as const, title: yTitle, scale: scale(options.logY) },
      ...(series ? { color: { field: series, type: "nominal" as const, title: series } } : {}),
    },
  };
  const errors = errorLow && errorHigh
    ? [{
      mark: { type: "rule" as const },
      encoding: {
        ...byX,
        ...bySeries,
        y: { field: errorLow, type: "quantitative" as const, title: yTitle },
        y2: { field: errorHigh },
      },
    }]
    : [];
  return render({ ...frame(options), data: { values: options.data }, layer: [bars, ...errors] });
}

/** Empirical CDFs of samples, one line per series. */
export function cdfChart(options: CdfChartOptions): Promise<string> {
  const data = Object.entries(options.series).flatMap(([series, values]) =>
    cdf(values, options.points ?? 200).map((p) => ({ series, ...p }))
  );
  return render({
    ...frame(options),
    data: { values: data },
    mark: { type: "line", interpolate: "step-after" },
    encoding: {
      x: { field: "value", type: "quantitative", title: options.x, scale: scale(options.logX) },
      y: {
        field: "fraction",
        type: "quantitative",
        title: "fraction of requests",
        scale: { domain: [0, 1] },
      },
      color: { field: "series", type: "nominal", title: null },
    },
  });
}

/** Writes `svg` to `path`, creating its directory. */
export async function writeSvg(path: string, svg: string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  await Deno.writeTextFile(path, svg);
}
