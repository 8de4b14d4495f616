import assert from "node:assert/strict";
import { needs } from "../_permissions.ts";
import { connect, listen } from "../../mod.ts";
import { conformanceSuite } from "./_conformance.ts";

conformanceSuite({ transport: "tcpmux" });

Deno.test("tcpmux: one association carries more than 2 GiB (the read credit stays balanced)", {
  ignore: needs("read"),
}, async () => {
  const listener = listen("tcpmux", "127.0.0.1", 0);
  const accepted = listener.accept();
  const client = await connect("tcpmux", "127.0.0.1", listener.port);
  const server = await accepted;
  const message = new Uint8Array(256 * 1024);
  const count = 9000; // 2.2 GiB
  let received = 0;
  const receiving = (async () => {
    for (let i = 0; i < count; i++) received += (await server.receive())!.data.byteLength;
  })();
  const inFlight = new Set<Promise<void>>();
  for (let i = 0; i < count; i++) {
    const sending = client.send(i % 8, message).finally(() => inFlight.delete(sending));
    inFlight.add(sending);
    if (inFlight.size >= 32) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  await receiving;
  assert.equal(received, count * message.byteLength);
  await client.close();
  await server.close();
  await listener.close();
});
