import assert from "node:assert/strict";
import { BufferPool, copyOf } from "../../transport/bytes.ts";

Deno.test("copyOf copies a view into a buffer of its own", () => {
  const source = new Uint8Array([9, 1, 2, 3, 9]);
  const copy = copyOf(source.subarray(1, 4));
  assert.deepEqual(copy, new Uint8Array([1, 2, 3]));
  assert.equal(copy.buffer.byteLength, 3);
  source[2] = 0;
  assert.equal(copy[1], 2);
});

Deno.test("BufferPool reuses a given-back buffer for a message that fits, once", () => {
  const pool = new BufferPool();
  const first = pool.copy(new Uint8Array(5000).fill(1));
  assert.equal(first.buffer.byteLength, 5000, "nothing recycled yet: an exact new buffer");
  pool.give(first);
  pool.give(first);
  const second = pool.copy(new Uint8Array(4096).fill(2));
  assert.equal(second.buffer, first.buffer, "the recycled buffer carries the next message");
  assert.deepEqual(second, new Uint8Array(4096).fill(2));
  const third = pool.copy(new Uint8Array(4096).fill(3));
  assert.notEqual(third.buffer, second.buffer, "a buffer given twice is kept once");
  assert.equal(pool.take(100), undefined, "small messages are not pooled");
  pool.give(new Uint8Array(64 * 1024 * 1024));
  assert.equal(pool.take(1 << 20), undefined, "very large buffers are not kept");
});
