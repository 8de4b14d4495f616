/**
 * The HTTP/1.1 side of the live fuzzer: mutated requests (drawn from
 * fast-check arbitraries, so a seed replays them), a strict reader of the
 * answers, and one case run against a TCP port.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import fc from "fast-check";
import type { Expected } from "./fuzz_site.ts";
import type { Outcome } from "./fuzz_tally.ts";

/** A request head as bytes: one char per byte (0–255). */
export function bytesOf(binary: string): Uint8Array {
  return Buffer.from(binary, "latin1");
}

/** One well-formed request whose answer is known exactly. */
export interface ExactRequest {
  readonly method: "GET" | "HEAD";
  readonly target: string;
  readonly expected: Expected;
}

/** What one fuzz case sends over one connection, and what it may expect back. */
export interface HttpCase {
  /** The generator that made it, for the summary. */
  readonly kind: string;
  /** The bytes, sent in order with `delayMs` between parts. */
  readonly parts: readonly Uint8Array[];
  readonly delayMs: number;
  /** Close right after sending, without reading. */
  readonly abrupt: boolean;
  /** Complete request heads sent: answers to wait for (a bound, for mutated bytes). */
  readonly heads: number;
  /** Of those, the first ones that must be answered (see `readHeads`). */
  readonly sure: number;
  /** Well-formed requests only: each request, in order, with its exact answer. */
  readonly exact?: readonly ExactRequest[];
  /** The method of each complete head, as sent: a HEAD's answer has no body. */
  readonly methods: readonly string[];
}

const HEADERS: [string, string][] = [
  ["User-Agent", "flowsched-fuzz/1"],
  ["Accept", "*/*"],
  ["Accept-Encoding", "gzip, deflate, br"],
  ["Accept-Language", "en;q=0.9, fr"],
  ["Connection", "keep-alive"],
  ["Cache-Control", "no-cache"],
  ["If-None-Match", '"no-such-tag"'],
  ["Referer", "http://127.0.0.1/index.html"],
  ["X-Forwarded-For", "10.0.0.1"],
];

const HOSTILE_TARGETS = [
  "/..",
  "/../",
  "/../../../../etc/passwd",
  "/%2e%2e/%2e%2e/etc/passwd",
  "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
  "/..%2f..%2fetc/passwd",
  "/%252e%252e/",
  "/dir/..",
  "/dir/../../x",
  "/.%2e/",
  "/%00",
  "/index.html%00.txt",
  "/a\0b",
  "//etc/passwd",
  "/\\..\\..\\etc\\passwd",
  "/%5c..%5c..%5cetc",
  "/%c0%ae%c0%ae/",
  "/%ff",
  "/%",
  "/%zz",
  "/" + "a".repeat(300),
  "/" + "a/".repeat(600),
  "/index.html.tmp",
  "/index.html.headers.json",
  "/index.html.headers.json/x",
  "/a.css.tmp/sub/x",
  "/.index",
  "/dir/.index",
  "/.hidden",
  "/_flowsched/stats",
  "/_flowsched/stats/../index.html",
  "http://evil.example/index.html",
  "https://127.0.0.1/",
  "*",
  "",
  "?",
  "#",
  "/#frag",
  "/?",
  "/index.html#x",
  "/index.html?" + "q".repeat(5000),
  "/\xe9",
  "/\x7f",
  "/\t",
  "/ /",
  "/proc/self/environ",
  "/dev/zero",
  "/dir//b.txt",
  "/dir/./b.txt",
  "/DIR/B.TXT",
  "/index.html/",
  "/index.html/.",
  "/mid.bin/x",
];

const SEGMENTS = [
  ".",
  "..",
  "%2e",
  "%2e%2e",
  "%2f",
  "%00",
  "%",
  "a",
  "dir",
  "index.html",
  "mid.bin",
  "\xc3\xa9",
  "%C3%A9",
  "\\",
  "",
  "~",
  "*",
  "x.tmp",
  ".headers.json",
];

const SPECIAL_BYTES = [0, 0x09, 0x0a, 0x0d, 0x20, 0x25, 0x2e, 0x2f, 0x3a, 0x3f, 0x7f, 0x80, 0xff];
const INSERTS = [
  "\r\n",
  "\n",
  "\r",
  "\0",
  "%00",
  "..",
  "/../",
  "%2e%2e",
  " ",
  ":",
  "\t",
  "\r\n\r\n",
  "\r\n ",
  "Host: x\r\n",
  "Content-Length: 5\r\n",
  "Transfer-Encoding: chunked\r\n",
  "\xff\xfe",
];

/** A byte-level mutation; positions are taken modulo the length when applied. */
export type Mutation =
  | { op: "flip"; at: number; bit: number }
  | { op: "set"; at: number; value: number }
  | { op: "insert"; at: number; text: string }
  | { op: "delete"; at: number; length: number }
  | { op: "truncate"; at: number }
  | { op: "repeat"; at: number; length: number; times: number };

/** Byte-level mutations: bit flips, special bytes, insertions, deletions, truncation, repeats. */
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({
    op: fc.constant("set" as const),
    at: fc.nat(),
    value: fc.oneof(fc.constantFrom(...SPECIAL_BYTES), fc.nat({ max: 255 })),
  }),
  fc.record({
    op: fc.constant("insert" as const),
    at: fc.nat(),
    text: fc.constantFrom(...INSERTS),
  }),
  fc.record({
    op: fc.constant("delete" as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 8 }),
  }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    op: fc.constant("repeat" as const),
    at: fc.nat(),
    length: fc.integer({ min: 1, max: 16 }),
    times: fc.integer({ min: 2, max: 64 }),
  }),
);

/** Applies `mutations` in turn to `text` (one char per byte). */
export function mutate(text: string, mutations: readonly Mutation[]): string {
  for (const m of mutations) {
    const at = m.at % (text.length + 1);
    switch (m.op) {
      case "flip":
        if (at < text.length) {
          text = text.slice(0, at) + String.fromCharCode(text.charCodeAt(at) ^ (1 << m.bit)) +
            text.slice(at + 1);
        }
        break;
      case "set":
        text = text.slice(0, at) + String.fromCharCode(m.value) + text.slice(at + 1);
        break;
      case "insert":
        text = text.slice(0, at) + m.text + text.slice(at);
        break;
      case "delete":
        text = text.slice(0, at) + text.slice(at + m.length);
        break;
      case "truncate":
        text = text.slice(0, at);
        break;
      case "repeat":
        text = text.slice(0, at) + text.slice(at, at + m.length).repeat(m.times) +
          text.slice(at + m.length);
        break;
    }
  }
  return text;
}

/**
 * The complete heads in `text`, as hyper reads them: empty lines before a
 * request line are skipped, and a blank line ends a head. `methods` has the
 * method of each; `sure` counts the leading heads that use CRLF and nothing
 * else to end their lines: those must be answered. (RFC 9112 lets a server
 * take a bare LF for a line end, or not: hyper waits for more bytes after
 * `\n\r\n` when it comes in two reads, or after a head of 500 bytes.)
 */
export function readHeads(text: string): { methods: string[]; sure: number } {
  const methods: string[] = [];
  let sure = 0;
  for (let unsure = false;;) {
    text = text.replace(/^(\r?\n)+/, "");
    const end = /\r?\n\r?\n/.exec(text);
    if (!end) return { methods, sure };
    const head = text.slice(0, end.index);
    methods.push(head.split(" ", 1)[0]);
    unsure ||= end[0] !== "\r\n\r\n" || /\r(?!\n)|(?<!\r)\n/.test(head);
    if (!unsure) sure++;
    text = text.slice(end.index + end[0].length);
  }
}

function head(method: string, target: string, headers: [string, string][], version = "HTTP/1.1") {
  return `${method} ${target} ${version}\r\n${
    headers.map(([name, value]) => `${name}: ${value}\r\n`).join("")
  }\r\n`;
}

/** The arbitraries of the HTTP cases, for one site's known targets. */
export function httpCases(known: ReadonlyMap<string, Expected>): fc.Arbitrary<HttpCase> {
  const targets = [...known.keys()];
  const exactRequest = fc.record({
    method: fc.constantFrom("GET" as const, "GET" as const, "HEAD" as const),
    target: fc.constantFrom(...targets),
    headers: fc.subarray(HEADERS),
  });
  const render = (r: { method: string; target: string; headers: [string, string][] }) =>
    head(r.method, r.target, [["Host", "127.0.0.1"], ...r.headers]);
  const simple = (kind: string, text: string, heads?: number): HttpCase => {
    const { methods, sure } = readHeads(text);
    return {
      kind,
      parts: [bytesOf(text)],
      delayMs: 0,
      abrupt: false,
      heads: heads ?? methods.length,
      sure: Math.min(sure, heads ?? sure),
      methods,
    };
  };
  const pipeline = (kind: string, min: number, max: number) =>
    fc.array(exactRequest, { minLength: min, maxLength: max }).map((requests): HttpCase => ({
      ...simple(kind, requests.map(render).join("")),
      exact: requests.map((r) => ({
        method: r.method,
        target: r.target,
        expected: known.get(r.target)!,
      })),
    }));
  const host: [string, string] = ["Host", "127.0.0.1"];
  const hostileTarget = fc.oneof(
    fc.constantFrom(...HOSTILE_TARGETS),
    fc.array(fc.constantFrom(...SEGMENTS), { minLength: 1, maxLength: 8 }).map((s) =>
      "/" + s.join("/")
    ),
  );
  const kinds: fc.Arbitrary<HttpCase> = fc.oneof(
    { weight: 8, arbitrary: pipeline("valid", 1, 1) },
    { weight: 5, arbitrary: pipeline("pipelined", 2, 12) },
    {
      weight: 30,
      arbitrary: fc.tuple(
        fc.array(exactRequest, { minLength: 1, maxLength: 3 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
      ).map(([requests, mutations]) =>
        simple("mutated", mutate(requests.map(render).join(""), mutations))
      ),
    },
    {
      weight: 10,
      arbitrary: fc.tuple(fc.constantFrom("GET", "HEAD"), hostileTarget).map(([method, target]) =>
        simple("bad-target", head(method, target, [host]))
      ),
    },
    {
      weight: 5,
      arbitrary: fc.oneof(
        fc.constantFrom(
          "get",
          "POST",
          "PUT",
          "DELETE",
          "PATCH",
          "OPTIONS",
          "TRACE",
          "CONNECT",
          "PRI",
          "G\0ET",
          "GET\t",
          "",
          "GET GET",
          "\xff",
        ),
        fc.string({ minLength: 1, maxLength: 40, unit: "binary-ascii" }),
      ).map((method) => simple("bad-method", head(method, "/index.html", [host]))),
    },
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        "HTTP/1.2",
        "HTTP/2.0",
        "HTTP/0.9",
        "http/1.1",
        "HTTP/1.1 extra",
        "HTTP/01.1",
        "HTTP/1",
        "HTTP/1.1\0",
        "HTTP/1.10",
        "",
        "HTTP/9.9",
      ).map((version) =>
        simple("bad-version", head("GET", "/index.html", version === "" ? [] : [host], version))
      ),
    },
    {
      weight: 10,
      arbitrary: fc.constantFrom(
        "GET /index.html HTTP/1.1\r\n\r\n",
        "GET /index.html HTTP/1.0\r\n\r\n",
        "GET /index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: \0\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nX: \x80\xff\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\n: novalue\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nX: folded\r\n  continued\r\n\r\n",
        "GET /index.html HTTP/1.1\nHost: a\n\n",
        "GET /index.html HTTP/1.1\rHost: a\r\r",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nX\xe9: y\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nIf-None-Match: *\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: Thu, 01 Jan 2099 00:00:00 GMT\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: garbage\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nRange: bytes=0-10\r\n\r\n",
        "GET /mid.bin HTTP/1.1\r\nHost: a\r\nRange: bytes=-1,0-,5-2\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        "\r\n\r\nGET /index.html HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\nGET /index.html HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /index.html\r\n",
        "GET /index.html\r\n\r\n",
        " GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET  /index.html  HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /index.html HTTP/1.1 \r\nHost: a\r\n\r\n",
      ).map((text) => simple("bad-headers", text)),
    },
    {
      weight: 5,
      arbitrary: fc.constantFrom(
        "POST /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nhello",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
        "POST /index.html HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        "GET /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
      ).map((text) => simple("smuggling", text, 1)),
    },
    {
      weight: 4,
      arbitrary: fc.oneof(
        fc.integer({ min: 8 * 1024, max: 1024 * 1024 }).map((size) =>
          simple("huge", head("GET", "/index.html", [host, ["X-Big", "b".repeat(size)]]))
        ),
        fc.integer({ min: 100, max: 5000 }).map((count) =>
          simple(
            "huge",
            head(
              "GET",
              "/index.html",
              [host, ...Array.from({ length: count }, (_, i): [string, string] => [`X-${i}`, "v"])],
            ),
          )
        ),
        fc.integer({ min: 8 * 1024, max: 256 * 1024 }).map((size) =>
          simple("huge", head("GET", "/" + "t".repeat(size), [host]))
        ),
        fc.integer({ min: 1024, max: 64 * 1024 }).map((size) =>
          simple("huge", head("G".repeat(size), "/", [host]))
        ),
      ),
    },
    {
      weight: 5,
      arbitrary: fc.tuple(
        fc.uint8Array({ maxLength: 4096 }),
        fc.boolean(),
      ).map(([random, terminated]) =>
        simple("garbage", latin1(random) + (terminated ? "\r\n\r\n" : ""))
      ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\n",
        "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
      ).map((text) => ({ ...simple("other-protocol", text), heads: 0, sure: 0 })),
    },
  );
  // Slow senders: the same bytes in small pieces, with pauses between them.
  return fc.tuple(
    kinds,
    fc.oneof(
      { weight: 18, arbitrary: fc.constant(null) },
      {
        weight: 1,
        arbitrary: fc.tuple(fc.integer({ min: 2, max: 24 }), fc.integer({ min: 0, max: 5 })),
      },
      { weight: 1, arbitrary: fc.nat() },
    ),
  ).map(([c, how]) => {
    if (how === null) return c;
    const all = c.parts[0];
    if (typeof how === "number") {
      // An abrupt close somewhere inside the request.
      return {
        ...c,
        kind: "abrupt",
        parts: [all.subarray(0, how % (all.length + 1))],
        abrupt: true,
      };
    }
    const [pieces, delayMs] = how;
    const size = Math.max(1, Math.ceil(all.length / pieces));
    const parts: Uint8Array[] = [];
    for (let at = 0; at < all.length; at += size) parts.push(all.subarray(at, at + size));
    return { ...c, kind: `${c.kind}+slow`, parts, delayMs };
  });
}

/** One answer read off a connection. */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Uint8Array;
}

const STATUS_LINE = /^HTTP\/1\.[01] ([1-5]\d\d)(?: [\t\x20-\x7e\x80-\xff]*)?$/;
const FIELD_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[\t ]*([\t\x20-\x7e\x80-\xff]*)$/;
const MAX_ANSWER_HEAD = 64 * 1024;

/** An answer that is not valid HTTP/1.1. */
export class InvalidAnswer extends Error {
  override name = "InvalidAnswer";
}

/**
 * Reads HTTP/1.1 answers from bytes as they arrive, strictly: a status line
 * with a status from 100 to 599, well-formed header fields, and a body framed
 * by Content-Length, chunked coding, or the end of the connection.
 */
export class AnswerReader {
  /** Complete answers (1xx interim answers not included). */
  readonly answers: Answer[] = [];
  #buffer = new Uint8Array(0);
  /** Whether the `i`-th answer belongs to a HEAD request: `true`, `false`, or unknown. */
  readonly #isHead: (index: number) => boolean | undefined;

  constructor(isHead: (index: number) => boolean | undefined) {
    this.#isHead = isHead;
  }

  /** Adds received bytes; throws InvalidAnswer at the first malformed one. */
  push(chunk: Uint8Array) {
    const joined = new Uint8Array(this.#buffer.length + chunk.length);
    joined.set(this.#buffer);
    joined.set(chunk, this.#buffer.length);
    this.#buffer = joined;
    this.#parse(false);
  }

  /** The connection ended: a body read to the end is complete; anything else pending is truncated. */
  end() {
    this.#parse(true);
    if (this.#buffer.length > 0) {
      throw new InvalidAnswer(`the answer was cut off after ${this.#buffer.length} bytes`);
    }
  }

  #parse(ended: boolean) {
    for (;;) {
      const consumed = this.#one(ended);
      if (consumed === 0) return;
      this.#buffer = this.#buffer.subarray(consumed);
    }
  }

  /** Parses one answer off the buffer; returns the bytes it used, 0 if incomplete. */
  #one(ended: boolean): number {
    const buffer = this.#buffer;
    if (buffer.length === 0) return 0;
    const text = latin1(buffer.subarray(0, MAX_ANSWER_HEAD));
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) {
      if (buffer.length >= MAX_ANSWER_HEAD) throw new InvalidAnswer("an answer head over 64 KiB");
      if (!"HTTP/1.".startsWith(text.slice(0, 7)) && !text.startsWith("HTTP/1.")) {
        throw new InvalidAnswer(`not an HTTP/1.x answer: ${JSON.stringify(text.slice(0, 40))}`);
      }
      return 0;
    }
    const [statusLine, ...fieldLines] = text.slice(0, end).split("\r\n");
    const status = STATUS_LINE.exec(statusLine);
    if (!status) throw new InvalidAnswer(`bad status line ${JSON.stringify(statusLine)}`);
    const headers = new Headers();
    for (const line of fieldLines) {
      const field = FIELD_LINE.exec(line);
      if (!field) throw new InvalidAnswer(`bad header field ${JSON.stringify(line)}`);
      headers.append(field[1], field[2].replace(/[\t ]+$/, ""));
    }
    const code = Number(status[1]);
    const start = end + 4;
    const done = (used: number, body: Uint8Array): number => {
      if (code >= 200) this.answers.push({ status: code, headers, body: body.slice() });
      return used;
    };
    const isHead = this.#isHead(this.answers.length);
    const length = headers.get("content-length");
    if (code < 200 || code === 204 || code === 304 || isHead === true) {
      return done(start, new Uint8Array(0));
    }
    if (headers.get("transfer-encoding")?.toLowerCase() === "chunked") {
      return this.#chunked(start, done);
    }
    if (length !== null) {
      if (!/^\d+$/.test(length)) throw new InvalidAnswer(`bad Content-Length ${length}`);
      const size = Number(length);
      if (isHead === undefined && size > 0) {
        // Maybe the answer to a HEAD: then the next answer (or the end) follows at once.
        const next = latin1(buffer.subarray(start, start + 7));
        if (next === "HTTP/1." || (ended && buffer.length === start)) {
          return done(start, new Uint8Array(0));
        }
        if ("HTTP/1.".startsWith(next) && !ended) return 0;
      }
      if (buffer.length - start < size) return 0;
      return done(start + size, buffer.subarray(start, start + size));
    }
    if (!ended) return 0;
    return done(buffer.length, buffer.subarray(start));
  }

  #chunked(start: number, done: (used: number, body: Uint8Array) => number): number {
    const buffer = this.#buffer;
    const parts: Uint8Array[] = [];
    let at = start;
    for (;;) {
      const lineEnd = indexOfCrlf(buffer, at);
      if (lineEnd < 0) return 0;
      const line = latin1(buffer.subarray(at, lineEnd));
      const size = /^([0-9a-fA-F]+)(?:;.*)?$/.exec(line);
      if (!size) throw new InvalidAnswer(`bad chunk size line ${JSON.stringify(line)}`);
      const length = parseInt(size[1], 16);
      at = lineEnd + 2;
      if (length === 0) {
        // Trailer fields, then an empty line.
        for (;;) {
          const trailerEnd = indexOfCrlf(buffer, at);
          if (trailerEnd < 0) return 0;
          const empty = trailerEnd === at;
          at = trailerEnd + 2;
          if (empty) break;
        }
        const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let offset = 0;
        for (const part of parts) {
          body.set(part, offset);
          offset += part.length;
        }
        return done(at, body);
      }
      if (buffer.length < at + length + 2) return 0;
      if (buffer[at + length] !== 0x0d || buffer[at + length + 1] !== 0x0a) {
        throw new InvalidAnswer("a chunk does not end with CRLF");
      }
      parts.push(buffer.subarray(at, at + length));
      at += length + 2;
    }
  }
}

/** Bytes as text, one char per byte. */
export function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

function indexOfCrlf(buffer: Uint8Array, from: number): number {
  for (let i = from; i + 1 < buffer.length; i++) {
    if (buffer[i] === 0x0d && buffer[i + 1] === 0x0a) return i;
  }
  return -1;
}

/** After the deadline the client ends its side; the peer then has this long to close. */
const CLOSE_GRACE_MS = 2000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An HTTP/2 frame header of a SETTINGS frame on stream 0, what an h2 server sends first. */
function isH2Settings(bytes: Uint8Array): boolean {
  return bytes.length >= 9 && bytes[3] === 0x04 &&
    (bytes[5] | bytes[6] | bytes[7] | bytes[8]) === 0;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** Checks the answers of well-formed requests against what they must be. */
function judgeExact(
  exact: readonly ExactRequest[],
  answers: readonly Answer[],
): string | undefined {
  for (const [i, request] of exact.entries()) {
    const answer = answers[i];
    const what = `${request.method} ${request.target}`;
    if (!answer) return `${what}: no answer (${answers.length} of ${exact.length} answered)`;
    if (answer.status !== request.expected.status) {
      return `${what}: status ${answer.status}, expected ${request.expected.status}: ${
        latin1(answer.body.subarray(0, 200))
      }`;
    }
    const body = request.method === "HEAD" || request.expected.status !== 200
      ? undefined
      : request.expected.body;
    if (body && !same(answer.body, body)) {
      return `${what}: a body of ${answer.body.length} bytes that differs from the file's ${body.length}`;
    }
  }
  if (answers.length > exact.length) return `${answers.length - exact.length} answers too many`;
}

/**
 * Runs one case on a new connection to `port`: sends its bytes, reads the
 * answers until every complete request is answered or the peer closes, and
 * judges them. A peer that has neither answered nor closed by `deadlineMs`
 * sees the client end its side, and must then close within 2 s.
 */
export async function runHttpCase(port: number, c: HttpCase, deadlineMs: number): Promise<Outcome> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch (error) {
    return { verdict: "refused", labels: [], detail: String(error) };
  }
  const reader = new AnswerReader((i) =>
    c.exact
      ? c.exact[i]?.method === "HEAD"
      : i < c.methods.length
      ? c.methods[i] === "HEAD"
      : undefined
  );
  const raw: Uint8Array[] = [];
  let ended: "closed" | "reset" | undefined;
  let invalid: string | undefined;
  let wake = () => {};
  const changed = () => new Promise<void>((resolve) => (wake = resolve));
  const reading = (async () => {
    const buffer = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await conn.read(buffer);
        if (n === null) break;
        if (raw.length < 4) raw.push(buffer.slice(0, n));
        reader.push(buffer.subarray(0, n));
        wake();
      }
      ended = "closed";
      reader.end();
    } catch (error) {
      if (error instanceof InvalidAnswer) invalid = error.message;
      else ended ??= "reset";
    }
    ended ??= "closed";
    wake();
  })();
  const done = () => ended !== undefined || (c.heads > 0 && reader.answers.length >= c.heads);
  let deadline: ReturnType<typeof setTimeout> | undefined;
  let late = false;
  const timeUp = new Promise<void>((resolve) =>
    deadline = setTimeout(() => {
      late = true;
      resolve();
    }, deadlineMs)
  );
  try {
    for (const [i, part] of c.parts.entries()) {
      if (i > 0 && c.delayMs > 0) await sleep(c.delayMs);
      if (ended || late) break;
      const wrote = await Promise.race([
        writeAll(conn, part).then(() => true, () => false),
        timeUp.then(() => false),
      ]);
      if (!wrote) break;
    }
    if (c.abrupt) return { verdict: "ok", labels: ["aborted"] };
    if (c.heads === 0 && !ended) await conn.closeWrite().catch(() => {});
    while (!done() && !late) await Promise.race([changed(), timeUp]);
    if (!done()) {
      // Deadline: the peer may be waiting for bytes that will never come. Say so.
      await conn.closeWrite().catch(() => {});
      const grace = sleep(CLOSE_GRACE_MS);
      while (!ended) {
        if (await Promise.race([changed().then(() => false), grace.then(() => true)])) break;
      }
      if (!ended) {
        return {
          verdict: "hang",
          labels: ["hang"],
          detail:
            `no answer and no close ${deadlineMs} ms after the request, nor ${CLOSE_GRACE_MS} ms after the client's end`,
        };
      }
      if (reader.answers.length < c.sure && !invalid) {
        return {
          verdict: "hang",
          labels: ["hang"],
          detail:
            `${c.sure - reader.answers.length} of ${c.sure} complete requests got no answer ` +
            `within ${deadlineMs} ms (closed on the client's end)`,
        };
      }
    }
  } finally {
    clearTimeout(deadline);
    try {
      conn.close();
    } catch { /* closed already */ }
    await reading;
  }
  const labels = reader.answers.map((answer) => String(answer.status));
  if (labels.length === 0) labels.push(ended ?? "closed");
  if (invalid) {
    const first = raw[0] ?? new Uint8Array(0);
    if (c.kind.startsWith("other-protocol") && isH2Settings(first)) {
      return { verdict: "ok", labels: ["h2 SETTINGS"] };
    }
    return { verdict: "invalid", labels: ["invalid"], detail: invalid };
  }
  const wrong = c.exact && judgeExact(c.exact, reader.answers);
  if (wrong) return { verdict: "wrong", labels, detail: wrong };
  return { verdict: "ok", labels };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array) {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}
