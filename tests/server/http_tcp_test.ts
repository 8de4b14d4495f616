/**
 * The server over `--transport tcp`: plain HTTP/1.1 from curl, wrk and raw
 * sockets, through the same file layer, mapping cache and scheduler as the
 * associations. Bodies compared by sha256; the scheduler's event log shows
 * the runs.
 */

import assert from "node:assert/strict";
import { needs } from "../_permissions.ts";
import { startServer } from "../../mod.ts";
import type { FlowServer, SchedulerEvent, ServerOptions } from "../../mod.ts";
import { parseResponseHead } from "../../protocol/http1.ts";
import { curlStatus, exchange, makeTree, readAll, run, sha256 } from "./_fixtures.ts";

const ignore = needs("read", "write", "net", "run");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function withServer(
  extra: ServerOptions,
  body: (server: FlowServer, root: string) => Promise<void>,
) {
  const root = await Deno.makeTempDir({ prefix: "flowsched-http-" });
  await Deno.writeTextFile(`${root}/a.txt`, "hello");
  await Deno.writeFile(`${root}/big.bin`, new Uint8Array(4 * 1024 * 1024).fill(7));
  await Deno.mkdir(`${root}/.git`);
  await Deno.writeTextFile(`${root}/.git/config`, "secret");
  const server = await startServer({
    transport: "tcp",
    port: 0,
    root,
    logLevel: "error",
    eventLog: true,
    ...extra,
  });
  try {
    await body(server, root);
  } finally {
    await server.close();
    await Deno.remove(root, { recursive: true });
  }
}

/** Waits until `condition` holds, failing with `what` after 10 s. */
async function eventually(condition: () => boolean, what: string) {
  for (const deadline = Date.now() + 10_000; !condition();) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface Answer {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** Splits a byte stream into responses; `headOnly[i]`: the i-th answers a HEAD. */
function parseAnswers(bytes: Uint8Array, headOnly: boolean[] = []): Answer[] {
  const answers: Answer[] = [];
  let at = 0;
  while (at < bytes.byteLength) {
    const text = decoder.decode(bytes.subarray(at, at + 16384));
    const end = text.indexOf("\r\n\r\n");
    assert.ok(end > 0, `no complete head at byte ${at}: ${text.slice(0, 80)}`);
    const { status, headers } = parseResponseHead(bytes.subarray(at, at + end + 4));
    at += end + 4;
    const length = headOnly[answers.length] || status === 304
      ? 0
      : Number(headers.get("content-length"));
    answers.push({ status, headers, body: bytes.subarray(at, at + length) });
    at += length;
  }
  return answers;
}

const get = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: t\r\n${extra}\r\n`;
const text = (answer: Answer) => decoder.decode(answer.body);

/** The runs of each lane, in the order the scheduler handed them out. */
function runsByLane(events: readonly SchedulerEvent[]) {
  const lanes = new Map<number, { id: number; offset: number; bytes: number }[]>();
  for (const event of events) {
    if (event.type !== "run") continue;
    assert.equal(event.stream, 0, "a connection is a lane with one stream");
    const runs = lanes.get(event.lane) ?? [];
    runs.push({ id: event.id, offset: event.offset, bytes: event.bytes });
    lanes.set(event.lane, runs);
  }
  return lanes;
}

/** Every lane's responses went out one after the other, each run picking up where the last ended. */
function assertInOrder(events: readonly SchedulerEvent[]) {
  for (const [lane, runs] of runsByLane(events)) {
    let id = 0;
    let next = 0;
    for (const run of runs) {
      if (run.id !== id) {
        assert.ok(run.id > id, `lane ${lane}: response ${run.id} after ${id}`);
        assert.equal(run.offset, 0, `lane ${lane}: response ${run.id} starts at 0`);
        id = run.id;
        next = 0;
      }
      assert.equal(run.offset, next, `lane ${lane}: response ${id} runs are contiguous`);
      next += run.bytes;
    }
  }
}

for (const keepAlive of [true, false]) {
  const mode = keepAlive ? "keep-alive" : "one request per connection";

  Deno.test(
    `tcp (${mode}) serves 200 files of 0 B to 4 MiB to parallel curl sha256-identical, run by run through the scheduler`,
    { ignore },
    async () => {
      const root = await Deno.makeTempDir({ prefix: "flowsched-http-tree-" });
      const out = await Deno.makeTempDir({ prefix: "flowsched-http-out-" });
      const files = await makeTree(root, 200, 4 * 1024 * 1024, 5);
      await using server = await startServer({
        transport: "tcp",
        port: 0,
        root,
        policy: "srpt",
        runBytes: 64 * 1024,
        keepAlive,
        logLevel: "error",
        eventLog: true,
      });
      const args = ["--silent", "--fail", "--parallel", "--parallel-max", "8"];
      files.forEach((file, i) =>
        args.push("-o", `${out}/${i}`, `http://127.0.0.1:${server.port}${file.path}`)
      );
      await run("curl", args);
      for (const [i, file] of files.entries()) {
        assert.equal(sha256(await Deno.readFile(`${out}/${i}`)), file.sha256, file.path);
      }

      const { events } = server.scheduler;
      const finished = events.flatMap((event) => event.type === "finished" ? [event.size] : []);
      assert.equal(finished.length, files.length);
      assert.deepEqual(
        finished.sort((a, b) => a - b),
        files.map((file) => file.size).sort((a, b) => a - b),
      );
      const lanes = runsByLane(events);
      assert.equal(
        [...lanes.values()].flat().reduce((sum, run) => sum + run.bytes, 0),
        files.reduce((sum, file) => sum + file.size, 0),
        "every body byte went out in a run",
      );
      assert.ok(
        [...lanes.values()].flat().some((run) => run.offset > 0),
        "large bodies take several runs",
      );
      assertInOrder(events);
      if (keepAlive) assert.ok(lanes.size < files.length, `${lanes.size} connections were opened`);
      else assert.equal(lanes.size, files.length, "one connection per request");
      await eventually(() => server.sessions.size === 0, "curl's connections are closed");
      assert.equal(server.mappings.references, 0, "no mapping is held once all is sent");
      await Deno.remove(root, { recursive: true });
      await Deno.remove(out, { recursive: true });
    },
  );

  Deno.test(`tcp (${mode}) answers pipelined requests over one socket in order`, {
    ignore,
  }, async () => {
    await withServer({ keepAlive, policy: "srpt", runBytes: 256 * 1024 }, async (server) => {
      // SRPT would serve the small ones first if they were separate clients.
      const received = await exchange(
        server.port,
        get("/big.bin") + get("/a.txt") + "HEAD /a.txt HTTP/1.1\r\nHost: t\r\n\r\n" +
          get("/missing") + get("/a.txt", "Connection: close\r\n"),
      );
      const answers = parseAnswers(received, [false, false, true]);
      if (!keepAlive) {
        assert.equal(answers.length, 1, "one request per connection");
        assert.equal(answers[0].headers.get("connection"), "close");
        assert.equal(answers[0].body.byteLength, 4 * 1024 * 1024);
        return;
      }
      assert.deepEqual(answers.map((answer) => answer.status), [200, 200, 200, 404, 200]);
      assert.ok(answers[0].body.every((byte) => byte === 7));
      assert.equal(answers[0].body.byteLength, 4 * 1024 * 1024);
      assert.equal(text(answers[1]), "hello");
      assert.equal(answers[2].headers.get("content-length"), "5");
      assert.equal(text(answers[3]), "404 Not Found: no such file\n");
      assert.equal(text(answers[4]), "hello");
      assert.deepEqual(answers.map((answer) => answer.headers.get("connection")), [
        null,
        null,
        null,
        null,
        "close",
      ]);
      const finished = server.scheduler.events.filter((event) => event.type === "finished");
      assert.deepEqual(finished.map((event) => event.id), [1, 2, 3, 4, 5]);
      assertInOrder(server.scheduler.events);
    });
  });

  Deno.test(`tcp (${mode}) answers errors, HEAD and conditionals like the SCTP server`, {
    ignore,
  }, async () => {
    await withServer({ keepAlive }, async (server) => {
      const base = `http://127.0.0.1:${server.port}`;
      const status = (path: string, ...extra: string[]) => curlStatus(base, path, ...extra);
      assert.equal(await status("/a.txt"), "200");
      assert.equal(await status("/missing"), "404");
      assert.equal(await status("/a.txt%00"), "400");
      assert.equal(await status("/a.txt", "-X", "POST"), "405");
      const head = await run("curl", ["--silent", "-I", base + "/a.txt"]);
      assert.match(head, /content-length: 5/i);
      if (keepAlive) assert.doesNotMatch(head, /connection:/i);
      else assert.match(head, /connection: close/i);
      const etag = head.match(/etag: (.*)\r/i)![1];
      assert.equal(await status("/a.txt", "-H", `If-None-Match: ${etag}`), "304");
      const modified = head.match(/last-modified: (.*)\r/i)![1];
      assert.equal(await status("/a.txt", "-H", `If-Modified-Since: ${modified}`), "304");
    });
  });
}

Deno.test("tcp refuses paths out of the root and hidden names, and the connection goes on", {
  ignore,
}, async () => {
  await withServer({}, async (server) => {
    const answers = parseAnswers(
      await exchange(
        server.port,
        get("/../../etc/passwd") + get("/%2e%2e/%2e%2e/etc/passwd") + get("/.git/config") +
          get("/a.txt", "Connection: close\r\n"),
      ),
    );
    assert.deepEqual(answers.map((answer) => [answer.status, text(answer)]), [
      [403, "403 Forbidden: path leaves the document root\n"],
      [403, "403 Forbidden: path leaves the document root\n"],
      [404, "404 Not Found: no such file\n"],
      [200, "hello"],
    ]);
  });
});

Deno.test("tcp answers a malformed request 400 with the reason and closes the connection", {
  ignore,
}, async () => {
  await withServer({}, async (server) => {
    for (
      const [request, reason] of [
        ["BLAH\r\n\r\n" + get("/a.txt"), "malformed request line"],
        ["GET /a.txt HTTP/1.1\nHost: t\n\n", "request head does not end with CRLF CRLF"],
        ["GET /a.txt HTTP/1.1\r\n\r\n", "missing Host header"],
        ["GET /a.txt HTTP/2.0\r\nHost: t\r\n\r\n", "unsupported version HTTP/2.0"],
      ]
    ) {
      const answers = parseAnswers(await exchange(server.port, request));
      assert.equal(answers.length, 1, "nothing is answered after a malformed head");
      assert.equal(answers[0].status, 400);
      assert.equal(answers[0].headers.get("connection"), "close");
      assert.equal(text(answers[0]), `400 Bad Request: ${reason}\n`);
    }
  });
});

Deno.test("tcp answers a head beyond maxRequestSize 431 and closes; others are served", {
  ignore,
}, async () => {
  await withServer({ maxRequestSize: 4096 }, async (server) => {
    const huge = `GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Big: ${"b".repeat(100_000)}\r\n\r\n`;
    const answers = parseAnswers(await exchange(server.port, huge + get("/a.txt")));
    assert.equal(answers.length, 1);
    assert.equal(answers[0].status, 431);
    assert.equal(answers[0].headers.get("connection"), "close");
    assert.equal(
      text(answers[0]),
      "431 Request Header Fields Too Large: request head larger than 4096 bytes\n",
    );
    const fine = parseAnswers(await exchange(server.port, get("/a.txt", "Connection: close\r\n")));
    assert.equal(text(fine[0]), "hello");
  });
});

Deno.test("tcp closes after a request with a body, and honours HTTP/1.0", { ignore }, async () => {
  await withServer({}, async (server) => {
    const posted = parseAnswers(
      await exchange(
        server.port,
        "POST /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello" + get("/a.txt"),
      ),
    );
    assert.deepEqual(posted.map((answer) => answer.status), [405]);
    assert.equal(posted[0].headers.get("connection"), "close");

    const http10 = parseAnswers(
      await exchange(server.port, "GET /a.txt HTTP/1.0\r\n\r\n" + get("/a.txt")),
    );
    assert.deepEqual(http10.map((answer) => answer.status), [200]);
    assert.equal(http10[0].headers.get("connection"), "close");

    const kept = parseAnswers(
      await exchange(
        server.port,
        "GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
          "GET /a.txt HTTP/1.0\r\n\r\n",
      ),
    );
    assert.deepEqual(kept.map((answer) => answer.headers.get("connection")), [
      "keep-alive",
      "close",
    ]);
  });
});

Deno.test("tcp: a client that aborts mid-body does not hurt the next client", {
  ignore,
}, async () => {
  // Paced, so that the 4 MiB body is still being sent when the client goes.
  await withServer({ pace: 8_000_000, runBytes: 64 * 1024 }, async (server, root) => {
    await Deno.writeFile(`${root}/mid.bin`, new Uint8Array(200_000).fill(3));
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(encoder.encode(get("/big.bin")));
    const read = await conn.read(new Uint8Array(1024));
    assert.ok(read !== null && read > 0, "the response has begun");
    conn.close();
    const lane = server.scheduler.events.find((event) => event.type === "queued")!.lane;
    await eventually(
      () =>
        server.scheduler.events.some((event) =>
          event.lane === lane && (event.type === "failed" || event.type === "cancelled")
        ),
      "the aborted response ends",
    );
    await eventually(() => server.sessions.size === 0, "the aborted connection is gone");
    assert.equal(server.mappings.references, 0, "its mapping is released");

    const out = await run("curl", [
      "--silent",
      "--fail",
      `http://127.0.0.1:${server.port}/mid.bin`,
      "-o",
      `${root}/got`,
      "-w",
      "%{http_code} %{size_download}",
    ]);
    assert.equal(out, "200 200000");
    assert.ok((await Deno.readFile(`${root}/got`)).every((byte) => byte === 3));
  });
});

Deno.test("tcp closes an idle connection, and answers 408 to a head left unfinished", {
  ignore,
}, async () => {
  await withServer({ idleTimeout: 1 }, async (server) => {
    const idle = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const partial = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await partial.write(encoder.encode("GET /a.txt HTTP/1.1\r\nHost: t\r\n"));
    const [quiet, cut] = await Promise.all([readAll(idle), readAll(partial)]);
    idle.close();
    partial.close();
    assert.equal(quiet.byteLength, 0, "an idle connection is closed without a word");
    const answers = parseAnswers(cut);
    assert.equal(answers[0].status, 408);
    assert.equal(text(answers[0]), "408 Request Timeout: request head not complete after 1 s\n");
    await eventually(() => server.sessions.size === 0, "both connections are gone");
  });
});

Deno.test("tcp pauses reading at maxInFlight pipelined requests, then answers all in order", {
  ignore,
}, async () => {
  await withServer({ maxInFlight: 2, held: true }, async (server) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const paths = Array.from({ length: 10 }, (_, i) => (i % 2 ? "/a.txt" : "/missing"));
    await conn.write(
      encoder.encode(
        paths.map((path, i) => get(path, i === 9 ? "Connection: close\r\n" : "")).join(""),
      ),
    );
    await eventually(() => server.sessions.size === 1, "the connection is served");
    const [connection] = server.sessions;
    await eventually(() => connection.responses === 3, "one response queued and two read ahead");
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(connection.responses, 3, "no more requests are read meanwhile");
    server.scheduler.release();
    const answers = parseAnswers(await readAll(conn));
    conn.close();
    assert.deepEqual(
      answers.map((answer) => answer.status),
      paths.map((path) => (path === "/a.txt" ? 200 : 404)),
    );
  });
});

Deno.test("tcp cuts off a client that takes no data for sendTimeout; its mapping is released", {
  ignore,
}, async () => {
  await withServer({ sendTimeout: 1 }, async (server, root) => {
    // More than the socket buffers on both ends hold.
    await Deno.writeFile(`${root}/huge.bin`, new Uint8Array(64 * 1024 * 1024));
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(encoder.encode(get("/huge.bin")));
    // Cut off by the server: the response ends cancelled (the write it waited in fails then).
    await eventually(
      () => server.scheduler.events.some((event) => event.type === "cancelled"),
      "the stalled response ends",
    );
    await eventually(() => server.sessions.size === 0, "the connection is closed");
    assert.equal(server.mappings.references, 0);
    conn.close();
  });
});

Deno.test("tcp refuses a connection beyond maxAssociations with 503; the others are served", {
  ignore,
}, async () => {
  await withServer({ maxAssociations: 1 }, async (server) => {
    const held = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await eventually(() => server.sessions.size === 1, "the first connection is served");
    const refused = parseAnswers(await exchange(server.port, get("/a.txt")));
    assert.equal(refused[0].status, 503);
    assert.equal(text(refused[0]), "503 Service Unavailable: too many connections (limit 1)\n");
    await held.write(encoder.encode(get("/a.txt", "Connection: close\r\n")));
    assert.equal(text(parseAnswers(await readAll(held))[0]), "hello");
    held.close();
  });
});

Deno.test("tcp takes a brief wrk load without errors", { ignore }, async () => {
  await withServer({}, async (server, root) => {
    await Deno.writeFile(`${root}/f.bin`, new Uint8Array(10_000).fill(7));
    const report = await run("wrk", [
      "-t1",
      "-c8",
      "-d1s",
      `http://127.0.0.1:${server.port}/f.bin`,
    ]);
    assert.match(report, /requests in/);
    assert.doesNotMatch(report, /Non-2xx|Socket errors/, report);
  });
});
