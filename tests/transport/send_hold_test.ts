import assert from "node:assert/strict";
import { MAX_HOLD_MS, MIN_HOLD_MS, SendHold } from "../../transport/send_hold.ts";

/** A SendHold on a clock the test moves. */
function held(bufferBytes: number) {
  let now = 0;
  const hold = new SendHold(bufferBytes, () => now);
  return { hold, advance: (ms: number) => (now += ms) };
}

Deno.test("the first full buffer of a busy spell is waited for through readiness", () => {
  const { hold } = held(400_000);
  assert.equal(hold.next(400_000), 0);
});

Deno.test("once the rate is known, the hold is the time the link takes to free three quarters of the buffer", () => {
  const { hold, advance } = held(400_000);
  hold.next(400_000);
  // 100 kB per ms: 300 kB free in 3 ms.
  advance(1);
  assert.equal(hold.next(100_000), 3);
  advance(3);
  assert.equal(hold.next(300_000), 3);
});

Deno.test("the rate is a long average: one burst of acknowledgements does not shorten the hold to nothing", () => {
  const { hold, advance } = held(400_000);
  hold.next(400_000);
  for (let i = 0; i < 10; i++) {
    advance(2);
    hold.next(100_000);
  }
  // 50 kB per ms so far (6 ms for 300 kB); a hold that found the whole buffer free barely moves it.
  advance(4);
  const after = hold.next(400_000);
  assert.ok(after > 5 && after <= 6, `hold ${after} ms`);
});

Deno.test("a slow link gets the longest hold, a fast one none (readiness as before)", () => {
  const slow = held(400_000);
  slow.hold.next(400_000);
  slow.advance(100);
  assert.equal(slow.hold.next(64_000), MAX_HOLD_MS);

  const fast = held(400_000);
  fast.hold.next(400_000);
  fast.advance(1);
  // 1 MB per ms: 300 kB free in 0.3 ms, below the timers' resolution.
  assert.equal(fast.hold.next(1_000_000), 0);
  assert.ok(MIN_HOLD_MS > 0.3);
});

Deno.test("a try that sent nothing waits for readiness, and the time counts against the rate", () => {
  const { hold, advance } = held(400_000);
  hold.next(400_000);
  advance(1);
  assert.equal(hold.next(0), 0);
  advance(1);
  // 100 kB in 2 ms: 50 kB per ms, 6 ms for 300 kB.
  assert.equal(hold.next(100_000), 6);
});

Deno.test("after the writer ran out of messages, the next full buffer starts a new busy spell", () => {
  const { hold, advance } = held(400_000);
  hold.next(400_000);
  advance(1);
  assert.equal(hold.next(100_000), 3);
  hold.idle();
  advance(1000);
  assert.equal(hold.next(400_000), 0);
  advance(1);
  assert.equal(hold.next(300_000), 1);
});

Deno.test("the rate follows a link that slows down: it is averaged over about a second", () => {
  const { hold, advance } = held(400_000);
  hold.next(400_000);
  for (let i = 0; i < 500; i++) {
    advance(2);
    hold.next(400_000); // 200 kB per ms: no hold.
  }
  let last = 0;
  for (let i = 0; i < 1500; i++) {
    advance(2);
    last = hold.next(20_000); // 10 kB per ms: 30 ms for 300 kB.
  }
  assert.equal(last, MAX_HOLD_MS);
});
