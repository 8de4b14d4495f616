/**
 * Seeded workloads for the scheduling benchmark: file sizes (uniform or
 * heavy-tailed), file popularity (uniform or Zipf), the file set on disk, and
 * Poisson request traces at a chosen load of a bottleneck link.
 *
 * Everything is a pure function of its seed, so a trace can be replayed
 * against the real server and fed to the simulator unchanged.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { prng } from "../common.ts";

/** A uniform random source in [0, 1), such as `prng(seed)`. */
export type Rand = () => number;

/** One file of a file set. */
export interface FileSpec {
  /** URL path, also the path under the directory it is written to: `/f/00017.bin`. */
  path: string;
  /** Size in bytes (at least 1). */
  size: number;
}

/** One request of a trace. */
export interface TraceRequest {
  /** Arrival, in seconds from the start of the trace. */
  at: number;
  /** Index of the requested file in the file set. */
  file: number;
  /** Path of the requested file. */
  path: string;
  /** Size of the requested file in bytes. */
  size: number;
  /** Which client sends it, in [0, clients). */
  client: number;
}

/** How requests choose among the files. */
export type Popularity = "uniform" | "zipf";

/** Options of {@linkcode poissonTrace}. */
export interface PoissonTraceOptions {
  /** Seed of the file choices and of the arrival gaps. */
  seed: number;
  /** The file set requests choose from. */
  files: FileSpec[];
  /** Offered load as a fraction of the bottleneck rate, e.g. 0.9. */
  load: number;
  /** Rate of the bottleneck link in bytes per second. */
  bottleneckBytesPerSecond: number;
  /** Target length of the trace in seconds (see {@linkcode poissonTrace} for the exact end). */
  durationSeconds: number;
  /** How requests choose among the files. */
  popularity: Popularity;
  /**
   * Exponent s of the Zipf popularity (used when `popularity` is "zipf").
   * @default {1}
   */
  zipfExponent?: number;
  /**
   * Number of clients; requests are dealt to them round robin.
   * @default {1}
   */
  clients?: number;
}

/** Tail index of the default Bounded Pareto sizes: SURGE's tail, alpha 1.1. */
export const PARETO_ALPHA = 1.1;
/** Smallest default Bounded Pareto size: 1 KiB. */
export const PARETO_MIN = 1024;
/** Largest default Bounded Pareto size: 10 MiB. */
export const PARETO_MAX = 10 * 1024 * 1024;

/**
 * A Bounded Pareto sample in [min, max] by inverse CDF:
 * F(x) = (1 − (min/x)^α) / (1 − (min/max)^α).
 *
 * With the defaults (α 1.1, 1 KiB to 10 MiB) about 92% of samples are below
 * 10 kB, one in 2,000 is 1 MB or more, and the mean is about 6.6 KiB
 * ({@linkcode boundedParetoMean}); the largest 1% of samples carry over 40%
 * of the bytes.
 *
 * @example
 * ```ts
 * const size = Math.round(boundedPareto(prng(1)));
 * ```
 */
export function boundedPareto(
  rand: Rand,
  alpha: number = PARETO_ALPHA,
  min: number = PARETO_MIN,
  max: number = PARETO_MAX,
): number {
  const tail = (min / max) ** alpha;
  const x = min / (1 - rand() * (1 - tail)) ** (1 / alpha);
  return Math.min(Math.max(x, min), max);
}

/** The mean of {@linkcode boundedPareto} with the same parameters. */
export function boundedParetoMean(
  alpha: number = PARETO_ALPHA,
  min: number = PARETO_MIN,
  max: number = PARETO_MAX,
): number {
  const norm = 1 - (min / max) ** alpha;
  if (alpha === 1) return min * Math.log(max / min) / norm;
  return alpha / (alpha - 1) * min * (1 - (min / max) ** (alpha - 1)) / norm;
}

/** A uniform sample in [min, max]: the size distribution of the thesis. */
export function uniformSize(rand: Rand, min: number, max: number): number {
  return min + rand() * (max - min);
}

/** An exponential sample with the given mean. */
export function exponential(rand: Rand, mean: number): number {
  // 1 − rand() lies in (0, 1], so the logarithm is finite.
  return -mean * Math.log(1 - rand());
}

/**
 * A sampler of indices in [0, n) with Zipf popularity: index i is drawn with
 * probability proportional to 1 / (i + 1)^s, so index 0 is the most popular.
 * Builds the CDF once (O(n)); each draw is a binary search.
 */
export function zipfSampler(rand: Rand, n: number, s = 1): () => number {
  if (!(n >= 1)) throw new RangeError(`zipfSampler: n must be at least 1, got ${n}`);
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cdf[i] = sum += (i + 1) ** -s;
  return () => {
    const u = rand() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}

/**
 * `count` files named `/f/00000.bin`, `/f/00001.bin`, … whose sizes are
 * `sizeSampler(rand)` rounded to whole bytes (at least 1), `rand` seeded by `seed`.
 *
 * @example
 * ```ts
 * const files = fileSet(7, 2000, (rand) => boundedPareto(rand));
 * ```
 */
export function fileSet(
  seed: number,
  count: number,
  sizeSampler: (rand: Rand) => number,
): FileSpec[] {
  const rand = prng(seed);
  const width = Math.max(5, String(count - 1).length);
  return Array.from({ length: count }, (_, i) => ({
    path: `/f/${String(i).padStart(width, "0")}.bin`,
    size: Math.max(1, Math.round(sizeSampler(rand))),
  }));
}

/**
 * The contents of file `index` of a set written with `seed`: `size`
 * pseudo-random bytes, so a client can check what it received.
 */
export function fileBytes(seed: number, index: number, size: number): Uint8Array {
  const rand = prng((seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0);
  const words = new Uint32Array(Math.ceil(size / 4));
  for (let i = 0; i < words.length; i++) words[i] = rand() * 4294967296;
  return new Uint8Array(words.buffer, 0, size);
}

/** Writes each file of `files` to `dir` + its path, with the bytes of {@linkcode fileBytes}. */
export async function writeFileSet(dir: string, files: FileSpec[], seed: number): Promise<void> {
  const made = new Set<string>();
  for (const [index, file] of files.entries()) {
    const path = join(dir, file.path);
    const parent = dirname(path);
    if (!made.has(parent)) {
      await Deno.mkdir(parent, { recursive: true });
      made.add(parent);
    }
    await Deno.writeFile(path, fileBytes(seed, index, file.size));
  }
}

/**
 * A Poisson request trace offering `load` × `bottleneckBytesPerSecond`.
 *
 * The requested files are drawn first, until their bytes are nearest to
 * load × rate × durationSeconds. The arrivals are then a Poisson process
 * conditioned to end exactly at T = (requested bytes) / (load × rate): n + 1
 * exponential gaps scaled to sum to T, the first n of them spacing the
 * requests. So λ = n / T and λ × (mean requested size) = load × rate holds
 * exactly for the trace's own sizes, not just in expectation, and T differs
 * from durationSeconds by at most half of the largest file's time at that load.
 */
export function poissonTrace(options: PoissonTraceOptions): TraceRequest[] {
  const { seed, files, load, bottleneckBytesPerSecond: rate, durationSeconds } = options;
  const clients = options.clients ?? 1;
  if (files.length === 0) throw new RangeError("poissonTrace: the file set is empty");
  if (!(load > 0)) throw new RangeError(`poissonTrace: load must be positive, got ${load}`);
  if (!(rate > 0)) {
    throw new RangeError(`poissonTrace: bottleneckBytesPerSecond must be positive, got ${rate}`);
  }
  if (!(durationSeconds > 0)) {
    throw new RangeError(`poissonTrace: durationSeconds must be positive, got ${durationSeconds}`);
  }
  if (!(Number.isInteger(clients) && clients >= 1)) {
    throw new RangeError(`poissonTrace: clients must be a positive integer, got ${clients}`);
  }

  const choose = prng(seed);
  const pick = options.popularity === "zipf"
    ? zipfSampler(choose, files.length, options.zipfExponent ?? 1)
    : () => Math.floor(choose() * files.length);
  const target = load * rate * durationSeconds;
  const chosen: number[] = [];
  let bytes = 0;
  for (;;) {
    const file = pick();
    // Stop where the total is nearest the target: take this file only if that brings it closer.
    if (bytes + files[file].size / 2 > target && chosen.length > 0) break;
    chosen.push(file);
    bytes += files[file].size;
  }

  // A separate stream for the gaps keeps the chosen files independent of their timing.
  const gapRand = prng((seed ^ 0x5bd1e995) >>> 0);
  const points = new Float64Array(chosen.length + 1);
  let sum = 0;
  for (let i = 0; i < points.length; i++) points[i] = sum += exponential(gapRand, 1);
  const scale = bytes / (load * rate) / sum;
  return chosen.map((file, i) => ({
    at: points[i] * scale,
    file,
    path: files[file].path,
    size: files[file].size,
    client: i % clients,
  }));
}
