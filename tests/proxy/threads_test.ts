/** Several proxies on one port, one per thread, sharing one cache directory. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer } from "../../mod.ts";
import { startProxyThreads } from "../../proxy/threads.ts";
import { needs } from "../_permissions.ts";
import { curl, sha256 } from "./_helpers.ts";
import { cacheDir, curlMany, listFiles } from "./_fixture.ts";

const ignore = needs("read", "write", "net", "ffi", "run", "env", "sys");

Deno.test(
  "two proxy threads on one port share the work and the cache, and every body arrives whole",
  { ignore },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-threads-site-" });
    const cache = await cacheDir();
    const files = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      const data = crypto.getRandomValues(new Uint8Array(1000 + 97 * i));
      await Deno.writeFile(join(root, `f${i}.bin`), data);
      return { path: `/f${i}.bin`, sha256: sha256(data) };
    }));
    const server = await startServer({
      transport: "tcpmux",
      port: 0,
      root,
      logLevel: "warn",
      streams: 4,
    });
    const threads = await startProxyThreads({
      listen: "127.0.0.1:0",
      upstream: `tcpmux://127.0.0.1:${server.port}`,
      streams: 4,
      cache,
      logLevel: "error",
    }, 2);
    try {
      const base = `http://127.0.0.1:${threads.main.port}`;
      // One connection per path: the kernel spreads them over both threads.
      for (let round = 0; round < 2; round++) {
        const fetched = await Promise.all(files.map(({ path }) => curlMany(base, [path])));
        for (const [i, [{ status, sha256: hash }]] of fetched.entries()) {
          assert.equal(status, 200, files[i].path);
          assert.equal(hash, files[i].sha256, files[i].path);
        }
      }
      const main = threads.main.stats();
      assert.ok(
        main.hits + main.misses + main.coalesced < 2 * files.length,
        `the main thread answered all ${2 * files.length} requests: the other none`,
      );
      // Each path was stored once, whichever thread fetched it.
      const bodies = (await listFiles(cache)).filter((name) => name.endsWith(".body"));
      assert.equal(bodies.length, files.length);
      const stats = await curl(["-s", `${base}/_flowsched/stats`]);
      assert.equal(JSON.parse(stats.stdout).upstream.state, "up");
    } finally {
      await threads.close();
      await server.close();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(cache, { recursive: true });
    }
  },
);
