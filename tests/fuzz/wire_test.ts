import assert from "node:assert/strict";
import fc from "fast-check";
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
import { fuzzRuns } from "./_runs.ts";

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const i32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });
/** Well-formed text (no lone surrogates: UTF-8 cannot carry them). */
const text = fc.string({ unit: "grapheme", maxLength: 200 });

/** Arbitrary bytes, and bytes that start like a message of each type. */
const messageLike = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.tuple(
    fc.constantFrom(0, 1, 2, 3, 4, 16, 17, 18, 19, 255),
    fc.uint8Array({ maxLength: 16 }),
  ).map(([type, rest]) => Uint8Array.of(type, ...rest)),
);

/** A subarray at an offset, as messages arrive in bigger buffers. */
const inBuffer = (bytes: Uint8Array) => {
  const buffer = new Uint8Array(bytes.length + 3);
  buffer.set(bytes, 3);
  return buffer.subarray(3);
};

Deno.test("decodeClientMessage() decodes any bytes or throws ProtocolError, and nothing else", () => {
  fc.assert(
    fc.property(messageLike, (bytes) => {
      let message;
      try {
        message = decodeClientMessage(inBuffer(bytes));
      } catch (error) {
        assert.ok(error instanceof ProtocolError, String(error));
        return;
      }
      const view = new DataView(bytes.buffer);
      assert.equal(message.type, bytes[0]);
      assert.equal(message.id, view.getUint32(1));
      if (message.type === MessageType.REQUEST) assert.deepEqual(message.head, bytes.subarray(5));
      if (message.type === MessageType.PRIORITY) assert.equal(message.priority, view.getInt32(5));
    }),
    { numRuns: fuzzRuns(3000) },
  );
});

Deno.test("decodeServerControl() decodes any bytes or throws ProtocolError, and nothing else", () => {
  fc.assert(
    fc.property(messageLike, (bytes) => {
      let control;
      try {
        control = decodeServerControl(inBuffer(bytes));
      } catch (error) {
        assert.ok(error instanceof ProtocolError, String(error));
        return;
      }
      const view = new DataView(bytes.buffer);
      assert.equal(control.type, bytes[0]);
      assert.equal(control.id, view.getUint32(1));
      if (control.type === MessageType.RESET) assert.equal(control.status, view.getUint16(5));
      else assert.equal(control.run, view.getUint32(5));
    }),
    { numRuns: fuzzRuns(3000) },
  );
});

Deno.test("every client message round-trips through its encoding", () => {
  fc.assert(
    fc.property(u32, fc.uint8Array({ maxLength: 300 }), i32, (id, head, priority) => {
      assert.deepEqual(decodeClientMessage(encodeRequest(id, head)), {
        type: MessageType.REQUEST,
        id,
        head,
      });
      assert.deepEqual(decodeClientMessage(encodeCancel(id)), { type: MessageType.CANCEL, id });
      assert.deepEqual(decodeClientMessage(encodePriority(id, priority)), {
        type: MessageType.PRIORITY,
        id,
        priority,
      });
    }),
    { numRuns: fuzzRuns(2000) },
  );
});

Deno.test("every server control message round-trips through its encoding", () => {
  fc.assert(
    fc.property(u32, u32, u16, text, (id, run, status, words) => {
      const head = decodeServerControl(encodeHead(id, run, words));
      assert.equal(head.type, MessageType.HEAD);
      assert.equal(head.id, id);
      assert.equal((head as { run: number }).run, run);
      assert.equal(new TextDecoder().decode((head as { head: Uint8Array }).head), words);
      assert.deepEqual(decodeServerControl(encodeContinue(id, run)), {
        type: MessageType.CONTINUE,
        id,
        run,
      });
      assert.deepEqual(decodeServerControl(encodeReset(id, status, words)), {
        type: MessageType.RESET,
        id,
        status,
        reason: words,
      });
    }),
    { numRuns: fuzzRuns(2000) },
  );
});

/** Numbers of every kind: in and out of each field's range, fractions, NaN, infinities. */
const anyNumber = fc.oneof(
  fc.integer(),
  fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
  fc.constantFrom(2 ** 31, 2 ** 32, -1, -(2 ** 31) - 1, 65536, NaN, Infinity, -Infinity, 0.5),
  fc.double(),
);

Deno.test("an encoder refuses a number its field cannot hold, instead of sending another one", () => {
  const encoders: [string, (n: number) => Uint8Array, (bytes: Uint8Array) => number][] = [
    ["REQUEST id", (n) => encodeRequest(n, "x"), (b) => decodeClientMessage(b).id],
    ["CANCEL id", (n) => encodeCancel(n), (b) => decodeClientMessage(b).id],
    ["PRIORITY id", (n) => encodePriority(n, 0), (b) => decodeClientMessage(b).id],
    [
      "PRIORITY priority",
      (n) => encodePriority(1, n),
      (b) => (decodeClientMessage(b) as { priority: number }).priority,
    ],
    [
      "HEAD run",
      (n) => encodeHead(1, n, ""),
      (b) => (decodeServerControl(b) as { run: number }).run,
    ],
    [
      "CONTINUE run",
      (n) => encodeContinue(1, n),
      (b) => (decodeServerControl(b) as { run: number }).run,
    ],
    [
      "RESET status",
      (n) => encodeReset(1, n, ""),
      (b) => (decodeServerControl(b) as { status: number }).status,
    ],
  ];
  fc.assert(
    fc.property(anyNumber, fc.constantFrom(...encoders), (n, [field, encode, decode]) => {
      let bytes;
      try {
        bytes = encode(n);
      } catch (error) {
        assert.ok(error instanceof RangeError, `${field}: ${error}`);
        assert.match(error.message, new RegExp(field.split(" ")[1]));
        return;
      }
      // === and not Object.is: -0 is sent as 0, which is the same number.
      assert.ok(decode(bytes) === n, `${field} ${n} was sent as ${decode(bytes)}`);
    }),
    { numRuns: fuzzRuns(3000) },
  );
});

Deno.test("a priority beyond the i32 range is refused, not sent as the most urgent one", () => {
  assert.throws(() => encodePriority(1, 2 ** 31), /priority 2147483648 is outside/);
  assert.throws(() => encodeCancel(-1), /id -1 is outside/);
  assert.throws(() => encodeReset(1, 70000, ""), /status 70000 is outside/);
});
