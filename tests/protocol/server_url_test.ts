import assert from "node:assert/strict";
import { FlowClient, parseServerUrl } from "../../mod.ts";
import { Child, freeUdpPort } from "../proxy/_helpers.ts";
import { needs } from "../_permissions.ts";

Deno.test("parseServerUrl() takes the udp key out of the path and keeps the rest of the query as written", () => {
  assert.deepEqual(parseServerUrl("kernel://10.0.0.2:9000/a.css?v=1%202&udp=9899"), {
    transport: "kernel",
    host: "10.0.0.2",
    port: 9000,
    udpPort: 9899,
    path: "/a.css?v=1%202",
  });
  assert.deepEqual(parseServerUrl("kernel://[::1]:9000?udp=9899"), {
    transport: "kernel",
    host: "::1",
    port: 9000,
    udpPort: 9899,
    path: "/",
  });
  assert.deepEqual(parseServerUrl("usrsctp://h:9000/x?q=a+b"), {
    transport: "usrsctp",
    host: "h",
    port: 9000,
    path: "/x?q=a+b",
  });
});

Deno.test("parseServerUrl() refuses a udp key that is not a UDP port, naming it", () => {
  for (const bad of ["0", "65536", "x", "", "98.5"]) {
    assert.throws(
      () => parseServerUrl(`kernel://h:9000/?udp=${bad}`),
      (error: Error) => error instanceof TypeError && error.message.includes(`bad udp=${bad}`),
    );
  }
});

Deno.test(
  "a usrsctp URL's udp key picks the server's UDP port over the udpPort option",
  { ignore: needs("read", "net", "ffi", "run") },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-udp-key-" });
    await Deno.writeTextFile(`${root}/x.txt`, "over the port the URL named\n");
    const udpPort = await freeUdpPort();
    const server = new Child([
      "run",
      "-P=server",
      "--no-check",
      "server/main.ts",
      ...["--transport", "usrsctp", "--port", "0", "--udp-port", String(udpPort), "--root", root],
    ]);
    try {
      const port = Number(/"port":(\d+)/.exec(await server.waitForLine(`"listening"`))![1]);
      // The option names a port nothing listens on: only the URL's key can reach the server.
      await using client = await FlowClient.connect(
        `usrsctp://127.0.0.1:${port}?udp=${udpPort}`,
        { udpPort: await freeUdpPort() },
      );
      const response = await client.request("/x.txt");
      assert.equal(response.status, 200);
      assert.equal(
        new TextDecoder().decode(await response.bytes()),
        "over the port the URL named\n",
      );
    } finally {
      await server.kill("SIGTERM");
      await Deno.remove(root, { recursive: true });
    }
  },
);
