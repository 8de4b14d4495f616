/**
 * A real browser through the proxy: headless Chromium loads pages with 20 to
 * 40 resources each; every resource must load, and the proxy must have served
 * prefetched entries.
 */

import assert from "node:assert/strict";
import { localUdpPort, startServer } from "../../mod.ts";
import { startProxy } from "../../proxy/proxy.ts";
import { makeSite } from "../../scripts/bench/thesis/site.ts";
import { needs } from "../_permissions.ts";

function findChromium(): string | undefined {
  return ["chromium", "chromium-browser", "google-chrome"].find((name) =>
    new Deno.Command("sh", { args: ["-c", `command -v ${name}`], stdout: "null", stderr: "null" })
      .outputSync().success
  );
}

interface PageResult {
  loaded: { path: string; status: number }[];
  broken: string[];
  scripts: number;
}

/** Loads `url` in a fresh headless Chromium profile; returns what the page script recorded. */
async function loadInChromium(chromium: string, url: string): Promise<PageResult> {
  const profile = await Deno.makeTempDir({ prefix: "flowsched-chromium-" });
  try {
    const output = await new Deno.Command(chromium, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        `--user-data-dir=${profile}`,
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
      ],
      env: { HOME: profile },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dom = new TextDecoder().decode(output.stdout);
    const match = /<pre id="result">([^<]*)<\/pre>/.exec(dom);
    assert.ok(
      match,
      `no result in the DOM:\n${dom.slice(0, 2000)}\n${
        new TextDecoder().decode(output.stderr).slice(-2000)
      }`,
    );
    const raw = JSON.parse(match[1].replaceAll("&quot;", '"').replaceAll("&amp;", "&"));
    return raw as PageResult;
  } finally {
    await Deno.remove(profile, { recursive: true });
  }
}

Deno.test({
  name:
    "headless Chromium loads pages of 20 to 40 resources through the proxy, every resource arrives, and prefetched entries are served",
  ignore: needs("read", "write", "net", "env", "sys", "run"),
  async fn() {
    // scripts/bootstrap.sh installs chromium: a missing browser is a failure, not a skip.
    const chromium = findChromium();
    assert.ok(chromium, "no chromium on PATH; run scripts/bootstrap.sh (apt-get install chromium)");
    const site = await makeSite(3, { minResources: 20, maxResources: 40, seed: 11 });
    const udpPort = localUdpPort();
    const server = await startServer({
      transport: "usrsctp",
      port: 0,
      root: site.root,
      udpPort,
      logLevel: "warn",
      streams: 4,
    });
    const cache = await Deno.makeTempDir({ prefix: "flowsched-browser-cache-" });
    const proxy = await startProxy({
      listen: "127.0.0.1:0",
      upstream: `usrsctp://127.0.0.1:${server.port}`,
      udpPort,
      streams: 4,
      cache,
      logLevel: "error",
    });
    try {
      for (const page of site.pages) {
        assert.ok(page.resources.length >= 20);
        const before = proxy.stats();
        const result = await loadInChromium(chromium, `http://127.0.0.1:${proxy.port}${page.path}`);
        const loaded = new Map(result.loaded.map((entry) => [entry.path, entry.status]));
        for (const [path, status] of loaded) {
          assert.equal(status, 200, `${path} answered ${status}`);
        }
        assert.deepEqual(result.broken, [], "every image decoded");
        // A srcset pair loads one candidate; the favicon is not a page resource in Chromium.
        const needed = page.resources.filter((path) =>
          !/-[12]x\.png$/.test(path) && path !== "/favicon.ico"
        );
        for (const path of needed) assert.ok(loaded.has(path), `${path} was not loaded`);
        for (
          const pair of new Set(
            page.resources.filter((p) => /-[12]x\.png$/.test(p)).map((p) =>
              p.replace(/-[12]x\.png$/, "")
            ),
          )
        ) {
          assert.ok(loaded.has(`${pair}-1x.png`) || loaded.has(`${pair}-2x.png`), `${pair} srcset`);
        }
        assert.equal(result.scripts, page.resources.filter((p) => p.endsWith(".js")).length);
        assert.ok(result.loaded.length >= 20, `${result.loaded.length} resources loaded`);
        const after = proxy.stats();
        assert.ok(
          after.prefetchHits - before.prefetchHits >= 10,
          `only ${after.prefetchHits - before.prefetchHits} prefetched entries served`,
        );
        console.log(
          `${page.path}: ${result.loaded.length} resources loaded, ${
            after.prefetchHits - before.prefetchHits
          } served from prefetch, ${after.misses - before.misses} misses`,
        );
      }
      const stats = proxy.stats();
      assert.equal(stats.errors.badGateway + stats.errors.gatewayTimeout, 0);
    } finally {
      await proxy.close();
      await server.close();
      await Deno.remove(cache, { recursive: true });
      await Deno.remove(site.root, { recursive: true });
    }
  },
});
