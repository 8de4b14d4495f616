import assert from "node:assert/strict";
import { prng } from "../../scripts/bench/common.ts";
import { SIM_POLICIES, simulate } from "../../scripts/bench/sched/simulate.ts";
import type { SimPolicy, SimRequest } from "../../scripts/bench/sched/simulate.ts";
import {
  boundedPareto,
  exponential,
  fileSet,
  poissonTrace,
  uniformSize,
} from "../../scripts/bench/sched/workload.ts";
import { mean } from "../../scripts/bench/sched/stats.ts";

const completions = (policy: SimPolicy, requests: SimRequest[], rate = 1) =>
  simulate(requests, policy, { rate }).map((r) => r.completion);

function assertClose(actual: number[], expected: number[]) {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) < 1e-9, `${actual} ≠ ${expected}`));
}

/**
 * A seeded Poisson trace of about 20,000 requests at `load` of a 1 MB/s link,
 * over 20,000 files of `sizes` (whose mean is about `meanSize`).
 */
function trace(load: number, sizes: (rand: () => number) => number, meanSize: number) {
  const rate = 1e6;
  return {
    rate,
    requests: poissonTrace({
      seed: 11,
      files: fileSet(5, 20_000, sizes),
      load,
      bottleneckBytesPerSecond: rate,
      durationSeconds: 20_000 * meanSize / (load * rate),
      popularity: "uniform",
    }),
  };
}

Deno.test("the simulator knows fifo, ps, srpt, scf and srrt", () => {
  assert.deepEqual(SIM_POLICIES, ["fifo", "ps", "srpt", "scf", "srrt"]);
});

Deno.test("a lone request takes its transmission time plus one RTT, slowdown 1, under every policy", () => {
  for (const policy of SIM_POLICIES) {
    const [record] = simulate([{ at: 2, size: 50_000 }], policy, { rate: 1e6, rttMs: 40 });
    assert.ok(Math.abs(record.responseTime - (0.05 + 0.04)) < 1e-12, policy);
    assert.ok(Math.abs(record.completion - 2.05) < 1e-12, policy);
    assert.ok(Math.abs(record.slowdown - 1) < 1e-12, policy);
    assert.equal(record.policy, policy);
  }
});

Deno.test("two simultaneous requests of 1 and 3 bytes at 1 B/s: PS ends at 2 and 4, SRPT at 1 and 4, FIFO in arrival order", () => {
  const small = { at: 0, size: 1 };
  const large = { at: 0, size: 3 };
  assertClose(completions("ps", [small, large]), [2, 4]);
  assertClose(completions("srpt", [small, large]), [1, 4]);
  assertClose(completions("srpt", [large, small]), [4, 1]);
  assertClose(completions("fifo", [small, large]), [1, 4]);
  assertClose(completions("fifo", [large, small]), [3, 4]);
  assertClose(completions("scf", [large, small]), [4, 1]);
});

Deno.test("PS shares the link among the requests present: a later arrival slows the earlier one down", () => {
  assertClose(completions("ps", [{ at: 0, size: 2 }, { at: 1, size: 2 }]), [3, 4]);
});

Deno.test("SRPT preempts a long response for a shorter arrival; SCF lets it finish", () => {
  const requests = [{ at: 0, size: 10 }, { at: 2, size: 1 }];
  assertClose(completions("srpt", requests), [11, 3]);
  assertClose(completions("scf", requests), [10, 11]);
});

Deno.test("SCF picks the smallest waiting response when the link frees, FIFO the oldest", () => {
  const requests = [{ at: 0, size: 5 }, { at: 1, size: 4 }, { at: 2, size: 1 }];
  assertClose(completions("scf", requests), [5, 10, 6]);
  assertClose(completions("fifo", requests), [5, 9, 10]);
});

Deno.test("the link idles between busy periods and restarts at the next arrival", () => {
  for (const policy of SIM_POLICIES) {
    assertClose(completions(policy, [{ at: 0, size: 1 }, { at: 5, size: 2 }]), [1, 7]);
  }
});

Deno.test("SRRT serves the response that finishes soonest on its path, even with more bytes", () => {
  const requests = [
    { at: 0, size: 3, rttMs: 10, cwndBytes: 1 }, // RRT 0.01 × (1 + 3) = 0.04 s
    { at: 0, size: 1, rttMs: 100, cwndBytes: 1 }, // RRT 0.1 × (1 + 1) = 0.2 s
  ];
  assertClose(completions("srrt", requests), [3, 4]);
  assertClose(completions("srpt", requests), [4, 1]);
  const [near, far] = simulate(requests, "srrt", { rate: 1 });
  assert.ok(Math.abs(near.responseTime - 3.01) < 1e-12);
  assert.ok(Math.abs(far.responseTime - 4.1) < 1e-12);
});

Deno.test("with the same path for every request SRRT schedules exactly as SRPT", () => {
  const { requests, rate } = trace(0.9, (rand) => boundedPareto(rand), 6800);
  const some = requests.slice(0, 3000);
  assert.deepEqual(
    simulate(some, "srrt", { rate, rttMs: 20 }).map((r) => r.completion),
    simulate(some, "srpt", { rate, rttMs: 20 }).map((r) => r.completion),
  );
});

Deno.test("every policy is work-conserving: the last byte leaves at the same moment", () => {
  const rand = prng(3);
  let at = 0;
  const requests = Array.from({ length: 500 }, () => ({
    at: at += exponential(rand, 1),
    size: uniformSize(rand, 0.1, 1.7),
  }));
  const ends = SIM_POLICIES.map((p) => Math.max(...completions(p, requests)));
  for (const end of ends) assert.ok(Math.abs(end - ends[0]) < 1e-6, `${ends}`);
});

/**
 * A slow, obviously correct reference: between events every active request
 * gets its share of the link; the next event is the nearest arrival or finish.
 */
function reference(requests: SimRequest[], policy: "ps" | "srpt", rate: number): number[] {
  const remaining = requests.map((r) => r.size);
  const done = requests.map(() => NaN);
  const order = requests.map((_, i) => i).sort((a, b) => requests[a].at - requests[b].at || a - b);
  const active: number[] = [];
  let t = 0;
  let next = 0;
  while (next < order.length || active.length > 0) {
    if (active.length === 0) t = Math.max(t, requests[order[next]].at);
    while (next < order.length && requests[order[next]].at <= t) active.push(order[next++]);
    const served = policy === "ps"
      ? active
      : [active.reduce((b, i) => remaining[i] < remaining[b] ? i : b)];
    const share = rate / served.length;
    const step = Math.min(
      ...served.map((i) => remaining[i] / share),
      next < order.length ? requests[order[next]].at - t : Infinity,
    );
    for (const i of served) remaining[i] -= share * step;
    t += step;
    for (const i of served) {
      if (remaining[i] <= 1e-9 * requests[i].size) {
        done[i] = t;
        active.splice(active.indexOf(i), 1);
      }
    }
  }
  return done;
}

Deno.test("event-driven PS and SRPT agree with a step-by-step reference on a random trace", () => {
  const rand = prng(9);
  let at = 0;
  const requests = Array.from({ length: 1000 }, () => ({
    at: at += exponential(rand, 1),
    size: boundedPareto(rand, 1.1, 0.03, 30),
  }));
  for (const policy of ["ps", "srpt"] as const) {
    assertClose(completions(policy, requests), reference(requests, policy, 1));
  }
});

Deno.test("M/M/1 at load 0.5: PS and FIFO mean response time is E[S]/(1 − ρ) within 10%", () => {
  const { requests, rate } = trace(0.5, (rand) => exponential(rand, 10_000), 10_000);
  const service = mean(requests.map((r) => r.size)) / rate;
  const expected = service / (1 - 0.5);
  for (const policy of ["ps", "fifo"] as const) {
    const measured = mean(simulate(requests, policy, { rate }).map((r) => r.responseTime));
    assert.ok(
      Math.abs(measured / expected - 1) < 0.1,
      `${policy}: ${measured.toFixed(5)} s against ${expected.toFixed(5)} s`,
    );
  }
});

Deno.test("M/G/1 at load 0.7 with uniform sizes: FIFO mean matches Pollaczek–Khinchine within 10%", () => {
  const { requests, rate } = trace(0.7, (rand) => uniformSize(rand, 1000, 19_000), 10_000);
  const times = requests.map((r) => r.size / rate);
  const rho = 0.7;
  const lambda = rho / mean(times);
  const expected = mean(times) + lambda * mean(times.map((s) => s * s)) / (2 * (1 - rho));
  const measured = mean(simulate(requests, "fifo", { rate }).map((r) => r.responseTime));
  assert.ok(Math.abs(measured / expected - 1) < 0.1, `${measured} s against ${expected} s`);
});

Deno.test("heavy-tailed sizes at load 0.9: mean response time SRPT ≤ SCF, SRPT ≤ PS ≤ FIFO", () => {
  const { requests, rate } = trace(0.9, (rand) => boundedPareto(rand), 6800);
  const meanOf = (policy: SimPolicy) =>
    mean(simulate(requests, policy, { rate, rttMs: 10 }).map((r) => r.responseTime));
  const [fifo, ps, srpt, scf] = (["fifo", "ps", "srpt", "scf"] as const).map(meanOf);
  assert.ok(srpt <= ps && ps <= fifo, `srpt ${srpt}, ps ${ps}, fifo ${fifo}`);
  assert.ok(srpt <= scf, `srpt ${srpt}, scf ${scf}`);
});

Deno.test("records come back in input order, whatever the arrival order", () => {
  const records = simulate([{ at: 3, size: 1 }, { at: 0, size: 1 }], "fifo", { rate: 1 });
  assert.deepEqual(records.map((r) => [r.index, r.arrival, r.completion]), [[0, 3, 4], [1, 0, 1]]);
});

Deno.test("the simulator rejects a non-positive rate or size with a message naming it", () => {
  assert.throws(() => simulate([{ at: 0, size: 1 }], "ps", { rate: 0 }), /rate/);
  assert.throws(() => simulate([{ at: 0, size: 0 }], "ps", { rate: 1 }), /request 0 has size 0/);
  assert.throws(() => simulate([], "lifo" as SimPolicy, { rate: 1 }), /unknown policy "lifo"/);
});
