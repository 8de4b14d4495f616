import assert from "node:assert/strict";
import { acceptEach } from "../../transport/tcp_accept.ts";
import { needs } from "../_permissions.ts";

Deno.test(
  "acceptEach hands every connection to serve, and ends once stopping and the listener is closed",
  { ignore: needs("net") },
  async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let stopping = false;
    const served: Deno.TcpConn[] = [];
    const loop = acceptEach(listener, () => stopping, (conn) => served.push(conn), (error) => {
      throw error;
    });
    const clients = await Promise.all(
      [0, 1, 2].map(() => Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port })),
    );
    while (served.length < clients.length) await new Promise((resolve) => setTimeout(resolve, 5));
    // Bytes pass both ways on a connection it handed over.
    await clients[0].write(new Uint8Array([1, 2, 3]));
    const got = new Uint8Array(3);
    assert.equal(await served[0].read(got), 3);
    assert.deepEqual(got, new Uint8Array([1, 2, 3]));
    stopping = true;
    listener.close();
    await loop;
    for (const conn of [...clients, ...served]) conn.close();
  },
);

Deno.test("acceptEach reports a failed accept and goes on accepting", async () => {
  const error = new Error("accept: too many open files");
  const conn = { setNoDelay() {}, close() {} } as unknown as Deno.TcpConn;
  const results: (() => Promise<Deno.TcpConn>)[] = [
    () => Promise.reject(error),
    () => Promise.reject(error),
    () => Promise.resolve(conn),
  ];
  let stopping = false;
  const listener = {
    accept: () => {
      const next = results.shift();
      if (next) return next();
      stopping = true;
      return Promise.reject(new Error("closed"));
    },
  } as unknown as Deno.TcpListener;
  const failures: unknown[] = [];
  const served: Deno.TcpConn[] = [];
  await acceptEach(listener, () => stopping, (c) => served.push(c), (e) => failures.push(e));
  assert.deepEqual(failures, [error, error]);
  assert.deepEqual(served, [conn]);
});

Deno.test("acceptEach closes and skips a connection reset before it could be served", async () => {
  let closed = 0;
  const reset = {
    setNoDelay() {
      throw new Deno.errors.ConnectionReset("reset");
    },
    close() {
      closed++;
    },
  } as unknown as Deno.TcpConn;
  let stopping = false;
  let accepted = 0;
  const listener = {
    accept: () => {
      if (accepted++ === 0) return Promise.resolve(reset);
      stopping = true;
      return Promise.reject(new Error("closed"));
    },
  } as unknown as Deno.TcpListener;
  const served: Deno.TcpConn[] = [];
  await acceptEach(listener, () => stopping, (c) => served.push(c), (e) => {
    throw e;
  });
  assert.equal(closed, 1);
  assert.deepEqual(served, []);
});
