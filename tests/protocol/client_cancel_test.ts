import assert from "node:assert/strict";
import { needs } from "../_permissions.ts";
import { FlowClient, startServer } from "../../mod.ts";

// A server on tcpmux with a file of several runs: written to disk, served over a socket.
const ignore = needs("read", "write", "net", "ffi");

Deno.test(
  "a body cancelled by its reader ends that response only: the association goes on",
  { ignore },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-cancel-" });
    const big = new Uint8Array(600_000).map((_, i) => i % 251);
    await Deno.writeFile(`${root}/big.bin`, big);
    await Deno.writeTextFile(`${root}/small.txt`, "small\n");
    await using server = await startServer({
      transport: "tcpmux",
      port: 0,
      root,
      logLevel: "warn",
      streams: 2,
      runBytes: 65536,
    });
    await using client = await FlowClient.connect(
      { transport: "tcpmux", host: "127.0.0.1", port: server.port },
      { streams: 2 },
    );
    const other = client.request("/big.bin");
    const response = await client.request("/big.bin");
    const reader = response.body.getReader();
    await reader.read();
    await reader.cancel();
    // The rest of the cancelled body may still arrive; it must not end the association.
    assert.deepEqual(await (await other).bytes(), big);
    const small = await client.request("/small.txt");
    assert.equal(new TextDecoder().decode(await small.bytes()), "small\n");
    assert.equal(client.inFlight, 0);
    await Deno.remove(root, { recursive: true });
  },
);
