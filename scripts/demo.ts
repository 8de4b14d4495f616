/**
 * `npm run demo` / `deno task demo`: the main job on an embedded default.
 * Writes a small website (a page, its stylesheet, script and images, and a
 * few large downloads), serves it over userspace SCTP (no root, no kernel
 * SCTP needed) under each policy, fetches everything concurrently over one
 * association, checks every body against the file, and shows when each
 * response completed.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { FlowClient, localUdpPort, POLICY_NAMES, startServer } from "../mod.ts";
import type { PolicyName, TransportName } from "../mod.ts";
import { ConfigError, helpText, parseOptions } from "../cli/options.ts";

const OPTIONS = {
  transport: {
    kind: "string",
    default: "usrsctp",
    choices: ["usrsctp", "tcpmux", "kernel"],
    help: "transport to demonstrate",
  },
  streams: {
    kind: "integer",
    default: 2,
    min: 1,
    max: 64,
    help: "streams (sender Workers) per association",
  },
} as const;

const SITE: Record<string, number> = {
  "/index.html": 6_000,
  "/style.css": 12_000,
  "/app.js": 40_000,
  "/img/logo.png": 3_000,
  "/img/photo1.jpg": 180_000,
  "/img/photo2.jpg": 250_000,
  "/img/thumb1.jpg": 9_000,
  "/img/thumb2.jpg": 11_000,
  "/downloads/dataset.bin": 8_000_000,
  "/downloads/video.mp4": 12_000_000,
};

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

/** Writes the demo site; returns its root and each file's hash. */
async function writeSite(): Promise<{ root: string; hashes: Map<string, string> }> {
  const root = await Deno.makeTempDir({ prefix: "flowsched-demo-" });
  const hashes = new Map<string, string>();
  for (const [path, size] of Object.entries(SITE)) {
    await Deno.mkdir(root + path.slice(0, path.lastIndexOf("/")), { recursive: true });
    const data = new Uint8Array(size);
    for (let at = 0; at < size; at += 65536) crypto.getRandomValues(data.subarray(at, at + 65536));
    await Deno.writeFile(root + path, data);
    hashes.set(path, sha256(data));
  }
  return { root, hashes };
}

/** Serves the site under `policy` and fetches it all at once; returns completion times in ms. */
async function fetchAll(
  transport: TransportName,
  root: string,
  policy: PolicyName,
  streams: number,
  udpPort: number,
  hashes: Map<string, string>,
) {
  await using server = await startServer({
    transport,
    port: 0,
    root,
    policy,
    streams,
    logLevel: "warn",
    udpPort,
  });
  await using client = await FlowClient.connect(
    { transport, host: "127.0.0.1", port: server.port },
    { streams, udpPort },
  );
  const started = performance.now();
  const done = await Promise.all([...hashes.keys()].map(async (path) => {
    const response = await client.request(path);
    const body = await response.bytes();
    if (response.status !== 200 || sha256(body) !== hashes.get(path)) {
      throw new Error(
        `${path}: status ${response.status}, body ${body.byteLength} bytes does not match the file`,
      );
    }
    return { path, ms: performance.now() - started };
  }));
  return new Map(done.map((d) => [d.path, d.ms]));
}

if (import.meta.main) {
  try {
    const parsed = await parseOptions(Deno.args, OPTIONS);
    if (!parsed) {
      console.log(
        helpText(
          "Usage: deno task demo [options]\n\nServes an embedded demo site over SCTP under each policy and shows when each file arrived.",
          OPTIONS,
        ),
      );
      Deno.exit(0);
    }
    const transport = parsed.values.transport as TransportName;
    const { root, hashes } = await writeSite();
    console.log(
      `flowsched demo: ${hashes.size} files (${
        (Object.values(SITE).reduce((a, b) => a + b) / 1e6).toFixed(1)
      } MB) served over ${transport}, one association, ${parsed.values.streams} streams, all requested at once\n`,
    );
    const results = new Map<PolicyName, Map<string, number>>();
    const udpPort = localUdpPort();
    for (const policy of POLICY_NAMES) {
      results.set(
        policy,
        await fetchAll(transport, root, policy, parsed.values.streams, udpPort, hashes),
      );
    }
    console.log(
      `${"file".padEnd(24)}${"bytes".padStart(11)}${
        POLICY_NAMES.map((p) => `${p} done (ms)`.padStart(16)).join("")
      }`,
    );
    for (const path of hashes.keys()) {
      const cells = POLICY_NAMES.map((p) => results.get(p)!.get(path)!.toFixed(1).padStart(16))
        .join("");
      console.log(`${path.padEnd(24)}${String(SITE[path]).padStart(11)}${cells}`);
    }
    const small = [...hashes.keys()].filter((p) => SITE[p] < 1_000_000);
    console.log("\nmean completion time of the page's small files (< 1 MB):");
    for (const policy of POLICY_NAMES) {
      const mean = small.reduce((sum, p) => sum + results.get(policy)!.get(p)!, 0) / small.length;
      console.log(`  ${policy}: ${mean.toFixed(1)} ms`);
    }
    console.log(
      "\nSize-based scheduling lowers response times only where responses queue (a bottleneck link);" +
        "\non an idle loopback both policies can finish alike. Try the lab: deno task lab --help",
    );
    console.log("\nevery body matched its file (sha256). Next: deno task server --help");
    await Deno.remove(root, { recursive: true });
  } catch (error) {
    console.error(`demo: ${(error as Error).message}`);
    Deno.exit(error instanceof ConfigError ? 2 : 1);
  }
}
