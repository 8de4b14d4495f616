import assert from "node:assert/strict";
import { needs } from "../_permissions.ts";
import { startTcpBaseline } from "../../mod.ts";
import { curlStatus, makeTree, run, sha256 } from "./_fixtures.ts";

const ignore = needs("read", "write", "net", "run");

for (const keepAlive of [true, false]) {
  const mode = keepAlive ? "keep-alive" : "one request per connection";

  Deno.test(`TCP baseline (${mode}) serves 300 files of 0 B to 4 MiB to curl sha256-identical`, {
    ignore,
  }, async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-tcp-" });
    const out = await Deno.makeTempDir({ prefix: "flowsched-tcp-out-" });
    const files = await makeTree(root, 300, 4 * 1024 * 1024, 3);
    await using server = await startTcpBaseline({ root, port: 0, keepAlive });
    const args = ["--silent", "--fail", "--parallel", "--parallel-max", "16"];
    files.forEach((file, i) =>
      args.push("-o", `${out}/${i}`, `http://127.0.0.1:${server.port}${file.path}`)
    );
    await run("curl", args);
    for (const [i, file] of files.entries()) {
      assert.equal(sha256(await Deno.readFile(`${out}/${i}`)), file.sha256, file.path);
    }
  });

  Deno.test(`TCP baseline (${mode}) answers errors and conditionals like the SCTP server`, {
    ignore,
  }, async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-tcp-err-" });
    await Deno.writeTextFile(`${root}/a.txt`, "hello");
    await using server = await startTcpBaseline({ root, port: 0, keepAlive });
    const base = `http://127.0.0.1:${server.port}`;
    const status = (path: string, ...extra: string[]) => curlStatus(base, path, ...extra);
    assert.equal(await status("/a.txt"), "200");
    assert.equal(await status("/missing"), "404");
    assert.equal(
      await status("/../../etc/passwd"),
      "404",
      "dot segments are resolved inside the root",
    );
    // The URL parser resolves encoded dot segments too, so they stay inside the root.
    assert.equal(await status("/%2e%2e/%2e%2e/etc/passwd"), "404");
    assert.equal(await status("/a.txt%00"), "400");
    assert.equal(await status("/a.txt", "-X", "POST"), "405");
    const etag =
      (await run("curl", ["--silent", "-I", base + "/a.txt"])).match(/etag: (.*)\r/i)![1];
    assert.equal(await status("/a.txt", "-H", `If-None-Match: ${etag}`), "304");
    const head = await run("curl", ["--silent", "-I", base + "/a.txt"]);
    assert.match(head, /content-length: 5/i);
    if (!keepAlive) assert.match(head, /connection: close/i);
  });

  Deno.test(`TCP baseline (${mode}) takes a wrk load without errors`, { ignore }, async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-tcp-wrk-" });
    await Deno.writeFile(`${root}/f.bin`, new Uint8Array(10_000).fill(7));
    await using server = await startTcpBaseline({ root, port: 0, keepAlive });
    const report = await run("wrk", [
      "-t2",
      "-c16",
      "-d2s",
      `http://127.0.0.1:${server.port}/f.bin`,
    ]);
    assert.match(report, /requests in/);
    assert.doesNotMatch(report, /Non-2xx|Socket errors/, report);
  });
}
