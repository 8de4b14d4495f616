import assert from "node:assert/strict";
import { encodeHello } from "../../transport/tcpmux.ts";
import { needs } from "../_permissions.ts";
import { connect, listen } from "../../mod.ts";
import { conformanceSuite } from "./_conformance.ts";

conformanceSuite({ transport: "tcpmux" });

/** Collects a listener's accept errors; `next()` waits for the next one. */
function acceptErrors() {
  const errors: Error[] = [];
  let wake: (() => void) | undefined;
  return {
    onAcceptError(error: Error) {
      errors.push(error);
      wake?.();
    },
    async next(): Promise<Error> {
      while (errors.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      return errors.shift()!;
    },
  };
}

/** Reads exactly `length` bytes, or fewer if the peer closes first. */
async function readBytes(conn: Deno.Conn, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = await conn.read(out.subarray(got));
    if (n === null) break;
    got += n;
  }
  return out.subarray(0, got);
}

Deno.test(
  "tcpmux: peers that connect and say nothing do not hold up the accept of a real one",
  { ignore: needs("read", "net") },
  async () => {
    // The silent peers' time is long: only accepting them concurrently lets the real one in.
    const listener = listen("tcpmux", "127.0.0.1", 0, { handshakeTimeout: 600 });
    const silent = await Promise.all(
      [1, 2, 3].map(() => Deno.connect({ hostname: "127.0.0.1", port: listener.port })),
    );
    try {
      const accepted = listener.accept();
      const client = await connect("tcpmux", "127.0.0.1", listener.port);
      const server = await accepted;
      await client.send(3, new TextEncoder().encode("served"));
      assert.equal(new TextDecoder().decode((await server.receive())?.data), "served");

      // The silent ones were greeted and still wait: one speaks up and is accepted too.
      for (const conn of silent) assert.deepEqual(await readBytes(conn, 8), encodeHello(8, 8));
      const late = listener.accept();
      await silent[1].write(encodeHello(2, 2));
      const third = await late;
      assert.equal(third.outboundStreams, 2);
      await Promise.all([client.close(), server.close(), third.abort()]);
    } finally {
      for (const conn of silent) conn.close();
      await listener.close();
    }
  },
);

Deno.test(
  "tcpmux: a hello asking for 0 streams is refused with a reason, and others are still accepted",
  { ignore: needs("read", "net") },
  async () => {
    const refused = acceptErrors();
    const listener = listen("tcpmux", "127.0.0.1", 0, refused);
    try {
      for (const [wanted, allowed] of [[0, 8], [8, 0]]) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
        await conn.write(encodeHello(wanted, allowed));
        // Our hello, then the end: the listener closed the connection.
        assert.equal((await readBytes(conn, 9)).byteLength, 8);
        conn.close();
        assert.match(
          (await refused.next()).message,
          new RegExp(
            `^tcpmux: peer's hello asks for ${wanted} outgoing and allows ${allowed} incoming ` +
              "streams; each must be at least 1 \\(peer 127\\.0\\.0\\.1:\\d+\\)$",
          ),
        );
      }

      const accepted = listener.accept();
      const client = await connect("tcpmux", "127.0.0.1", listener.port);
      const server = await accepted;
      assert.equal(server.outboundStreams, 8);
      await Promise.all([client.close(), server.close()]);
    } finally {
      await listener.close();
    }
  },
);

Deno.test(
  "tcpmux: a peer that sends no hello within handshakeTimeout is closed with a reason",
  { ignore: needs("read", "net") },
  async () => {
    const refused = acceptErrors();
    const listener = listen("tcpmux", "127.0.0.1", 0, { handshakeTimeout: 1, ...refused });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
    try {
      assert.equal((await readBytes(conn, 9)).byteLength, 8, "greeted, then closed");
      assert.match(
        (await refused.next()).message,
        /^tcpmux: peer 127\.0\.0\.1:\d+ sent no hello within 1 s$/,
      );
    } finally {
      conn.close();
      await listener.close();
    }
  },
);

Deno.test(
  "tcpmux: beyond 256 peers waiting to send their hello, the oldest is dropped with a reason",
  { ignore: needs("read", "net") },
  async () => {
    const refused = acceptErrors();
    const listener = listen("tcpmux", "127.0.0.1", 0, { handshakeTimeout: 600, ...refused });
    const conns: Deno.Conn[] = [];
    try {
      for (let i = 0; i < 257; i++) {
        conns.push(await Deno.connect({ hostname: "127.0.0.1", port: listener.port }));
      }
      const oldest = conns[0].localAddr as Deno.NetAddr;
      assert.equal(
        (await refused.next()).message,
        `tcpmux: peer 127.0.0.1:${oldest.port} dropped before its hello: ` +
          "256 peers were waiting to finish theirs",
      );
      assert.equal((await readBytes(conns[0], 9)).byteLength, 8, "greeted, then closed");
      // The newest still waits, and is accepted once it speaks.
      assert.equal((await readBytes(conns[256], 8)).byteLength, 8);
      const accepted = listener.accept();
      await conns[256].write(encodeHello(1, 1));
      await (await accepted).abort();
    } finally {
      for (const conn of conns) conn.close();
      await listener.close();
    }
  },
);

Deno.test(
  "tcpmux: a listener closed while peers wait for their hello closes them",
  { ignore: needs("read", "net") },
  async () => {
    const listener = listen("tcpmux", "127.0.0.1", 0, { handshakeTimeout: 600 });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
    try {
      assert.equal((await readBytes(conn, 8)).byteLength, 8);
      await listener.close();
      assert.equal(await conn.read(new Uint8Array(1)), null);
    } finally {
      conn.close();
    }
  },
);

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
