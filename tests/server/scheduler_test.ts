import assert from "node:assert/strict";
import { POLICY_NAMES, Scheduler } from "../../mod.ts";
import type { Job, PolicyName } from "../../mod.ts";
import { POLICIES } from "../../server/policies/mod.ts";

function run(policy: PolicyName, streams: number, sizes: number[]) {
  const sent: { stream: number; size: number }[] = [];
  const scheduler = new Scheduler<Job>(
    POLICIES[policy]<Job>(streams),
    streams,
    (stream, job) => sent.push({ stream, size: job.size }),
    { held: true, eventLog: true },
  );
  const jobs = sizes.map((size, seq) => ({ id: seq + 1, size, seq, priority: 0 }));
  for (const job of jobs) scheduler.enqueue(job);
  return { scheduler, sent, jobs };
}

Deno.test("every registered policy is listed by name", () => {
  assert.deepEqual(POLICY_NAMES, ["scf", "rr"]);
});

Deno.test("SCF hands idle senders the smallest waiting response, ties in arrival order", () => {
  const { scheduler, sent } = run("scf", 2, [500, 20, 300, 20, 1]);
  assert.equal(sent.length, 0, "nothing goes out while held");
  scheduler.release();
  assert.deepEqual(sent.map((s) => s.size), [1, 20]);
  scheduler.finished(1);
  scheduler.finished(0);
  scheduler.finished(1);
  scheduler.finished(0);
  assert.deepEqual(sent.map((s) => s.size), [1, 20, 20, 300, 500]);
  assert.equal(scheduler.waiting, 0);
});

Deno.test("RR deals responses to the senders in turn and each sender keeps arrival order", () => {
  const { scheduler, sent } = run("rr", 3, [10, 20, 30, 40, 50, 60, 70]);
  scheduler.release();
  assert.deepEqual(sent, [{ stream: 0, size: 10 }, { stream: 1, size: 20 }, {
    stream: 2,
    size: 30,
  }]);
  scheduler.finished(2); // stream 2 gets its own next job (60), not stream 0's (40)
  assert.deepEqual(sent.at(-1), { stream: 2, size: 60 });
  scheduler.finished(0);
  scheduler.finished(0);
  assert.deepEqual(sent.slice(-2), [{ stream: 0, size: 40 }, { stream: 0, size: 70 }]);
});

Deno.test("a cancelled waiting response is never dispatched, under every policy", () => {
  for (const policy of POLICY_NAMES) {
    const { scheduler, sent, jobs } = run(policy, 1, [5, 6, 7]);
    assert.equal(scheduler.cancel(jobs[0]), true);
    assert.equal(scheduler.cancel(jobs[0]), false, "cancelling twice is a no-op");
    scheduler.release();
    scheduler.finished(0);
    assert.deepEqual(sent.map((s) => s.size), [6, 7], policy);
    assert.deepEqual(scheduler.events.filter((e) => e.type === "cancelled").map((e) => e.id), [1]);
  }
});
