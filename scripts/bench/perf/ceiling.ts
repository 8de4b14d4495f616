/**
 * The runtime's own server for `bench perf`: `Deno.serve` answering the
 * files under `--root` with nothing in between. Bodies up to 64 KiB are
 * answered from memory (read once at start); larger ones are streamed from
 * the file (`FsFile.readable`, which `Deno.serve` writes without passing the
 * bytes through JavaScript). Prints `listening <port>` once it listens.
 *
 * `deno run -P=bench scripts/bench/perf/ceiling.ts --root DIR [--port N]`
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";

const SMALL = 64 * 1024;

const { values } = parseArgs({
  options: { root: { type: "string" }, port: { type: "string", default: "0" } },
});
if (!values.root) {
  console.error("ceiling: --root DIR is required");
  Deno.exit(2);
}
const root = values.root;

/** Every small file under `root`, by URL path. */
const small = new Map<string, Uint8Array<ArrayBuffer>>();
async function preload(dir: string, prefix: string) {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) await preload(path, `${prefix}${entry.name}/`);
    else if ((await Deno.stat(path)).size <= SMALL) {
      small.set(`${prefix}${entry.name}`, await Deno.readFile(path));
    }
  }
}
await preload(root, "/");

const headers = { "content-type": "application/octet-stream" };
Deno.serve({
  hostname: "127.0.0.1",
  port: Number(values.port),
  onListen: ({ port }) => console.log(`listening ${port}`),
}, async (request) => {
  const path = new URL(request.url).pathname;
  const body = small.get(path);
  if (body) return new Response(body, { headers });
  if (path.includes("..")) return new Response("400\n", { status: 400 });
  try {
    const file = await Deno.open(join(root, path));
    const length = String((await file.stat()).size);
    return new Response(file.readable, { headers: { ...headers, "content-length": length } });
  } catch {
    return new Response("404\n", { status: 404 });
  }
});
