/**
 * The server's limits: associations, requests in flight, request size, idle
 * time and stalled peers. Each is refused cleanly (status and reason
 * checked, the reason logged) while other associations go on being served.
 */

import assert from "node:assert/strict";
import { needs } from "../_permissions.ts";
import { connect, FlowClient, localUdpPort, startServer } from "../../mod.ts";
import type { Association, AssociationOptions, FlowServer, ServerOptions } from "../../mod.ts";
import type { TransportName } from "../../mod.ts";
import {
  decodeServerControl,
  encodeRequest,
  MessageType,
  type ServerControl,
} from "../../protocol/wire.ts";

/** Log entries the server writes (JSON lines on stderr), captured while in scope. */
function captureLog() {
  const entries: Record<string, unknown>[] = [];
  const original = console.error;
  console.error = (line: unknown) => {
    try {
      entries.push(JSON.parse(String(line)));
    } catch {
      original(line);
    }
  };
  return {
    entries,
    find: (message: string) => entries.find((entry) => entry.message === message),
    [Symbol.dispose]: () => void (console.error = original),
  };
}

/** Waits until `condition` holds, failing with `what` after 20 s. */
async function eventually(condition: () => boolean, what: string) {
  for (const deadline = Date.now() + 20_000; !condition();) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The next message on a raw association, decoded as a control message. */
async function nextControl(association: Association): Promise<ServerControl | null> {
  const message = await association.receive();
  return message && decodeServerControl(message.data);
}

const head = (path: string, method = "GET") => `${method} ${path} HTTP/1.1\r\nHost: t\r\n\r\n`;
const text = async (client: FlowClient, path: string) =>
  new TextDecoder().decode(await (await client.request(path)).bytes());

function limitsSuite(transport: TransportName, options: AssociationOptions = {}) {
  const ignore = needs("read", "write");

  async function withServer(
    extra: ServerOptions,
    body: (server: FlowServer, root: string) => Promise<void>,
  ) {
    const root = await Deno.makeTempDir({ prefix: "flowsched-limits-" });
    await Deno.writeTextFile(`${root}/a.txt`, "hello");
    await Deno.writeFile(`${root}/big.bin`, new Uint8Array(4 * 1024 * 1024));
    const server = await startServer({
      ...options,
      transport,
      port: 0,
      root,
      streams: 4,
      logLevel: "warn",
      ...extra,
    });
    try {
      await body(server, root);
    } finally {
      await server.close();
    }
  }

  const client = (server: FlowServer) =>
    FlowClient.connect({ transport, host: "127.0.0.1", port: server.port }, {
      ...options,
      streams: 4,
    });
  const raw = (server: FlowServer) =>
    connect(transport, "127.0.0.1", server.port, { ...options, streams: 4 });

  Deno.test(
    `${transport}: an association beyond maxAssociations is told 503 and closed; the others are served`,
    { ignore },
    async () => {
      using log = captureLog();
      await withServer({ maxAssociations: 2 }, async (server) => {
        const first = await client(server);
        const second = await client(server);
        assert.equal(await text(first, "/a.txt"), "hello");
        assert.equal(await text(second, "/a.txt"), "hello");

        const extra = await raw(server);
        assert.deepEqual(await nextControl(extra), {
          type: MessageType.RESET,
          id: 0,
          status: 503,
          reason: "too many associations (limit 2)",
        });
        assert.equal(await extra.receive(), null, "the refused association is closed");
        await extra.close();
        await eventually(() => log.find("peer refused") !== undefined, "the refusal is logged");
        assert.equal(log.find("peer refused")?.level, "warn");
        assert.equal(
          log.find("peer refused")?.reason,
          "association refused: 2 are open (maxAssociations)",
        );
        assert.equal(server.sessions.size, 2);
        assert.equal(await text(first, "/a.txt"), "hello");

        // Service comes back when an association ends.
        await second.close();
        await eventually(() => server.sessions.size === 1, "the second session ends");
        const third = await client(server);
        assert.equal(await text(third, "/a.txt"), "hello");
        await Promise.all([first.close(), third.close()]);
      });
    },
  );

  Deno.test(
    `${transport}: a request beyond maxInFlight is answered RESET 503 and later ones are served`,
    { ignore },
    async () => {
      using log = captureLog();
      await withServer({ maxInFlight: 2, held: true }, async (server) => {
        const association = await raw(server);
        for (const id of [1, 2, 3]) {
          await association.send(id % 4, encodeRequest(id, head("/a.txt", "HEAD")));
        }
        assert.deepEqual(await nextControl(association), {
          type: MessageType.RESET,
          id: 3,
          status: 503,
          reason: "too many requests in flight (limit 2)",
        });
        assert.equal(
          log.find("requests in flight at the limit; more are answered 503")?.level,
          "warn",
        );

        server.scheduler.release();
        const answered = [await nextControl(association), await nextControl(association)];
        assert.deepEqual(answered.map((c) => c?.type === MessageType.HEAD && c.id).sort(), [1, 2]);
        await association.send(0, encodeRequest(4, head("/a.txt", "HEAD")));
        const fourth = await nextControl(association);
        assert.equal(fourth?.type, MessageType.HEAD);
        assert.equal(fourth?.id, 4);
        await association.close();
      });
    },
  );

  Deno.test(
    `${transport}: a client that floods requests and reads nothing is held to maxInFlight, then aborted after sendTimeout`,
    { ignore },
    async () => {
      using log = captureLog();
      await withServer({ maxInFlight: 8, sendTimeout: 1, logLevel: "info" }, async (server) => {
        const other = await client(server);
        const flood = await raw(server);
        let most = 0;
        const watch = setInterval(() => {
          most = Math.max(most, server.scheduler.waiting + server.scheduler.running);
        }, 5);
        try {
          // Never read: the responses (4 MiB each) fill every buffer on the way.
          const sending = (async () => {
            for (let id = 1; id <= 20_000; id++) {
              await flood.send(id % 4, encodeRequest(id, head("/big.bin")));
            }
          })().catch(() => {}); // the abort ends it
          await eventually(() => log.find("association ended") !== undefined, "the abort");
          await sending;
          assert.match(
            String(log.find("association ended")?.reason),
            /the peer took no message for 1 s \(sendTimeout\)/,
          );
          assert.ok(most <= 8, `${most} responses were queued at once`);
          assert.equal(await text(other, "/a.txt"), "hello");
          await eventually(() => server.sessions.size === 1, "the flood's session ends");
        } finally {
          clearInterval(watch);
          await Promise.all([flood.abort(), other.close()]);
        }
      });
    },
  );

  Deno.test(
    `${transport}: a REQUEST larger than maxRequestSize is answered 431 and the association goes on`,
    { ignore },
    async () => {
      await withServer({ maxRequestSize: 4096 }, async (server) => {
        const flow = await client(server);
        const response = await flow.requestRaw(
          `GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Big: ${"b".repeat(100_000)}\r\n\r\n`,
        );
        assert.equal(response.status, 431);
        assert.equal(
          new TextDecoder().decode(await response.bytes()),
          "431 Request Header Fields Too Large: request message larger than 4096 bytes\n",
        );
        assert.equal(await text(flow, "/a.txt"), "hello");
        await flow.close();
      });
    },
  );

  Deno.test(
    `${transport}: an association idle for idleTimeout is told 408 and closed, one with a response in flight is not`,
    { ignore },
    async () => {
      using log = captureLog();
      await withServer({ idleTimeout: 1, held: true, logLevel: "info" }, async (server) => {
        const busy = await client(server);
        const pending = busy.request("/a.txt");
        const idle = await raw(server);
        assert.deepEqual(await nextControl(idle), {
          type: MessageType.RESET,
          id: 0,
          status: 408,
          reason: "idle for 1 s",
        });
        assert.equal(await idle.receive(), null);
        await idle.close();
        assert.equal(log.find("association idle; closing")?.idleSeconds, 1);

        // The busy one waited as long with its response held, and is still served.
        await new Promise((resolve) => setTimeout(resolve, 1500));
        server.scheduler.release();
        assert.equal(new TextDecoder().decode(await (await pending).bytes()), "hello");
        await busy.close();
      });
    },
  );
}

limitsSuite("tcpmux");
limitsSuite("usrsctp", { udpPort: localUdpPort() });
