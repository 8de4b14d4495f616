/**
 * usrsctp ↔ kernel SCTP across lab namespaces: a proxy host without kernel
 * SCTP reaches a server that uses it (RFC 6951 UDP encapsulation). Runs only
 * inside the User-Mode Linux lab (started by tests/transport/kernel_test.ts).
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { sha256 } from "./_fixtures.ts";
import { sctpOffloadOff } from "../../scripts/lab/lab.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const SERVER_IP = Deno.env.get("LAB_SERVER_IP") ?? "10.10.2.2";

function inNamespace(namespace: string, args: string[]) {
  return new Deno.Command("ip", {
    args: ["netns", "exec", namespace, ...args],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  });
}

Deno.test("a usrsctp client fetches from a kernel SCTP server in another namespace over UDP encapsulation", async () => {
  const root = await Deno.makeTempDir({ dir: `${REPO}/.lab`, prefix: "interop-" });
  const body = new Uint8Array(3_000_000);
  for (let at = 0; at < body.byteLength; at += 65536) {
    crypto.getRandomValues(body.subarray(at, at + 65536));
  }
  await Deno.writeFile(`${root}/big.bin`, body);
  const sysctl = await inNamespace("server", [
    "sysctl",
    "-w",
    "net.sctp.udp_port=9899",
    "net.sctp.encap_port=9899",
  ]).output();
  assert.equal(sysctl.code, 0);
  // Without this the kernel sends some SCTP-in-UDP packets with no CRC32c over the veth and
  // usrsctp drops them (docs/DEPLOY.md, "Why usrsctp ↔ kernel was slow").
  const offload = await inNamespace("server", sctpOffloadOff("ps-server")).output();
  assert.equal(offload.code, 0, new TextDecoder().decode(offload.stderr));
  const server = inNamespace("server", [
    Deno.execPath(),
    "run",
    "-P=server",
    "--no-check",
    "server/main.ts",
    "--transport=kernel",
    `--host=${SERVER_IP}`,
    "--port=9000",
    `--root=${root}`,
    "--log-level=warn",
  ]).spawn();
  try {
    let fetched: Deno.CommandOutput | undefined;
    // The server needs a moment to start; retry until it answers.
    for (let attempt = 0; attempt < 20; attempt++) {
      fetched = await inNamespace("client", [
        Deno.execPath(),
        "run",
        "-P=client",
        "--no-check",
        "scripts/get.ts",
        `usrsctp://${SERVER_IP}:9000/big.bin`,
        "--udp-port=9899",
        `--output=${root}/got.bin`,
      ]).output();
      if (fetched.code === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    assert.equal(fetched?.code, 0, new TextDecoder().decode(fetched?.stderr));
    assert.equal(sha256(await Deno.readFile(`${root}/got.bin`)), sha256(body));
  } finally {
    server.kill();
    await server.status;
    await Deno.remove(root, { recursive: true });
  }
});
