import assert from "node:assert/strict";
import {
  AnswerReader,
  bytesOf,
  InvalidAnswer,
  readHeads,
} from "../../scripts/hardening/fuzz_http.ts";

/** Reads `text` in pieces of `size` bytes, then the end of the connection. */
function read(text: string, isHead: (i: number) => boolean | undefined = () => false, size = 7) {
  const reader = new AnswerReader(isHead);
  const bytes = bytesOf(text);
  for (let at = 0; at < bytes.length; at += size) reader.push(bytes.subarray(at, at + size));
  reader.end();
  return reader.answers.map((a) => [a.status, new TextDecoder().decode(a.body)]);
}

Deno.test("the fuzzer's answer reader frames bodies by length, chunks, and the end", () => {
  assert.deepEqual(
    read(
      "HTTP/1.1 100 Continue\r\n\r\n" +
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello" +
        "HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nt: 1\r\n\r\n" +
        "HTTP/1.0 500 Oops\r\n\r\nuntil the end",
    ),
    [[200, "hello"], [404, "abcde"], [500, "until the end"]],
  );
});

Deno.test("the fuzzer's answer reader knows HEAD answers have no body, told or guessing", () => {
  const head = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
  assert.deepEqual(read(head + head, () => true), [[200, ""], [200, ""]]);
  assert.deepEqual(read(head + head, () => undefined), [[200, ""], [200, ""]]);
  assert.deepEqual(read(head + "hello", () => undefined), [[200, "hello"]]);
});

Deno.test("the fuzzer's answer reader refuses what is not HTTP/1.1", () => {
  for (
    const text of [
      "HTTP/1.1 600 Too High\r\n\r\n",
      "HTTP/1.1 20 Short\r\n\r\n",
      "HTTP/2 200\r\n\r\n",
      "hello",
      "HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
      "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\ncut",
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
    ]
  ) {
    assert.throws(() => read(text), InvalidAnswer, JSON.stringify(text));
  }
});

Deno.test("the fuzzer counts the heads a server will see, and those it must answer", () => {
  assert.deepEqual(readHeads("GET / HTTP/1.1\r\n\r\nHEAD /a HTTP/1.1\n\n"), {
    methods: ["GET", "HEAD"],
    sure: 1,
  });
  assert.deepEqual(readHeads("\r\n\r\nGET / HTTP/1.1\r\n\r\n"), { methods: ["GET"], sure: 1 });
  assert.deepEqual(readHeads("GET / HTTP/1.1\r\nHost: a\r\n"), { methods: [], sure: 0 });
  // A bare LF (or CR) in a head makes it and every later one uncertain.
  assert.deepEqual(
    readHeads("GET / HTTP/1.1\r\nHost: a\n\r\nGET / HTTP/1.1\r\n\r\n"),
    { methods: ["GET", "GET"], sure: 0 },
  );
  assert.deepEqual(readHeads("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), { methods: ["GET"], sure: 0 });
});
