/**
 * The server's end-to-end suite, registered per transport: real server, real
 * association, real files; bodies compared by sha256.
 */

import assert from "node:assert/strict";
import { needs } from "../_permissions.ts";
import { FlowClient, POLICY_NAMES, startServer } from "../../mod.ts";
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
  extra: { held?: boolean; streams?: number; runBytes?: number; pace?: number } = {},
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
    runBytes: extra.runBytes,
    pace: extra.pace,
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
  const ignore = needs("read", "write");
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

  for (const policy of ["srpt", "rr"] as const) {
    Deno.test(
      `${name}/${policy}: ${count} files of 0 B to 4 MiB fetched concurrently arrive sha256-identical`,
      { ignore },
      async () => {
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
      },
    );
  }

  for (const policy of POLICY_NAMES) {
    Deno.test(
      `${name}/${policy}: runs cover each body in order on one stream, a cancel stops a response within one run, and a priority change applies at the next run`,
      { ignore },
      async () => {
        const root = await Deno.makeTempDir({ prefix: "flowsched-policy-" });
        const sizes = [50_000, 10, 300_000, 2_000, 0, 700_000, 5, 12_000];
        const files = await Promise.all(sizes.map(async (size, i) => {
          const bytes = new Uint8Array(size).map((_, j) => (i * 31 + j) & 0xff);
          await Deno.writeFile(`${root}/f${i}`, bytes);
          return { path: `/f${i}`, sha256: sha256(bytes) };
        }));
        await Deno.writeFile(`${root}/big.bin`, new Uint8Array(4 * 1024 * 1024));
        await withServer(target, root, policy, async (server, client) => {
          const events = server.scheduler.events;
          // Priority: of two held 1 MiB-run responses, the one made urgent goes first.
          const first = client.request("/f2");
          const second = client.request("/f5");
          await eventually(() => events.filter((e) => e.type === "queued").length === 2, "queued");
          const urgent = events.filter((e) => e.type === "queued")[1].id;
          await client.setPriority(urgent, -1);
          await eventually(() => events.some((e) => e.type === "priority"), "the priority arrived");
          server.scheduler.release();
          await Promise.all([first, second].map((r) => r.then((x) => x.bytes())));
          assert.equal(events.find((e) => e.type === "run")?.id, urgent);

          // Every body, whatever order the policy chose, arrives whole.
          const results = await Promise.all(files.map(async (file) => {
            const response = await client.request(file.path);
            return { file, hash: sha256(await response.bytes()) };
          }));
          for (const { file, hash } of results) assert.equal(hash, file.sha256, file.path);

          // Cancelling a response that is being sent: no run of it starts afterwards.
          const controller = new AbortController();
          const big = await client.request("/big.bin", { signal: controller.signal });
          const reader = big.body.getReader();
          await reader.read();
          controller.abort();
          await assert.rejects(reader.read(), /cancelled/);
          await eventually(
            () => events.some((e) => e.type === "cancelled" && e.id === big.id),
            "the cancelled response settles",
          );
          const cancelAt = events.findIndex((e) => e.type === "cancel" && e.id === big.id);
          assert.ok(cancelAt >= 0, "the server got the cancel");
          assert.ok(
            !events.slice(cancelAt).some((e) => e.type === "run" && e.id === big.id),
            "no run of the cancelled response starts after the cancel",
          );

          // Runs of each response cover its body in order, on one stream.
          const runs = events.filter((e) => e.type === "run");
          for (const id of new Set(runs.map((r) => r.id))) {
            const own = runs.filter((r) => r.id === id);
            assert.equal(
              new Set(own.map((r) => r.stream)).size,
              1,
              `response ${id} keeps a stream`,
            );
            own.reduce((offset, r) => (assert.equal(r.offset, offset), offset + r.bytes), 0);
          }
          await eventually(() => server.mappings.references === 0, "every mapping is released");
        }, { held: true, runBytes: 128 * 1024, pace: 20e6 });
      },
    );
  }

  Deno.test(
    `${name}/srpt: a 1 KiB response asked for during a 10 MiB one completes within two further runs of it`,
    { ignore },
    async () => {
      const root = await Deno.makeTempDir({ prefix: "flowsched-srpt-" });
      await Deno.writeFile(`${root}/big.bin`, new Uint8Array(10 * 1024 * 1024));
      await Deno.writeTextFile(`${root}/small.txt`, "s".repeat(1024));
      // Paced at 40 MB/s, the big response takes about 250 ms: the small one surely meets it.
      await withServer(target, root, "srpt", async (server, client) => {
        const events = server.scheduler.events;
        const big = client.request("/big.bin").then((r) => r.bytes());
        await eventually(
          () => events.filter((e) => e.type === "run").length >= 3,
          "big is sending",
        );
        const small = await (await client.request("/small.txt")).bytes();
        assert.equal(small.byteLength, 1024);
        assert.equal((await big).byteLength, 10 * 1024 * 1024);
        const queued = events.findIndex((e) => e.type === "queued" && e.size === 1024);
        const finished = events.findIndex((e) => e.type === "finished" && e.size === 1024);
        const further = events.slice(queued, finished).filter((e) =>
          e.type === "run" && e.size === 10 * 1024 * 1024
        ).length;
        assert.ok(further <= 2, `the 10 MiB response sent ${further} runs before the 1 KiB one`);
        assert.ok(
          events.slice(finished).some((e) =>
            e.type === "run" && e.size === 10 * 1024 * 1024
          ),
          "the big response was preempted, not finished first",
        );
      }, { pace: 40e6, runBytes: 128 * 1024 });
    },
  );

  Deno.test(
    `${name}: error statuses are right and carry a plain-text reason`,
    { ignore },
    async () => {
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
        assert.equal(
          (await raw(`GET /${"a".repeat(9000)} HTTP/1.1\r\nHost: t\r\n\r\n`)).status,
          414,
        );
        assert.equal(
          (await raw(`GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Big: ${"b".repeat(17000)}\r\n\r\n`))
            .status,
          431,
        );
        const many = Array.from({ length: 120 }, (_, i) => `X-H${i}: v\r\n`).join("");
        assert.equal((await raw(`GET /a.txt HTTP/1.1\r\nHost: t\r\n${many}\r\n`)).status, 431);
        // The association survives every bad request.
        assert.equal((await get("/a.txt")).text, "hello");
      });
    },
  );

  Deno.test(
    `${name}: a cancelled response fails its body, frees its mapping, and the association goes on`,
    { ignore },
    async () => {
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
        assert.ok(
          server.scheduler.events.some((e) => e.type === "cancelled" && e.id === response.id),
        );
      });
    },
  );

  Deno.test(
    `${name}: a client that aborts mid-response frees its mapping and others are still served`,
    { ignore },
    async () => {
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
    },
  );
}
