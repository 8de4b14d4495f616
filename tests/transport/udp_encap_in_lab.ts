/**
 * SCTP over UDP through a NAT that drops SCTP, inside the User-Mode Linux lab
 * (started by udp_encap_lab_test.ts), so it is not named *_test.ts.
 *
 * The lab's `proxy` namespace is the router: it masquerades what leaves
 * towards the server (iptables MASQUERADE; the lab kernel's nf_tables has no
 * NAT chain type) and drops IP protocol 132. The proxy process runs behind it,
 * in namespace `client`, with curl; the kernel-SCTP server in `server`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { Child, sha256, waitUntil } from "../proxy/_helpers.ts";
import { sctpOffloadOff } from "../../scripts/lab/lab.ts";

const SERVER_IP = Deno.env.get("LAB_SERVER_IP") ?? "10.10.2.2";
const FILES = 500;

async function run(namespace: string | undefined, args: string[]): Promise<Deno.CommandOutput> {
  return await new Deno.Command(namespace ? "ip" : args[0], {
    args: namespace ? ["netns", "exec", namespace, ...args] : args.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
}

async function ok(namespace: string | undefined, args: string[]): Promise<string> {
  const output = await run(namespace, args);
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  assert.equal(output.code, 0, `${args.join(" ")}: ${text(output.stderr)}`);
  return text(output.stdout);
}

/** The router: NAT towards the server, and no SCTP through it. */
async function setUpRouter() {
  await ok(undefined, ["modprobe", "-d", "/tmp/modroot", "-a", "iptable_nat", "iptable_filter"]);
  await ok(undefined, ["modprobe", "-d", "/tmp/modroot", "xt_MASQUERADE"]);
  await ok("proxy", ["iptables-legacy", "-A", "FORWARD", "-p", "132", "-j", "DROP"]);
  await ok("proxy", [
    "iptables-legacy",
    "-t",
    "nat",
    "-A",
    "POSTROUTING",
    "-o",
    "ps-proxy",
    "-j",
    "MASQUERADE",
  ]);
}

/** Packets counted by the first rule of `chain` in `table` of the router. */
async function routerCount(table: string, chain: string): Promise<number> {
  const listing = await ok("proxy", [
    "iptables-legacy",
    "-t",
    table,
    "-L",
    chain,
    "-v",
    "-n",
    "-x",
  ]);
  return Number(listing.split("\n")[2].trim().split(/\s+/)[0]);
}

interface Fixture {
  root: string;
  hashes: string[];
  server: Child;
}

let fixture: Promise<Fixture> | undefined;

/** 500 files (0 to 96 KiB), the router, and one kernel-SCTP server taking SCTP natively and over UDP. */
function setUp(): Promise<Fixture> {
  return fixture ??= (async () => {
    await setUpRouter();
    const root = await Deno.makeTempDir({ prefix: "udp-encap-" });
    const hashes: string[] = [];
    for (let i = 0; i < FILES; i++) {
      const body = new Uint8Array((i * 7919) % (96 * 1024));
      crypto.getRandomValues(body.subarray(0, Math.min(body.length, 65536)));
      await Deno.writeFile(join(root, `f${i}.bin`), body);
      hashes.push(sha256(body));
    }
    // What DEPLOY.md says to run on the server host: the server itself may not write /proc/sys.
    await ok("server", ["sysctl", "-w", "net.sctp.udp_port=9899", "net.sctp.encap_port=9899"]);
    // A veth claims to compute SCTP checksums, so the kernel leaves the CRC32c of the
    // SCTP-in-UDP packets it segments (GSO) to it, and it never does. Kernel peers trust the
    // offload flag; usrsctp checks and drops them: 63 of 788 packets of a 1 MB transfer
    // (usrsctp's sctps_badsum), so 1 MB took 20 s instead of 0.8 s. Real NICs without that
    // offload get the CRC computed in software; see DEPLOY.md.
    await ok("server", sctpOffloadOff("ps-server"));
    const server = new Child([
      "run",
      "-P=server",
      "--no-check",
      "server/main.ts",
      "--transport=kernel",
      `--host=${SERVER_IP}`,
      "--port=9000",
      "--udp-encapsulation",
      "--udp-port=9899",
      `--root=${root}`,
      "--streams=4",
    ], "server");
    await server.waitForLine(`"listening"`, 60_000);
    return { root, hashes, server };
  })();
}

globalThis.addEventListener("unload", () => {
  fixture?.then(({ root, server }) => {
    server.process.kill("SIGKILL");
    Deno.removeSync(root, { recursive: true });
  });
});

/** A proxy behind the NAT (namespace `client`), listening on its loopback. */
async function startProxy(upstream: string, extra: string[] = []) {
  const cache = await Deno.makeTempDir({ prefix: "udp-encap-cache-" });
  const child = new Child([
    "run",
    "-P=proxy",
    "--no-check",
    "proxy/main.ts",
    "--listen=127.0.0.1:0",
    `--upstream=${upstream}`,
    `--cache=${cache}`,
    "--streams=4",
    "--log-level=info",
    ...extra,
  ], "client");
  const line = await child.waitForLine(`"listening"`, 60_000);
  const base = `http://127.0.0.1:${/"listen":"[^"]*:(\d+)"/.exec(line)![1]}`;
  return {
    child,
    base,
    async stop() {
      await child.kill("SIGTERM");
      await Deno.remove(cache, { recursive: true });
    },
  };
}

/**
 * Once the proxy's association is up, fetches every file through it and
 * checks that the NAT's counter moved past `masqueraded`.
 */
async function fetchThroughNat(
  proxy: Awaited<ReturnType<typeof startProxy>>,
  hashes: string[],
  masqueraded: number,
) {
  await proxy.child.waitForLine("upstream association up", 60_000);
  await fetchAll(proxy.base, hashes);
  assert.ok(await routerCount("nat", "POSTROUTING") > masqueraded, "nothing went through the NAT");
}

/** Fetches all files through the proxy with curl (8 at a time); checks statuses and hashes. */
async function fetchAll(base: string, hashes: string[]) {
  const out = await Deno.makeTempDir({ prefix: "udp-encap-out-" });
  try {
    const args = ["curl", "-s", "-Z", "--parallel-max", "8", "--max-time", "120"];
    args.push("-w", "%{http_code}\\n");
    hashes.forEach((_, i) => args.push("-o", join(out, `f${i}`), `${base}/f${i}.bin`));
    const codes = (await ok("client", args)).trim().split("\n");
    assert.deepEqual(codes, hashes.map(() => "200"));
    for (let i = 0; i < hashes.length; i++) {
      assert.equal(sha256(await Deno.readFile(join(out, `f${i}`))), hashes[i], `f${i}.bin differs`);
    }
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

Deno.test("across a NAT that drops SCTP, a kernel-SCTP proxy answers 502 at once and says the path drops SCTP", async () => {
  const { hashes } = await setUp();
  const dropped = await routerCount("filter", "FORWARD");
  const proxy = await startProxy(`kernel://${SERVER_IP}:9000`);
  try {
    // --max-time: a hang fails the test instead of blocking it.
    const status = await ok("client", [
      "curl",
      "-s",
      "--max-time",
      "30",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      `${proxy.base}/f1.bin`,
    ]);
    assert.equal(status, "502");
    assert.ok(hashes.length > 0);
    // The kernel's diagnosis arrives once its connect gives up (10 s).
    let lastError = "";
    await waitUntil(
      async () => {
        const stats = JSON.parse(
          await ok("client", ["curl", "-s", `${proxy.base}/_flowsched/stats`]),
        );
        lastError = stats.upstream.lastError ?? "";
        return lastError.includes("no answer");
      },
      40_000,
      "the proxy's upstream error",
    );
    assert.match(lastError, /IP protocol 132/);
    assert.match(lastError, /\?udp=9899/);
    assert.ok(await routerCount("filter", "FORWARD") > dropped, "the router dropped no SCTP");
  } finally {
    await proxy.stop();
  }
});

Deno.test(`across a NAT that drops SCTP, a usrsctp proxy fetches ${FILES} files over UDP from a kernel-SCTP server, sha256-identical`, async () => {
  const { hashes } = await setUp();
  const masqueraded = await routerCount("nat", "POSTROUTING");
  const proxy = await startProxy(`usrsctp://${SERVER_IP}:9000`, ["--udp-port=9899"]);
  try {
    await fetchThroughNat(proxy, hashes, masqueraded);
  } finally {
    await proxy.stop();
  }
});

Deno.test(`across a NAT that drops SCTP, a kernel proxy fetches ${FILES} files over UDP from a usrsctp server, sha256-identical`, async () => {
  const { root, hashes } = await setUp();
  // The kernel holds UDP 9899 in namespace server: this usrsctp stack takes 9898.
  const server = new Child([
    "run",
    "-P=server",
    "--no-check",
    "server/main.ts",
    "--transport=usrsctp",
    `--host=${SERVER_IP}`,
    "--port=9001",
    "--udp-port=9898",
    `--root=${root}`,
    "--streams=4",
  ], "server");
  // The same offload as the server's (see setUp), on the client side, whose kernel now sends
  // SCTP in UDP to a usrsctp peer: its requests must carry their checksums too.
  await ok("client", sctpOffloadOff("cp-client"));
  const masqueraded = await routerCount("nat", "POSTROUTING");
  let proxy: Awaited<ReturnType<typeof startProxy>> | undefined;
  try {
    await server.waitForLine(`"listening"`, 60_000);
    proxy = await startProxy(`kernel://${SERVER_IP}:9001?udp=9898`);
    await fetchThroughNat(proxy, hashes, masqueraded);
  } finally {
    await proxy?.stop();
    await server.kill("SIGTERM");
  }
});

Deno.test(`across a NAT that drops SCTP, a kernel proxy fetches ${FILES} files over UDP from a kernel-SCTP server, sha256-identical`, async () => {
  const { hashes } = await setUp();
  const masqueraded = await routerCount("nat", "POSTROUTING");
  const proxy = await startProxy(`kernel://${SERVER_IP}:9000?udp=9899`);
  try {
    await fetchThroughNat(proxy, hashes, masqueraded);
  } finally {
    await proxy.stop();
  }
});

Deno.test("a kernel-SCTP server asked for UDP where net.sctp.udp_port is 0 says what to run", async () => {
  await setUp();
  // Namespace `proxy` has SCTP over UDP off; -P=server may not write /proc/sys.
  const output = await run("proxy", [
    Deno.execPath(),
    "run",
    "-P=server",
    "--no-check",
    "server/main.ts",
    "--transport=kernel",
    "--host=127.0.0.1",
    "--port=9001",
    "--udp-encapsulation",
    "--udp-port=9899",
  ]);
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 1, stderr);
  assert.match(stderr, /net\.sctp\.udp_port is 0/);
  assert.ok(
    stderr.includes("run as root: `sysctl -w net.sctp.udp_port=9899 net.sctp.encap_port=9899`"),
    stderr,
  );
});
