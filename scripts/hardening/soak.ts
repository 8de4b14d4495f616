/**
 * `deno task harden soak`: mixed load through the proxy and straight to the
 * server for a long time, sampling both processes' RSS, descriptors and
 * threads. A leak shows as a slope or as counts that do not come back once
 * the load stops.
 *
 * The load mixes, per client step: GETs through the proxy (hits, and misses
 * since the cache is smaller than the site), HEADs, 404s, downloads the
 * client abandons half-way, and short-lived associations straight to the
 * server that fetch a few files and close.
 *
 * @module
 */

import { FlowClient } from "../../protocol/client.ts";
import { helpText, type OptionValues, parseOptions } from "../../cli/options.ts";
import { prng, progress, round, sha256Hex, table } from "../bench/common.ts";
import {
  fetchChecked,
  freeTcpPort,
  freeUdpPort,
  makeFiles,
  type ProcessSample,
  type RunningProxy,
  type Service,
  type SiteFile,
  slope,
  startProxy,
  startServer,
} from "./stack.ts";

const OPTIONS = {
  duration: { kind: "integer", default: 600, min: 5, help: "seconds of load" },
  interval: { kind: "integer", default: 10, min: 1, help: "seconds between samples" },
  clients: { kind: "integer", default: 8, min: 1, help: "clients through the proxy" },
  transport: {
    kind: "string",
    default: "usrsctp",
    choices: ["tcpmux", "usrsctp"],
    help: "server transport",
  },
  quick: { kind: "boolean", default: false, help: "30 s, sampled every 2 s: a smoke run" },
} as const;

type Values = OptionValues<typeof OPTIONS>;

const USAGE = `Usage: deno task harden soak [options]

Mixed load through the proxy and straight to the server; samples RSS, descriptors and threads of
both every interval, and reports the RSS slope and whether descriptors and threads come back once
the load stops.`;

/** One sample of both processes. */
export interface SoakSample {
  readonly seconds: number;
  readonly server: ProcessSample;
  readonly proxy: ProcessSample;
}

/** What a soak run measured. */
export interface SoakReport {
  readonly samples: SoakSample[];
  /** Settled after a warm-up under the same load: what `settled` is compared with. */
  readonly baseline: SoakSample;
  /** After the load stopped and the processes settled. */
  readonly settled: SoakSample;
  /** RSS slope over the second half of the run, MB per minute. */
  readonly slopeMbPerMinute: { readonly server: number; readonly proxy: number };
  readonly requests: Record<string, number>;
  /** Responses with wrong bytes: must be 0. */
  readonly wrong: number;
  /** Requests that got no answer (the connection dropped, or a thrown error): must be 0. */
  readonly failed: number;
  /** Descriptors or threads above the first sample's once settled. */
  readonly leaked: { readonly fds: number; readonly threads: number };
  readonly passed: boolean;
}

/** Runs the soak; see the module doc. */
export async function runSoak(values: Values): Promise<SoakReport> {
  const duration = values.quick ? 30 : values.duration;
  const interval = values.quick ? 2 : values.interval;
  const root = await Deno.makeTempDir({ prefix: "flowsched-soak-site-" });
  const cache = await Deno.makeTempDir({ prefix: "flowsched-soak-cache-" });
  const files = await makeFiles(root, 80, { minBytes: 512, maxBytes: 2 << 20 });
  const port = freeTcpPort();
  const udpPort = await freeUdpPort();
  const server: Service = await startServer({
    root,
    transport: values.transport,
    host: "127.0.0.1",
    port,
    udpPort,
  });
  let proxy: RunningProxy | undefined;
  const requests: Record<string, number> = {};
  let wrong = 0;
  let failed = 0;
  const samples: SoakSample[] = [];
  try {
    proxy = await startProxy({
      listen: `127.0.0.1:${freeTcpPort()}`,
      upstream: `${values.transport}://127.0.0.1:${port}`,
      cache,
      args: [`--udp-port=${udpPort}`, `--cache-size=${8 << 20}`],
    });
    const upstream = `${values.transport}://127.0.0.1:${port}`;
    const sample = async (seconds: number): Promise<SoakSample> => ({
      seconds,
      server: await server.sample(),
      proxy: await proxy!.service.sample(),
    });
    const random = prng(5);
    // Idle pooled connections close soon, so a settled proxy holds none of ours.
    using http = Deno.createHttpClient({ poolIdleTimeout: 1000 });
    const step = async () => {
      const kind = pickStep(random());
      requests[kind] = (requests[kind] ?? 0) + 1;
      try {
        if (!(await STEPS[kind](proxy!.base, upstream, files, random, udpPort, http))) {
          if (++wrong <= 5) progress("soak", `a ${kind} step got a wrong answer`);
        }
      } catch (error) {
        failed++;
        const cause = (error as Error).cause ?? error;
        progress("soak", `${kind} failed: ${(cause as Error).message ?? cause}`);
      }
    };
    const runLoad = (signal: AbortSignal) =>
      Promise.all(Array.from({ length: values.clients }, async () => {
        while (!signal.aborted) await step();
      }));
    // Thread pools and caches grow to their working size first: the baseline
    // is the settled state after a warm-up under the same load.
    const warmUp = new AbortController();
    setTimeout(() => warmUp.abort(), Math.min(10, duration / 3) * 1000);
    await runLoad(warmUp.signal);
    await sleep(SETTLE_MS);
    const baseline = await sample(0);
    progress("soak", `warmed up; settled: ${describe(baseline)}`);
    const load = new AbortController();
    const clients = runLoad(load.signal);
    const start = performance.now();
    for (let t = 0; t <= duration; t += interval) {
      await sleep(start + t * 1000 - performance.now());
      const s = await sample(t);
      samples.push(s);
      progress("soak", `${t}/${duration} s: ${describe(s)}; wrong ${wrong}, failed ${failed}`);
    }
    load.abort();
    await clients;
    await sleep(SETTLE_MS);
    const settled = await sample(duration + SETTLE_MS / 1000);
    const half = samples.slice(Math.floor(samples.length / 2));
    const perMinute = (pick: (s: SoakSample) => number) =>
      round(slope(half.map((s) => s.seconds), half.map(pick)) * 60, 2);
    const leaked = {
      fds: Math.max(
        0,
        settled.server.fds - baseline.server.fds,
        settled.proxy.fds - baseline.proxy.fds,
      ),
      threads: Math.max(
        0,
        settled.server.threads - baseline.server.threads,
        settled.proxy.threads - baseline.proxy.threads,
      ),
    };
    return {
      samples,
      baseline,
      settled,
      slopeMbPerMinute: {
        server: perMinute((s) => s.server.rssMb),
        proxy: perMinute((s) => s.proxy.rssMb),
      },
      requests,
      wrong,
      failed,
      leaked,
      passed: wrong === 0 && failed === 0 && leaked.fds === 0 && leaked.threads === 0,
    };
  } finally {
    await proxy?.service.stop("SIGTERM");
    await server.stop("SIGTERM");
    await Deno.remove(root, { recursive: true });
    await Deno.remove(cache, { recursive: true });
  }
}

type Step = (
  base: string,
  upstream: string,
  files: readonly SiteFile[],
  random: () => number,
  udpPort: number,
  client: Deno.HttpClient,
) => Promise<boolean>;

/** Each kind of step, and how likely it is. */
const STEPS: Record<string, Step> = {
  get: async (base, _upstream, files, random, _udpPort, client) => {
    const outcome = await fetchChecked(base, files[Math.floor(random() * files.length)], client);
    return outcome.kind !== "wrong";
  },
  head: async (base, _upstream, files, random, _udpPort, client) => {
    const file = files[Math.floor(random() * files.length)];
    const response = await fetch(base + file.path, { method: "HEAD", client });
    await response.body?.cancel();
    return response.status !== 200 ||
      Number(response.headers.get("content-length")) === file.size;
  },
  missing: async (base, _upstream, _files, random, _udpPort, client) => {
    const response = await fetch(`${base}/no/such/file-${random()}`, { client });
    const text = await response.text();
    if (response.status !== 404) progress("soak", `missing: ${response.status} ${text.trim()}`);
    return response.status === 404;
  },
  abandon: async (base, _upstream, files, random, _udpPort, client) => {
    const file = files[Math.floor(random() * files.length)];
    const response = await fetch(base + file.path, { client });
    const reader = response.body?.getReader();
    await reader?.read();
    await reader?.cancel();
    return true;
  },
  direct: async (_base, upstream, files, random, udpPort) => {
    await using client = await FlowClient.connect(upstream, { streams: 2, udpPort });
    const picked = Array.from({ length: 3 }, () => files[Math.floor(random() * files.length)]);
    const bodies = await Promise.all(
      picked.map(async (file) => (await client.request(file.path)).bytes()),
    );
    return bodies.every((body, i) => sha256Hex(body) === picked[i].sha256);
  },
};

const WEIGHTS: [string, number][] = [
  ["get", 0.6],
  ["head", 0.1],
  ["missing", 0.1],
  ["abandon", 0.15],
  ["direct", 0.05],
];

function pickStep(x: number): string {
  for (const [kind, weight] of WEIGHTS) {
    if (x < weight) return kind;
    x -= weight;
  }
  return "get";
}

/** `deno task harden soak`. */
export async function main(args: string[]): Promise<void> {
  const parsed = await parseOptions(args, OPTIONS);
  if (!parsed) return console.log(helpText(USAGE, OPTIONS));
  const report = await runSoak(parsed.values);
  const rows = [report.baseline, ...report.samples, report.settled].map((s) => [
    s.seconds,
    round(s.server.rssMb),
    s.server.fds,
    s.server.threads,
    round(s.proxy.rssMb),
    s.proxy.fds,
    s.proxy.threads,
  ]);
  console.log(table(
    ["s", "server MB", "server fds", "server threads", "proxy MB", "proxy fds", "proxy threads"],
    rows,
  ));
  console.log(
    `requests ${
      JSON.stringify(report.requests)
    }; wrong ${report.wrong}; failed ${report.failed}; RSS slope over the second half: server ${report.slopeMbPerMinute.server} MB/min, proxy ${report.slopeMbPerMinute.proxy} MB/min; fds above start once settled ${report.leaked.fds}, threads ${report.leaked.threads}`,
  );
  console.log(report.passed ? "PASS" : "FAIL");
  if (!report.passed) Deno.exitCode = 1;
}

const SETTLE_MS = 12_000;

function describe(s: SoakSample): string {
  return `server ${
    round(s.server.rssMb)
  } MB, ${s.server.fds} fds, ${s.server.threads} threads; proxy ${
    round(s.proxy.rssMb)
  } MB, ${s.proxy.fds} fds, ${s.proxy.threads} threads`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
