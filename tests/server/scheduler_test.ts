/**
 * The scheduler core and every registered policy, on lanes whose runs
 * complete when the test says so: the order of runs is asserted on the
 * scheduler's event log, never on timing.
 */

import assert from "node:assert/strict";
import { POLICIES, POLICY_NAMES, Scheduler } from "../../mod.ts";
import type {
  Outcome,
  PathInfo,
  PolicyName,
  Run,
  ScheduledFlow,
  SchedulerEvent,
  SchedulerOptions,
} from "../../mod.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** A scheduler over fake lanes: `complete()` finishes the oldest run in flight. */
function harness(policy: PolicyName, options: SchedulerOptions = {}) {
  const scheduler = new Scheduler<string>(POLICIES[policy](), {
    runBytes: 100,
    laneDepth: 1,
    eventLog: true,
    ...options,
  });
  const inFlight: { run: Run<string>; done: PromiseWithResolvers<void> }[] = [];
  const settled: { id: number; outcome: Outcome; payload: string }[] = [];
  const lane = (streams = 4, path?: PathInfo) =>
    scheduler.addLane({
      streams,
      path: () => path,
      send(run) {
        const done = Promise.withResolvers<void>();
        inFlight.push({ run, done });
        return done.promise;
      },
      settled: (flow, outcome) => settled.push({ id: flow.id, outcome, payload: flow.payload }),
    });
  const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
  /** Completes the oldest run in flight (or fails it). */
  const complete = async (fail = false) => {
    const next = inFlight.shift();
    assert.ok(next, "a run is in flight");
    if (fail) next.done.reject(new Error("send failed"));
    else next.done.resolve();
    await tick();
  };
  /** Completes runs until none is left. */
  const drain = async () => {
    while (inFlight.length > 0) await complete();
  };
  const runs = () =>
    scheduler.events.filter((e): e is Extract<SchedulerEvent, { type: "run" }> => e.type === "run");
  return { scheduler, lane, inFlight, settled, complete, drain, runs };
}

/** The ids of runs in order, collapsing consecutive runs of one response. */
function order(runs: { id: number }[]): number[] {
  return runs.map((r) => r.id).filter((id, i, all) => i === 0 || all[i - 1] !== id);
}

Deno.test("the registry lists every policy by name", () => {
  assert.deepEqual(POLICY_NAMES, ["scf", "rr", "srpt", "srrt", "ps", "fifo", "sizeclass"]);
});

for (const policy of POLICY_NAMES) {
  Deno.test(`${policy}: every byte of every response is sent once, in order, on one stream`, async () => {
    const h = harness(policy, { laneDepth: 2 });
    const lanes = [h.lane(3), h.lane(2)];
    const sizes = [0, 1, 99, 100, 101, 250, 1000, 7, 333];
    const flows = sizes.map((size, i) => h.scheduler.enqueue(lanes[i % 2], i + 1, size, `p${i}`));
    await h.drain();
    for (const flow of flows) {
      const runs = h.runs().filter((r) => r.id === flow.id);
      assert.ok(runs.length >= 1, `response ${flow.id} had a run`);
      let offset = 0;
      for (const run of runs) {
        assert.equal(run.offset, offset, `response ${flow.id} continues where it stopped`);
        assert.ok(run.bytes <= 100, "a run is at most runBytes");
        assert.equal(run.stream, flow.stream, "a response keeps its stream");
        offset += run.bytes;
      }
      assert.equal(offset, flow.size, `response ${flow.id} is sent whole`);
    }
    assert.deepEqual(
      h.settled.map((s) => s.outcome),
      sizes.map(() => "finished"),
    );
    assert.equal(h.scheduler.running + h.scheduler.waiting, 0);
  });

  Deno.test(`${policy}: a cancelled waiting response never runs and a running one stops within one run`, async () => {
    const h = harness(policy, { laneDepth: 1 });
    const lane = h.lane(4);
    const running = h.scheduler.enqueue(lane, 1, 1000, "running");
    const waiting = h.scheduler.enqueue(lane, 2, 1000, "waiting");
    await h.complete(); // whichever started has had one run
    const started = h.runs()[0].id === 1 ? running : waiting;
    const other = started === running ? waiting : running;
    assert.equal(h.scheduler.cancel(other), h.runs().some((r) => r.id === other.id));
    assert.equal(h.scheduler.cancel(started), true, "the started one has its head out");
    assert.equal(h.scheduler.cancel(started), undefined, "cancelling twice is a no-op");
    const runsAtCancel = h.runs().filter((r) => r.id === started.id).length;
    await h.drain();
    const runsAfter = h.runs().filter((r) => r.id === started.id).length;
    assert.ok(runsAfter - runsAtCancel <= 0, "no run starts after the cancel");
    assert.ok(runsAfter <= 2, "at most the run in flight went out");
    assert.deepEqual(
      h.settled.map((s) => [s.payload, s.outcome]).sort(),
      [["running", "cancelled"], ["waiting", "cancelled"]],
    );
  });

  Deno.test(`${policy}: a priority change applies at the next run`, async () => {
    const h = harness(policy, { laneDepth: 1, held: true });
    const lane = h.lane(4);
    const a = h.scheduler.enqueue(lane, 1, 1000, "a");
    const b = h.scheduler.enqueue(lane, 2, 1000, "b");
    h.scheduler.setPriority(b, -1);
    h.scheduler.release();
    assert.equal(h.runs()[0].id, b.id, "the urgent response goes first");
    h.scheduler.setPriority(a, -2);
    await h.complete();
    assert.equal(h.runs()[1].id, a.id, "and yields at the next run to a more urgent one");
    await h.drain();
  });

  Deno.test(`${policy}: a failed run ends its response as failed, and the lane can be closed`, async () => {
    const h = harness(policy, { laneDepth: 1 });
    const lane = h.lane(2);
    h.scheduler.enqueue(lane, 1, 500, "a");
    h.scheduler.enqueue(lane, 2, 500, "b");
    await h.complete(true);
    h.scheduler.closeLane(lane);
    await h.drain();
    assert.deepEqual(h.settled.map((s) => s.outcome).sort(), ["cancelled", "failed"]);
    assert.throws(() => h.scheduler.enqueue(lane, 3, 1, "c"), /closed lane/);
  });
}

Deno.test("srpt: a 1 KiB response arriving during a 10 MiB one completes within two further runs of it", async () => {
  const h = harness("srpt", { runBytes: 128 * KiB, laneDepth: 2 });
  const lane = h.lane(4);
  const big = h.scheduler.enqueue(lane, 1, 10 * MiB, "big");
  for (let i = 0; i < 5; i++) await h.complete();
  const before = h.runs().filter((r) => r.id === big.id).length;
  const small = h.scheduler.enqueue(lane, 2, KiB, "small");
  while (!h.settled.some((s) => s.id === small.id)) await h.complete();
  const further = h.runs().filter((r) => r.id === big.id).length - before;
  assert.ok(further <= 2, `the big response sent ${further} more runs first`);
  await h.drain();
});

Deno.test("scf hands out the smallest waiting response and never preempts a started one", async () => {
  const h = harness("scf", { held: true });
  const lane = h.lane(2);
  for (const [i, size] of [500, 20, 300, 20, 1].entries()) {
    h.scheduler.enqueue(lane, i + 1, size, "");
  }
  h.scheduler.release();
  await h.complete();
  // Arrives while the first 20 is being sent: it waits for that one, then
  // goes before the second 20.
  h.scheduler.enqueue(lane, 9, 5, "");
  await h.drain();
  assert.deepEqual(order(h.runs()).map((id) => h.runs().find((r) => r.id === id)!.size), [
    1,
    20,
    5,
    20,
    300,
    500,
  ]);
});

Deno.test("srpt preempts a large response for a smaller one at the next run boundary", async () => {
  const h = harness("srpt");
  const lane = h.lane(2);
  h.scheduler.enqueue(lane, 1, 1000, "");
  await h.complete();
  h.scheduler.enqueue(lane, 2, 150, "");
  await h.drain();
  assert.deepEqual(order(h.runs()), [1, 2, 1]);
});

Deno.test("ps gives every active response one run in turn", async () => {
  const h = harness("ps", { held: true });
  const lane = h.lane(4);
  for (const id of [1, 2, 3]) h.scheduler.enqueue(lane, id, 250, "");
  h.scheduler.release();
  await h.drain();
  assert.deepEqual(h.runs().map((r) => r.id), [1, 2, 3, 1, 2, 3, 1, 2, 3]);
});

Deno.test("fifo sends whole responses in arrival order", async () => {
  const h = harness("fifo", { held: true });
  const lane = h.lane(4);
  for (const [i, size] of [300, 10, 200].entries()) h.scheduler.enqueue(lane, i + 1, size, "");
  h.scheduler.release();
  await h.drain();
  assert.deepEqual(h.runs().map((r) => r.id), [1, 1, 1, 2, 3, 3]);
});

Deno.test("rr deals responses to the streams in turn; each stream keeps arrival order", async () => {
  const h = harness("rr", { held: true });
  const lane = h.lane(2);
  for (const id of [1, 2, 3, 4]) h.scheduler.enqueue(lane, id, 150, "");
  h.scheduler.release();
  await h.drain();
  const runs = h.runs();
  assert.deepEqual(runs.map((r) => r.stream), [0, 1, 0, 1, 0, 1, 0, 1]);
  // Stream 0 carries 1 then 3, stream 1 carries 2 then 4; the streams alternate run by run.
  assert.deepEqual(runs.map((r) => r.id), [1, 2, 1, 2, 3, 4, 3, 4]);
});

Deno.test("srrt prefers the response that will be done soonest over the path it must cross", async () => {
  const h = harness("srrt", { held: true, laneDepth: 2 });
  const near = h.lane(2, { rttMs: 10, cwndBytes: 10_000, mtu: 1500 });
  const far = h.lane(2, { rttMs: 150, cwndBytes: 10_000, mtu: 1500 });
  // RRT: far 150 × (1 + 200/10000) = 153 ms; near 10 × (1 + 5000/10000) = 15 ms.
  h.scheduler.enqueue(far, 1, 200, "");
  h.scheduler.enqueue(near, 2, 5000, "");
  h.scheduler.release();
  assert.equal(h.runs()[0].id, 2, "more bytes on the near path finish sooner");
  const srpt = harness("srpt", { held: true, laneDepth: 2 });
  srpt.scheduler.enqueue(srpt.lane(2), 1, 200, "");
  srpt.scheduler.enqueue(srpt.lane(2), 2, 5000, "");
  srpt.scheduler.release();
  assert.equal(srpt.runs()[0].id, 1, "srpt looks at bytes only");
  await h.drain();
  await srpt.drain();
});

Deno.test("sizeclass puts each response on the stream of its size class, smallest on stream 0", async () => {
  const h = harness("sizeclass", { held: true, runBytes: 16 * MiB });
  const lane = h.lane(4);
  const sizes = [0, 1024, 1025, 4096, 5000, 65536, 10 * MiB];
  const streams = sizes.map((size, i) => h.scheduler.enqueue(lane, i + 1, size, "").stream);
  assert.deepEqual(streams, [0, 0, 1, 1, 2, 3, 3]);
  h.scheduler.release();
  await h.drain();
});

Deno.test("admission control keeps at most maxRunning responses in service", async () => {
  const h = harness("ps", { maxRunning: 2, laneDepth: 4 });
  const lane = h.lane(4);
  for (const id of [1, 2, 3, 4]) h.scheduler.enqueue(lane, id, 300, "");
  let most = 0;
  while (h.inFlight.length > 0) {
    most = Math.max(most, h.scheduler.running);
    await h.complete();
  }
  assert.equal(most, 2);
  assert.deepEqual(h.settled.map((s) => s.id), [1, 2, 3, 4]);
});

Deno.test("wireRuns caps the runs in flight over all lanes, and the policy picks across lanes", async () => {
  const h = harness("srpt", { wireRuns: 1, laneDepth: 2, held: true });
  const a = h.lane(2);
  const b = h.lane(2);
  h.scheduler.enqueue(a, 1, 300, "");
  h.scheduler.enqueue(b, 1, 100, "");
  h.scheduler.release();
  assert.equal(h.inFlight.length, 1);
  assert.equal(h.inFlight[0].run.flow.size, 100, "the smallest response of any lane goes first");
  await h.drain();
  assert.deepEqual(h.runs().map((r) => r.lane), [1, 0, 0, 0]);
});

Deno.test("a response of 0 body bytes gets one run for its head", async () => {
  const h = harness("srpt");
  const flow: ScheduledFlow<string> = h.scheduler.enqueue(h.lane(1), 7, 0, "head only");
  await h.drain();
  assert.deepEqual(h.runs().map((r) => [r.id, r.bytes]), [[flow.id, 0]]);
  assert.deepEqual(h.settled, [{ id: 7, outcome: "finished", payload: "head only" }]);
});

Deno.test("a cancel after every byte was handed out is ignored: the response completes", async () => {
  const h = harness("srpt", { runBytes: 1000 });
  const flow = h.scheduler.enqueue(h.lane(1), 1, 500, "whole");
  assert.equal(h.inFlight.length, 1, "its only run is in flight");
  assert.equal(h.scheduler.cancel(flow), undefined, "no RESET may follow a complete body");
  await h.drain();
  assert.deepEqual(h.settled, [{ id: 1, outcome: "finished", payload: "whole" }]);
});

Deno.test("a lane whose send throws fails that response and keeps the counters balanced", async () => {
  const scheduler = new Scheduler<string>(POLICIES.srpt(), { runBytes: 100, maxRunning: 1 });
  const settled: string[] = [];
  let throws = true;
  const lane = scheduler.addLane({
    streams: 1,
    send() {
      if (throws) throw new Error("closed mapping");
      return Promise.resolve();
    },
    settled: (flow, outcome) => settled.push(`${flow.payload} ${outcome}`),
  });
  scheduler.enqueue(lane, 1, 50, "a");
  await new Promise((resolve) => setTimeout(resolve, 0));
  throws = false;
  scheduler.enqueue(lane, 2, 50, "b");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(settled, ["a failed", "b finished"], "the admission slot came back");
  assert.equal(scheduler.running, 0);
});

Deno.test("dispose stops the pacing timer of a paced scheduler", () => {
  const h = harness("srpt", { paceBytesPerSecond: 1000, runBytes: 100, laneDepth: 4 });
  h.scheduler.enqueue(h.lane(1), 1, 1000, "");
  assert.equal(h.inFlight.length, 1, "the next run waits for the emulated link");
  // Without dispose the timer would outlive the test (Deno's sanitizer fails it).
  h.scheduler.dispose();
});
