/**
 * `npm run demo` / `deno task demo`: the main job on an embedded default.
 * Writes a small website (a page, its stylesheet, script and images, and
 * two large downloads) and serves it over userspace SCTP (no root, no kernel
 * SCTP needed) under each policy, behind an emulated bottleneck (`--pace`):
 * the downloads are asked for first, the page's files a moment later, all
 * over one association. Every body is checked against its file, and the
 * table shows when each response completed: where responses queue,
 * size-based scheduling lets the page through while the downloads wait.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { FlowClient, localUdpPort, POLICY_NAMES, startServer, TRANSPORT_NAMES } from "../mod.ts";
import type { PolicyName, TransportName } from "../mod.ts";
import { ConfigError, helpText, parseOptions } from "../cli/options.ts";

const OPTIONS = {
  transport: {
    kind: "string",
    default: "usrsctp",
    choices: TRANSPORT_NAMES,
    help: "transport to demonstrate",
  },
  streams: {
    kind: "integer",
    default: 4,
    min: 1,
    max: 64,
    help: "streams per association",
  },
  pace: {
    kind: "rate",
    default: "20mbit",
    help: "emulated bottleneck inside the server (0: none, as fast as the transport goes)",
  },
  pageDelay: {
    kind: "integer",
    default: 200,
    min: 0,
    help: "ms between asking for the downloads and asking for the page",
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
  "/downloads/dataset.bin": 2_000_000,
  "/downloads/video.mp4": 3_000_000,
};

const isDownload = (path: string) => path.startsWith("/downloads/");

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

/**
 * Serves the site under `policy`, asks for the downloads, then `pageDelay` ms
 * later for the page's files; returns each file's completion time in ms from
 * its own request.
 */
async function fetchAll(
  transport: TransportName,
  root: string,
  policy: PolicyName,
  options: { streams: number; pace: number; pageDelay: number; udpPort: number },
  hashes: Map<string, string>,
) {
  const { streams, udpPort } = options;
  await using server = await startServer({
    transport,
    port: 0,
    root,
    policy,
    streams,
    pace: options.pace,
    logLevel: "warn",
    udpPort,
  });
  await using client = await FlowClient.connect(
    { transport, host: "127.0.0.1", port: server.port },
    { streams, udpPort },
  );
  const fetchFile = async (path: string) => {
    const asked = performance.now();
    const response = await client.request(path);
    const body = await response.bytes();
    if (response.status !== 200 || sha256(body) !== hashes.get(path)) {
      throw new Error(
        `${path}: status ${response.status}, body ${body.byteLength} bytes does not match the file`,
      );
    }
    return [path, performance.now() - asked] as const;
  };
  const paths = [...hashes.keys()];
  const downloads = paths.filter(isDownload).map(fetchFile);
  await new Promise((resolve) => setTimeout(resolve, options.pageDelay));
  const page = paths.filter((path) => !isDownload(path)).map(fetchFile);
  return new Map(await Promise.all([...downloads, ...page]));
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
    const { values } = parsed;
    const transport = values.transport as TransportName;
    const { root, hashes } = await writeSite();
    const link = values.pace > 0
      ? `behind an emulated ${values.pace * 8 / 1e6} Mbit/s bottleneck (--pace)`
      : "with no bottleneck (--pace 0)";
    console.log(
      `flowsched demo: ${hashes.size} files (${
        (Object.values(SITE).reduce((a, b) => a + b) / 1e6).toFixed(1)
      } MB) served over ${transport} ${link}, one association, ${values.streams} streams.\n` +
        `The two downloads are asked for first, the page's files ${values.pageDelay} ms later. ` +
        "Times are from each file's own request.\n",
    );
    const results = new Map<PolicyName, Map<string, number>>();
    const options = { ...values, udpPort: localUdpPort() };
    for (const policy of POLICY_NAMES) {
      console.error(`  serving under ${policy} ...`);
      results.set(policy, await fetchAll(transport, root, policy, options, hashes));
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
    const mean = (policy: PolicyName, pick: (path: string) => boolean) => {
      const paths = [...hashes.keys()].filter(pick);
      return paths.reduce((sum, p) => sum + results.get(policy)!.get(p)!, 0) / paths.length;
    };
    console.log("\nmean time to get the page's files, and the downloads:");
    const width = Math.max(...POLICY_NAMES.map((p) => p.length));
    for (const policy of POLICY_NAMES) {
      console.log(
        `  ${policy.padEnd(width)} page ${
          mean(policy, (p) => !isDownload(p)).toFixed(0).padStart(6)
        } ms` +
          `   downloads ${mean(policy, isDownload).toFixed(0).padStart(6)} ms`,
      );
    }
    console.log(
      "\nPreemptive size-based policies (srpt, srrt) let the page overtake the downloads, and the" +
        "\ndownloads finish no later than under fair sharing (ps); fifo and scf make the page wait for a" +
        "\ndownload already under way. sizeclass leaves the order to the stack's stream scheduler" +
        "\n(kernel SCTP with --stream-scheduler prio); without one it is fifo. All of this holds" +
        "\nonly where responses queue: at a bottleneck." +
        "\nMeasured on a real link in the lab: deno task bench sched --help",
    );
    console.log("\nevery body matched its file (sha256). Next: deno task server --help");
    await Deno.remove(root, { recursive: true });
  } catch (error) {
    console.error(`demo: ${(error as Error).message}`);
    Deno.exit(error instanceof ConfigError ? 2 : 1);
  }
}
