/**
 * What a client pays to start: `deno run -P=client scripts/bench/connect.ts
 * <transport>://host:port/path [count]` opens an association, makes one
 * request for the path, reads the body and closes, `count` times in a row
 * (default 20) in this one process, and prints the wall time and the CPU
 * time (this process, every thread) per round, the first (cold) round apart.
 * In the lab, run it in the client namespace against a server in another.
 *
 * @module
 */

import process from "node:process";
import { FlowClient, parseServerUrl } from "../../protocol/client.ts";

/** Wall and CPU milliseconds of one round. */
interface Round {
  wallMs: number;
  cpuMs: number;
}

async function round(url: string, path: string): Promise<Round> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const client = await FlowClient.connect(url, { streams: 4 });
  try {
    const response = await client.request(path);
    await response.bytes();
    if (response.status !== 200) throw new Error(`${path}: status ${response.status}`);
  } finally {
    await client.close();
  }
  const used = process.cpuUsage(cpu);
  return { wallMs: performance.now() - start, cpuMs: (used.user + used.system) / 1000 };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

if (import.meta.main) {
  const [url, count = "20"] = Deno.args;
  const rounds = Number(count);
  if (!url || !Number.isInteger(rounds) || rounds < 2) {
    console.error("usage: connect.ts <transport>://host:port/path [count >= 2]");
    Deno.exit(2);
  }
  const { path } = parseServerUrl(url);
  const results: Round[] = [];
  for (let i = 0; i < rounds; i++) results.push(await round(url, path));
  const [first, ...rest] = results;
  const fmt = (n: number) => n.toFixed(1);
  console.log(
    `connect + request + close, ${rounds} rounds: first ${fmt(first.wallMs)} ms wall, ` +
      `${fmt(first.cpuMs)} ms CPU; the other ${rest.length}: ` +
      `${fmt(mean(rest.map((r) => r.wallMs)))} ms wall (median ${
        fmt(median(rest.map((r) => r.wallMs)))
      }), ${fmt(mean(rest.map((r) => r.cpuMs)))} ms CPU (median ${
        fmt(median(rest.map((r) => r.cpuMs)))
      }) per round`,
  );
}
