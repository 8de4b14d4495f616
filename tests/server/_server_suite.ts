/**
 * The server's end-to-end suite, registered per transport: real server, real
 * association, real files; bodies compared by sha256.
 */

import assert from "node:assert/strict";
import { FlowClient, startServer } from "../../mod.ts";
import type { AssociationOptions, FlowServer, PolicyName, TransportName } from "../../mod.ts";
import { makeTree, sha256, type TreeFile } from "./_fixtures.ts";

/** Where to run the suite. */
export interface ServerSuiteTarget {
  transport: TransportName;
  host?: string;
  options?: AssociationOptions;
  /** Files in the big tree. @default 1000 */
  files?: number;
}

const MAX_FILE = 4 * 1024 * 1024;

async function withServer(
  target: ServerSuiteTarget,
  root: string,
  policy: PolicyName,
  body: (server: FlowServer, client: FlowClient) => Promise<void>,
  extra: { held?: boolean; streams?: number } = {},
) {
  const host = target.host ?? "127.0.0.1";
  const server = await startServer({
    ...target.options,
    transport: target.transport,
    host,
    port: 0,
    root,
    policy,
    logLevel: "warn",
    eventLog: true,
    held: extra.held,
    streams: extra.streams ?? 4,
  });
  const client = await FlowClient.connect(
    { transport: target.transport, host, port: server.port },
    { ...target.options, streams: extra.streams ?? 4 },
  );
  try {
    await body(server, client);
  } finally {
    await client.close();
    await server.close();
  }
}

/** Waits until `condition` holds, failing with `what` after 10 s. */
async function eventually(condition: () => boolean, what: string) {
  for (const deadline = Date.now() + 10_000; !condition();) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Registers the server suite for `target`. */
export function serverSuite(target: ServerSuiteTarget): void {
  const name = target.transport;
  const count = target.files ?? 1000;
  let tree: { root: string; files: TreeFile[] } | undefined;
  const bigTree = async () => {
    if (!tree) {
      const root = await Deno.makeTempDir({ prefix: "flowsched-tree-" });
      tree = { root, files: await makeTree(root, count, MAX_FILE) };
    }
    return tree;
  };

  for (const policy of ["scf", "rr"] as const) {
    Deno.test(`${name}/${policy}: ${count} files of 0 B to 4 MiB fetched concurrently arrive sha256-identical`, async () => {
      const { root, files } = await bigTree();
      await withServer(target, root, policy, async (server, client) => {
        const results = await Promise.all(files.map(async (file) => {
          const response = await client.request(file.path);
          return { file, status: response.status, hash: sha256(await response.bytes()) };
        }));
        for (const { file, status, hash } of results) {
          assert.equal(status, 200, file.path);
          assert.equal(hash, file.sha256, `${file.path} (${file.size} bytes) differs`);
        }
        // Senders report to the server after the client may already have the last byte.
        await eventually(() => server.mappings.references === 0, "every mapping is released");
      });
    });
  }

  Deno.test(`${name}: SCF sends a held batch smallest first, RR deals it across streams in turn`, async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-policy-" });
    const sizes = [50_000, 10, 300_000, 2_000, 700, 90_000, 5, 12_000];
    for (const [i, size] of sizes.entries()) {
      await Deno.writeFile(`${root}/f${i}`, new Uint8Array(size));
    }
    for (const policy of ["scf", "rr"] as const) {
      await withServer(target, root, policy, async (server, client) => {
        const responses = sizes.map((_, i) => client.request(`/f${i}`).then((r) => r.bytes()));
        const queued = () =>
          [...server.sessions][0]?.events.filter((e) => e.type === "queued").length;
        await eventually(() => queued() === sizes.length, "the whole batch is queued");
        const session = [...server.sessions][0];
        session.scheduler.release();
        await Promise.all(responses);
        const dispatched = session.events.filter((e) => e.type === "dispatched");
        if (policy === "scf") {
          // Two senders: each dispatch takes the smallest waiting response.
          assert.deepEqual(dispatched.map((e) => e.size), [...sizes].sort((a, b) => a - b));
        } else {
          // The i-th request to arrive is dealt to stream i mod 2, and each stream keeps
          // arrival order (arrival order across streams is the transport's, not ours).
          const arrived = session.events.filter((e) => e.type === "queued").map((e) => e.size);
          for (const stream of [0, 1]) {
            assert.deepEqual(
              dispatched.filter((e) => e.stream === stream).map((e) => e.size),
              arrived.filter((_, i) => i % 2 === stream),
            );
          }
        }
      }, { held: true, streams: 2 });
    }
  });

  Deno.test(`${name}: error statuses are right and carry a plain-text reason`, async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-errors-" });
    const outside = await Deno.makeTempDir({ prefix: "flowsched-outside-" });
    await Deno.writeTextFile(`${outside}/secret.txt`, "secret");
    await Deno.writeTextFile(`${root}/a.txt`, "hello");
    await Deno.mkdir(`${root}/dir`);
    await Deno.writeTextFile(`${root}/dir/index.html`, "<p>index</p>");
    await Deno.symlink(`${outside}/secret.txt`, `${root}/escape.txt`);
    await Deno.symlink(`${root}/a.txt`, `${root}/inside.txt`);
    await withServer(target, root, "scf", async (_server, client) => {
      const raw = async (head: string, headOnly = false) => {
        const response = await client.requestRaw(head, { headOnly });
        return {
          status: response.status,
          headers: response.headers,
          text: new TextDecoder().decode(await response.bytes()),
        };
      };
      const get = (path: string, headers = "") =>
        raw(`GET ${path} HTTP/1.1\r\nHost: t\r\n${headers}\r\n`);

      const ok = await get("/a.txt");
      assert.equal(ok.status, 200);
      assert.equal(ok.text, "hello");
      assert.equal(ok.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.equal(ok.headers.get("content-length"), "5");
      assert.ok(ok.headers.get("etag"));
      assert.ok(ok.headers.get("last-modified"));
      assert.equal((await get("/dir/")).text, "<p>index</p>");
      assert.equal((await get("/inside.txt")).text, "hello");

      const head = await raw("HEAD /a.txt HTTP/1.1\r\nHost: t\r\n\r\n", true);
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), "5");
      assert.equal(head.text, "");

      assert.equal(
        (await get("/a.txt", `If-None-Match: ${ok.headers.get("etag")}\r\n`)).status,
        304,
      );
      assert.equal(
        (await get("/a.txt", `If-Modified-Since: ${ok.headers.get("last-modified")}\r\n`)).status,
        304,
      );
      assert.equal((await get("/a.txt", `If-None-Match: "other"\r\n`)).status, 200);

      const notFound = await get("/missing.txt");
      assert.equal(notFound.status, 404);
      assert.match(notFound.text, /^404 Not Found/);

      for (
        const escape of [
          "/../etc/passwd",
          "/%2e%2e/etc/passwd",
          "/dir/..%2F..%2Fetc/passwd",
          "/escape.txt",
        ]
      ) {
        const response = await get(escape);
        assert.equal(response.status, 403, escape);
        assert.doesNotMatch(response.text, /secret|root:/, escape);
      }
      assert.equal((await get("/a.txt%00.png")).status, 400);
      assert.equal((await get("/%zz")).status, 400);

      const post = await raw("POST /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
      assert.equal(post.status, 405);
      assert.equal(post.headers.get("allow"), "GET, HEAD");

      assert.equal((await raw("GET /a.txt\r\n\r\n")).status, 400);
      assert.equal((await raw("GET /a.txt HTTP/1.1\r\n\r\n")).status, 400, "missing Host");
      assert.equal(
        (await raw("GET /a.txt HTTP/1.1\r\nHost t\r\n\r\n")).status,
        400,
        "header without colon",
      );
      assert.equal(
        (await raw("GET /a.txt HTTP/1.1\r\nHost: t\r\n")).status,
        400,
        "unterminated head",
      );
      assert.equal((await raw(`GET /${"a".repeat(9000)} HTTP/1.1\r\nHost: t\r\n\r\n`)).status, 414);
      assert.equal(
        (await raw(`GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Big: ${"b".repeat(17000)}\r\n\r\n`)).status,
        431,
      );
      const many = Array.from({ length: 120 }, (_, i) => `X-H${i}: v\r\n`).join("");
      assert.equal((await raw(`GET /a.txt HTTP/1.1\r\nHost: t\r\n${many}\r\n`)).status, 431);
      // The association survives every bad request.
      assert.equal((await get("/a.txt")).text, "hello");
    });
  });

  Deno.test(`${name}: a cancelled response fails its body, frees its mapping, and the association goes on`, async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-cancel-" });
    await Deno.writeFile(`${root}/big.bin`, new Uint8Array(MAX_FILE));
    await Deno.writeTextFile(`${root}/small.txt`, "after cancel");
    await withServer(target, root, "scf", async (server, client) => {
      const controller = new AbortController();
      const response = await client.request("/big.bin", { signal: controller.signal });
      const reader = response.body.getReader();
      await reader.read();
      controller.abort();
      await assert.rejects(reader.read(), /cancelled/);
      const next = await client.request("/small.txt");
      assert.equal(new TextDecoder().decode(await next.bytes()), "after cancel");
      await eventually(() => server.mappings.references === 0, "the mapping is released");
      const session = [...server.sessions][0];
      assert.ok(session.events.some((e) => e.type === "finished" && e.id === response.id));
    });
  });

  Deno.test(`${name}: a client that aborts mid-response frees its mapping and others are still served`, async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-abort-" });
    const big = new Uint8Array(MAX_FILE);
    crypto.getRandomValues(big.subarray(0, 65536));
    await Deno.writeFile(`${root}/big.bin`, big);
    await Deno.writeTextFile(`${root}/small.txt`, "still here");
    await withServer(target, root, "scf", async (server) => {
      const host = target.host ?? "127.0.0.1";
      const address = { transport: target.transport, host, port: server.port };
      for (let round = 0; round < 3; round++) {
        const quitter = await FlowClient.connect(address, target.options);
        const responses = [1, 2, 3].map(() => quitter.request("/big.bin"));
        const reader = (await responses[0]).body.getReader();
        await reader.read();
        await quitter.association.abort();
        await Promise.allSettled(responses.map((r) => r.then((x) => x.bytes())));
      }
      // Only the suite's own idle client stays connected.
      await eventually(() => server.sessions.size === 1, "the aborted sessions end");
      await eventually(() => server.mappings.references === 0, "their mappings are released");
      const other = await FlowClient.connect(address, target.options);
      const response = await other.request("/small.txt");
      assert.equal(new TextDecoder().decode(await response.bytes()), "still here");
      await other.close();
    });
  });
}
