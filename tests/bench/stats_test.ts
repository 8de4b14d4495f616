import assert from "node:assert/strict";
import {
  cdf,
  mean,
  quantile,
  slowdownBySize,
  stretches,
  stretchSummary,
  summarize,
} from "../../scripts/bench/sched/stats.ts";
import { simulate } from "../../scripts/bench/sched/simulate.ts";

/** Records whose response time and slowdown both equal `i + 1` and size `size(i)`. */
const records = (n: number, size: (i: number) => number = (i) => i + 1) =>
  Array.from({ length: n }, (_, i) => ({ size: size(i), responseTime: i + 1, slowdown: i + 1 }));

Deno.test("quantiles interpolate between order statistics, as R and NumPy do", () => {
  assert.equal(quantile([4, 1, 3, 2], 0.5), 2.5);
  assert.ok(Math.abs(quantile([1, 2, 3, 4], 0.99) - 3.97) < 1e-12);
  assert.equal(quantile([7], 0.99), 7);
  assert.equal(quantile([1, 2, 3], 0), 1);
  assert.equal(quantile([1, 2, 3], 1), 3);
  assert.throws(() => quantile([], 0.5), /no values/);
});

Deno.test("a summary gives the mean, p50 and p99 response time and the largest 1%'s slowdown", () => {
  const summary = summarize(records(200, (i) => 1000 - i));
  assert.equal(summary.count, 200);
  assert.equal(summary.meanResponseTime, 100.5);
  assert.equal(summary.p50ResponseTime, 100.5);
  assert.ok(Math.abs(summary.p99ResponseTime - 198.01) < 1e-9);
  assert.equal(summary.meanSlowdown, 100.5);
  assert.equal(summary.top1MeanSlowdown, 1.5, "the two largest are the first two");
});

Deno.test("the largest 1% is at least one request", () => {
  assert.equal(summarize(records(5)).top1MeanSlowdown, 5);
});

Deno.test("slowdown by size splits requests into equal buckets by size rank, smallest first", () => {
  const buckets = slowdownBySize(records(100, (i) => 100 - i), 10);
  assert.equal(buckets.length, 10);
  assert.deepEqual(buckets.map((b) => b.count), new Array(10).fill(10));
  assert.deepEqual([buckets[0].minSize, buckets[0].maxSize], [1, 10]);
  assert.equal(buckets[0].meanSlowdown, mean([91, 92, 93, 94, 95, 96, 97, 98, 99, 100]));
  assert.deepEqual([buckets[9].fromPercentile, buckets[9].toPercentile], [90, 100]);
  assert.equal(buckets[9].meanResponseTime, 5.5);
});

Deno.test("slowdown by size spreads a count that does not divide evenly and skips empty buckets", () => {
  assert.deepEqual(slowdownBySize(records(7), 3).map((b) => b.count), [2, 2, 3]);
  assert.deepEqual(slowdownBySize(records(2), 4).map((b) => b.bucket), [1, 3]);
});

Deno.test("stretch is RT_X / RT_PS per request: SRPT never loses here, FIFO makes a small request wait", () => {
  const trace = [{ at: 0, size: 10 }, { at: 2, size: 1 }, { at: 20, size: 1 }];
  const ps = simulate(trace, "ps", { rate: 1 });
  const srpt = simulate(trace, "srpt", { rate: 1 });
  // PS: the small one shares from 2 to 4 (done at 4), the large finishes at 11; SRPT: 11 and 3.
  assert.deepEqual(stretches(srpt, ps), [1, 0.5, 1]);
  assert.deepEqual(stretchSummary(srpt, ps), { shareAbove1: 0, max: 1, mean: 2.5 / 3 });
  const fifo = simulate([{ at: 0, size: 10 }, { at: 0, size: 1 }], "fifo", { rate: 1 });
  const fair = simulate([{ at: 0, size: 10 }, { at: 0, size: 1 }], "ps", { rate: 1 });
  const summary = stretchSummary(fifo, fair);
  assert.equal(summary.shareAbove1, 0.5);
  assert.equal(summary.max, 11 / 2);
});

Deno.test("a stretch within the tolerance of 1 does not count as above 1", () => {
  const reference = [{ size: 1, responseTime: 1, slowdown: 1 }];
  const noisy = [{ size: 1, responseTime: 1 + 1e-12, slowdown: 1 }];
  assert.equal(stretchSummary(noisy, reference).shareAbove1, 0);
  assert.equal(stretchSummary(noisy, reference, 0).shareAbove1, 1);
  assert.throws(() => stretches(noisy, []), /1 records against 0/);
});

Deno.test("a CDF keeps every point of a small sample and thins a large one, ends included", () => {
  assert.deepEqual(cdf([3, 1, 2]), [
    { value: 1, fraction: 1 / 3 },
    { value: 2, fraction: 2 / 3 },
    { value: 3, fraction: 1 },
  ]);
  const values = Array.from({ length: 10_000 }, (_, i) => 10_000 - i);
  const points = cdf(values, 101);
  assert.equal(points.length, 101);
  assert.deepEqual(points[0], { value: 1, fraction: 1e-4 });
  assert.deepEqual(points[100], { value: 10_000, fraction: 1 });
  assert.ok(points.every((p, i) => i === 0 || p.fraction > points[i - 1].fraction));
});
