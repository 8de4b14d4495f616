/**
 * The conformance suite every transport passes: the same real-socket tests,
 * registered once per transport (hono's `common.case.test.ts` pattern).
 */

import assert from "node:assert/strict";
import { needs } from "../_permissions.ts";
import { createHash } from "node:crypto";
import { connect, listen, MappedFile } from "../../mod.ts";
import { prng } from "../../scripts/bench/common.ts";
import type { Association, AssociationOptions, Listener, TransportName } from "../../mod.ts";

/** Where and how to run the suite for one transport. */
export interface ConformanceTarget {
  transport: TransportName;
  /** What the test names start with. @default the transport's name */
  name?: string;
  /** Address the listener binds and the client connects to. @default "127.0.0.1" */
  host?: string;
  /** Server-side address when it differs from the client's view (lab namespaces). */
  options?: AssociationOptions;
  /** Port for the listener; 0 picks a free one. @default 0 */
  port?: number;
  /**
   * Whether a client on the event-loop data path connects on the event loop,
   * with no Worker (usrsctp has no nonblocking connect: its clients connect
   * in an I/O Worker on either data path). @default true
   */
  connectsOnEventLoop?: boolean;
}

const MESSAGE_COUNT = 2000;
const STREAMS = 8;
const MAX_MESSAGE = 256 * 1024;

/** The workload: message i goes on `stream` with `size` bytes (log-uniform 1 B..256 KiB, both ends included). */
export function workload(count = MESSAGE_COUNT, streams = STREAMS) {
  const random = prng(42);
  return Array.from({ length: count }, (_, i) => {
    const size = i === 0
      ? 1
      : i === 1
      ? MAX_MESSAGE
      : Math.max(1, Math.round(Math.exp(random() * Math.log(MAX_MESSAGE))));
    return { index: i, stream: Math.floor(random() * streams), size };
  });
}

/** Bytes of message `index`: its index up front, then pseudo-random content. */
export function messageBytes(index: number, size: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  const random = prng(index + 1);
  for (let i = 0; i < size; i += 4) {
    const word = (random() * 4294967296) >>> 0;
    bytes[i] = word;
    if (i + 1 < size) bytes[i + 1] = word >>> 8;
    if (i + 2 < size) bytes[i + 2] = word >>> 16;
    if (i + 3 < size) bytes[i + 3] = word >>> 24;
  }
  return bytes;
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

async function pair(target: ConformanceTarget, serverOptions?: AssociationOptions) {
  const host = target.host ?? "127.0.0.1";
  const listener = listen(
    target.transport,
    host,
    target.port ?? 0,
    serverOptions ?? target.options,
  );
  const accepted = listener.accept();
  const client = await connect(target.transport, host, listener.port, target.options);
  const server = await accepted;
  return { listener, client, server };
}

/** How many Workers `body` starts (every `new Worker` is counted while it runs). */
async function workersStartedBy<T>(
  body: () => Promise<T>,
): Promise<{ result: T; workers: number }> {
  const original = globalThis.Worker;
  let workers = 0;
  globalThis.Worker = class extends original {
    constructor(...args: ConstructorParameters<typeof Worker>) {
      super(...args);
      workers++;
    }
  };
  try {
    return { result: await body(), workers };
  } finally {
    globalThis.Worker = original;
  }
}

async function closeAll(listener: Listener, ...associations: Association[]) {
  await Promise.all(associations.map((a) => a.close()));
  await listener.close();
}

/** Registers the conformance tests for `target` with `Deno.test`. */
export function conformanceSuite(target: ConformanceTarget): void {
  const name = target.name ?? target.transport;
  // The I/O Workers need read; the mmap test writes a file.
  const ignore = needs("read", "write");

  Deno.test(
    `${name}: 2,000 messages of 1 B to 256 KiB on 8 streams arrive whole and in per-stream order, also into recycled memory`,
    { ignore },
    async () => {
      const { listener, client, server } = await pair(target);
      try {
        assert.equal(client.outboundStreams, STREAMS);
        assert.equal(server.inboundStreams, STREAMS);
        const plan = workload();
        const expected = Array.from({ length: STREAMS }, () => [] as string[]);
        for (const m of plan) expected[m.stream].push(sha256(messageBytes(m.index, m.size)));

        const received = Array.from({ length: STREAMS }, () => [] as string[]);
        const receiving = (async () => {
          for (let n = 0; n < plan.length; n++) {
            const message = await server.receive();
            assert.ok(message, `association ended after ${n} messages`);
            received[message.stream].push(sha256(message.data));
            // Given back, its memory may carry a later message: those must still arrive intact.
            server.recycle(message.data);
          }
        })();
        // Keep a bounded number of sends in flight, as a real sender would.
        const inFlight = new Set<Promise<void>>();
        for (const m of plan) {
          const sending = client.send(m.stream, messageBytes(m.index, m.size))
            .finally(() => inFlight.delete(sending));
          inFlight.add(sending);
          if (inFlight.size >= 64) await Promise.race(inFlight);
        }
        await Promise.all(inFlight);
        await receiving;
        for (let s = 0; s < STREAMS; s++) {
          assert.deepEqual(received[s], expected[s], `stream ${s} differs`);
        }
      } finally {
        await closeAll(listener, client, server);
      }
    },
  );

  Deno.test(`${name}: messages flow both ways and the server sees the client's stream ids`, {
    ignore,
  }, async () => {
    const { listener, client, server } = await pair(target);
    try {
      await client.send(5, new TextEncoder().encode("ping"));
      const request = await server.receive();
      assert.equal(request?.stream, 5);
      assert.equal(new TextDecoder().decode(request?.data), "ping");
      await server.send(request!.stream, new TextEncoder().encode("pong"));
      const reply = await client.receive();
      assert.equal(reply?.stream, 5);
      assert.equal(new TextDecoder().decode(reply?.data), "pong");
    } finally {
      await closeAll(listener, client, server);
    }
  });

  Deno.test(
    `${name}: stream counts are negotiated down to what the peer allows`,
    { ignore },
    async () => {
      const { listener, client, server } = await pair(target, { ...target.options, streams: 3 });
      try {
        assert.equal(client.outboundStreams, 3);
        assert.equal(server.outboundStreams, 3);
        await assert.rejects(client.send(3, new Uint8Array(1)), RangeError);
      } finally {
        await closeAll(listener, client, server);
      }
    },
  );

  Deno.test(
    `${name}: a message sent from an mmap'd file region arrives byte-identical`,
    { ignore },
    async () => {
      const path = await Deno.makeTempFile({ prefix: "flowsched-mmap-" });
      const content = messageBytes(7, 300_000);
      await Deno.writeFile(path, content);
      using file = MappedFile.open(path);
      const { listener, client, server } = await pair(target);
      try {
        await client.sendFrom(2, file.pointerAt(1000), 200_000);
        const message = await server.receive();
        assert.equal(message?.stream, 2);
        assert.equal(sha256(message!.data), sha256(content.subarray(1000, 201_000)));
      } finally {
        await closeAll(listener, client, server);
        await Deno.remove(path);
      }
    },
  );

  Deno.test(`${name}: a peer abort is seen as an error, not a hang`, { ignore }, async () => {
    const { listener, client, server } = await pair(target);
    try {
      await client.send(0, new Uint8Array(10));
      assert.ok(await server.receive());
      await server.abort();
      await assert.rejects(client.receive(), (error: Error) => {
        assert.match(error.message, /reset|abort|closed|refused|pipe/i);
        return true;
      });
      await assert.rejects(client.send(0, new Uint8Array(10)));
    } finally {
      await closeAll(listener, client, server);
    }
  });

  Deno.test(`${name}: an orderly close ends the peer's receive with null`, { ignore }, async () => {
    const { listener, client, server } = await pair(target);
    try {
      await client.send(1, new Uint8Array([1, 2, 3]));
      await client.close();
      assert.deepEqual((await server.receive())?.data, new Uint8Array([1, 2, 3]));
      assert.equal(await server.receive(), null);
    } finally {
      await closeAll(listener, client, server);
    }
  });

  Deno.test(
    `${name}: a message longer than maxMessageSize arrives cut and marked, and the association goes on`,
    { ignore },
    async () => {
      const limit = 4096;
      const { listener, client, server } = await pair(target, {
        ...target.options,
        maxMessageSize: limit,
      });
      try {
        const sizes = [100_000, 10, MAX_MESSAGE, limit, limit + 1, 2];
        const sent = sizes.map((size, i) => messageBytes(i, size));
        for (const [i, data] of sent.entries()) await client.send(i % STREAMS, data);
        for (const [i, data] of sent.entries()) {
          const message = await server.receive();
          assert.ok(message, `association ended before message ${i}`);
          assert.equal(message.stream, i % STREAMS);
          assert.equal(message.truncated, data.byteLength > limit ? true : undefined);
          assert.equal(sha256(message.data), sha256(data.subarray(0, limit)), `message ${i}`);
        }
      } finally {
        await closeAll(listener, client, server);
      }
    },
  );

  Deno.test(
    `${name}: sends to a peer that stops reading fail after sendTimeout, with the reason`,
    { ignore },
    async () => {
      const { listener, client, server } = await pair(target, {
        ...target.options,
        sendTimeout: 1,
      });
      try {
        // The client never calls receive: once its read credit and the socket
        // buffers are full, nothing the server sends goes out any more.
        const chunk = new Uint8Array(64 * 1024);
        const says = (error: Error) => {
          assert.match(error.message, /the peer took no message for 1 s \(sendTimeout\)/);
          return true;
        };
        await assert.rejects(
          (async () => {
            for (;;) await server.send(0, chunk);
          })(),
          says,
        );
        await assert.rejects(server.receive(), says);
      } finally {
        await closeAll(listener, client, server);
      }
    },
  );

  Deno.test(
    `${name}: a listener at maxAssociations sends one more its refusal and closes it, and admits again once one closes`,
    { ignore },
    async () => {
      const refused: Error[] = [];
      const host = target.host ?? "127.0.0.1";
      const listener = listen(target.transport, host, target.port ?? 0, {
        ...target.options,
        maxAssociations: 1,
        refusal: new TextEncoder().encode("go away"),
        onAcceptError: (error) => refused.push(error),
      });
      try {
        const accepted = listener.accept();
        const first = await connect(target.transport, host, listener.port, target.options);
        const server = await accepted;
        const extra = await connect(target.transport, host, listener.port, target.options);
        const refusal = await extra.receive();
        assert.equal(refusal?.stream, 0);
        assert.equal(new TextDecoder().decode(refusal?.data), "go away");
        assert.equal(await extra.receive(), null);
        await extra.close();
        for (const deadline = Date.now() + 10_000; refused.length === 0;) {
          assert.ok(Date.now() < deadline, "the refusal was not reported");
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        assert.equal(refused[0].message, "association refused: 1 are open (maxAssociations)");

        await Promise.all([first.close(), server.close()]);
        const again = listener.accept();
        const next = await connect(target.transport, host, listener.port, target.options);
        await next.send(1, new Uint8Array([7]));
        const admitted = await again;
        assert.deepEqual((await admitted.receive())?.data, new Uint8Array([7]));
        await Promise.all([next.close(), admitted.close()]);
      } finally {
        await listener.close();
      }
    },
  );

  Deno.test(
    target.connectsOnEventLoop === false
      ? `${name}: a client connects on either data path, in its I/O Workers`
      : `${name}: a client connects on either data path, on the event loop's with no Worker`,
    { ignore },
    async () => {
      const host = target.host ?? "127.0.0.1";
      const listener = listen(target.transport, host, target.port ?? 0, target.options);
      try {
        for (const dataPath of ["event-loop", "workers"] as const) {
          const accepted = listener.accept();
          const { result: client, workers } = await workersStartedBy(() =>
            connect(target.transport, host, listener.port, { ...target.options, dataPath })
          );
          const server = await accepted;
          if (target.connectsOnEventLoop !== false) {
            // In Workers: the one that connected goes on as the writer, and a reader. (The
            // server's end, on the event loop, starts none; usrsctp's would be counted too.)
            const expected = dataPath === "event-loop" ? 0 : 2;
            assert.equal(workers, expected, `Workers started to connect on the ${dataPath} path`);
          }
          await client.send(1, new TextEncoder().encode(dataPath));
          const request = await server.receive();
          assert.equal(new TextDecoder().decode(request?.data), dataPath);
          await server.send(1, new TextEncoder().encode("back"));
          assert.equal(new TextDecoder().decode((await client.receive())?.data), "back");
          await Promise.all([client.close(), server.close()]);
        }
      } finally {
        await listener.close();
      }
    },
  );

  Deno.test(
    `${name}: connecting to a port nobody listens on fails with a clear error`,
    { ignore },
    async () => {
      const probe = listen(target.transport, target.host ?? "127.0.0.1", 0, target.options);
      const port = probe.port;
      await probe.close();
      await assert.rejects(
        connect(target.transport, target.host ?? "127.0.0.1", port, target.options),
        (error: Error) => {
          assert.match(error.message, /refused|reset|abort|timed out/i);
          return true;
        },
      );
    },
  );
}
