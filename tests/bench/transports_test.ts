/**
 * The usrsctp C anchor of `deno task bench transports` (built from
 * `scripts/bench/anchor/oneway_usrsctp.c`): its server counts what its own
 * client and the Deno usrsctp transport send, and the host smoke run
 * measures it beside usrsctp and prints Deno / C. Rates are printed, never
 * asserted.
 */

import assert from "node:assert/strict";
import { connect } from "../../mod.ts";
import { freeUdpPort } from "../../scripts/hardening/stack.ts";
import { buildAnchor } from "../../scripts/bench/transports.ts";
import { benchIgnored, runBench } from "./_bench.ts";

/** Its own stack's SCTP port: no other process can hold it. */
const SCTP_PORT = 9734;

/** Starts the anchor's server on `udpPort`; resolves once it is ready. */
async function startServer(binary: string, udpPort: number): Promise<Deno.ChildProcess> {
  const server = new Deno.Command(binary, {
    args: ["server", "127.0.0.1", String(SCTP_PORT), String(udpPort)],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // Read straight from stdout (a pipeThrough would keep it locked), so it can be cancelled.
  const reader = server.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  assert.equal(new TextDecoder().decode(value).trim(), "ready");
  return server;
}

Deno.test(
  "the usrsctp C anchor's server acknowledges every message and byte sent to it",
  { ignore: benchIgnored },
  async () => {
    const binary = await buildAnchor("oneway_usrsctp", ["-lusrsctp", "-lpthread"]);
    // Not localUdpPort(): an earlier test file may have started this process's usrsctp
    // stack, which holds that port; the C server needs a port of its own.
    const udpPort = await freeUdpPort();
    const server = await startServer(binary, udpPort);
    try {
      // Its own client checks the acknowledgement and fails on a mismatch.
      const client = await new Deno.Command(binary, {
        args: ["client", "127.0.0.1", String(SCTP_PORT), String(udpPort), "1000", "50"],
      }).output();
      const stderr = new TextDecoder().decode(client.stderr);
      assert.equal(client.code, 0, stderr);
      assert.ok(Number(new TextDecoder().decode(client.stdout)) > 0);

      // The Deno transport, with its own socket options, against the C server.
      const association = await connect("usrsctp", "127.0.0.1", SCTP_PORT, { udpPort });
      try {
        const message = new Uint8Array(70_000).fill(7);
        for (let i = 0; i < 3; i++) await association.send(0, message);
        await association.send(0, new Uint8Array(1));
        const reply = await association.receive();
        assert.equal(reply?.data.byteLength, 16);
        const counts = new Float64Array(reply.data.slice().buffer);
        assert.deepEqual([...counts], [3, 3 * message.byteLength]);
      } finally {
        await association.close();
      }
    } finally {
      server.kill();
      await server.status;
      await server.stdout.cancel();
    }
  },
);

Deno.test(
  "bench transports --where host --quick measures usrsctp against its C anchor, and in the server's direction",
  { ignore: benchIgnored },
  async () => {
    const { code, stdout, stderr } = await runBench(["transports", "--where", "host", "--quick"]);
    console.log(stdout.trim());
    assert.equal(code, 0, `bench transports failed:\n${stderr.slice(-3000)}`);
    for (const size of ["64 KiB", "1 KiB"]) {
      for (const transport of ["usrsctp", "usrsctp-down", "c-usrsctp", "tcpmux", "tcp"]) {
        assert.match(stdout, new RegExp(`^host\\s+${transport}\\s+${size}`, "m"), transport);
      }
      assert.match(stdout, new RegExp(`^  usrsctp / C usrsctp, ${size}: \\d`, "m"));
    }
    const results = /results: (\S+\.json)/.exec(stdout)?.[1];
    assert.ok(results, "the run names its results file");
    await Deno.remove(results);
  },
);
