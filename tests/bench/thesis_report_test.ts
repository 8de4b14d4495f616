import assert from "node:assert/strict";
import { join } from "node:path";
import { type ClaimResult, thesisReport } from "../../scripts/bench/thesis/report.ts";
import type { Experiment, ThesisResults, ThesisRun } from "../../scripts/bench/thesis/results.ts";
import { needs } from "../_permissions.ts";

/** What a synthetic run is made of; everything else has a plain default. */
interface Shape {
  mbps: number;
  repeat?: number;
  ms?: number;
  failed?: number;
  labCpu?: number;
  transport?: ThesisRun["transport"];
}

const SECONDS = 4;
const FETCHES = 4;

/** A run of 4 s with one fetch completing in each second, at `mbps` on average. */
function run(experiment: Experiment, row: string, shape: Shape): ThesisRun {
  const failed = shape.failed ?? 0;
  const bytes = shape.mbps * 1e6 * SECONDS / FETCHES;
  const fetches = Array.from({ length: FETCHES }, (_, i) => ({
    t: 500 + 1000 * i,
    ms: shape.ms ?? 100,
    bytes,
    ok: i >= failed,
  }));
  return {
    experiment,
    row,
    server: row.startsWith("nginx") ? "nginx" : "flowsched",
    transport: shape.transport ?? (row.includes("sctp") ? "sctp" : "tcp"),
    proxy: experiment === "5.3" || experiment === "5.4",
    variant: { policy: row.includes("rr") ? "rr" : "scf", note: "a, b" },
    repeat: shape.repeat ?? 0,
    seconds: SECONDS,
    requests: FETCHES,
    failed,
    bytes: bytes * FETCHES,
    labCpu: shape.labCpu ?? 0.5,
    serverCpuMs: 40,
    connections: 2,
    fetches,
  };
}

/** Numbers built so that every claim agrees; "nginx sctp", "nginx tcp x8" and others are missing. */
function agreeing(): ThesisRun[] {
  return [
    run("5.2", "flowsched sctp", { mbps: 48 }),
    run("5.2", "flowsched sctp", { mbps: 52, repeat: 1 }),
    run("5.2", "flowsched tcp", { mbps: 100 }),
    run("5.2", "flowsched tcp", { mbps: 100, repeat: 1 }),
    run("5.2", "nginx tcp", { mbps: 110 }),
    run("5.3", "scf uniform", { mbps: 10 }),
    run("5.3", "rr uniform", { mbps: 10.5 }),
    run("5.3", "scf zipf", { mbps: 10, ms: 80 }),
    run("5.3", "rr zipf", { mbps: 10, ms: 100 }),
    run("5.4", "sctp scf", { mbps: 10 }),
    run("5.4", "tcpmux scf", { mbps: 20, transport: "tcpmux" }),
    run("5.4", "tcpmux rr", { mbps: 19, transport: "tcpmux" }),
    run("5.4", "tcp x8", { mbps: 30 }),
    run("5.5", "tcp persistent", { mbps: 20, ms: 300 }),
    run("5.5", "tcp non-persistent", { mbps: 18, ms: 400 }),
    run("5.5", "sctp proxy no-prefetch", { mbps: 10, ms: 600 }),
    run("5.5", "sctp proxy prefetch", { mbps: 11, ms: 500, failed: 1 }),
    run("004", "tcp non-persistent", { mbps: 1, labCpu: 0.9 }),
    run("004", "tcp persistent", { mbps: 1, labCpu: 0.5 }),
    run("004", "sctp association", { mbps: 1, labCpu: 0.4 }),
  ];
}

const results = (runs: ThesisRun[]): ThesisResults => ({
  started: "2026-01-01T00:00:00.000Z",
  setup: { repeats: 2, link: "1 Gbit/s, 1 ms" },
  runs,
});

const verdicts = async (dir: string) => {
  const summary = JSON.parse(await Deno.readTextFile(join(dir, "summary.json")));
  return (summary.claims as ClaimResult[]).map((c) => `${c.experiment} ${c.claim}: ${c.verdict}`);
};

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("thesisReport() writes one CSV line per run, with MB/s as bytes over seconds", {
  ignore: needs("read", "write"),
}, async () => {
  await withTempDir(async (dir) => {
    const runs = agreeing();
    await thesisReport(results(runs), { dir, docs: null, notes: null });
    for (const experiment of ["5.2", "5.3", "5.4", "5.5", "004"] as const) {
      const lines = (await Deno.readTextFile(join(dir, `${experiment}.csv`))).trimEnd().split("\n");
      const count = runs.filter((r) => r.experiment === experiment).length;
      assert.equal(lines.length, 1 + count, experiment);
    }
    const lines = (await Deno.readTextFile(join(dir, "5.2.csv"))).trimEnd().split("\n");
    const header = lines[0].split(",");
    assert.equal(header.length, 22);
    const mbps = header.indexOf("MB/s");
    // The variant holds a comma, so it is quoted; drop it before splitting.
    const cells = lines.slice(1).map((l) => l.replace(/"[^"]*"/, "variant").split(","));
    assert.deepEqual(cells.map((c) => Number(c[mbps])), [48, 52, 100, 100, 110]);
    assert.ok(lines[1].includes('"policy=scf;note=a, b"'));
  });
});

Deno.test("thesisReport() judges each claim from the ratios of medians", {
  ignore: needs("read", "write"),
}, async () => {
  await withTempDir(async (dir) => {
    await thesisReport(results(agreeing()), { dir, docs: null, notes: null });
    assert.deepEqual(await verdicts(dir), [
      "5.2 single stream: SCTP / TCP throughput (flowsched): agrees",
      "5.3 uniform popularity: SCF / RR throughput: agrees",
      "5.3 Zipf popularity, heavy-tailed sizes: SCF / RR mean response time: agrees",
      "5.4 tcpmux / kernel SCTP throughput: agrees",
      "5.4 over tcpmux: SCF / RR throughput: agrees",
      "5.5 page loads: SCTP / TCP persistent throughput: agrees",
      "004 a connection per request costs more CPU than a long-lived one: agrees",
    ]);
  });
  await withTempDir(async (dir) => {
    const runs = agreeing()
      .map((r) => r.row === "flowsched sctp" ? run("5.2", r.row, { mbps: 100 }) : r)
      .map((r) => r.row === "scf zipf" ? run("5.3", r.row, { mbps: 10, ms: 98 }) : r)
      .filter((r) => !(r.experiment === "004" && r.row === "tcp persistent"));
    await thesisReport(results(runs), { dir, docs: null, notes: null });
    const got = await verdicts(dir);
    assert.ok(got.includes("5.2 single stream: SCTP / TCP throughput (flowsched): disagrees"));
    assert.ok(
      got.includes(
        "5.3 Zipf popularity, heavy-tailed sizes: SCF / RR mean response time: disagrees",
      ),
    );
    assert.ok(got.includes(
      "004 a connection per request costs more CPU than a long-lived one: not measured",
    ));
  });
});

Deno.test("thesisReport() writes summary.md, the plots and the notes into docs", {
  ignore: needs("read", "write"),
}, async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "out");
    const docs = join(dir, "docs");
    const notes = join(dir, "notes.md");
    await Deno.writeTextFile(
      notes,
      "# Notes\n\n## 5.2 single stream\n\nThe kernel's SCTP copies twice.\n\n## 5.4\n",
    );
    const markdown = await thesisReport(results(agreeing()), { dir: out, docs, notes });
    assert.equal(await Deno.readTextFile(join(docs, "summary.md")), markdown);
    for (const experiment of ["## 5.2", "## 5.3", "## 5.4", "## 5.5", "## 004"]) {
      assert.ok(markdown.includes(experiment), experiment);
    }
    assert.ok(markdown.includes("Total failed requests: 1 of 80."));
    assert.ok(markdown.includes("| nginx sctp | not measured |"));
    assert.ok(markdown.includes("- repeats: 2"));
    assert.ok(markdown.includes("### Why\n\nThe kernel's SCTP copies twice."));
    assert.equal(markdown.match(/### Why/g)?.length, 1, "an empty section adds nothing");
    const svgs = [...Deno.readDirSync(docs)].map((e) => e.name).filter((n) => n.endsWith(".svg"));
    assert.ok(svgs.length >= 6, `${svgs.length} plots`);
    assert.ok(svgs.includes("5.2-throughput.svg") && svgs.includes("5.2-throughput-over-time.svg"));
    for (const name of svgs) {
      assert.ok((await Deno.readTextFile(join(docs, name))).startsWith("<svg"), name);
      assert.ok(markdown.includes(`](${name})`), `${name} is linked`);
    }
    assert.deepEqual(
      [...Deno.readDirSync(out)].map((e) => e.name).filter((n) => n.endsWith(".svg")),
      [],
    );
  });
});

Deno.test("thesisReport() reports an experiment with no runs as not measured", {
  ignore: needs("read", "write"),
}, async () => {
  await withTempDir(async (dir) => {
    const runs = agreeing().filter((r) => r.experiment === "5.2");
    const markdown = await thesisReport(results(runs), {
      dir,
      docs: null,
      notes: join(dir, "missing.md"),
    });
    assert.ok(markdown.includes("- 5.5: not measured"));
    assert.ok(markdown.includes("Total failed requests: 0 of 20."));
    assert.ok(!markdown.includes("### Why"));
    const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(files, [
      "5.2-throughput-over-time.svg",
      "5.2-throughput.svg",
      "5.2.csv",
      "summary.json",
    ]);
  });
});
