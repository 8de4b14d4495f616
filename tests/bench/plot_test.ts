import assert from "node:assert/strict";
import { join } from "node:path";
import { barChart, cdfChart, lineChart, writeSvg } from "../../scripts/bench/sched/plot.ts";
import { needs } from "../_permissions.ts";

const rows = [0.5, 0.7, 0.9].flatMap((load) =>
  ["ps", "srpt"].map((policy) => ({
    load,
    policy,
    seconds: policy === "ps" ? 0.01 / (1 - load) : 0.006 / (1 - load),
  }))
);

Deno.test("a line chart renders to an SVG with its title, axis titles and series names", {
  ignore: needs("read"),
}, async () => {
  const svg = await lineChart({
    title: "Mean response time by load",
    x: "load",
    y: "seconds",
    yTitle: "mean response time (s)",
    series: "policy",
    data: rows,
    logY: true,
  });
  assert.match(svg, /^<svg[^>]*>/);
  for (const text of ["Mean response time by load", "mean response time (s)", "load", "srpt"]) {
    assert.ok(svg.includes(text), `missing "${text}"`);
  }
});

Deno.test(
  "a grouped bar chart with error ranges renders to an SVG",
  { ignore: needs("read") },
  async () => {
    const svg = await barChart({
      title: "Slowdown by size decile",
      x: "load",
      y: "seconds",
      series: "policy",
      errorLow: "low",
      errorHigh: "high",
      data: rows.map((r) => ({ ...r, low: r.seconds * 0.9, high: r.seconds * 1.1 })),
    });
    assert.match(svg, /^<svg/);
    assert.ok(svg.includes("Slowdown by size decile"));
    assert.ok(svg.includes('aria-roledescription="rect mark container"'), "bars");
    assert.ok(svg.includes('aria-roledescription="rule mark container"'), "error ranges");
  },
);

Deno.test("a CDF chart renders one line per series", { ignore: needs("read") }, async () => {
  const svg = await cdfChart({
    title: "Response time CDF",
    x: "response time (s)",
    series: { ps: [1, 2, 3, 4], srpt: [0.5, 1, 2, 8] },
    logX: true,
  });
  assert.ok(svg.includes("Response time CDF") && svg.includes("fraction of requests"));
  assert.equal(svg.match(/aria-roledescription="line mark container"/g)?.length, 2);
});

Deno.test("writeSvg creates the directory and writes the picture", {
  ignore: needs("read", "write"),
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "figures", "a.svg");
    await writeSvg(path, "<svg></svg>");
    assert.equal(await Deno.readTextFile(path), "<svg></svg>");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
