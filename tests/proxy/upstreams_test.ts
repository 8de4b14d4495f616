/**
 * One proxy in front of three servers of one site, end to end over tcpmux:
 * real server processes whose files have the same names but bodies that say
 * which server sent them, a real proxy process given `--upstream` three
 * times, and no cache (`--cache-size 0`), so every request goes upstream.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { StatsSnapshot } from "../../proxy/stats.ts";
import { type Child, freeUdpPort, spawnProxy, spawnServer, waitUntil } from "./_helpers.ts";
import { cacheDir } from "./_fixture.ts";
import { freeTcpPort } from "../../scripts/hardening/stack.ts";
import { needs } from "../_permissions.ts";

// Servers and the proxy run as real processes.
const ignore = needs("read", "write", "net", "env", "sys", "run");

const SERVERS = 3;
const PATHS = Array.from({ length: 60 }, (_, i) => `/site/${i % 6}/file${i}.txt`);

/** Server `server`'s body of `path`: it names both; some are above the proxy's 64 KiB read-whole limit. */
function bodyOf(server: number, path: string, index: number): Uint8Array {
  const text = `server ${server} sent ${path}\n`;
  return new TextEncoder().encode(text + "x".repeat(index * 1800));
}

/** How one fetch ended: its status and, for a 200, which server's body it was. */
interface Answer {
  path: string;
  status: number;
  server?: number;
}

Deno.test(
  "three upstreams: each path always comes from one server; a killed server's paths, and only they, move to the others, and return when it is back",
  { ignore },
  async () => {
    const roots: string[] = [];
    const expected: Map<string, Uint8Array>[] = [];
    for (let server = 0; server < SERVERS; server++) {
      const root = await Deno.makeTempDir({ prefix: `flowsched-upstream-${server}-` });
      roots.push(root);
      const bodies = new Map<string, Uint8Array>();
      for (const [index, path] of PATHS.entries()) {
        const body = bodyOf(server, path, index);
        await Deno.mkdir(join(root, path, ".."), { recursive: true });
        await Deno.writeFile(join(root, path), body);
        bodies.set(path, body);
      }
      expected.push(bodies);
    }
    const ports = roots.map(() => freeTcpPort());
    const udpPort = await freeUdpPort();
    const start = (server: number) =>
      spawnServer({ root: roots[server], port: ports[server], udpPort, transport: "tcpmux" });
    const servers: Child[] = await Promise.all(roots.map((_, server) => start(server)));
    const urls = ports.map((port) => `tcpmux://127.0.0.1:${port}`);
    const cache = await cacheDir();
    const { child: proxy, port } = await spawnProxy([
      ...urls.flatMap((url) => ["--upstream", url]),
      "--cache-size",
      "0",
      "--cache",
      cache,
    ]);
    const base = `http://127.0.0.1:${port}`;
    const stats = async (): Promise<StatsSnapshot> =>
      await (await fetch(`${base}/_flowsched/stats`)).json();

    /** Fetches `path`; a 200 must be one server's body, byte for byte. */
    const get = async (path: string): Promise<Answer> => {
      const response = await fetch(base + path);
      const body = await response.bytes();
      if (response.status !== 200) return { path, status: response.status };
      const server = expected.findIndex((bodies) => same(bodies.get(path)!, body));
      assert.ok(server >= 0, `${path}: a body no server has (${body.byteLength} bytes)`);
      return { path, status: 200, server };
    };
    /** Every path at once; each must be a 200. */
    const getAll = async (): Promise<Map<string, number>> => {
      const answers = await Promise.all(PATHS.map(get));
      for (const answer of answers) assert.equal(answer.status, 200, answer.path);
      return new Map(answers.map((answer) => [answer.path, answer.server!]));
    };

    try {
      const listening = await proxy.waitForLine(`"listening"`);
      for (const url of urls) assert.ok(listening.includes(url), `${url} in ${listening}`);
      await waitUntil(
        async () => (await stats()).upstreams.every((upstream) => upstream.state === "up"),
        10000,
        "three associations up",
      );

      // All up: each path has its server, and every server has some.
      const owner = await getAll();
      assert.deepEqual(await getAll(), owner, "each path came from the same server twice");
      const share = urls.map((_, server) => PATHS.filter((p) => owner.get(p) === server).length);
      for (const count of share) assert.ok(count > 0, `paths per server: ${share.join(", ")}`);
      const before = await stats();
      assert.deepEqual(before.upstreams.map((upstream) => upstream.url), urls);
      assert.deepEqual(
        before.upstreams.map((upstream) => upstream.requests),
        share.map((n) => 2 * n),
      );
      assert.deepEqual(before.upstream, before.upstreams[0]);

      // Server 0 is killed while requests run: only its paths may fail (502), and only if
      // sent before the proxy noticed; the other paths keep their servers throughout.
      const gone = 0;
      let noticed = false;
      let loading = true;
      const during: (Answer & { late: boolean })[] = [];
      const load = (async () => {
        while (loading) {
          during.push(
            ...await Promise.all(PATHS.map(async (path) => {
              const late = noticed;
              return { ...await get(path), late };
            })),
          );
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await servers[gone].kill("SIGKILL");
      await waitUntil(
        async () => (await stats()).upstreams[gone].state !== "up",
        10000,
        "the proxy noticing the killed server",
      );
      noticed = true;
      await waitUntil(() => during.some((answer) => answer.late), 10000, "a round sent after");
      loading = false;
      await load;
      for (const { path, status, server, late } of during) {
        if (owner.get(path) !== gone) assert.equal(server, owner.get(path), `${path}: ${status}`);
        else if (late) assert.ok(status === 200 && server !== gone, `${path}: ${status}`);
        else assert.ok(status === 200 || status === 502, `${path}: ${status}`);
      }
      await proxy.waitForLine(`"upstream down: its paths go to the other upstreams"`, 5000);

      // Noticed: every path succeeds, the killed server's from the others, the rest unmoved.
      const failover = await getAll();
      assert.deepEqual(await getAll(), failover, "the moved paths stay where they went");
      for (const path of PATHS) {
        if (owner.get(path) === gone) assert.notEqual(failover.get(path), gone, path);
        else assert.equal(failover.get(path), owner.get(path), `${path} moved`);
      }

      // Back on the same port: its paths return to it (the reconnect backoff is at most 5 s).
      servers[gone] = await start(gone);
      await waitUntil(
        async () => (await stats()).upstreams[gone].state === "up",
        15000,
        "the restarted server's association",
      );
      assert.deepEqual(await getAll(), owner, "every path is back on its server");
      await proxy.waitForLine(`"upstream up: its paths come back to it"`, 5000);
    } finally {
      await proxy.kill("SIGTERM");
      await Promise.all(servers.map((server) => server.kill("SIGTERM")));
      for (const dir of [cache, ...roots]) await Deno.remove(dir, { recursive: true });
    }
  },
);

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i]);
}
