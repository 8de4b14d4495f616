/** The disk cache alone: keys, waiting through Deno.watchFs, claims. */

import assert from "node:assert/strict";
import { cacheKey, DiskCache } from "../../proxy/cache.ts";
import { createLogger } from "../../cli/log.ts";
import { needs } from "../_permissions.ts";

// The cache lives in a temporary directory, watched with Deno.watchFs.
const ignore = needs("read", "write");

const log = createLogger("error", "test");

async function withCache(body: (cache: DiskCache) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "flowsched-cache-test-" });
  // No polling: only Deno.watchFs can settle a waiter.
  const cache = await DiskCache.open({ dir, maxBytes: 1 << 20, log, pollMs: 1e9 });
  try {
    await body(cache);
  } finally {
    await cache.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("cacheKey() confines paths and refuses names the cache uses itself", () => {
  assert.equal(cacheKey("/a/b.css"), "a/b.css");
  assert.equal(cacheKey("/a%20b/c"), "a b/c");
  assert.equal(cacheKey("/"), ".index");
  assert.equal(cacheKey("/dir/"), "dir/.index");
  for (
    const bad of [
      "/../etc/passwd",
      "/a/%2e%2e/b",
      "/a%2F..%2Fb",
      "/.hidden",
      "/x.tmp",
      "/x.headers.json",
      "/a//b",
      "/%00",
      "/%zz",
      "relative",
    ]
  ) {
    assert.equal(cacheKey(bad), null, bad);
  }
});

Deno.test(
  "a waiter learns of rename(x.tmp, x) through watchFs and is not fooled by the remove event",
  { ignore },
  async () => {
    await withCache(async (cache) => {
      const file = await cache.claim("d/x.bin", 60000);
      assert.ok(file instanceof Deno.FsFile);
      assert.equal(await cache.claim("d/x.bin", 60000), "busy", "the .tmp is owned");
      const waiting = cache.waitFor("d/x.bin", 5000);
      await file.write(new Uint8Array([1, 2, 3]));
      const started = performance.now();
      await cache.commit("d/x.bin", file, {
        status: 200,
        headers: [["content-type", "application/octet-stream"]],
        size: 3,
        url: "/d/x.bin",
        storedAt: new Date().toISOString(),
      });
      assert.equal(await waiting, "done");
      assert.ok(performance.now() - started < 1000);
      const entry = await cache.open("d/x.bin");
      assert.deepEqual(entry?.body, new Uint8Array([1, 2, 3]));
    });
  },
);

Deno.test(
  "a waiter learns that a download was abandoned and no partial file remains",
  { ignore },
  async () => {
    await withCache(async (cache) => {
      const file = await cache.claim("y.bin", 60000);
      assert.ok(file instanceof Deno.FsFile);
      const waiting = cache.waitFor("y.bin", 5000);
      await file.write(new Uint8Array(1000));
      await cache.abandon("y.bin", file);
      assert.equal(await waiting, "failed");
      assert.equal(await cache.has("y.bin"), false);
      assert.equal(await cache.open("y.bin"), null);
    });
  },
);

Deno.test("a stale .tmp left by a dead process is taken over", { ignore }, async () => {
  await withCache(async (cache) => {
    await Deno.writeFile(cache.pathOf("z.bin.tmp"), new Uint8Array(10));
    assert.equal(await cache.claim("z.bin", 60000), "busy");
    const file = await cache.claim("z.bin", 0);
    assert.ok(file instanceof Deno.FsFile);
    await cache.abandon("z.bin", file);
  });
});
