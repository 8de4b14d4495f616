/**
 * Statistics of a scheduling run, from one record per request: response time
 * distribution, slowdown overall, for the largest requests and by size, and
 * the stretch against processor sharing that shows starvation.
 *
 * @module
 */

/** What the statistics need of one request; simulator records and measured ones both fit. */
export interface ResponseRecord {
  /** Response size in bytes. */
  size: number;
  /** Response time in seconds. */
  responseTime: number;
  /** Response time over the time the request would take alone on the link. */
  slowdown: number;
}

/** The headline numbers of one run. */
export interface Summary {
  /** Number of requests. */
  count: number;
  /** Mean response time in seconds. */
  meanResponseTime: number;
  /** Median response time in seconds. */
  p50ResponseTime: number;
  /** 99th percentile of the response time in seconds. */
  p99ResponseTime: number;
  /** Mean slowdown. */
  meanSlowdown: number;
  /** Mean slowdown of the largest 1% of requests by size (at least one request). */
  top1MeanSlowdown: number;
}

/** Requests of one size bucket, for the slowdown-by-size (fairness) plot. */
export interface SizeBucket {
  /** Bucket number, 0 for the smallest requests. */
  bucket: number;
  /** Size-rank percentile where the bucket starts, in [0, 100). */
  fromPercentile: number;
  /** Size-rank percentile where the bucket ends, in (0, 100]. */
  toPercentile: number;
  /** Number of requests in the bucket. */
  count: number;
  /** Smallest size in the bucket, in bytes. */
  minSize: number;
  /** Largest size in the bucket, in bytes. */
  maxSize: number;
  /** Mean slowdown of the bucket. */
  meanSlowdown: number;
  /** Mean response time of the bucket in seconds. */
  meanResponseTime: number;
}

/** Stretch of a policy against a reference: how much worse than the reference requests fare. */
export interface StretchSummary {
  /** Share of requests with stretch above 1, in [0, 1]. */
  shareAbove1: number;
  /** Largest stretch. */
  max: number;
  /** Mean stretch. */
  mean: number;
}

/** One point of an empirical CDF. */
export interface CdfPoint {
  /** A sample value. */
  value: number;
  /** Share of samples at most `value`, in (0, 1]. */
  fraction: number;
}

/** The mean of a non-empty list. */
export function mean(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("mean: no values");
  let sum = 0;
  for (const value of values) sum += value;
  return sum / values.length;
}

/**
 * The q-quantile (q in [0, 1]) of a non-empty list, interpolating linearly
 * between order statistics (Hyndman and Fan's type 7, as in R and NumPy).
 */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new RangeError("quantile: no values");
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile: q must be in [0, 1], got ${q}`);
  return sortedQuantile([...values].sort((a, b) => a - b), q);
}

function sortedQuantile(sorted: readonly number[], q: number): number {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  return lo + 1 < sorted.length
    ? sorted[lo] + (h - lo) * (sorted[lo + 1] - sorted[lo])
    : sorted[lo];
}

/** Record positions by size, ties by position, so buckets do not depend on sort stability. */
function bySize(records: readonly ResponseRecord[]): number[] {
  return records.map((_, i) => i).sort((a, b) => records[a].size - records[b].size || a - b);
}

/** Mean, p50 and p99 response time, mean slowdown, and that of the largest 1% of requests. */
export function summarize(records: readonly ResponseRecord[]): Summary {
  if (records.length === 0) throw new RangeError("summarize: no records");
  const times = records.map((r) => r.responseTime).sort((a, b) => a - b);
  const top = bySize(records).slice(-Math.ceil(records.length / 100));
  return {
    count: records.length,
    meanResponseTime: mean(times),
    p50ResponseTime: sortedQuantile(times, 0.5),
    p99ResponseTime: sortedQuantile(times, 0.99),
    meanSlowdown: mean(records.map((r) => r.slowdown)),
    top1MeanSlowdown: mean(top.map((i) => records[i].slowdown)),
  };
}

/**
 * Splits the requests into `buckets` groups of (nearly) equal count by size
 * rank and reports each group's slowdown: under a fair policy the line is
 * flat; SRPT's bends up only at the largest sizes.
 */
export function slowdownBySize(records: readonly ResponseRecord[], buckets = 10): SizeBucket[] {
  if (!(Number.isInteger(buckets) && buckets >= 1)) {
    throw new RangeError(`slowdownBySize: buckets must be a positive integer, got ${buckets}`);
  }
  const order = bySize(records);
  const n = order.length;
  const result: SizeBucket[] = [];
  for (let b = 0; b < buckets; b++) {
    const members = order.slice(Math.floor(b * n / buckets), Math.floor((b + 1) * n / buckets))
      .map((i) => records[i]);
    if (members.length === 0) continue;
    result.push({
      bucket: b,
      fromPercentile: b * 100 / buckets,
      toPercentile: (b + 1) * 100 / buckets,
      count: members.length,
      minSize: members[0].size,
      maxSize: members[members.length - 1].size,
      meanSlowdown: mean(members.map((r) => r.slowdown)),
      meanResponseTime: mean(members.map((r) => r.responseTime)),
    });
  }
  return result;
}

/**
 * Per request, RT_X / RT_reference, matching `records` and `reference` by
 * position (both must come from the same trace, in the same order).
 */
export function stretches(
  records: readonly ResponseRecord[],
  reference: readonly ResponseRecord[],
): number[] {
  if (records.length !== reference.length) {
    throw new RangeError(
      `stretches: ${records.length} records against ${reference.length} reference records`,
    );
  }
  return records.map((r, i) => r.responseTime / reference[i].responseTime);
}

/**
 * The share of requests that fare worse than under the reference (normally
 * processor sharing), and the worst stretch. A stretch counts as above 1 only
 * beyond `1 + tolerance`, because the same schedule computed two ways differs
 * in the last bits.
 */
export function stretchSummary(
  records: readonly ResponseRecord[],
  reference: readonly ResponseRecord[],
  tolerance = 1e-9,
): StretchSummary {
  const values = stretches(records, reference);
  if (values.length === 0) throw new RangeError("stretchSummary: no records");
  return {
    shareAbove1: values.filter((s) => s > 1 + tolerance).length / values.length,
    max: values.reduce((m, s) => Math.max(m, s), -Infinity),
    mean: mean(values),
  };
}

/**
 * The empirical CDF of `values`, thinned to at most `points` points evenly
 * spaced in rank; the smallest and largest values are always included.
 */
export function cdf(values: readonly number[], points = 200): CdfPoint[] {
  if (!(Number.isInteger(points) && points >= 2)) {
    throw new RangeError(`cdf: points must be an integer of at least 2, got ${points}`);
  }
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const ranks = n <= points
    ? sorted.map((_, i) => i)
    : Array.from({ length: points }, (_, k) => Math.round(k * (n - 1) / (points - 1)));
  return ranks.map((i) => ({ value: sorted[i], fraction: (i + 1) / n }));
}
