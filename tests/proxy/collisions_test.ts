/**
 * Issue #12, faults 6 and 7, through a real proxy and server: URL paths that
 * used to collide in the cache directory (a path and its `.tmp`, its
 * metadata, a directory and a file of one name) all work in either order,
 * and misses create no directory and no inotify watch.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { entryFiles } from "../../proxy/cache.ts";
import { sha256, waitUntil } from "./_helpers.ts";
import { listFiles, withProxy } from "./_fixture.ts";
import { needs } from "../_permissions.ts";

const ignore = needs("read", "write", "net", "env", "sys", "ffi", "run");

/** Path → the body the server has for it (undefined: 404). */
const SITE: Record<string, string> = {
  "t1.html": "<p>t1</p>",
  "t2.html": "<p>t2</p>",
  "t3.html": "<p>t3</p>",
  "d4/index.html": "<p>d4 index</p>",
  "docs/a.html": "<p>docs a</p>",
  "docs/index.html": "<p>docs index</p>",
  "d2/index.html": "<p>d2 index</p>",
  "d2/a.html": "<p>d2 a</p>",
};

/** Request pairs from the issue, each [path, expected body or 404]. */
const SEQUENCES: [string, string | 404][][] = [
  [["/t1.html.headers.json/x", 404], ["/t1.html", SITE["t1.html"]]],
  [["/t2.html.tmp/sub/x", 404], ["/t2.html", SITE["t2.html"]]],
  [["/d4/", SITE["d4/index.html"]], ["/d4", SITE["d4/index.html"]]],
  [["/docs/a.html", SITE["docs/a.html"]], ["/docs", SITE["docs/index.html"]]],
  [["/d2", SITE["d2/index.html"]], ["/d2/a.html", SITE["d2/a.html"]]],
  // Paths that spell the files of another entry in the new layout.
  ...Object.values(entryFiles("/t3.html")).map((file): [string, string | 404][] => [
    [`/${file}`, 404],
    ["/t3.html", SITE["t3.html"]],
  ]),
];

async function makeRoot(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "flowsched-collide-" });
  for (const [path, body] of Object.entries(SITE)) {
    await Deno.mkdir(join(root, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(root, path), body);
  }
  return root;
}

for (const order of ["as the issue lists them", "reversed"]) {
  Deno.test(
    `paths that collided in the old cache layout all answer right, requested ${order}`,
    { ignore },
    async () => {
      const root = await makeRoot();
      await withProxy(root, { prefetch: false, requestTimeout: 10000 }, async (proxy, base) => {
        await waitUntil(() => proxy.stats().upstream.state === "up", 10000, "the association");
        for (const sequence of SEQUENCES) {
          const steps = order === "reversed" ? [...sequence].reverse() : sequence;
          // Twice each: the second answer of a 200 comes from the cache.
          for (const [path, expected] of [...steps, ...steps]) {
            const response = await fetch(base + path);
            const text = await response.text();
            if (expected === 404) {
              assert.equal(response.status, 404, `${path}: ${text}`);
            } else {
              assert.equal(response.status, 200, `${path}: ${text}`);
              assert.equal(text, expected, path);
            }
          }
        }
      }, [root]);
    },
  );
}

/** Inotify watches this process holds (Deno reads /proc/self only with --allow-all: grep does). */
async function inotifyWatches(): Promise<number> {
  const output = await new Deno.Command("sh", {
    args: ["-c", `cat /proc/${Deno.pid}/fdinfo/* 2>/dev/null | grep -c '^inotify wd:' || true`],
    stdout: "piped",
  }).output();
  return Number(new TextDecoder().decode(output.stdout).trim());
}

/** Every directory below `dir` (relative paths). */
async function listDirs(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    if (!entry.isDirectory) continue;
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    out.push(rel, ...await listDirs(dir, rel));
  }
  return out;
}

Deno.test(
  "misses create no directory and no inotify watch, and 404s leave nothing on disk",
  { ignore },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-dirs-" });
    const found: string[] = [];
    for (let i = 0; i < 20; i++) {
      const path = `deep/${i}/a/b/c/d/e/f/file.txt`;
      await Deno.mkdir(join(root, path, ".."), { recursive: true });
      await Deno.writeTextFile(join(root, path), `file ${i}`);
      found.push(`/${path}`);
    }
    await withProxy(root, { prefetch: false }, async (proxy, base) => {
      const dirsBefore = await listDirs(proxy.cache.dir);
      const watchesBefore = await inotifyWatches();
      for (let i = 0; i < 100; i++) {
        const response = await fetch(`${base}/no/such/${i}/a/b/c/d/e/f/g/h/file.png`);
        assert.equal(response.status, 404);
        await response.body?.cancel();
      }
      assert.deepEqual(await listFiles(proxy.cache.dir), [], "404s leave no file");
      for (const path of found) {
        const response = await fetch(base + path);
        assert.equal(response.status, 200);
        assert.equal(await response.text(), `file ${path.split("/")[2]}`);
      }
      // Give the watcher time to add watches for new directories, if there were any.
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(await listDirs(proxy.cache.dir), dirsBefore, "no directory was created");
      assert.equal(dirsBefore.length, 256, "the fixed fan-out");
      assert.equal(await inotifyWatches(), watchesBefore, "no inotify watch was added");
      const files = await listFiles(proxy.cache.dir);
      assert.equal(files.length, 2 * found.length, "a body and its metadata per 200, nothing else");
      for (const path of found) {
        const body = await Deno.readFile(proxy.cache.files(path).body);
        assert.equal(sha256(body), sha256(new TextEncoder().encode(`file ${path.split("/")[2]}`)));
      }
    }, [root]);
  },
);
