import assert from "node:assert/strict";
import { join } from "node:path";
import { prng } from "../../scripts/bench/common.ts";
import {
  boundedPareto,
  boundedParetoMean,
  exponential,
  fileBytes,
  fileSet,
  PARETO_MAX,
  PARETO_MIN,
  poissonTrace,
  writeFileSet,
  zipfSampler,
} from "../../scripts/bench/sched/workload.ts";
import { mean } from "../../scripts/bench/sched/stats.ts";
import { needs } from "../_permissions.ts";

const paretoFiles = fileSet(1, 5000, (rand) => boundedPareto(rand));

Deno.test("the Bounded Pareto sampler stays within [min, max], even at the ends of its input", () => {
  assert.equal(boundedPareto(() => 0), PARETO_MIN);
  assert.ok(boundedPareto(() => 1 - 2 ** -53) <= PARETO_MAX);
  const rand = prng(2);
  for (let i = 0; i < 100_000; i++) {
    const x = boundedPareto(rand, 1.2, 500, 2e6);
    assert.ok(x >= 500 && x <= 2e6, `${x}`);
  }
});

Deno.test("the default sizes are SURGE-like: most below 10 kB, a few of megabytes", () => {
  const rand = prng(3);
  const sizes = Array.from({ length: 100_000 }, () => boundedPareto(rand));
  const small = sizes.filter((s) => s < 10_000).length / sizes.length;
  const large = sizes.filter((s) => s >= 1e6).length;
  assert.ok(small > 0.9 && small < 0.94, `${small} below 10 kB`);
  assert.ok(large >= 20 && large <= 100, `${large} of 1 MB or more`);
  assert.ok(Math.abs(boundedParetoMean() / 1024 - 6.6) < 0.05, `${boundedParetoMean()}`);
});

Deno.test("the Bounded Pareto mean formula matches the sample mean, alpha = 1 included", () => {
  for (const alpha of [1, 2.5]) {
    const rand = prng(4);
    const sample = mean(Array.from({ length: 400_000 }, () => boundedPareto(rand, alpha, 1, 50)));
    const exact = boundedParetoMean(alpha, 1, 50);
    assert.ok(Math.abs(sample / exact - 1) < 0.01, `alpha ${alpha}: ${sample} against ${exact}`);
  }
});

Deno.test("Zipf picks index i in proportion to 1 / (i + 1)^s", () => {
  const n = 100;
  const pick = zipfSampler(prng(5), n, 1);
  const counts = new Array(n).fill(0);
  const draws = 200_000;
  for (let i = 0; i < draws; i++) counts[pick()]++;
  const harmonic = Array.from({ length: n }, (_, i) => 1 / (i + 1)).reduce((a, b) => a + b);
  for (const i of [0, 1, 9]) {
    const expected = draws / (i + 1) / harmonic;
    assert.ok(Math.abs(counts[i] / expected - 1) < 0.05, `index ${i}: ${counts[i]} of ${expected}`);
  }
  assert.ok(counts[n - 1] > 0);
});

Deno.test("a file set is a function of its seed, with numbered paths and whole-byte sizes", () => {
  assert.deepEqual(fileSet(1, 5000, (rand) => boundedPareto(rand)), paretoFiles);
  assert.equal(paretoFiles[17].path, "/f/00017.bin");
  assert.ok(paretoFiles.every((f) => Number.isInteger(f.size) && f.size >= PARETO_MIN));
  assert.notDeepEqual(fileSet(2, 5000, (rand) => boundedPareto(rand)), paretoFiles);
});

Deno.test("writeFileSet writes each file with its size and seeded contents", {
  ignore: needs("read", "write"),
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = fileSet(1, 3, () => 4097);
    files[1].size = 3;
    await writeFileSet(dir, files, 42);
    for (const [i, file] of files.entries()) {
      const bytes = await Deno.readFile(join(dir, file.path));
      assert.equal(bytes.length, file.size);
      assert.deepEqual(bytes, fileBytes(42, i, file.size));
    }
    const [a, b] = [fileBytes(42, 0, 4097), fileBytes(42, 2, 4097)];
    assert.notDeepEqual(a, b, "files differ");
    assert.notDeepEqual(a, fileBytes(43, 0, 4097), "seeds differ");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a Poisson trace offers the requested load within 1% over its duration", () => {
  for (const [load, popularity] of [[0.5, "uniform"], [0.9, "zipf"]] as const) {
    const rate = 2e6;
    const durationSeconds = 120;
    const trace = poissonTrace({
      seed: 7,
      files: paretoFiles,
      load,
      bottleneckBytesPerSecond: rate,
      durationSeconds,
      popularity,
    });
    const offered = trace.reduce((sum, r) => sum + r.size, 0) / (durationSeconds * rate);
    assert.ok(Math.abs(offered / load - 1) < 0.01, `${popularity}: offered ${offered} for ${load}`);
    assert.ok(trace.every((r, i) => i === 0 || r.at >= trace[i - 1].at), "arrivals in order");
    assert.ok(trace[0].at > 0 && trace[trace.length - 1].at < durationSeconds * 1.01);
  }
});

Deno.test("trace arrivals are Poisson: gaps have a coefficient of variation near 1", () => {
  const trace = poissonTrace({
    seed: 8,
    files: paretoFiles,
    load: 0.7,
    bottleneckBytesPerSecond: 1e6,
    durationSeconds: 100,
    popularity: "uniform",
  });
  const gaps = trace.slice(1).map((r, i) => r.at - trace[i].at);
  const m = mean(gaps);
  const cv = Math.sqrt(mean(gaps.map((g) => (g - m) ** 2))) / m;
  assert.ok(gaps.length > 5000 && Math.abs(cv - 1) < 0.05, `${gaps.length} gaps, cv ${cv}`);
});

Deno.test("a trace is a function of its options; requests name their file and are dealt to clients in turn", () => {
  const options = {
    seed: 9,
    files: paretoFiles,
    load: 0.8,
    bottleneckBytesPerSecond: 1e6,
    durationSeconds: 10,
    popularity: "zipf",
    clients: 3,
  } as const;
  const trace = poissonTrace(options);
  assert.deepEqual(poissonTrace(options), trace);
  assert.deepEqual(trace.slice(0, 4).map((r) => r.client), [0, 1, 2, 0]);
  for (const r of trace) {
    assert.equal(r.path, paretoFiles[r.file].path);
    assert.equal(r.size, paretoFiles[r.file].size);
  }
  const hits = trace.filter((r) => r.file === 0).length;
  assert.ok(hits > trace.filter((r) => r.file === 100).length * 10, "file 0 is the most popular");
});

Deno.test("exponential samples have the requested mean", () => {
  const rand = prng(10);
  const sample = mean(Array.from({ length: 200_000 }, () => exponential(rand, 3)));
  assert.ok(Math.abs(sample / 3 - 1) < 0.01, `${sample}`);
});

Deno.test("poissonTrace rejects an empty file set and a non-positive load, naming them", () => {
  const base = {
    seed: 1,
    files: paretoFiles,
    load: 0.5,
    bottleneckBytesPerSecond: 1e6,
    durationSeconds: 1,
    popularity: "uniform",
  } as const;
  assert.throws(() => poissonTrace({ ...base, files: [] }), /file set is empty/);
  assert.throws(() => poissonTrace({ ...base, load: 0 }), /load must be positive/);
  assert.throws(() => poissonTrace({ ...base, clients: 0 }), /clients/);
});
