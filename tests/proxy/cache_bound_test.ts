/**
 * Issue #12, fault 13: slow readers cannot grow the cache past its size.
 * Entries being read count against the limit; a body that does not fit (larger
 * than the cache, or the room is held by entries being read) is handed to the
 * client as it arrives and not stored. Bound: the bytes of the files in the
 * directory, metadata aside (bodies complete or downloading), never exceed
 * `cacheSize`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256 } from "./_helpers.ts";
import { bigFile, withProxy } from "./_fixture.ts";
import { needs } from "../_permissions.ts";

const ignore = needs("read", "write", "net", "env", "sys", "ffi");
const MB = 1024 * 1024;

/** Bytes of every file below `dir` but metadata: bodies, complete or downloading. */
async function bodyBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) total += await bodyBytes(path);
    else if (!entry.name.endsWith(".meta")) {
      total += await Deno.stat(path).then((info) => info.size, () => 0);
    }
  }
  return total;
}

/** Samples `bodyBytes(dir)` until stopped; resolves with the largest. */
function sampleBodyBytes(dir: string) {
  let running = true;
  const largest = (async () => {
    let max = 0;
    while (running) {
      max = Math.max(max, await bodyBytes(dir));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return max;
  })();
  return {
    stop: () => {
      running = false;
      return largest;
    },
  };
}

/** A response read up to its first chunk, and then held: a client reading slowly. */
async function slowReader(url: string) {
  const response = await fetch(url);
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  const parts: Uint8Array<ArrayBuffer>[] = [(await reader.read()).value!];
  return {
    how: response.headers.get("x-flowsched-cache"),
    /** Reads the rest; the sha256 of the whole body. */
    async finish() {
      for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(r.value);
      return sha256(new Uint8Array(await new Blob(parts).arrayBuffer()));
    },
  };
}

Deno.test(
  "three slow readers of 20 MB files with a 1 MB cache store nothing: the bodies pass through",
  { ignore },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-bound-" });
    const files = await Promise.all([0, 1, 2].map((i) => bigFile(root, `f${i}.bin`, 20 * MB)));
    await withProxy(root, { prefetch: false, cacheSize: MB }, async (proxy, base) => {
      const sampler = sampleBodyBytes(proxy.cache.dir);
      const readers = await Promise.all(files.map((file) => slowReader(base + file.path)));
      // While they hold their bodies, the directory is sampled.
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (const [i, reader] of readers.entries()) {
        assert.equal(await reader.finish(), files[i].sha256, files[i].path);
      }
      const largest = await sampler.stop();
      console.log(`largest body bytes in the cache directory: ${largest} (limit ${MB})`);
      assert.ok(largest <= MB, `${largest} bytes in the cache directory`);
      assert.deepEqual(readers.map((reader) => reader.how), ["bypass", "bypass", "bypass"]);
      assert.equal(proxy.stats().notStored, 3);
      assert.equal(proxy.cache.bytes, 0);
    }, [root]);
  },
);

Deno.test(
  "entries being read hold their room: a new body that does not fit is passed on, and stored once they are read",
  { ignore },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-bound-" });
    const [a, b, c] = await Promise.all(
      ["a", "b", "c"].map((name) => bigFile(root, `${name}.bin`, 20 * MB)),
    );
    const limit = 48 * MB;
    await withProxy(root, { prefetch: false, cacheSize: limit }, async (proxy, base) => {
      const sampler = sampleBodyBytes(proxy.cache.dir);
      const readA = await slowReader(base + a.path);
      const readB = await slowReader(base + b.path);
      assert.deepEqual([readA.how, readB.how], ["miss", "miss"]);
      // 40 MB are being read; 20 more do not fit, and nothing may be evicted.
      const passed = await fetch(base + c.path);
      assert.equal(passed.headers.get("x-flowsched-cache"), "bypass");
      assert.equal(sha256(await passed.bytes()), c.sha256);
      assert.equal(proxy.stats().notStored, 1);
      assert.equal(proxy.stats().evictions, 0);
      assert.equal(await readA.finish(), a.sha256);
      assert.equal(await readB.finish(), b.sha256);
      // Read to the end, a and b can be evicted: c is stored now, in place of a.
      const stored = await fetch(base + c.path);
      assert.equal(stored.headers.get("x-flowsched-cache"), "miss");
      assert.equal(sha256(await stored.bytes()), c.sha256);
      assert.equal(proxy.stats().evictions, 1);
      assert.equal(await Deno.stat(proxy.cache.files(a.path).body).catch(() => null), null);
      const largest = await sampler.stop();
      console.log(`largest body bytes in the cache directory: ${largest} (limit ${limit})`);
      assert.ok(largest <= limit, `${largest} bytes in the cache directory`);
      assert.ok(proxy.cache.bytes <= limit);
    }, [root]);
  },
);

Deno.test(
  "HEAD of an entry not in the cache asks upstream for the head only",
  { ignore },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-head-" });
    const file = await bigFile(root, "big.bin", 8 * MB);
    await withProxy(root, { prefetch: false }, async (proxy, base) => {
      const head = await fetch(base + file.path, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), String(file.size));
      assert.equal(head.headers.get("x-flowsched-cache"), "bypass");
      assert.equal(proxy.stats().bytes.fetched, 0, "no body crossed the association");
      assert.equal(await Deno.stat(proxy.cache.files(file.path).body).catch(() => null), null);
      assert.equal(proxy.stats().upstream.inFlight, 0, "the HEAD request is finished");
      const get = await fetch(base + file.path);
      assert.equal(get.headers.get("x-flowsched-cache"), "miss");
      assert.equal(sha256(await get.bytes()), file.sha256);
      const again = await fetch(base + file.path, { method: "HEAD" });
      assert.equal(again.headers.get("x-flowsched-cache"), "hit");
      assert.equal(again.headers.get("content-length"), String(file.size));
    }, [root]);
  },
);
