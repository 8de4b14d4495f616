/**
 * The proxy's HTTP/1.1 front on its own, with a stub handler: quick answers
 * and handled ones byte for byte, their framing (content-length, chunked,
 * until the close for HTTP/1.0), pipelining in order, HEAD, refused heads,
 * when connections close, a body that breaks off, and a shutdown that lets
 * an answer finish.
 */

import assert from "node:assert/strict";
import { needs } from "../_permissions.ts";
import { type FrontHandler, type HttpFront, serveHttp } from "../../proxy/http_front.ts";
import { parseResponseHead, reasonPhrase } from "../../protocol/http1.ts";
import { concat } from "../../transport/bytes.ts";
import { exchange, readAll } from "../server/_fixtures.ts";
import { MappedFile } from "../../ffi/mapped_file.ts";

const ignore = needs("net", "ffi"); // the front's sockets are libc's
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const QUICK_BODY = encoder.encode("quick body\n");
const QUICK_HEAD = encoder.encode(
  `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${QUICK_BODY.byteLength}\r\n`,
);
const BIG = new Uint8Array(300 * 1024).map((_, i) => i % 251);

/** Answers /quick at once; everything else by path; records failures. */
function stubHandler(failures: string[], gate?: Promise<void>): FrontHandler {
  return {
    quick(method, url) {
      if (url.pathname === "/quick-bug") throw new Error("quick bug");
      if (url.pathname !== "/quick") return undefined;
      return { head: QUICK_HEAD, body: method === "HEAD" ? new Uint8Array(0) : QUICK_BODY };
    },
    async handle(request, client) {
      const path = new URL(request.url).pathname;
      if (path.endsWith("/url")) return new Response(request.url);
      switch (path) {
        case "/overlong":
          return new Response("too long", { headers: { "content-length": "3" } });
        case "/length":
          return new Response("sized", { headers: { "content-length": "5" } });
        case "/big":
          return new Response(BIG, { headers: { "content-length": String(BIG.byteLength) } });
        case "/stream":
          return new Response(
            ReadableStream.from([encoder.encode("one,"), encoder.encode("two,"), BIG]),
          );
        case "/empty":
          return new Response(null, { status: 204 });
        case "/throws":
          throw new Error("handler bug");
        case "/breaks":
          return new Response(
            ReadableStream.from((function* () {
              yield encoder.encode("part of it");
              throw new Error("upstream aborted");
            })()),
            { headers: { "content-length": "100" } },
          );
        case "/slow":
          await gate;
          return new Response("late", { headers: { "content-length": "4" } });
        case "/who":
          return new Response(`${request.method} ${client.remoteAddr.hostname}`);
      }
      return new Response("nothing here", { status: 404 });
    },
    failed(what, error) {
      failures.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    },
  };
}

async function withFront(
  body: (front: HttpFront, failures: string[]) => Promise<void>,
  gate?: Promise<void>,
) {
  const failures: string[] = [];
  const front = serveHttp(
    { hostname: "127.0.0.1", port: 0, reusePort: false },
    stubHandler(failures, gate),
  );
  try {
    await body(front, failures);
  } finally {
    await front.shutdown();
  }
}

interface Answer {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** Cuts the answers to `methods` (in order) out of `bytes`, checking their framing. */
function answers(bytes: Uint8Array, methods: string[]): Answer[] {
  const out: Answer[] = [];
  let at = 0;
  for (const method of methods) {
    const end = indexOf(bytes, "\r\n\r\n", at);
    assert.ok(end > 0, `answer ${out.length + 1} has no complete head`);
    const { status, headers } = parseResponseHead(bytes.subarray(at, end + 4));
    at = end + 4;
    let body: Uint8Array;
    if (method === "HEAD" || status === 204) {
      body = new Uint8Array(0);
    } else if (headers.get("transfer-encoding") === "chunked") {
      const parts: Uint8Array[] = [];
      for (;;) {
        const lineEnd = indexOf(bytes, "\r\n", at);
        const size = parseInt(decoder.decode(bytes.subarray(at, lineEnd)), 16);
        at = lineEnd + 2;
        if (size === 0) {
          assert.equal(decoder.decode(bytes.subarray(at, at + 2)), "\r\n");
          at += 2;
          break;
        }
        parts.push(bytes.subarray(at, at + size));
        assert.equal(decoder.decode(bytes.subarray(at + size, at + size + 2)), "\r\n");
        at += size + 2;
      }
      body = concat(parts);
    } else if (headers.has("content-length")) {
      const length = Number(headers.get("content-length"));
      body = bytes.subarray(at, at + length);
      assert.equal(body.byteLength, length, `answer ${out.length + 1} is cut short`);
      at += length;
    } else {
      body = bytes.subarray(at);
      at = bytes.byteLength;
    }
    out.push({ status, headers, body });
  }
  assert.equal(at, bytes.byteLength, "bytes after the last answer");
  return out;
}

function indexOf(bytes: Uint8Array, text: string, from: number): number {
  const needle = encoder.encode(text);
  for (let at = bytes.indexOf(needle[0], from); at >= 0; at = bytes.indexOf(needle[0], at + 1)) {
    if (needle.every((byte, i) => bytes[at + i] === byte)) return at;
  }
  return -1;
}

const get = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;

Deno.test(
  "quick and handled answers, pipelined, come back in order and whole",
  { ignore },
  async () => {
    await withFront(async (front, failures) => {
      const paths = ["/quick", "/length", "/big", "/stream", "/quick", "/empty", "/nothing"];
      const request = paths.map((path) => get(path)).join("") +
        get("/quick", "Connection: close\r\n");
      const got = answers(
        await exchange(front.addr.port, request),
        [...paths, "/quick"].map(() => "GET"),
      );
      assert.deepEqual(got.map((a) => a.status), [200, 200, 200, 200, 200, 204, 404, 200]);
      assert.deepEqual(got[0].body, QUICK_BODY);
      assert.equal(got[0].headers.get("content-type"), "text/plain");
      assert.ok(got[0].headers.has("date"));
      assert.equal(decoder.decode(got[1].body), "sized");
      assert.deepEqual(got[2].body, BIG);
      // No length known: chunked.
      assert.equal(got[3].headers.get("transfer-encoding"), "chunked");
      assert.deepEqual(got[3].body, concat([encoder.encode("one,two,"), BIG]));
      assert.equal(got[6].headers.get("content-type"), "text/plain;charset=UTF-8");
      assert.equal(decoder.decode(got[6].body), "nothing here");
      assert.equal(got[7].headers.get("connection"), "close");
      assert.deepEqual(failures, []);
    });
  },
);

Deno.test("HEAD answers carry the headers and no body", { ignore }, async () => {
  await withFront(async (front) => {
    const request = `HEAD /quick HTTP/1.1\r\nHost: x\r\n\r\nHEAD /big HTTP/1.1\r\nHost: x\r\n\r\n` +
      get("/length", "Connection: close\r\n");
    const got = answers(await exchange(front.addr.port, request), ["HEAD", "HEAD", "GET"]);
    assert.equal(got[0].headers.get("content-length"), String(QUICK_BODY.byteLength));
    assert.equal(got[1].headers.get("content-length"), String(BIG.byteLength));
    assert.equal(decoder.decode(got[2].body), "sized");
  });
});

Deno.test(
  "HTTP/1.0: keep-alive when asked, a body of unknown length until the close",
  { ignore },
  async () => {
    await withFront(async (front) => {
      const kept = await exchange(
        front.addr.port,
        "GET /quick HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /length HTTP/1.0\r\n\r\n",
      );
      const [first, second] = answers(kept, ["GET", "GET"]);
      assert.equal(first.headers.get("connection"), "keep-alive");
      assert.deepEqual(first.body, QUICK_BODY);
      assert.equal(second.headers.get("connection"), "close");
      const [streamed] = answers(await exchange(front.addr.port, "GET /stream HTTP/1.0\r\n\r\n"), [
        "GET",
      ]);
      assert.equal(streamed.headers.get("transfer-encoding"), null);
      assert.equal(streamed.headers.get("connection"), "close");
      assert.deepEqual(streamed.body, concat([encoder.encode("one,two,"), BIG]));
    });
  },
);

Deno.test("refused heads get their status and the connection's end", { ignore }, async () => {
  await withFront(async (front, failures) => {
    const cases: [string, number][] = [
      ["GET /quick HTTP/1.1\r\n\r\n", 400], // no Host
      ["GET /quick HTTP/2.0\r\nHost: x\r\n\r\n", 400],
      ["GET quick HTTP/1.1\r\nHost: x\r\n\r\n", 400],
      ["GET /quick HTTP/1.1\r\nHost: a/b\r\n\r\n", 400],
      [`GET /quick HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(20_000)}\r\n\r\n`, 431],
      ["CONNECT /who HTTP/1.1\r\nHost: x\r\n\r\n", 501],
      ["get /who HTTP/1.1\r\nHost: x\r\n\r\n", 501], // methods are case-sensitive
    ];
    for (const [request, status] of cases) {
      // A second request after the refused one is never answered.
      const got = answers(await exchange(front.addr.port, request + get("/quick")), ["GET"]);
      assert.equal(got[0].status, status, JSON.stringify(request.slice(0, 40)));
      assert.equal(got[0].headers.get("connection"), "close");
      // The text only where the method is plain (the 431 is refused before the head is read whole).
      const text = status === 431 ? "" : `${status} ${reasonPhrase(status)}\n`;
      assert.equal(decoder.decode(got[0].body), text);
    }
    assert.equal(failures.length, cases.length);
    // A refused HEAD, or a head whose method is not plain, has an empty body (`answers` checks).
    for (const request of ["HEAD\r\n\r\n", "HEAD\nHEAD /x HTTP/1.1\r\nHost: x\r\n\r\n"]) {
      const [refused] = answers(await exchange(front.addr.port, request + get("/quick")), ["GET"]);
      assert.equal(refused.status, 400);
      assert.equal(refused.headers.get("content-length"), "0");
    }
  });
});

Deno.test(
  "a request announcing a body is answered, then its connection closed",
  { ignore },
  async () => {
    await withFront(async (front) => {
      const request = "GET /who HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
        get("/quick");
      const [only] = answers(await exchange(front.addr.port, request), ["GET"]);
      assert.equal(decoder.decode(only.body), "GET 127.0.0.1");
      assert.equal(only.headers.get("connection"), "close");
    });
  },
);

Deno.test(
  "a handler that throws gives 500; a body that breaks off cuts the connection",
  { ignore },
  async () => {
    await withFront(async (front, failures) => {
      const [thrown] = answers(
        await exchange(front.addr.port, get("/throws", "Connection: close\r\n")),
        ["GET"],
      );
      assert.equal(thrown.status, 500);
      assert.deepEqual(failures, ["handler: handler bug"]);
      // Announced 100 bytes, sent 10, then closed: never a next answer on that connection.
      const cut = await exchange(front.addr.port, get("/breaks") + get("/quick"));
      assert.throws(() => answers(cut, ["GET"]), /cut short/);
      assert.match(decoder.decode(cut), /\r\n\r\npart of it$/);
      assert.deepEqual(failures.slice(1), ["body: upstream aborted"]);
    });
  },
);

Deno.test(
  "shutdown closes idle connections and lets an answer being made finish",
  { ignore },
  async () => {
    const gate = Promise.withResolvers<void>();
    await withFront(async (front) => {
      const idle = await Deno.connect({ hostname: "127.0.0.1", port: front.addr.port });
      const busy = await Deno.connect({ hostname: "127.0.0.1", port: front.addr.port });
      try {
        await idle.write(encoder.encode(get("/quick")));
        const idleRead = readAll(idle);
        await busy.write(encoder.encode(get("/slow")));
        const busyRead = readAll(busy);
        // The idle connection's answer is out before the shutdown.
        await new Promise((resolve) => setTimeout(resolve, 100));
        const stopped = front.shutdown();
        gate.resolve();
        await stopped;
        assert.deepEqual(answers(await idleRead, ["GET"])[0].body, QUICK_BODY);
        assert.equal(decoder.decode(answers(await busyRead, ["GET"])[0].body), "late");
        await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: front.addr.port }));
      } finally {
        idle.close();
        busy.close();
      }
    }, gate.promise);
  },
);

Deno.test(
  "the URL a handler sees: origin form on the Host, absolute form on its own",
  { ignore },
  async () => {
    await withFront(async (front) => {
      const origin = `http://127.0.0.1:${front.addr.port}`;
      const request = get("/a/url", "") +
        // An empty Host names no host: the listener's own address stands in (not "a" from the path).
        "GET /secret/url HTTP/1.1\r\nHost:\r\n\r\n" +
        // Absolute form, as clients send to a proxy: its authority wins over Host.
        "GET http://example.test:8080/b/url?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
      const got = answers(await exchange(front.addr.port, request), ["GET", "GET", "GET"]);
      assert.deepEqual(got.map((a) => decoder.decode(a.body)), [
        "http://x/a/url",
        `${origin}/secret/url`,
        "http://example.test:8080/b/url?q=1",
      ]);
    });
  },
);

Deno.test(
  "a body longer than its content-length ends the connection before it; a quick answer that throws gives 500",
  { ignore },
  async () => {
    await withFront(async (front, failures) => {
      const cut = await exchange(front.addr.port, get("/overlong") + get("/quick"));
      assert.doesNotMatch(
        decoder.decode(cut),
        /too long|quick body/,
        "nothing past the length, no next answer",
      );
      const [bug] = answers(await exchange(front.addr.port, get("/quick-bug") + get("/quick")), [
        "GET",
      ]);
      assert.equal(bug.status, 500);
      assert.equal(bug.headers.get("connection"), "close");
      assert.deepEqual(failures, [
        "handler: body longer than its content-length, 3 bytes",
        "handler: quick bug",
      ]);
    });
  },
);

Deno.test(
  "a file's mapping goes out whole after its head, pipelined; one that shrank cuts its answer, not the process",
  { ignore: ignore || needs("write") },
  async () => {
    const path = await Deno.makeTempFile({ prefix: "flowsched-front-test-" });
    await Deno.writeFile(path, BIG);
    const mapping = MappedFile.open(path);
    const body = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(
      mapping.pointerAt(0)!,
      mapping.size,
    ));
    const head = encoder.encode(`HTTP/1.1 200 OK\r\ncontent-length: ${BIG.byteLength}\r\n`);
    const failures: string[] = [];
    let done = 0;
    const handler = stubHandler(failures);
    const front = serveHttp({ hostname: "127.0.0.1", port: 0, reusePort: false }, {
      ...handler,
      quick: (method, url) =>
        url.pathname === "/mapped"
          ? { head, body, mapped: true, done: () => done++ }
          : handler.quick(method, url),
    });
    try {
      const request = get("/mapped") + get("/quick") + get("/mapped", "Connection: close\r\n");
      const got = answers(await exchange(front.addr.port, request), ["GET", "GET", "GET"]);
      assert.deepEqual(got.map((a) => a.status), [200, 200, 200]);
      assert.deepEqual(got[0].body, BIG);
      assert.deepEqual(got[1].body, QUICK_BODY);
      assert.deepEqual(got[2].body, BIG);
      assert.equal(done, 2);
      assert.deepEqual(failures, []);
      // Truncated under the mapping: the kernel's copy fails (EFAULT) where a load would be SIGBUS.
      await Deno.truncate(path, 0);
      const cut = await exchange(front.addr.port, get("/mapped"));
      const { status } = parseResponseHead(cut.subarray(0, indexOf(cut, "\r\n\r\n", 0) + 4));
      assert.equal(status, 200);
      assert.ok(cut.byteLength < head.byteLength + BIG.byteLength, "the answer is cut");
      assert.equal(done, 3);
      assert.match(failures.join("\n"), /Bad address/);
      // The front goes on serving.
      const after = answers(
        await exchange(front.addr.port, get("/quick", "Connection: close\r\n")),
        [
          "GET",
        ],
      );
      assert.deepEqual(after[0].body, QUICK_BODY);
    } finally {
      await front.shutdown();
      mapping.close();
      await Deno.remove(path);
    }
  },
);
