/**
 * The proxy end to end over usrsctp: a real server, a real proxy, real TCP
 * clients (curl), real files in a real cache directory.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startProxy } from "../../proxy/proxy.ts";
import { makeSite, type Site } from "../../scripts/bench/thesis/site.ts";
import { curl, freeUdpPort, sha256, spawnProxy, spawnServer, waitUntil } from "./_helpers.ts";
import {
  bigFile,
  cacheDir,
  curlMany,
  exists,
  listFiles,
  testUdpPort as udpPort,
  withProxy,
} from "./_fixture.ts";
import { needs } from "../_permissions.ts";

// A server, proxies and curl run as real processes.
const ignore = needs("read", "write", "net", "env", "sys", "run");

let sharedSite: Site | undefined;
const site = async () => sharedSite ??= await makeSite(6);
globalThis.addEventListener("unload", () => {
  if (sharedSite) Deno.removeSync(sharedSite.root, { recursive: true });
});

Deno.test(
  "a site of pages with 10 to 40 resources each, fetched through the proxy with curl, arrives byte-identical",
  { ignore },
  async () => {
    const { root, files, pages } = await site();
    const hashes = new Map(files.map((file) => [file.path, file.sha256]));
    await withProxy(root, {}, async (proxy, base) => {
      for (const page of pages) {
        assert.ok(page.resources.length >= 10 && page.resources.length <= 40);
        const [html] = await curlMany(base, [page.path]);
        assert.equal(html.status, 200);
        assert.equal(html.sha256, hashes.get(page.path), page.path);
        for (const result of await curlMany(base, page.resources)) {
          assert.equal(result.status, 200, result.path);
          assert.equal(result.sha256, hashes.get(result.path), `${result.path} differs`);
        }
      }
      const stats = proxy.stats();
      assert.equal(stats.errors.badGateway + stats.errors.gatewayTimeout, 0);
      assert.ok(stats.prefetchHits > 0, JSON.stringify(stats));
      // A second round is served from the cache, still byte-identical.
      const again = await curlMany(base, files.map((file) => file.path));
      for (const result of again) assert.equal(result.sha256, hashes.get(result.path), result.path);
      assert.equal(proxy.stats().misses, stats.misses, "no new misses on the second round");
    });
  },
);

Deno.test(
  "after a page is fetched its resources are in the cache before they are requested, and served as prefetch hits",
  { ignore },
  async () => {
    const { root, pages } = await site();
    const page = pages[1];
    await withProxy(root, {}, async (proxy, base) => {
      const [html] = await curlMany(base, [page.path]);
      assert.equal(html.status, 200);
      await waitUntil(
        async () =>
          (await Promise.all(page.resources.map((p) => exists(proxy.cache.files(p).body))))
            .every(Boolean),
        5000,
        "every embedded resource in the cache",
      );
      const before = proxy.stats();
      assert.equal(before.misses, 1, "only the page was a miss");
      assert.equal(before.prefetched, page.resources.length, "each resource prefetched once");
      const headers = await curl(["-s", "-D", "-", "-o", "/dev/null", base + page.resources[0]]);
      assert.match(headers.stdout, /x-flowsched-cache: prefetched/i);
      await curlMany(base, page.resources.slice(1));
      const after = proxy.stats();
      assert.equal(after.misses, 1, "no resource was a miss");
      assert.equal(after.prefetchHits, page.resources.length);
      assert.equal(after.upstream.state, "up");
    });
  },
);

Deno.test("with prefetch off nothing is fetched ahead of the client", { ignore }, async () => {
  const { root, pages } = await site();
  const page = pages[2];
  await withProxy(root, { prefetch: false }, async (proxy, base) => {
    await curlMany(base, [page.path]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const resource of page.resources) {
      assert.equal(await exists(proxy.cache.files(resource).body), false, resource);
    }
    await curlMany(base, page.resources);
    const stats = proxy.stats();
    assert.equal(stats.prefetched, 0);
    assert.equal(stats.misses, page.resources.length + 1);
  });
});

Deno.test(
  "with cache size 0 every page and resource is passed through and nothing touches the disk",
  { ignore },
  async () => {
    const { root, pages, files } = await site();
    const page = pages[3];
    await withProxy(root, { cacheSize: 0 }, async (proxy, base) => {
      const fetched = await curlMany(base, [page.path, ...page.resources, page.path]);
      for (const { path, status, sha256: hash } of fetched) {
        assert.equal(status, 200, path);
        assert.equal(hash, files.find((f) => f.path === path)!.sha256, path);
      }
      assert.deepEqual(await listFiles(proxy.cache.dir), [], "no entry, no .tmp");
      const stats = proxy.stats();
      assert.equal(stats.bypassed, page.resources.length + 2);
      assert.equal(stats.hits + stats.misses + stats.prefetched, 0);
    });
  },
);

Deno.test("concurrent misses for one path cause one upstream request", { ignore }, async () => {
  const root = await Deno.makeTempDir({ prefix: "flowsched-coalesce-" });
  const file = await bigFile(root, "big.bin", 8 * 1024 * 1024);
  await withProxy(root, { prefetch: false }, async (proxy, base) => {
    const responses = await Promise.all(
      Array.from({ length: 16 }, () => fetch(base + file.path)),
    );
    for (const response of responses) {
      assert.equal(response.status, 200);
      assert.equal(sha256(await response.bytes()), file.sha256);
    }
    const stats = proxy.stats();
    assert.equal(stats.misses, 1);
    assert.equal(stats.coalesced, 15);
    assert.equal(stats.bytes.fetched, file.size, "the body crossed the association once");
  }, [root]);
});

Deno.test("eviction keeps the cache under its byte limit and never evicts an entry being read", {
  ignore,
}, async () => {
  const root = await Deno.makeTempDir({ prefix: "flowsched-evict-" });
  // Larger than what sockets and Deno.serve buffer, so the proxy is still reading it.
  const large = await bigFile(root, "large.bin", 64 * 1024 * 1024);
  const small = await Promise.all(
    Array.from({ length: 12 }, (_, i) => bigFile(root, `s${i}.bin`, 512 * 1024)),
  );
  const limit = 66 * 1024 * 1024;
  await withProxy(root, { prefetch: false, cacheSize: limit }, async (proxy, base) => {
    // Start reading the large entry and stop after the first chunk.
    const response = await fetch(base + large.path);
    const reader = response.body!.getReader();
    const first = await reader.read();
    // Fill the cache well past the limit while the large entry is being read.
    for (const file of small) {
      const body = await (await fetch(base + file.path)).bytes();
      assert.equal(sha256(body), file.sha256);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stats = proxy.stats();
    assert.ok(stats.evictions > 0, "something was evicted");
    assert.ok(await exists(proxy.cache.files("/large.bin").body), "the entry being read is kept");
    // Finish reading: byte-identical.
    const parts = [first.value!];
    for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(r.value);
    assert.equal(sha256(new Uint8Array(await new Blob(parts).arrayBuffer())), large.sha256);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(proxy.stats().bytes.cached <= limit, JSON.stringify(proxy.stats().bytes));
    // What is on disk matches the index, and only whole entries are there.
    const onDisk = await listFiles(proxy.cache.dir);
    assert.equal(onDisk.filter((f) => f.endsWith(".body")).length, proxy.stats().cacheEntries);
    assert.equal(onDisk.filter((f) => f.endsWith(".meta")).length, proxy.stats().cacheEntries);
    assert.ok(onDisk.every((f) => !f.endsWith(".tmp")));
    // An evicted entry is fetched again, intact.
    const again = await (await fetch(base + small[0].path)).bytes();
    assert.equal(sha256(again), small[0].sha256);
  }, [root]);
});

Deno.test(
  "paths stay inside the cache directory and query strings bypass the cache",
  { ignore },
  async () => {
    const { root, files } = await site();
    const png = files.find((file) => file.path.endsWith(".png"))!;
    const cache = await cacheDir();
    const outside = `${cache}-outside`;
    await withProxy(root, { cache: join(cache, "c") }, async (proxy, base) => {
      const escape = await curl([
        "-s",
        "--path-as-is",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        `${base}/../../${outside.split("/").pop()}/x`,
      ]);
      assert.notEqual(escape.stdout, "200");
      const encoded = await curl([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        `${base}/%2e%2e/%2e%2e/etc/hostname`,
      ]);
      assert.notEqual(encoded.stdout, "200");
      const slash = await curl([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        `${base}/a%2F..%2F..%2Fx`,
      ]);
      assert.notEqual(slash.stdout, "200");
      assert.equal(await exists(outside), false);
      for (const file of await listFiles(cache)) assert.ok(file.startsWith("c/"), file);

      const bypassed = proxy.stats().bypassed;
      const query = await curl(["-s", "-D", "-", "-o", "/dev/null", `${base}${png.path}?v=1`]);
      assert.match(query.stdout, /^HTTP\/1\.1 200/);
      assert.match(query.stdout, /x-flowsched-cache: bypass/i);
      assert.equal(proxy.stats().bypassed, bypassed + 1);
      assert.ok((await listFiles(proxy.cache.dir)).every((file) => !file.includes("?")));
    }, [cache]);
  },
);

Deno.test("a 404 is passed on and not cached", { ignore }, async () => {
  const { root } = await site();
  await withProxy(root, {}, async (proxy, base) => {
    for (let i = 0; i < 2; i++) {
      const response = await fetch(`${base}/no/such/file.png`);
      assert.equal(response.status, 404);
      await response.body?.cancel();
    }
    assert.deepEqual(await listFiles(proxy.cache.dir), [], "no file is left");
    assert.equal(proxy.stats().misses, 2);
  });
});

Deno.test(
  "an answer slower than the request timeout gives 504 with a clear body and leaves no partial file",
  { ignore },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-slow-" });
    const file = await bigFile(root, "huge.bin", 256 * 1024 * 1024);
    await withProxy(root, { prefetch: false, requestTimeout: 200 }, async (proxy, base) => {
      const started = performance.now();
      const response = await fetch(base + file.path);
      const text = await response.text();
      assert.equal(response.status, 504);
      assert.equal(text, "504 Gateway Timeout\n");
      assert.ok(performance.now() - started < 2000);
      await waitUntil(
        async () => !(await exists(proxy.cache.files("/huge.bin").tmp)),
        2000,
        "no .tmp",
      );
      assert.equal(await exists(proxy.cache.files("/huge.bin").body), false);
    }, [root]);
  },
);

Deno.test(
  "the server killed mid-download: no partial file, waiting clients get 502 within a second, and the request succeeds once the server is back",
  { ignore },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-kill-" });
    const file = await bigFile(root, "big.bin", 256 * 1024 * 1024);
    const serverUdp = await freeUdpPort();
    const port = 9000 + Math.floor(Math.random() * 1000);
    let server = await spawnServer({ root, port, udpPort: serverUdp });
    const cache = await cacheDir();
    const proxy = await startProxy({
      listen: "127.0.0.1:0",
      upstream: `usrsctp://127.0.0.1:${port}`,
      udpPort: serverUdp,
      streams: 4,
      cache,
      prefetch: false,
      logLevel: "error",
    });
    const url = `http://127.0.0.1:${proxy.port}${file.path}`;
    try {
      await waitUntil(() => proxy.stats().upstream.state === "up", 5000, "the association");
      const clients = [0, 1].map(() =>
        curl(["-s", "-o", "/dev/null", "-w", "%{http_code}", url]).then((result) => ({
          ...result,
          at: performance.now(),
        }))
      );
      const tmp = proxy.cache.files("/big.bin").tmp;
      await waitUntil(
        async () => ((await Deno.stat(tmp).catch(() => null))?.size ?? 0) > 8 * 1024 * 1024,
        10000,
        "the download under way",
      );
      await server.kill("SIGKILL");
      const killedAt = performance.now();
      const answered = await Promise.all(clients);
      console.log(`502 after ${answered.map((c) => Math.round(c.at - killedAt)).join(", ")} ms`);
      for (const client of answered) {
        assert.equal(client.stdout, "502");
        assert.ok(
          client.at - killedAt < 1000,
          `502 came ${Math.round(client.at - killedAt)} ms after the kill`,
        );
      }
      assert.equal(await exists(tmp), false, "the partial body is removed");
      assert.equal(
        await exists(proxy.cache.files("/big.bin").body),
        false,
        "nothing partial is served",
      );
      assert.deepEqual(await listFiles(cache), [], "no file of the download is left");

      server = await spawnServer({ root, port, udpPort: serverUdp });
      let status = "";
      const out = join(cache, "..", `${cache.split("/").pop()}-out`);
      await waitUntil(
        async () => {
          const result = await curl(["-s", "-o", out, "-w", "%{http_code}", url]);
          status = result.stdout;
          return status === "200";
        },
        30000,
        "a 200 after the server came back",
      );
      assert.equal(sha256(await Deno.readFile(out)), file.sha256);
      await Deno.remove(out);
      const stats = proxy.stats();
      assert.ok(stats.upstream.disconnects >= 1);
      assert.ok(stats.upstream.connects >= 2);
    } finally {
      await proxy.close();
      await server.kill("SIGTERM");
      await Deno.remove(cache, { recursive: true });
      await Deno.remove(root, { recursive: true });
    }
  },
);

Deno.test("two proxy processes sharing one cache directory each serve what the other downloaded", {
  ignore,
}, async () => {
  const root = await Deno.makeTempDir({ prefix: "flowsched-shared-" });
  const x = await bigFile(root, "x.bin", 300 * 1024);
  const y = await bigFile(root, "y.bin", 200 * 1024);
  const z = await bigFile(root, "z.bin", 256 * 1024 * 1024);
  const cache = await cacheDir();
  await withProxy(root, { prefetch: false, cache }, async (a, baseA, server) => {
    const { child, port } = await spawnProxy([
      "--upstream",
      `usrsctp://127.0.0.1:${server.port}`,
      "--udp-port",
      String(udpPort),
      "--cache",
      cache,
      "--no-prefetch",
    ]);
    const baseB = `http://127.0.0.1:${port}`;
    const statsB = async () => await (await fetch(`${baseB}/_flowsched/stats`)).json();
    try {
      // A downloads x; B serves it from the cache.
      assert.equal(sha256(await (await fetch(baseA + x.path)).bytes()), x.sha256);
      const fromB = await curl(["-s", "-D", "-", "-o", "/dev/null", baseB + x.path]);
      assert.match(fromB.stdout, /x-flowsched-cache: hit/i);
      // B downloads y; A serves it from the cache.
      assert.equal(sha256(await (await fetch(baseB + y.path)).bytes()), y.sha256);
      const yFromA = await fetch(baseA + y.path);
      assert.equal(yFromA.headers.get("x-flowsched-cache"), "hit");
      assert.equal(sha256(await yFromA.bytes()), y.sha256);
      // B is downloading z when A is asked for it: A waits for B's rename (watchFs), fetching nothing.
      const fetchedBefore = a.stats().bytes.fetched;
      const zFromB = fetch(baseB + z.path).then((r) => r.bytes());
      await waitUntil(() => exists(a.cache.files("/z.bin").tmp), 10000, "B's download under way");
      const zFromA = await fetch(baseA + z.path);
      assert.equal(zFromA.headers.get("x-flowsched-cache"), "shared");
      assert.equal(sha256(await zFromA.bytes()), z.sha256);
      assert.equal(sha256(await zFromB), z.sha256);
      assert.equal(a.stats().bytes.fetched, fetchedBefore, "A fetched nothing for x, y or z");
      assert.equal(a.stats().sharedWaits, 1);
      const b = await statsB();
      assert.equal(b.hits, 1);
      assert.equal(b.misses, 2);
    } finally {
      await child.kill("SIGTERM");
    }
  }, [cache, root]);
});

Deno.test("deno task proxy --help lists the options and a bad value names the flag", {
  ignore: needs("run"),
}, async () => {
  const cwd = new URL("../../", import.meta.url).pathname;
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-P=proxy", "--no-check", "proxy/main.ts", ...args],
      cwd,
      stdout: "piped",
      stderr: "piped",
    }).output();
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  const text = new TextDecoder().decode(help.stdout);
  for (
    const flag of [
      "--listen",
      "--upstream",
      "--cache",
      "--cache-size",
      "--streams",
      "--no-prefetch",
    ]
  ) {
    assert.ok(text.includes(flag), flag);
  }
  const bad = await run(["--cache-size", "lots"]);
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /--cache-size/);
});
