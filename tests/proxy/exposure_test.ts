/**
 * Issue #12, fault 11: the proxy answers errors with plain statuses and keeps
 * the details (upstream address, errno texts, cache paths) for its log; the
 * stats endpoint is for loopback clients unless configured otherwise; long
 * paths get a clean status and a log line.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startProxy } from "../../proxy/proxy.ts";
import { freeUdpPort, spawnProxy, waitUntil } from "./_helpers.ts";
import { cacheDir, testUdpPort, withProxy } from "./_fixture.ts";
import { needs } from "../_permissions.ts";

const ignore = needs("read", "write", "net", "env", "sys", "ffi", "run");

/** An IPv4 address of this host that is not loopback, if it has one. */
const outside = Deno.networkInterfaces().find((i) =>
  i.family === "IPv4" && !i.address.startsWith("127.")
)?.address;

/** Fails if `text` names anything internal. */
function assertNothingInternal(text: string, internals: string[]) {
  for (const internal of [...internals, "os error", "usrsctp", "127.0.0.1", "/tmp"]) {
    assert.ok(!text.includes(internal), `${JSON.stringify(text)} names ${internal}`);
  }
}

Deno.test(
  "a 502 says Bad Gateway and nothing else; the upstream and the error go to the log",
  { ignore },
  async () => {
    const cache = await cacheDir();
    // Nothing listens there: every connect attempt fails.
    const port = 9000 + Math.floor(Math.random() * 1000);
    const udpPort = await freeUdpPort();
    const { child, port: proxyPort } = await spawnProxy([
      "--upstream",
      `usrsctp://127.0.0.1:${port}`,
      "--udp-port",
      String(udpPort),
      "--cache",
      cache,
      "--connect-timeout",
      "300",
    ]);
    try {
      const response = await fetch(`http://127.0.0.1:${proxyPort}/page.html`);
      const text = await response.text();
      assert.equal(response.status, 502);
      assert.equal(text, "502 Bad Gateway\n");
      assertNothingInternal(text, [String(port), cache]);
      const line = await child.waitForLine(`"bad gateway"`);
      assert.match(line, new RegExp(`usrsctp://127\\.0\\.0\\.1:${port}`), "the log names it");
      assert.match(line, /"path":"\/page\.html"/);
    } finally {
      await child.kill("SIGTERM");
      await Deno.remove(cache, { recursive: true });
    }
  },
);

Deno.test(
  "the stats are served to loopback clients only, unless statsAccess says otherwise",
  { ignore: ignore || !outside },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-stats-" });
    const caches: string[] = [];
    try {
      for (const access of ["loopback", "public", "off"] as const) {
        const cache = await cacheDir();
        caches.push(cache);
        const proxy = await startProxy({
          listen: "0.0.0.0:0",
          // tcpmux: no usrsctp stack is started in this process before a server's.
          upstream: "tcpmux://127.0.0.1:9",
          cache,
          logLevel: "silent",
          statsAccess: access,
        });
        try {
          const get = async (host: string) => {
            const response = await fetch(`http://${host}:${proxy.port}/_flowsched/stats`);
            return { status: response.status, text: await response.text() };
          };
          const local = await get("127.0.0.1");
          const remote = await get(outside!);
          assert.equal(local.status, access === "off" ? 403 : 200, `${access}, loopback`);
          assert.equal(remote.status, access === "loopback" || access === "off" ? 403 : 200);
          for (const answer of [local, remote]) {
            if (answer.status === 200) {
              assert.equal(JSON.parse(answer.text).upstream.url, "tcpmux://127.0.0.1:9");
            } else {
              assert.equal(answer.text, "403 Forbidden\n");
            }
          }
        } finally {
          await proxy.close();
        }
      }
    } finally {
      for (const dir of [root, ...caches]) await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "long paths get a clean status and a log line, never an internal error unlogged",
  { ignore },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-long-" });
    const long = "a".repeat(200);
    await Deno.mkdir(join(root, long));
    await Deno.writeTextFile(join(root, long, `${long}.txt`), "deep and long");
    const cache = await cacheDir();
    await withProxy(root, { prefetch: false }, async (proxy, base, server) => {
      await waitUntil(() => proxy.stats().upstream.state === "up", 10000, "the association");
      // 200-character segments: stored like any path (the old layout passed them through).
      const stored = await fetch(`${base}/${long}/${long}.txt`);
      assert.equal(stored.status, 200);
      assert.equal(await stored.text(), "deep and long");
      assert.equal(proxy.stats().cacheEntries, 1);

      const { child, port } = await spawnProxy([
        "--upstream",
        `usrsctp://127.0.0.1:${server.port}`,
        "--udp-port",
        String(testUdpPort),
        "--cache",
        cache,
      ]);
      try {
        const other = `http://127.0.0.1:${port}`;
        // Longer than any request target the proxy passes on.
        const huge = await fetch(`${other}/${"b".repeat(9000)}`);
        assert.equal(huge.status, 414);
        assert.equal(await huge.text(), "414 URI Too Long\n");
        await child.waitForLine(`"request target too long; answered 414"`);
        // A 300-character segment names no file anywhere: whatever the server says about
        // it is passed on with its status, and an error status is logged.
        const segment = await fetch(`${other}/${"c".repeat(300)}`);
        const text = await segment.text();
        assert.ok(segment.status >= 400 && segment.status < 600, String(segment.status));
        assertNothingInternal(text, [cache, root]);
        if (segment.status >= 500) await child.waitForLine(`"upstream answered an error"`);
      } finally {
        await child.kill("SIGTERM");
      }
    }, [root, cache]);
  },
);

Deno.test(
  "a Host header no URL can be built from gets 400, not an internal error (found by the live fuzzer)",
  { ignore },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-host-" });
    await withProxy(root, { prefetch: false }, async (proxy) => {
      for (const host of [`"127.0.0.1`, "127.0.ost: 127.0.ost: 127."]) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
        await conn.write(
          new TextEncoder().encode(
            `GET /x.png HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
          ),
        );
        const answer = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
        assert.match(answer, /^HTTP\/1\.1 400 /, host);
        assert.doesNotMatch(answer, /Invalid URL/);
      }
    }, [root]);
  },
);
