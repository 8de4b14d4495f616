import assert from "node:assert/strict";
import fc from "fast-check";
import { ReceiveBuffer } from "../../transport/sctp_shared.ts";

/** Byte `i` of every test message. */
const byteAt = (i: number) => (i * 31 + (i >> 8)) & 0xff;

/** Reads a message of `total` bytes into `buffer` in pieces of at most `pieces[k]` bytes. */
function feed(buffer: ReceiveBuffer, total: number, pieces: number[], limit: number) {
  buffer.start(limit);
  for (let at = 0, k = 0; at < total; k++) {
    const space = buffer.space();
    const n = Math.min(space.byteLength, total - at, pieces[k % pieces.length]);
    for (let i = 0; i < n; i++) space[i] = byteAt(at + i);
    buffer.advance(n);
    at += n;
  }
}

Deno.test("ReceiveBuffer keeps the first maxMessageSize bytes of any message, read in any pieces", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1024, max: 300_000 }),
      fc.integer({ min: 1, max: 700_000 }),
      fc.array(fc.integer({ min: 1, max: 200_000 }), { minLength: 1, maxLength: 8 }),
      (limit, total, pieces) => {
        const buffer = new ReceiveBuffer();
        feed(buffer, total, pieces, limit);
        assert.ok(buffer.capacity <= Math.max(256 * 1024, limit + 64 * 1024));
        const message = buffer.take(3);
        assert.equal(message.stream, 3);
        assert.equal(message.truncated, total > limit ? true : undefined);
        assert.equal(message.data.byteLength, Math.min(total, limit));
        assert.ok(message.data.every((b, i) => b === byteAt(i)));
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("ReceiveBuffer lets go of its memory after a 60 MiB message", () => {
  const buffer = new ReceiveBuffer();
  feed(buffer, 60 * 1024 * 1024, [1024 * 1024], 64 * 1024 * 1024);
  assert.ok(buffer.capacity >= 60 * 1024 * 1024);
  assert.equal(buffer.take(0).data.byteLength, 60 * 1024 * 1024);
  assert.equal(buffer.capacity, 256 * 1024);
  // Messages that fit keep the buffer: no regrowth per message.
  feed(buffer, 200 * 1024, [64 * 1024], 64 * 1024 * 1024);
  buffer.take(0);
  assert.equal(buffer.capacity, 256 * 1024);
});
