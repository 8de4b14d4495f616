/**
 * IPVS in front of 3 flowsched servers over kernel SCTP, inside the lab
 * (started by tests/scale/lab_test.ts with `--servers 3`), so it is not named
 * *_test.ts: servers in namespaces server, server2, server3; `deno task ipvs`
 * in the proxy namespace, the director; clients in the client namespace.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { serverAddress, serverNamespace } from "../../scripts/lab/lab.ts";
import { makeFiles, Service, type SiteFile } from "../../scripts/hardening/stack.ts";
import { IpvsService } from "../../scripts/scale/ipvs.ts";
import { type Child, spawnServer, waitUntil } from "../proxy/_helpers.ts";
import type { FetchReport } from "./_fetch.ts";

const VIRTUAL = "10.10.9.9:7100";
const REALS = [1, 2, 3].map((k) => `${serverAddress(k)}:7100`);
const INTERVAL_MS = 500;

async function run(command: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder();
  assert.equal(output.code, 0, `${command} ${args.join(" ")}: ${text.decode(output.stderr)}`);
  return text.decode(output.stdout);
}

/** The director's table, read with ipvsadm in the proxy namespace. */
const table = new IpvsService({
  virtual: VIRTUAL,
  ipvsadm: (args) => run("ip", ["netns", "exec", "proxy", "ipvsadm", ...args]),
});

/** Starts the client in the client namespace; `connected` once its associations are up. */
function startFetch(manifest: string, associations: number) {
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      "client",
      Deno.execPath(),
      "run",
      "-P=client",
      "--no-check",
      "tests/scale/_fetch.ts",
      `kernel://${VIRTUAL}`,
      manifest,
      String(associations),
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const connected = Promise.withResolvers<void>();
  const stderr = (async () => {
    let text = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      if (text.includes("connected\n")) connected.resolve();
    }
    return text;
  })();
  const report = (async (): Promise<FetchReport> => {
    const [stdout, status, errors] = await Promise.all([
      new Response(child.stdout).text(),
      child.status,
      stderr,
    ]);
    connected.resolve();
    assert.equal(status.code, 0, errors);
    return JSON.parse(stdout);
  })();
  return { connected: connected.promise, report };
}

/**
 * The associations each server was given (undefined: not in the service),
 * read until they are `expected` or 6 s have passed: IPVS sums its per-CPU
 * counters every 2 s, so a read right after the fetches may lag.
 */
async function associationsOnceThey(
  expected: (number | undefined)[],
): Promise<(number | undefined)[]> {
  const read = async () => {
    const reals = await table.realServers();
    return REALS.map((real) => reals.get(real)?.associations);
  };
  let counts = await read();
  for (const end = Date.now() + 6000; Date.now() < end;) {
    if (counts.every((n, i) => n === expected[i])) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
    counts = await read();
  }
  return counts;
}

function fetchAll(manifest: string, associations: number): Promise<FetchReport> {
  return startFetch(manifest, associations).report;
}

function startServer(root: string, k: number): Promise<Child> {
  return spawnServer({
    root,
    port: 7100,
    udpPort: 9899,
    transport: "kernel",
    // One address: behind NAT, a server must not offer others in its INIT-ACK.
    host: serverAddress(k),
    netns: serverNamespace(k),
  });
}

Deno.test("IPVS spreads associations over 3 servers, bodies intact; a killed server leaves the service within a health-check round and returns when restarted", async () => {
  const work = await Deno.makeTempDir({ prefix: "flowsched-ipvs-" });
  const root = join(work, "site");
  const files: SiteFile[] = await makeFiles(root, 300, { minBytes: 200, maxBytes: 96 * 1024 });
  const manifest = join(work, "manifest.json");
  await Deno.writeTextFile(manifest, JSON.stringify(files));
  // Four rounds of the files: still fetching when a server is killed.
  const longManifest = join(work, "manifest-x4.json");
  await Deno.writeTextFile(longManifest, JSON.stringify([...files, ...files, ...files, ...files]));
  const servers: (Child | undefined)[] = [];
  let front: Service | undefined;
  try {
    for (const k of [1, 2, 3]) servers.push(await startServer(root, k));
    await run("ip", ["-n", "proxy", "addr", "add", "10.10.9.9/32", "dev", "lo"]);
    front = new Service("ipvs", [
      "run",
      "-P=ipvs",
      "--no-check",
      "scripts/ipvs.ts",
      VIRTUAL,
      ...REALS,
      "--interval",
      String(INTERVAL_MS),
    ], "proxy");
    await front.waitForLine("virtual service up");
    // A first probe may time out while the checker's client warms up.
    await waitUntil(
      async () => (await table.realServers()).size === 3,
      10_000,
      "all 3 servers in the service",
    );

    // Six associations, round robin: two on each server.
    const first = await fetchAll(manifest, 6);
    assert.deepEqual(first, { ok: 300, mismatched: 0, failed: 0, errors: [] });
    assert.deepEqual(await associationsOnceThey([2, 2, 2]), [2, 2, 2]);

    // Kill server 2 while clients fetch: a response may fail, none may arrive cut short.
    const during = startFetch(longManifest, 6);
    await during.connected;
    await new Promise((resolve) => setTimeout(resolve, 200));
    await servers[1]!.kill("SIGKILL");
    servers[1] = undefined;
    const killedAt = performance.now();
    const out = await front.waitForLine("server out of service", 10_000);
    assert.match(out, new RegExp(`"server":"${REALS[1]}"`));
    const outAfterMs = performance.now() - killedAt;
    const cut = await during.report;
    assert.equal(cut.mismatched, 0, JSON.stringify(cut));
    assert.equal(cut.ok + cut.failed, 1200);
    assert.deepEqual([...(await table.realServers()).keys()].sort(), [REALS[0], REALS[2]]);
    // Two more each on servers 1 and 3 from the fetches under the kill.
    assert.deepEqual(await associationsOnceThey([4, undefined, 4]), [4, undefined, 4]);
    console.log(
      `server 2 out of service ${Math.round(outAfterMs)} ms after the kill ` +
        `(${JSON.parse(out).reason}) ` +
        `(interval ${INTERVAL_MS} ms); ${cut.failed} of 1200 requests failed, none cut short`,
    );

    // New associations go to the two that are left, and every body is whole.
    const second = await fetchAll(manifest, 6);
    assert.deepEqual(second, { ok: 300, mismatched: 0, failed: 0, errors: [] });
    assert.deepEqual(await associationsOnceThey([7, undefined, 7]), [7, undefined, 7]);

    // Restarted, it is back within a round or two.
    servers[1] = await startServer(root, 2);
    await waitUntil(
      async () => (await table.realServers()).has(REALS[1]),
      10_000,
      "the restarted server back in the service",
    );
    const third = await fetchAll(manifest, 3);
    assert.deepEqual(third, { ok: 300, mismatched: 0, failed: 0, errors: [] });
  } finally {
    await front?.stop("SIGTERM");
    for (const server of servers) await server?.kill("SIGTERM");
    await Deno.remove(work, { recursive: true });
  }
});
