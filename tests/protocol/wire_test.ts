import assert from "node:assert/strict";
import {
  decodeClientMessage,
  decodeServerControl,
  encodeCancel,
  encodeContinue,
  encodeHead,
  encodePriority,
  encodeRequest,
  encodeReset,
  MessageType,
  ProtocolError,
} from "../../protocol/wire.ts";
import { parseRequestHead, parseResponseHead } from "../../protocol/http1.ts";

Deno.test("client messages round-trip through their encoding", () => {
  const request = decodeClientMessage(encodeRequest(7, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  assert.equal(request.type, MessageType.REQUEST);
  assert.equal(request.id, 7);
  assert.equal(
    new TextDecoder().decode((request as { head: Uint8Array }).head).slice(0, 5),
    "GET /",
  );
  assert.deepEqual(decodeClientMessage(encodeCancel(0xffffffff)), {
    type: MessageType.CANCEL,
    id: 0xffffffff,
  });
  assert.deepEqual(decodeClientMessage(encodePriority(3, -5)), {
    type: MessageType.PRIORITY,
    id: 3,
    priority: -5,
  });
});

Deno.test("server control messages round-trip, RESET with an empty reason included", () => {
  const head = decodeServerControl(
    encodeHead(9, 65536, "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n"),
  );
  assert.equal(head.type, MessageType.HEAD);
  assert.equal((head as { run: number }).run, 65536);
  assert.equal(
    parseResponseHead((head as { head: Uint8Array }).head).headers.get("content-length"),
    "70000",
  );
  assert.deepEqual(decodeServerControl(encodeContinue(9, 4464)), {
    type: MessageType.CONTINUE,
    id: 9,
    run: 4464,
  });
  assert.deepEqual(decodeServerControl(encodeReset(9, 0, "")), {
    type: MessageType.RESET,
    id: 9,
    status: 0,
    reason: "",
  });
  assert.deepEqual(decodeServerControl(encodeReset(9, 500, "gone")), {
    type: MessageType.RESET,
    id: 9,
    status: 500,
    reason: "gone",
  });
});

Deno.test("truncated or unknown messages are protocol errors", () => {
  assert.throws(() => decodeClientMessage(new Uint8Array([1, 0, 0])), ProtocolError);
  assert.throws(
    () => decodeClientMessage(new Uint8Array([99, 0, 0, 0, 1])),
    /unknown client message type 99/,
  );
  assert.throws(
    () => decodeClientMessage(new Uint8Array([3, 0, 0, 0, 1])),
    /PRIORITY message of 5 bytes is too short/,
  );
  assert.throws(() => decodeServerControl(new Uint8Array([16, 0, 0, 0, 1, 0, 0])), /HEAD message/);
  assert.throws(
    () => decodeServerControl(new Uint8Array([1, 0, 0, 0, 1, 0, 0])),
    /unknown server message type 1/,
  );
});

Deno.test("request heads are parsed with their headers and limits", () => {
  const encode = (s: string) => new TextEncoder().encode(s);
  const head = parseRequestHead(
    encode("GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n\r\n"),
  );
  assert.equal(head.method, "GET");
  assert.equal(head.target, "/a%20b?x=1");
  assert.equal(head.headers.get("x-a"), "1, 2");
  assert.throws(
    () => parseRequestHead(encode("GET http://x/ HTTP/1.1\r\nHost: h\r\n\r\n")),
    /absolute path/,
  );
  assert.throws(
    () => parseRequestHead(encode("GET / HTTP/2.0\r\nHost: h\r\n\r\n")),
    /unsupported version/,
  );
  assert.throws(
    () => parseRequestHead(encode("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), { maxHeadBytes: 10 }),
    (error: Error & { status?: number }) => error.status === 431,
  );
});
