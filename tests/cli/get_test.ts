import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer } from "../../mod.ts";
import { get, mirrorPath } from "../../scripts/get.ts";
import { ConfigError } from "../../cli/options.ts";
import { needs } from "../_permissions.ts";

const OPTIONS = { output: "-", head: false, include: false, streams: 4, udpPort: 9899 };
const decoder = new TextDecoder();

/** A document root with an index, a nested file and a name with a space. */
async function makeRoot(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "flowsched-get-root-" });
  await Deno.mkdir(join(root, "a"));
  await Deno.writeTextFile(join(root, "index.html"), "<p>home</p>");
  await Deno.writeTextFile(join(root, "a", "b.css"), "p {}");
  await Deno.writeTextFile(join(root, "a", "index.html"), "<p>a</p>");
  await Deno.writeTextFile(join(root, "x y.txt"), "spaced");
  return root;
}

/** Lists every file under `dir` as "relative/path: content", sorted. */
async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const lines: string[] = [];
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const path = join(prefix, entry.name);
    if (entry.isDirectory) lines.push(...await listTree(dir, path));
    else lines.push(`${path}: ${await Deno.readTextFile(join(dir, path))}`);
  }
  return lines.sort();
}

Deno.test("mirrorPath() names files as wget -x does", () => {
  assert.equal(mirrorPath("out", "/a/b.css"), "out/a/b.css");
  assert.equal(mirrorPath("out", "/"), "out/index.html");
  assert.equal(mirrorPath("out", "/a/"), "out/a/index.html");
  assert.equal(mirrorPath("out", "/x%20y.txt?v=2"), "out/x y.txt");
  assert.equal(mirrorPath("out", "//a/./b.css"), "out/a/b.css");
});

Deno.test("mirrorPath() refuses paths that would leave the directory once decoded", () => {
  for (
    const target of ["/../etc/passwd", "/a/%2e%2e/%2E%2E/x", "/a%2F..%2F..%2Fx", "/a/..", "/%ff"]
  ) {
    assert.throws(() => mirrorPath("out", target), ConfigError, target);
  }
});

Deno.test("get() with several paths into a directory mirrors each URL path under it", {
  ignore: needs("read", "write"),
}, async () => {
  const root = await makeRoot();
  const out = await Deno.makeTempDir({ prefix: "flowsched-get-out-" });
  await using server = await startServer({
    transport: "tcpmux",
    host: "127.0.0.1",
    port: 0,
    root,
    logLevel: "warn",
  });
  try {
    const failed = await get(
      `tcpmux://127.0.0.1:${server.port}/`,
      ["/a/b.css", "/a/", "/x%20y.txt"],
      { ...OPTIONS, output: `${out}/site/` },
    );
    assert.equal(failed, 0);
    assert.deepEqual(await listTree(join(out, "site")), [
      "a/b.css: p {}",
      "a/index.html: <p>a</p>",
      "index.html: <p>home</p>",
      "x y.txt: spaced",
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("deno task get refuses a path leaving the output directory: exit 2, nothing written", {
  ignore: needs("read", "write", "run"),
}, async () => {
  const out = await Deno.makeTempDir({ prefix: "flowsched-get-out-" });
  try {
    // No server listens on port 1: the refusal comes before connecting.
    const result = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-P=client",
        "--no-check",
        "scripts/get.ts",
        "tcpmux://127.0.0.1:1/index.html",
        "/%2e%2e/escaped.txt",
        "-o",
        `${out}/`,
      ],
      cwd: new URL("../..", import.meta.url),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(result.code, 2);
    assert.match(
      decoder.decode(result.stderr),
      /get: refusing "\/%2e%2e\/escaped.txt": it would be written outside/,
    );
    assert.deepEqual(await listTree(out), []);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
