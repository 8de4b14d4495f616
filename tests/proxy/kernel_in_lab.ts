/**
 * The proxy end to end over kernel SCTP, inside the User-Mode Linux lab
 * (started by tests/proxy/lab_test.ts with a 50 ms round trip between proxy
 * and server), so it is not named *_test.ts: server in namespace `server`,
 * proxy in `proxy`, clients in `client`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { makeSite, type Site } from "../../scripts/bench/thesis/site.ts";
import { type Child, sha256, spawnProxy, spawnServer } from "./_helpers.ts";

const SERVER_IP = Deno.env.get("LAB_SERVER_IP")!;
const PROXY_IP = Deno.env.get("LAB_PROXY_IP")!;
const DENO = Deno.execPath();

let shared: Site | undefined;
const site = async () => shared ??= await makeSite(6, { seed: 3 });
globalThis.addEventListener("unload", () => {
  if (shared) Deno.removeSync(shared.root, { recursive: true });
});

async function inClient(args: string[]): Promise<string> {
  const output = await new Deno.Command("ip", {
    args: ["netns", "exec", "client", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return stdout;
}

async function withStack(
  root: string,
  prefetch: boolean,
  // deno-lint-ignore no-explicit-any
  body: (base: string, stats: () => Promise<any>) => Promise<void>,
) {
  const server = await spawnServer({
    root,
    port: 9000,
    udpPort: 9899,
    transport: "kernel",
    host: SERVER_IP,
    netns: "server",
  });
  const cache = await Deno.makeTempDir({ prefix: "flowsched-lab-cache-" });
  let proxy: { child: Child; port: number } | undefined;
  try {
    proxy = await spawnProxy([
      "--listen",
      `${PROXY_IP}:8080`,
      "--upstream",
      `kernel://${SERVER_IP}:9000`,
      "--cache",
      cache,
      "--streams",
      "4",
      // The stats are read from the client namespace, not from loopback.
      "--stats-access",
      "public",
      ...(prefetch ? [] : ["--no-prefetch"]),
    ], "proxy");
    const base = `http://${PROXY_IP}:${proxy.port}`;
    await proxy.child.waitForLine("upstream association up");
    const stats = async () =>
      JSON.parse(await inClient(["curl", "-s", `${base}/_flowsched/stats`]));
    await body(base, stats);
  } finally {
    await proxy?.child.kill("SIGTERM");
    await server.kill("SIGTERM");
    await Deno.remove(cache, { recursive: true });
  }
}

Deno.test("over kernel SCTP in the lab, a site fetched with curl from the client namespace arrives byte-identical, with prefetch hits", async () => {
  const { root, files, pages } = await site();
  const hashes = new Map(files.map((file) => [file.path, file.sha256]));
  const out = await Deno.makeTempDir({ prefix: "flowsched-lab-out-" });
  await withStack(root, true, async (base, stats) => {
    for (const page of pages) {
      const paths = [page.path, ...page.resources];
      // The page first, as a browser would; then its resources, 6 at a time.
      const pageOnly = await inClient([
        "curl",
        "-s",
        "-w",
        "%{http_code}",
        "-o",
        join(out, "0"),
        base + page.path,
      ]);
      assert.equal(pageOnly.trim(), "200");
      const rest = ["curl", "-s", "-Z", "--parallel-max", "6", "-w", "%{http_code}\\n"];
      page.resources.forEach((path, i) => rest.push("-o", join(out, String(i + 1)), base + path));
      const codes = (await inClient(rest)).trim().split("\n");
      assert.deepEqual(codes, page.resources.map(() => "200"));
      for (let i = 0; i < paths.length; i++) {
        assert.equal(
          sha256(await Deno.readFile(join(out, String(i)))),
          hashes.get(paths[i]),
          `${paths[i]} differs`,
        );
      }
    }
    const counters = await stats();
    console.log(JSON.stringify(counters));
    // Most resources were prefetched; a CSS-borne one the client asks for before the
    // proxy has its CSS can still be a miss.
    assert.ok(counters.prefetchHits >= pages.length * 5, `${counters.prefetchHits} prefetch hits`);
    assert.equal(counters.errors.badGateway + counters.errors.gatewayTimeout, 0);
  });
  await Deno.remove(out, { recursive: true });
});

Deno.test("page-load time with prefetch on vs off at 50 ms RTT between proxy and server (measured)", async () => {
  // Two proxies side by side (prefetch on and off, separate caches) before one server; pages
  // alternate which proxy loads them first, so drift in the host's load hits both alike. Page 0
  // warms both up (JIT, first use of the association) and is not counted.
  const site = await makeSite(17, { minResources: 20, maxResources: 40, seed: 5 });
  const server = await spawnServer({
    root: site.root,
    port: 9000,
    udpPort: 9899,
    transport: "kernel",
    host: SERVER_IP,
    netns: "server",
  });
  const proxies: Record<"on" | "off", { child: Child; port: number; cache: string }> = {} as never;
  try {
    for (const [mode, port] of [["on", 8080], ["off", 8081]] as const) {
      const cache = await Deno.makeTempDir({ prefix: `flowsched-lab-cache-${mode}-` });
      const proxy = await spawnProxy([
        "--listen",
        `${PROXY_IP}:${port}`,
        "--upstream",
        `kernel://${SERVER_IP}:9000`,
        "--cache",
        cache,
        "--streams",
        "4",
        "--log-level",
        "info",
        ...(mode === "on" ? [] : ["--no-prefetch"]),
      ], "proxy");
      await proxy.child.waitForLine("upstream association up");
      proxies[mode] = { ...proxy, cache };
    }
    const url = (mode: "on" | "off", path: string) =>
      `http://${PROXY_IP}:${proxies[mode].port}${path}`;
    const order: string[] = [url("on", site.pages[0].path), url("off", site.pages[0].path)];
    site.pages.slice(1).forEach((page, i) => {
      const modes = i % 2 === 0 ? ["on", "off"] as const : ["off", "on"] as const;
      for (const mode of modes) order.push(url(mode, page.path));
    });
    const lines = await inClient([
      DENO,
      "run",
      "-P=test",
      "--no-check",
      "tests/proxy/_page_load.ts",
      ...order,
    ]);
    const loads = lines.trim().split("\n").map((line) => JSON.parse(line)).slice(2);
    for (const load of loads) assert.equal(load.failed, 0, JSON.stringify(load));
    const of = (mode: "on" | "off") =>
      loads.filter((load) => load.url.includes(`:${proxies[mode].port}/`));
    for (const mode of ["on", "off"] as const) {
      console.log(
        `prefetch ${mode.padEnd(3)}: ${
          of(mode).map((l) =>
            `${new URL(l.url).pathname} ${l.resources} res ${Math.round(l.ms)} ms`
          )
            .join("; ")
        }`,
      );
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const ms = (mode: "on" | "off") => of(mode).map((load) => load.ms);
    const summary = {
      rttMs: 50,
      pages: site.pages.length - 1,
      resourcesPerPage: site.pages.slice(1).map((page) => page.resources.length),
      on: { meanMs: Math.round(mean(ms("on"))), medianMs: Math.round(median(ms("on"))) },
      off: { meanMs: Math.round(mean(ms("off"))), medianMs: Math.round(median(ms("off"))) },
      fasterWithPrefetch: of("on").filter((load, i) => load.ms < of("off")[i].ms).length,
    };
    // A measurement for the record, not an assertion: speed is not a test's to judge.
    console.log(`PAGE-LOAD ${JSON.stringify(summary)}`);
  } finally {
    for (const proxy of Object.values(proxies)) {
      await proxy.child.kill("SIGTERM");
      await Deno.remove(proxy.cache, { recursive: true });
    }
    await server.kill("SIGTERM");
    await Deno.remove(site.root, { recursive: true });
  }
});
