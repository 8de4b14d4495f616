/**
 * One check both SCTP drivers share: Workers sending whole messages through
 * an association's handle (`SocketDriver.send`, as the server's per-stream
 * senders do), each on its own stream, arrive whole, unmixed and in order.
 */

import assert from "node:assert/strict";
import type { Association } from "../../mod.ts";
import type { SharedAssociation } from "../../transport/types.ts";

/** What {@link assertWorkersSendWhole} sends, and through which driver. */
export interface WorkersSending {
  /** The driver's module, relative to transport/, and its exported driver's name. */
  driver: { module: string; name: string };
  /** The sending end (the client) and the receiving end. */
  client: Association;
  server: Association;
  workers: number;
  perWorker: number;
  size: number;
}

/**
 * Each Worker sends `perWorker` messages of `size` bytes on stream `worker`:
 * u32 worker, u32 sequence, then every byte (worker * 31 + sequence) & 0xff.
 * Checks every message at the server, then lets go of the handle.
 */
export async function assertWorkersSendWhole(w: WorkersSending): Promise<void> {
  const code = `
    import { ${w.driver.name} as driver } from ${
    JSON.stringify(import.meta.resolve(`../../transport/${w.driver.module}`))
  };
    self.onmessage = ({ data: { handle, worker, count, size } }) => {
      const message = new Uint8Array(size);
      for (let sequence = 0; sequence < count; sequence++) {
        message.fill((worker * 31 + sequence) & 0xff);
        new DataView(message.buffer).setUint32(0, worker);
        new DataView(message.buffer).setUint32(4, sequence);
        driver.send(handle, worker, Deno.UnsafePointer.of(message), size);
      }
      self.postMessage("done");
    };`;
  // Every association is a SharedAssociation; the public type leaves the handle out.
  const client = w.client as SharedAssociation;
  const handle = client.handle();
  const workers = Array.from(
    { length: w.workers },
    () => new Worker(`data:text/javascript,${encodeURIComponent(code)}`, { type: "module" }),
  );
  try {
    const done = workers.map((worker) => new Promise((resolve) => (worker.onmessage = resolve)));
    workers.forEach((worker, index) =>
      worker.postMessage({ handle, worker: index, count: w.perWorker, size: w.size })
    );
    const next = new Array(w.workers).fill(0);
    for (let n = 0; n < w.workers * w.perWorker; n++) {
      const message = await w.server.receive();
      assert.ok(message, `association ended after ${n} messages`);
      assert.equal(message.data.byteLength, w.size);
      const view = new DataView(message.data.buffer, message.data.byteOffset);
      const worker = view.getUint32(0);
      const sequence = view.getUint32(4);
      assert.equal(message.stream, worker);
      assert.equal(sequence, next[worker]++, `worker ${worker}'s messages out of order`);
      const fill = (worker * 31 + sequence) & 0xff;
      assert.ok(message.data.subarray(8).every((b) => b === fill), "message bytes mixed");
    }
    await Promise.all(done);
  } finally {
    workers.forEach((worker) => worker.terminate());
    client.releaseHandle();
  }
}
