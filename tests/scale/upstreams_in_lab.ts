/**
 * The proxy with 3 upstream servers over kernel SCTP, inside the lab (started
 * by tests/scale/lab_test.ts with `--servers 3`), so it is not named
 * *_test.ts. Each server's files name the server, so the client sees where
 * each path went; the proxy runs without a cache so every request goes
 * upstream.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { serverAddress, serverNamespace } from "../../scripts/lab/lab.ts";
import { type Child, spawnProxy, spawnServer, waitUntil } from "../proxy/_helpers.ts";

const PROXY_IP = Deno.env.get("LAB_PROXY_IP")!;
const PATHS = Array.from({ length: 60 }, (_, i) => `/p/${i}.txt`);

async function inClient(args: string[]): Promise<string> {
  const output = await new Deno.Command("ip", {
    args: ["netns", "exec", "client", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout);
}

/** Which server answered each path: every body is "<server> <path>\n". */
async function whoServes(base: string): Promise<Map<string, number>> {
  const out = await inClient([
    "curl",
    "-sS",
    "--fail",
    ...PATHS.map((path) => `${base}${path}`),
  ]);
  const served = new Map<string, number>();
  for (const line of out.trimEnd().split("\n")) {
    const [server, path] = line.split(" ");
    served.set(path, Number(server));
  }
  assert.deepEqual([...served.keys()], PATHS, "every path answered, in order, whole");
  return served;
}

function startServer(work: string, k: number): Promise<Child> {
  return spawnServer({
    root: join(work, `root${k}`),
    port: 7100,
    udpPort: 9899,
    transport: "kernel",
    host: serverAddress(k),
    netns: serverNamespace(k),
  });
}

Deno.test("the proxy sends each path to one of 3 upstreams; a killed server's paths go to the others and come back when it returns", async () => {
  const work = await Deno.makeTempDir({ prefix: "flowsched-upstreams-" });
  for (const k of [1, 2, 3]) {
    await Deno.mkdir(join(work, `root${k}`, "p"), { recursive: true });
    for (const path of PATHS) {
      await Deno.writeTextFile(join(work, `root${k}`, path), `${k} ${path}\n`);
    }
  }
  const servers: (Child | undefined)[] = [];
  let proxy: { child: Child; port: number } | undefined;
  try {
    for (const k of [1, 2, 3]) servers.push(await startServer(work, k));
    proxy = await spawnProxy([
      "--listen",
      `${PROXY_IP}:8080`,
      ...[1, 2, 3].flatMap((k) => ["--upstream", `kernel://${serverAddress(k)}:7100`]),
      "--cache-size",
      "0",
      "--streams",
      "4",
      "--stats-access",
      "public",
    ], "proxy");
    const base = `http://${PROXY_IP}:${proxy.port}`;
    const upstreams = async () =>
      JSON.parse(await inClient(["curl", "-sS", `${base}/_flowsched/stats`])).upstreams as {
        state: string;
      }[];
    await waitUntil(
      async () => (await upstreams()).every((u) => u.state === "up"),
      20_000,
      "all 3 upstream associations up",
    );

    const before = await whoServes(base);
    assert.deepEqual(await whoServes(base), before, "a path goes to the same server every time");
    const share = [1, 2, 3].map((k) => [...before.values()].filter((s) => s === k).length);
    assert.ok(share.every((n) => n > 0), `every server gets paths: ${share}`);

    await servers[1]!.kill("SIGKILL");
    servers[1] = undefined;
    await proxy.child.waitForLine("upstream down", 10_000);
    const during = await whoServes(base);
    for (const [path, server] of before) {
      if (server === 2) assert.notEqual(during.get(path), 2, `${path} moved off server 2`);
      else assert.equal(during.get(path), server, `${path} stayed on server ${server}`);
    }

    servers[1] = await startServer(work, 2);
    await proxy.child.waitForLine("its paths come back", 15_000);
    // Under load a fresh association can drop and come back once more: the
    // paths return when it is up, so wait for that as at the start.
    await waitUntil(
      async () => (await upstreams()).every((u) => u.state === "up"),
      20_000,
      "all 3 upstream associations up again",
    );
    assert.deepEqual(
      await whoServes(base),
      before,
      `server 2's paths went back to it (upstreams: ${JSON.stringify(await upstreams())})`,
    );
    console.log(`paths per server: ${share.join(", ")}; server 2's went to the others and back`);
  } finally {
    await proxy?.child.kill("SIGTERM");
    for (const server of servers) await server?.kill("SIGTERM");
    await Deno.remove(work, { recursive: true });
  }
});
