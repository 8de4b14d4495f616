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

/** A plain TCP server that does `serve` with each connection; `port`, and `close` to stop. */
function rawServer(serve: (conn: Deno.Conn) => Promise<void>) {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const conn of server) {
      conns.push(conn);
      serve(conn).catch(() => {});
    }
  })();
  return {
    port: (server.addr as Deno.NetAddr).port,
    async close() {
      server.close();
      await serving;
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Closed by `serve`.
        }
      }
    },
  };
}

/** Connects with each data path at once and checks every one fails with a message matching `says`. */
async function rejectsOnBothPaths(
  port: number,
  options: { handshakeTimeout?: number },
  says: RegExp,
) {
  await Promise.all(
    (["event-loop", "workers"] as const).map((dataPath) =>
      assert.rejects(
        connect("tcpmux", "127.0.0.1", port, { ...options, dataPath }),
        (error: Error) => {
          assert.match(error.message, says, dataPath);
          return true;
        },
      )
    ),
  );
}

Deno.test(
  "tcpmux: a client whose server sends no hello gives up after handshakeTimeout on either data path, and the event loop runs meanwhile",
  { ignore: needs("read", "net") },
  async () => {
    const server = rawServer(() => new Promise(() => {}));
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 50);
    try {
      const start = performance.now();
      await rejectsOnBothPaths(
        server.port,
        { handshakeTimeout: 1 },
        /^tcpmux: peer sent no hello within 1 s$/,
      );
      const took = performance.now() - start;
      assert.ok(took >= 950 && took < 3000, `gave up after ${took} ms`);
      assert.ok(ticks >= 10, `the event loop ran only ${ticks} timer ticks while connecting`);
    } finally {
      clearInterval(ticker);
      await server.close();
    }
  },
);

Deno.test(
  "tcpmux: a client whose server closes before its hello, or sends a wrong one, fails with the reason on either data path",
  { ignore: needs("read", "net") },
  async () => {
    // It reads the client's hello first: closing with it unread would send a reset instead.
    const closing = rawServer(async (conn) => {
      await readBytes(conn, 8);
      conn.close();
    });
    const wrong = rawServer(async (conn) => {
      await conn.write(new TextEncoder().encode("HTTP/1.1"));
    });
    const refusing = rawServer(async (conn) => {
      await conn.write(encodeHello(0, 8));
    });
    try {
      await rejectsOnBothPaths(closing.port, {}, /^tcpmux: peer closed before its hello$/);
      await rejectsOnBothPaths(
        wrong.port,
        {},
        /^tcpmux: peer is not a tcpmux endpoint \(bad hello\)$/,
      );
      await rejectsOnBothPaths(refusing.port, {}, /asks for 0 outgoing and allows 8 incoming/);
    } finally {
      await Promise.all([closing.close(), wrong.close(), refusing.close()]);
    }
  },
);
