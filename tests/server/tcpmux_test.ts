import assert from "node:assert/strict";
import { encodeHello } from "../../transport/tcpmux.ts";
import { needs } from "../_permissions.ts";
import { FlowClient, startServer } from "../../mod.ts";
import { serverSuite } from "./_server_suite.ts";

serverSuite({ transport: "tcpmux" });

/** Log entries the server writes (JSON lines on stderr), captured while in scope. */
function captureLog() {
  const entries: Record<string, unknown>[] = [];
  const original = console.error;
  console.error = (line: unknown) => void entries.push(JSON.parse(String(line)));
  return { entries, [Symbol.dispose]: () => void (console.error = original) };
}

async function withSite(body: (root: string) => Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "flowsched-tcpmux-" });
  await Deno.writeTextFile(`${root}/a.txt`, "hello");
  await body(root);
}

Deno.test(
  "tcpmux server: silent connections do not keep a real client from being served",
  { ignore: needs("read", "write", "net") },
  () =>
    withSite(async (root) => {
      // Their time to speak is long: the client is served while they are all still waiting.
      await using server = await startServer({
        transport: "tcpmux",
        port: 0,
        root,
        logLevel: "warn",
        handshakeTimeout: 600,
      });
      const silent = await Promise.all(
        [1, 2, 3].map(() => Deno.connect({ hostname: "127.0.0.1", port: server.port })),
      );
      try {
        await using client = await FlowClient.connect(`tcpmux://127.0.0.1:${server.port}`);
        const response = await client.request("/a.txt");
        assert.equal(response.status, 200);
        assert.equal(new TextDecoder().decode(await response.bytes()), "hello");
        assert.equal(server.sessions.size, 1, "none of the silent connections became a session");
      } finally {
        for (const conn of silent) conn.close();
      }
    }),
);

Deno.test(
  "tcpmux server: a hello asking for 0 streams is refused and logged, and the server serves on",
  { ignore: needs("read", "write", "net") },
  () =>
    withSite(async (root) => {
      using log = captureLog();
      await using server = await startServer({ transport: "tcpmux", port: 0, root });
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await conn.write(encodeHello(4, 0));
      const seen = new Uint8Array(16);
      let got = 0;
      for (let n; (n = await conn.read(seen.subarray(got))) !== null;) got += n;
      conn.close();
      assert.equal(got, 8, "the server's hello, then the connection closed");
      for (const deadline = Date.now() + 10_000; !log.entries.some((e) => e.reason);) {
        assert.ok(Date.now() < deadline, "no refusal was logged");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const refusal = log.entries.find((e) => e.message === "peer refused");
      assert.equal(refusal?.level, "warn");
      assert.match(
        String(refusal?.reason),
        /^tcpmux: peer's hello asks for 4 outgoing and allows 0 incoming streams; each must be at least 1 \(peer 127\.0\.0\.1:\d+\)$/,
      );
      assert.equal(server.sessions.size, 0);
      await using client = await FlowClient.connect(`tcpmux://127.0.0.1:${server.port}`);
      assert.equal(
        new TextDecoder().decode(await (await client.request("/a.txt")).bytes()),
        "hello",
      );
    }),
);
