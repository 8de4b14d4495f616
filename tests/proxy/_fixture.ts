/**
 * The proxy tests' fixture: a real usrsctp server and a real proxy in this
 * process, files to serve, and ways to look at the cache directory.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type FlowServer, localUdpPort, startServer } from "../../mod.ts";
import { type FlowProxy, type ProxyOptions, startProxy } from "../../proxy/proxy.ts";
import { curl, sha256 } from "./_helpers.ts";

/** The UDP encapsulation port the in-process usrsctp servers and proxies share. */
export const testUdpPort = localUdpPort();
const udpPort = testUdpPort;

// Deno grants access below /dev (so /dev/shm) only with --allow-all, which the test
// permission set does not have: the tests' caches live in ordinary temp directories.

/** A big file (pattern-filled, so writing it is quick) for slow downloads. */
export async function bigFile(root: string, name: string, size: number) {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i += 4096) data[i] = (i / 4096) & 0xff;
  await Deno.writeFile(join(root, name), data);
  return { path: `/${name}`, size, sha256: sha256(data) };
}

/** A fresh temporary cache directory. */
export async function cacheDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "flowsched-proxy-test-" });
}

/** Runs `body` against a fresh server and proxy; removes `tempDirs` afterwards, pass or fail. */
export async function withProxy(
  root: string,
  options: ProxyOptions,
  body: (proxy: FlowProxy, base: string, server: FlowServer) => Promise<void>,
  tempDirs: string[] = [],
) {
  const server = await startServer({
    transport: "usrsctp",
    port: 0,
    root,
    udpPort,
    logLevel: "warn",
    streams: 4,
  });
  const cache = options.cache ?? await cacheDir();
  const proxy = await startProxy({
    listen: "127.0.0.1:0",
    upstream: `usrsctp://127.0.0.1:${server.port}`,
    udpPort,
    streams: 4,
    logLevel: "error",
    ...options,
    cache,
  });
  try {
    await body(proxy, `http://127.0.0.1:${proxy.port}`, server);
  } finally {
    await proxy.close();
    await server.close();
    if (!options.cache) await Deno.remove(cache, { recursive: true });
    for (const dir of tempDirs) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Fetches `paths` with one parallel curl (like a browser); returns status and body hash per path. */
export async function curlMany(base: string, paths: string[]) {
  const out = await Deno.makeTempDir({ prefix: "flowsched-curl-" });
  try {
    const args = ["-s", "-Z", "--parallel-max", "16", "-w", "%{http_code} %{url_effective}\\n"];
    paths.forEach((path, i) => args.push("-o", join(out, String(i)), base + path));
    const result = await curl(args);
    assert.equal(result.code, 0, result.stderr);
    const status = new Map<string, number>();
    for (const line of result.stdout.trim().split("\n")) {
      const [code, url] = line.split(" ");
      status.set(new URL(url).pathname, Number(code));
    }
    return await Promise.all(paths.map(async (path, i) => ({
      path,
      status: status.get(path),
      sha256: sha256(await Deno.readFile(join(out, String(i)))),
    })));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

/** Whether anything exists at `path`. */
export async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Every file below `dir` (relative paths). */
export async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory) out.push(...await listFiles(dir, rel));
    else out.push(rel);
  }
  return out;
}
