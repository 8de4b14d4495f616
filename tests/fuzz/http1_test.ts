import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { HttpError, parseRequestHead, type RequestLimits } from "../../protocol/http1.ts";
import { mutate, mutation } from "../../scripts/hardening/fuzz_http.ts";
import { fuzzRuns } from "./_runs.ts";

/** Text with one char per byte, as bytes. */
const bytes = (text: string) => new Uint8Array(Buffer.from(text, "latin1"));

const charIn = (min: number, max: number) =>
  fc.integer({ min, max }).map((code) => String.fromCharCode(code));
const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const token = fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 12 });
/** A field value (RFC 9110): visible ASCII and obs-text, with spaces and tabs inside only. */
const fieldValue = fc.array(
  fc.tuple(
    fc.string({
      unit: fc.oneof(charIn(0x21, 0x7e), charIn(0x80, 0xff)),
      minLength: 1,
      maxLength: 8,
    }),
    fc.constantFrom(" ", "\t", "  ", " \t"),
  ),
  { maxLength: 4 },
).map((words) => words.map(([word, space], i) => (i > 0 ? space : "") + word).join(""));

/** A well-formed request head and its parts. */
const wellFormed = fc.record({
  method: token,
  target: fc.string({ unit: charIn(0x21, 0x7e), maxLength: 60 }).map((path) => "/" + path),
  version: fc.constantFrom("HTTP/1.1", "HTTP/1.0"),
  host: fieldValue,
  fields: fc.array(fc.tuple(token, fieldValue), { maxLength: 8 }),
}).map((head) => {
  const fields: [string, string][] = head.version === "HTTP/1.1"
    ? [["Host", head.host], ...head.fields]
    : head.fields;
  const requestLine = `${head.method} ${head.target} ${head.version}`;
  const text = `${requestLine}\r\n${fields.map(([n, v]) => `${n}: ${v}\r\n`).join("")}\r\n`;
  return { ...head, fields, requestLine, text };
});

/** Anything a client could send: random bytes, head-like fragments, and mutated heads. */
const hostile = fc.oneof(
  fc.uint8Array({ maxLength: 512 }).map((random) => Buffer.from(random).toString("latin1")),
  fc.array(
    fc.constantFrom(
      "GET",
      "HEAD",
      " ",
      "/",
      "/..",
      "%00",
      "HTTP/1.1",
      "HTTP/1.0",
      "\r\n",
      "\n",
      "\r",
      "\0",
      "Host",
      ":",
      " a",
      "\t",
      "\x80",
      "\x9f",
      "\xa0",
      "\xff",
      "\x0b",
      "\x7f",
      "\r\n\r\n",
    ),
    { maxLength: 40 },
  ).map((parts) => parts.join("")),
  fc.tuple(wellFormed, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([head, m]) =>
    mutate(head.text, m)
  ),
);

const limits: fc.Arbitrary<RequestLimits> = fc.record({
  maxRequestLine: fc.integer({ min: 1, max: 200 }),
  maxHeadBytes: fc.integer({ min: 1, max: 600 }),
  maxHeaders: fc.integer({ min: 0, max: 10 }),
}, { requiredKeys: [] });

Deno.test("parseRequestHead() throws nothing but an HttpError with a 4xx status, whatever the bytes", () => {
  fc.assert(
    fc.property(hostile, limits, (text, limit) => {
      try {
        parseRequestHead(bytes(text), limit);
      } catch (error) {
        assert.ok(error instanceof HttpError, `${(error as Error)?.name}: ${error}`);
        assert.ok(error.status >= 400 && error.status <= 499, `status ${error.status}`);
        assert.ok(error.message.length > 0);
      }
    }),
    { numRuns: fuzzRuns(2000) },
  );
});

Deno.test("a head parseRequestHead() accepts is within its limits and well-formed", () => {
  fc.assert(
    fc.property(fc.oneof(hostile, wellFormed.map((h) => h.text)), limits, (text, limit) => {
      let head;
      try {
        head = parseRequestHead(bytes(text), limit);
      } catch {
        return;
      }
      const lines = text.slice(0, -4).split("\r\n");
      assert.ok(text.length <= (limit.maxHeadBytes ?? 16384));
      assert.ok(lines[0].length <= (limit.maxRequestLine ?? 8192));
      assert.ok(lines.length - 1 <= (limit.maxHeaders ?? 100));
      assert.match(head.method, /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/);
      assert.match(head.version, /^HTTP\/1\.[01]$/);
      assert.ok(head.target.startsWith("/"));
      for (const [name, value] of head.headers) {
        assert.match(name, /^[!#$%&'*+\-.^_`|~0-9a-z]+$/);
        // (Whitespace at the ends is not checked: fields of one name are joined with ", ".)
        assert.doesNotMatch(value, /[^\t\x20-\x7e\x80-\xff]/);
      }
    }),
    { numRuns: fuzzRuns(2000) },
  );
});

Deno.test("well-formed heads round-trip, and are refused only beyond a limit, with its status", () => {
  fc.assert(
    fc.property(
      wellFormed,
      fc.integer({ min: -2, max: 2 }),
      fc.integer({ min: -2, max: 2 }),
      fc.integer({ min: -1, max: 1 }),
      (head, lineDelta, headDelta, countDelta) => {
        const limit = {
          maxRequestLine: head.requestLine.length + lineDelta,
          maxHeadBytes: head.text.length + headDelta,
          maxHeaders: Math.max(0, head.fields.length + countDelta),
        };
        const refusal = head.requestLine.length > limit.maxRequestLine
          ? 414
          : head.text.length > limit.maxHeadBytes || head.fields.length > limit.maxHeaders
          ? 431
          : undefined;
        if (refusal) {
          assert.throws(
            () => parseRequestHead(bytes(head.text), limit),
            (error: HttpError) => error.status === refusal,
          );
          return;
        }
        const parsed = parseRequestHead(bytes(head.text), limit);
        assert.equal(parsed.method, head.method);
        assert.equal(parsed.target, head.target);
        assert.equal(parsed.version, head.version);
        const expected = new Headers();
        for (const [name, value] of head.fields) expected.append(name, value);
        assert.deepEqual([...parsed.headers], [...expected]);
      },
    ),
    { numRuns: fuzzRuns(2000) },
  );
});

Deno.test("a request line of exactly the limit is accepted; one byte more gets 414", () => {
  const head = (line: string) => bytes(`${line}\r\nHost: a\r\n\r\n`);
  const line = "GET /" + "a".repeat(86) + " HTTP/1.1";
  assert.equal(line.length, 100);
  assert.equal(parseRequestHead(head(line), { maxRequestLine: 100 }).target.length, 87);
  assert.throws(
    () => parseRequestHead(head(line.replace("GET /", "GET /a")), { maxRequestLine: 100 }),
    (error: HttpError) => error.status === 414,
  );
});

Deno.test("header values keep bytes 0x80-0xFF (obs-text) exactly, 0x80-0x9F and 0xA0 included", () => {
  const parsed = parseRequestHead(
    bytes("GET / HTTP/1.1\r\nHost: a\r\nX: \x80\x9f mid \xa0\xff\xa0\r\n\r\n"),
  );
  assert.equal(parsed.headers.get("x"), "\x80\x9f mid \xa0\xff\xa0");
});

Deno.test("control characters in a header value are refused with 400, trailing ones too", () => {
  for (const value of ["a\x0b", "a\x0c", "\x0ba", "a\x01b", "a\x7f", "a\nb", "a\n", "a\0"]) {
    assert.throws(
      () => parseRequestHead(bytes(`GET / HTTP/1.1\r\nHost: a\r\nX: ${value}\r\n\r\n`)),
      (error: HttpError) => error.status === 400 && /header X/.test(error.message),
      JSON.stringify(value),
    );
  }
});

Deno.test("a control character in the request target is refused with 400, a bare LF too", () => {
  for (const target of ["/a\nb", "/a\rb", "/\0", "/a\tb", "/\x7f", "/\x1b[0m"]) {
    assert.throws(
      () => parseRequestHead(bytes(`GET ${target} HTTP/1.1\r\nHost: a\r\n\r\n`)),
      (error: HttpError) => error.status === 400,
      JSON.stringify(target),
    );
  }
  // The line limit sees the whole line, not the part before a bare LF.
  assert.throws(
    () =>
      parseRequestHead(bytes(`GET /\n${"a".repeat(100)} HTTP/1.1\r\nHost: a\r\n\r\n`), {
        maxRequestLine: 20,
      }),
    (error: HttpError) => error.status === 400,
  );
});
