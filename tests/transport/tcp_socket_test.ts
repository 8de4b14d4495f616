import assert from "node:assert/strict";
import { decodeSockaddr, encodeSockaddr } from "../../ffi/libc.ts";
import { SocketClosed, TcpListener, type TcpSocket } from "../../transport/tcp_socket.ts";
import { needs } from "../_permissions.ts";
import { readAll } from "../server/_fixtures.ts";

const ignore = needs("net", "ffi");

/** Writes all of `bytes` on `socket`. */
async function writeAll(socket: TcpSocket, bytes: Uint8Array) {
  for (let at = 0; at < bytes.byteLength;) at += await socket.write(bytes.subarray(at));
}

async function connected(listener: TcpListener, hostname = "127.0.0.1") {
  const [client, socket] = await Promise.all([
    Deno.connect({ hostname, port: listener.addr.port }),
    listener.accept(),
  ]);
  return { client, socket };
}

Deno.test(
  "a TcpListener's connection carries bytes both ways, whole, past a full send buffer, and ends with closeWrite",
  { ignore },
  async () => {
    using listener = TcpListener.listen({ hostname: "127.0.0.1", port: 0 });
    assert.equal(listener.addr.hostname, "127.0.0.1");
    assert.ok(listener.addr.port > 0);
    const { client, socket } = await connected(listener);
    try {
      assert.equal(socket.remoteAddr.hostname, "127.0.0.1");
      assert.equal(socket.remoteAddr.port, (client.localAddr as Deno.NetAddr).port);
      socket.setNoDelay(true);
      await client.write(new TextEncoder().encode("hello"));
      const got = new Uint8Array(16);
      assert.equal(await socket.read(got), 5);
      assert.equal(new TextDecoder().decode(got.subarray(0, 5)), "hello");
      // 16 MiB, more than the socket takes at once: the writer waits for the reader.
      const big = new Uint8Array(16 << 20).map((_, i) => (i * 7) & 0xff);
      const received = readAll(client);
      await writeAll(socket, big);
      socket.closeWrite();
      assert.deepEqual(await received, big);
      // Reading goes on after closeWrite; the client's close is the end.
      client.close();
      assert.equal(await socket.read(got), null);
    } finally {
      socket.close();
      try {
        client.close();
      } catch { /* closed above */ }
    }
  },
);

Deno.test(
  "close ends a read and an accept waiting on it with SocketClosed, and later calls alike",
  { ignore },
  async () => {
    const listener = TcpListener.listen({ hostname: "127.0.0.1", port: 0 });
    const { client, socket } = await connected(listener);
    const reading = socket.read(new Uint8Array(16));
    const accepting = listener.accept();
    socket.close();
    listener.close();
    await assert.rejects(reading, SocketClosed);
    await assert.rejects(accepting, SocketClosed);
    await assert.rejects(socket.write(new Uint8Array(1)), SocketClosed);
    assert.throws(() => socket.closeWrite(), SocketClosed);
    socket.close();
    listener.close();
    // The client sees the end.
    assert.equal(await client.read(new Uint8Array(16)), null);
    client.close();
  },
);

Deno.test(
  "a reset connection fails its write with ECONNRESET or EPIPE, by errno",
  { ignore },
  async () => {
    using listener = TcpListener.listen({ hostname: "127.0.0.1", port: 0 });
    const { client, socket } = await connected(listener);
    try {
      client.close();
      await assert.rejects(
        async () => {
          for (;;) await socket.write(new Uint8Array(64 * 1024));
        },
        (error: Error & { errno?: number }) => error.errno === 104 || error.errno === 32,
      );
    } finally {
      socket.close();
    }
  },
);

Deno.test(
  "two listeners share a port with reusePort, and a second one without it is refused",
  { ignore },
  () => {
    const first = TcpListener.listen({ hostname: "127.0.0.1", port: 0, reusePort: true });
    try {
      const port = first.addr.port;
      TcpListener.listen({ hostname: "127.0.0.1", port, reusePort: true }).close();
      assert.throws(
        () => TcpListener.listen({ hostname: "127.0.0.1", port }),
        /bind: Address already in use/,
      );
    } finally {
      first.close();
    }
  },
);

Deno.test("an IPv6 listener names its peers as Deno does", { ignore }, async () => {
  let listener: TcpListener;
  try {
    listener = TcpListener.listen({ hostname: "::1", port: 0 });
  } catch {
    return; // no IPv6 loopback on this machine
  }
  const { client, socket } = await connected(listener, "::1");
  assert.equal(listener.addr.hostname, "::1");
  assert.equal(socket.remoteAddr.hostname, (client.localAddr as Deno.NetAddr).hostname);
  socket.close();
  client.close();
  listener.close();
});

Deno.test("decodeSockaddr reads back what encodeSockaddr wrote, IPv6 compressed", () => {
  const cases: [string, string][] = [
    ["10.1.2.3", "10.1.2.3"],
    ["::1", "::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["fe80:0:0:0:0:0:0:abcd", "fe80::abcd"],
    ["::ffff:7f00:1", "::ffff:127.0.0.1"],
    ["::ffff:10.0.0.1", "::ffff:10.0.0.1"],
    ["::", "::"],
  ];
  for (const [given, written] of cases) {
    assert.deepEqual(decodeSockaddr(encodeSockaddr(given, 8080)), {
      hostname: written,
      port: 8080,
    });
  }
  for (const bad of ["::ffff:1.2.3.300", "1:2:3:4:5:6:7:8:9", "::1.2", "fe80::g", "12345::"]) {
    assert.throws(() => encodeSockaddr(bad, 80), /is not an IP(v6)? address/, bad);
  }
});
