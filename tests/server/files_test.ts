/**
 * The file layer under attack: names swapped while they are served (symlinks
 * out of the root, FIFOs), files truncated while they are sent, files
 * replaced by rename, hidden names. Real servers, real files, real bytes.
 */

import assert from "node:assert/strict";
import { needs } from "../_permissions.ts";
import { FlowClient, startServer, startTcpBaseline } from "../../mod.ts";
import type { FlowServer } from "../../mod.ts";
import { Child, freeUdpPort } from "../proxy/_helpers.ts";

// The same length, so a size check cannot tell them apart.
const INSIDE = new TextEncoder().encode("inside bytes, served from the root!!\n");
const OUTSIDE = new TextEncoder().encode("OUTSIDE SECRET: must never be served\n");
const decoder = new TextDecoder();

/** A server (tcpmux, in this process) and a client connected to it. */
async function withServer(
  root: string,
  body: (client: FlowClient, server: FlowServer) => Promise<void>,
  options: { mappingCacheSize?: number } = {},
) {
  const server = await startServer({
    transport: "tcpmux",
    port: 0,
    root,
    logLevel: "warn",
    ...options,
  });
  const client = await FlowClient.connect({
    transport: "tcpmux",
    host: "127.0.0.1",
    port: server.port,
  });
  try {
    await body(client, server);
  } finally {
    await client.close();
    await server.close();
  }
}

/** What the swapper puts at its target: a symlink to `to`, or a hard link of `from`. */
type Entry = { kind: "link"; to: string } | { kind: "hardlink"; from: string };

/**
 * A Worker that replaces `target` by rename, again and again, with each of
 * `entries` in turn (made in `stage`, on the same file system), until `stop()`
 * (which resolves with the number of swaps).
 */
function startSwapper(
  target: string,
  entries: [Entry, Entry],
  stage: string,
): { stop: () => Promise<number> } {
  const code = `
    self.onmessage = ({ data: { target, entries, stage, flag } }) => {
      const stop = new Int32Array(flag);
      const staged = stage + "/next";
      let swaps = 0;
      while (Atomics.load(stop, 0) === 0) {
        const entry = entries[swaps % 2];
        if (entry.kind === "link") Deno.symlinkSync(entry.to, staged);
        else Deno.linkSync(entry.from, staged);
        Deno.renameSync(staged, target);
        swaps++;
      }
      self.postMessage(swaps);
    };`;
  const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  const flag = new SharedArrayBuffer(4);
  const done = new Promise<number>((resolve, reject) => {
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(`the swapper failed: ${e.message}`));
    };
  });
  worker.postMessage({ target, entries, stage, flag });
  return {
    stop: async () => {
      Atomics.store(new Int32Array(flag), 0, 1);
      try {
        return await done;
      } finally {
        worker.terminate();
        URL.revokeObjectURL(url);
      }
    },
  };
}

/** A root with `x` (the inside file), and beside it a stage and an outside directory. */
async function raceTree() {
  const base = await Deno.makeTempDir({ prefix: "flowsched-race-" });
  const root = `${base}/site`;
  await Deno.mkdir(root);
  await Deno.mkdir(`${base}/outside`);
  await Deno.mkdir(`${base}/stage`);
  await Deno.writeFile(`${base}/outside/secret`, OUTSIDE);
  await Deno.writeFile(`${base}/stage/inside`, INSIDE);
  await Deno.writeFile(`${root}/x`, INSIDE);
  return { base, root };
}

/** Runs `count` calls of `request`, `concurrency` at a time; tallies what came back. */
async function tally(
  count: number,
  concurrency: number,
  request: () => Promise<{ status: number; body: Uint8Array }>,
) {
  const seen = { inside: 0, outside: 0, forbidden: 0, notFound: 0, other: [] as string[] };
  let started = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (started++ < count) {
      const { status, body } = await request();
      const text = decoder.decode(body);
      if (text.includes("OUTSIDE SECRET")) seen.outside++;
      else if (status === 200 && text === decoder.decode(INSIDE)) seen.inside++;
      else if (status === 403) seen.forbidden++;
      else if (status === 404) seen.notFound++;
      else seen.other.push(`${status} ${text}`);
    }
  }));
  return seen;
}

const ignore = needs("read", "write", "net", "ffi");

Deno.test(
  "a symlink out of the root swapped in and out 3000 times while requested over tcpmux never serves outside bytes",
  { ignore },
  async () => {
    const { base, root } = await raceTree();
    await withServer(root, async (client) => {
      const swapper = startSwapper(
        `${root}/x`,
        [{ kind: "link", to: "../outside/secret" }, {
          kind: "hardlink",
          from: `${base}/stage/inside`,
        }],
        `${base}/stage`,
      );
      const seen = await tally(3000, 32, async () => {
        const response = await client.request("/x");
        return { status: response.status, body: await response.bytes() };
      });
      const swaps = await swapper.stop();
      assert.equal(seen.outside, 0, `${seen.outside} responses carried the outside file`);
      assert.deepEqual(seen.other, []);
      // The race did happen: both sides of the swap were seen.
      assert.ok(seen.inside > 0 && seen.forbidden > 0, JSON.stringify({ ...seen, swaps }));
      // No idle mappings: every request opens the file afresh (a cached mapping would hide the race).
    }, { mappingCacheSize: 0 });
  },
);

Deno.test(
  "the TCP baseline never serves outside bytes while a symlink out of the root is swapped in and out",
  { ignore },
  async () => {
    const { base, root } = await raceTree();
    await using server = await startTcpBaseline({ root, port: 0 });
    const swapper = startSwapper(
      `${root}/x`,
      [{ kind: "link", to: "../outside/secret" }, {
        kind: "hardlink",
        from: `${base}/stage/inside`,
      }],
      `${base}/stage`,
    );
    const seen = await tally(3000, 16, async () => {
      const response = await fetch(`http://127.0.0.1:${server.port}/x`);
      return { status: response.status, body: await response.bytes() };
    });
    const swaps = await swapper.stop();
    assert.equal(seen.outside, 0, `${seen.outside} responses carried the outside file`);
    assert.deepEqual(seen.other, []);
    assert.ok(seen.inside > 0 && seen.forbidden > 0, JSON.stringify({ ...seen, swaps }));
  },
);

/** Rejects if `child` exits, naming how; for racing against what a live server must do. */
function exitOf(child: Child): Promise<never> {
  return child.process.status.then((status) => {
    throw new Error(
      `the server exited (${status.signal ?? `code ${status.code}`}):\n${child.lines.join("\n")}`,
    );
  });
}

/** Rejects after `ms` with `what`: only for operations that would otherwise hang the suite. */
function hangGuard(ms: number, what: string): { promise: Promise<never>; clear: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what)), ms);
  });
  return { promise, clear: () => clearTimeout(timer) };
}

/**
 * A server in a subprocess (its main thread may block or die without taking
 * the tests along), keeping no idle mappings: every request opens its file.
 */
async function spawn(root: string, transport: "tcpmux" | "usrsctp") {
  const udpPort = await freeUdpPort();
  const child = new Child([
    "run",
    "-P=server",
    "--no-check",
    "server/main.ts",
    ...["--transport", transport, "--port", "0", "--udp-port", String(udpPort)],
    ...["--root", root, "--streams", "4", "--mapping-cache-size", "0"],
  ]);
  const listening = await child.waitForLine(`"listening"`);
  const port = Number(/"port":(\d+)/.exec(listening)![1]);
  const address = { transport, host: "127.0.0.1", port };
  return { child, connect: () => FlowClient.connect(address, { udpPort }) };
}

Deno.test(
  "a FIFO swapped in for a file gets 404 and the server goes on answering",
  { ignore: needs("read", "write", "net", "ffi", "run") },
  async () => {
    const base = await Deno.makeTempDir({ prefix: "flowsched-fifo-" });
    const root = `${base}/site`;
    await Deno.mkdir(root);
    await Deno.mkdir(`${base}/stage`);
    await Deno.writeFile(`${base}/stage/file`, INSIDE);
    await Deno.writeFile(`${root}/x`, INSIDE);
    const mkfifo = await new Deno.Command("mkfifo", { args: [`${base}/stage/fifo`] }).output();
    assert.equal(mkfifo.code, 0, "mkfifo failed");
    const server = await spawn(root, "tcpmux");
    const client = await server.connect();
    const swapper = startSwapper(
      `${root}/x`,
      [{ kind: "hardlink", from: `${base}/stage/fifo` }, {
        kind: "hardlink",
        from: `${base}/stage/file`,
      }],
      `${base}/stage`,
    );
    const guard = hangGuard(30_000, "the server stopped answering (blocked opening the FIFO?)");
    try {
      const seen = await Promise.race([
        exitOf(server.child),
        guard.promise,
        tally(2000, 16, async () => {
          const response = await client.request("/x");
          return { status: response.status, body: await response.bytes() };
        }),
      ]);
      assert.deepEqual(seen.other, []);
      assert.ok(seen.inside > 0 && seen.notFound > 0, JSON.stringify(seen));
      const after = await client.request("/x");
      assert.ok([200, 404].includes(after.status));
    } finally {
      guard.clear();
      await swapper.stop();
      await client.association.abort();
      await server.child.kill();
    }
  },
);

for (const transport of ["usrsctp", "tcpmux"] as const) {
  Deno.test(
    `${transport}: a 32 MiB file truncated to 0 while it is sent fails that response, and the server lives on`,
    { ignore: needs("read", "write", "net", "ffi", "run") },
    async () => {
      const root = await Deno.makeTempDir({ prefix: "flowsched-truncate-" });
      const big = new Uint8Array(32 * 1024 * 1024).fill(0x5a);
      await Deno.writeFile(`${root}/big.bin`, big);
      await Deno.writeFile(`${root}/small.txt`, INSIDE);
      const server = await spawn(root, transport);
      const exited = exitOf(server.child);
      exited.catch(() => {});
      try {
        const client = await server.connect();
        const response = await client.request("/big.bin");
        assert.equal(response.status, 200);
        const reader = response.body.getReader();
        let received = (await reader.read()).value?.byteLength ?? 0;
        await Deno.truncate(`${root}/big.bin`, 0);
        // The rest of the body must fail: the bytes are gone.
        await assert.rejects(
          Promise.race([
            exited,
            (async () => {
              for (;;) {
                const { done, value } = await reader.read();
                if (done) break;
                received += value.byteLength;
              }
            })(),
          ]),
          (error: Error) => !/the server exited/.test(error.message),
        );
        assert.ok(received < big.byteLength, "the whole body arrived after the truncation");
        await client.association.abort();

        const next = await Promise.race([exited, server.connect()]);
        try {
          const small = await Promise.race([exited, next.request("/small.txt")]);
          assert.deepEqual(await small.bytes(), INSIDE);
          const empty = await next.request("/big.bin");
          assert.equal(empty.status, 200);
          assert.equal((await empty.bytes()).byteLength, 0);
        } finally {
          await next.close();
        }
      } finally {
        await server.child.kill();
      }
    },
  );
}

Deno.test(
  "a file replaced by rename with the same size and mtime is served with its new bytes",
  { ignore },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-replace-" });
    const mtime = new Date("2024-01-02T03:04:05Z");
    await Deno.writeTextFile(`${root}/page.html`, "old content");
    await Deno.utime(`${root}/page.html`, mtime, mtime);
    await withServer(root, async (client) => {
      const first = await client.request("/page.html");
      assert.equal(decoder.decode(await first.bytes()), "old content");
      await Deno.writeTextFile(`${root}/page.html.new`, "new content");
      await Deno.utime(`${root}/page.html.new`, mtime, mtime);
      await Deno.rename(`${root}/page.html.new`, `${root}/page.html`);
      const second = await client.request("/page.html");
      assert.equal(decoder.decode(await second.bytes()), "new content");
    });
  },
);

Deno.test(
  "hidden names (.env, .git/, a symlink to one) are answered 404, /.well-known/ is served",
  { ignore },
  async () => {
    const root = await Deno.makeTempDir({ prefix: "flowsched-hidden-" });
    await Deno.writeTextFile(`${root}/.env`, "SECRET=1");
    await Deno.mkdir(`${root}/.git`);
    await Deno.writeTextFile(`${root}/.git/config`, "[core]");
    await Deno.mkdir(`${root}/dir`);
    await Deno.writeTextFile(`${root}/dir/.htpasswd`, "user:hash");
    await Deno.mkdir(`${root}/.well-known`);
    await Deno.writeTextFile(`${root}/.well-known/security.txt`, "Contact: x");
    await Deno.symlink(".env", `${root}/env.txt`);
    await Deno.mkdir(`${root}/.hidden-site`);
    await Deno.writeTextFile(`${root}/.hidden-site/index.html`, "hidden index");
    await Deno.symlink(".hidden-site", `${root}/shown`);
    await using baseline = await startTcpBaseline({ root, port: 0 });
    await withServer(root, async (client) => {
      const get = async (path: string) => {
        const response = await client.request(path);
        return { status: response.status, text: decoder.decode(await response.bytes()) };
      };
      for (
        const path of [
          "/.env",
          "/.git/config",
          "/.git/",
          "/dir/.htpasswd",
          "/%2eenv",
          "/env.txt",
          "/shown/",
          "/dir/.well-known",
        ]
      ) {
        const response = await get(path);
        assert.equal(response.status, 404, path);
        assert.doesNotMatch(response.text, /SECRET|core|hash|hidden index/, path);
        const viaTcp = await fetch(`http://127.0.0.1:${baseline.port}${path}`);
        assert.equal(viaTcp.status, 404, `TCP baseline ${path}`);
        await viaTcp.body?.cancel();
      }
      assert.deepEqual(await get("/.well-known/security.txt"), {
        status: 200,
        text: "Contact: x",
      });
      // A "." segment is not a hidden name: it names its own directory (found by the live fuzzer).
      assert.deepEqual(await get("/./.well-known/./security.txt"), {
        status: 200,
        text: "Contact: x",
      });
    });
  },
);

/** Descriptors this process has open now (counted by `ls`, since Deno refuses /proc/self). */
async function openDescriptors(): Promise<number> {
  const ls = await new Deno.Command("ls", { args: [`/proc/${Deno.pid}/fd`], stdout: "piped" })
    .output();
  return decoder.decode(ls.stdout).trim().split("\n").length;
}

/**
 * The descriptor count once it holds still for longer than an earlier test's
 * usrsctp bell may stay open after its association let go (1 s), so that a
 * bell closed late does not look like this test's work.
 */
async function settledDescriptors(): Promise<number> {
  let count = await openDescriptors();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const now = await openDescriptors();
    if (now === count) return count;
    count = now;
  }
}

Deno.test(
  "answering every kind of target, method and condition leaves no file descriptor open",
  { ignore: needs("read", "write", "net", "ffi", "run") },
  async () => {
    const base = await Deno.makeTempDir({ prefix: "flowsched-fds-" });
    const root = `${base}/site`;
    await Deno.mkdir(`${root}/dir`, { recursive: true });
    await Deno.mkdir(`${root}/bare`);
    await Deno.writeTextFile(`${base}/secret`, "outside");
    await Deno.writeTextFile(`${root}/a.txt`, "hello");
    await Deno.writeTextFile(`${root}/empty.txt`, "");
    await Deno.writeTextFile(`${root}/dir/index.html`, "<p>index</p>");
    await Deno.writeTextFile(`${root}/.env`, "hidden");
    await Deno.symlink("../secret", `${root}/out.txt`);
    await Deno.symlink("../../secret", `${root}/bare/index.html`);
    await Deno.symlink("loop", `${root}/loop`);
    const mkfifo = await new Deno.Command("mkfifo", { args: [`${root}/fifo`] }).output();
    assert.equal(mkfifo.code, 0, "mkfifo failed");
    const targets = [
      "/a.txt",
      "/empty.txt",
      "/dir/",
      "/dir",
      "/bare/",
      "/out.txt",
      "/loop",
      "/fifo",
      "/.env",
      "/missing",
      "/a.txt/x",
      `/${"n".repeat(300)}`,
    ];
    const expected = [200, 200, 200, 200, 403, 403, 404, 404, 404, 404, 404, 404];
    await withServer(root, async (client, server) => {
      const etag = (await client.request("/a.txt")).headers.get("etag")!;
      const before = await settledDescriptors();
      for (let round = 0; round < 20; round++) {
        for (const [i, target] of targets.entries()) {
          for (const head of [false, true]) {
            const method = head ? "HEAD" : "GET";
            const response = await client.requestRaw(
              `${method} ${target} HTTP/1.1\r\nHost: t\r\n\r\n`,
              { headOnly: head },
            );
            await response.bytes();
            assert.equal(response.status, expected[i], `${method} ${target}`);
          }
        }
        const conditional = await client.requestRaw(
          `GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: ${etag}\r\n\r\n`,
        );
        assert.equal(conditional.status, 304);
      }
      assert.equal(await openDescriptors(), before);
      assert.equal(server.mappings.references, 0);
    });
  },
);
