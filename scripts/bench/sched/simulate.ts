/**
 * An exact fluid simulation of one bottleneck link serving a request trace:
 * the limit a real scheduler on that link can be compared against.
 *
 * The link sends R bytes per second to whichever responses the policy
 * chooses; there are no packets, no slow start and no losses. Each response
 * also pays one round-trip time (the request's way in and the last byte's
 * way out), which is not spent on the link. The simulation is event-driven:
 * between two events (an arrival or a completion) every rate is constant, so
 * each completion time is computed, not stepped to.
 *
 * @module
 */

/** One request given to the simulator. */
export interface SimRequest {
  /** Arrival, in seconds. */
  at: number;
  /** Response size in bytes (positive). */
  size: number;
  /** Round-trip time of the request's path in milliseconds; defaults to the option's. */
  rttMs?: number;
  /** Congestion window of the request's path in bytes (SRRT only); defaults to the option's. */
  cwndBytes?: number;
}

/** What happened to one request. */
export interface SimRecord {
  /** Position of the request in the input. */
  index: number;
  /** The policy that served it. */
  policy: SimPolicy;
  /** Response size in bytes. */
  size: number;
  /** Arrival, in seconds. */
  arrival: number;
  /** When the link sent its last byte, in seconds. */
  completion: number;
  /** completion − arrival + one RTT, in seconds. */
  responseTime: number;
  /** responseTime / (size / R + RTT): 1 when the request had the link to itself. */
  slowdown: number;
}

/** Options of {@linkcode simulate}. */
export interface SimulateOptions {
  /** Rate of the bottleneck link in bytes per second. */
  rate: number;
  /**
   * RTT of requests that carry none, in milliseconds.
   * @default {0}
   */
  rttMs?: number;
  /**
   * Congestion window of requests that carry none, in bytes: SCTP's initial
   * window for a 1500-byte MTU (RFC 9260 §7.2.1).
   * @default {4380}
   */
  cwndBytes?: number;
}

interface Job {
  order: number;
  index: number;
  at: number;
  size: number;
  rtt: number;
  cwnd: number;
  remaining: number;
  /** Processor sharing only: the virtual time at which the job completes. */
  tag: number;
  completion: number;
}

/** A policy: sets `completion` on every job; `jobs` are in arrival order. */
type Engine = (jobs: Job[], rate: number) => void;

/** A binary min-heap under `before`. Only the top may have its key lowered in place. */
class MinHeap<T> {
  readonly #items: T[] = [];
  constructor(readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.#items.length;
  }

  peek(): T {
    return this.#items[0];
  }

  push(item: T): void {
    const items = this.#items;
    let i = items.push(item) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  pop(): T {
    const items = this.#items;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && this.before(items[l], items[m])) m = l;
        if (r < items.length && this.before(items[r], items[m])) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m], items[i]];
        i = m;
      }
    }
    return top;
  }
}

/**
 * One response at a time, chosen by the smallest `key` (ties in arrival
 * order). Preemptive: a new arrival with a smaller key takes the link at
 * once. `key` may only shrink as the served response's remaining bytes do,
 * so the served response stays at the top of the heap.
 */
function priority(key: (job: Job) => number, preemptive: boolean): Engine {
  return (jobs, rate) => {
    const waiting = new MinHeap<Job>((a, b) => {
      const d = key(a) - key(b);
      return d < 0 || (d === 0 && a.order < b.order);
    });
    let t = 0;
    let next = 0;
    let serving: Job | undefined;
    const admit = () => {
      while (next < jobs.length && jobs[next].at <= t) waiting.push(jobs[next++]);
    };
    while (next < jobs.length || waiting.size > 0 || serving) {
      if (!serving) {
        if (waiting.size === 0) {
          t = Math.max(t, jobs[next].at);
          admit();
        }
        serving = preemptive ? waiting.peek() : waiting.pop();
      }
      const done = t + serving.remaining / rate;
      const arrival = next < jobs.length ? jobs[next].at : Infinity;
      if (done <= arrival) {
        t = done;
        serving.remaining = 0;
        serving.completion = t;
        if (preemptive) waiting.pop();
        serving = undefined;
      } else {
        serving.remaining = Math.max(0, serving.remaining - (arrival - t) * rate);
        t = arrival;
        admit();
        if (preemptive) serving = undefined;
      }
    }
  };
}

/**
 * Processor sharing in virtual time: while N responses are active each gets
 * R/N, so all of them gain the same service V(t), dV/dt = R/N. A response
 * arriving at virtual time v finishes when V reaches v + size, so a heap on
 * that tag gives the next completion in O(log n) per event.
 */
function processorSharing(jobs: Job[], rate: number): void {
  const active = new MinHeap<Job>((a, b) =>
    a.tag < b.tag || (a.tag === b.tag && a.order < b.order)
  );
  let t = 0;
  let v = 0;
  let next = 0;
  const admit = () => {
    while (next < jobs.length && jobs[next].at <= t) {
      jobs[next].tag = v + jobs[next].size;
      active.push(jobs[next++]);
    }
  };
  while (next < jobs.length || active.size > 0) {
    if (active.size === 0) {
      // Restarting V on an idle link keeps it small, so tags keep their precision.
      v = 0;
      t = Math.max(t, jobs[next].at);
      admit();
    }
    const top = active.peek();
    const done = t + (top.tag - v) * active.size / rate;
    const arrival = next < jobs.length ? jobs[next].at : Infinity;
    if (done <= arrival) {
      v = top.tag;
      t = done;
      top.remaining = 0;
      top.completion = t;
      active.pop();
    } else {
      v += (arrival - t) * rate / active.size;
      t = arrival;
      admit();
    }
  }
}

/**
 * A policy the simulator knows:
 * - `fifo`: whole responses in arrival order;
 * - `ps`: processor sharing, every active response gets an equal share
 *   (round robin's fluid limit);
 * - `srpt`: shortest remaining processing time (bytes), preemptive;
 * - `scf`: shortest complete first, the smallest waiting response once the
 *   link is free, not preemptive;
 * - `srrt`: shortest remaining response time, RTT × (1 + remaining / cwnd),
 *   preemptive.
 */
export type SimPolicy = "fifo" | "ps" | "srpt" | "scf" | "srrt";

// A Record keyed by SimPolicy: the compiler keeps the names and the engines in step.
const ENGINES: Record<SimPolicy, Engine> = {
  fifo: priority((job) => job.order, false),
  ps: processorSharing,
  srpt: priority((job) => job.remaining, true),
  scf: priority((job) => job.size, false),
  // As in the server's policy, an RTT below 1 ms counts as 1 ms, so that
  // without path information SRRT orders by bytes (SRPT), not by arrival.
  srrt: priority((job) => Math.max(job.rtt, 0.001) * (1 + job.remaining / job.cwnd), true),
};

/** The simulator's policies, by name. */
export const SIM_POLICIES = Object.keys(ENGINES) as SimPolicy[];

/**
 * Serves `requests` on a link of `options.rate` bytes per second under
 * `policy`; returns one record per request, in input order.
 *
 * @example
 * ```ts
 * const [a, b] = simulate([{ at: 0, size: 1 }, { at: 0, size: 3 }], "srpt", { rate: 1 });
 * // a.completion === 1, b.completion === 4
 * ```
 */
export function simulate(
  requests: readonly SimRequest[],
  policy: SimPolicy,
  options: SimulateOptions,
): SimRecord[] {
  const { rate } = options;
  const engine = ENGINES[policy] as Engine | undefined;
  if (!engine) throw new RangeError(`simulate: unknown policy "${policy}"`);
  if (!(rate > 0 && Number.isFinite(rate))) {
    throw new RangeError(`simulate: rate must be positive, got ${rate}`);
  }
  const jobs = requests.map((request, index): Job => {
    const { at, size } = request;
    const rtt = (request.rttMs ?? options.rttMs ?? 0) / 1000;
    const cwnd = request.cwndBytes ?? options.cwndBytes ?? 4380;
    if (!Number.isFinite(at)) throw new RangeError(`simulate: request ${index} arrives at ${at}`);
    if (!(size > 0 && Number.isFinite(size))) {
      throw new RangeError(`simulate: request ${index} has size ${size}`);
    }
    if (!(rtt >= 0)) throw new RangeError(`simulate: request ${index} has RTT ${rtt * 1000} ms`);
    if (!(cwnd > 0)) throw new RangeError(`simulate: request ${index} has cwnd ${cwnd}`);
    return { order: 0, index, at, size, rtt, cwnd, remaining: size, tag: 0, completion: NaN };
  });
  const byArrival = [...jobs].sort((a, b) => a.at - b.at || a.index - b.index);
  byArrival.forEach((job, order) => job.order = order);
  engine(byArrival, rate);
  return jobs.map((job) => {
    const responseTime = job.completion - job.at + job.rtt;
    return {
      index: job.index,
      policy,
      size: job.size,
      arrival: job.at,
      completion: job.completion,
      responseTime,
      slowdown: responseTime / (job.size / rate + job.rtt),
    };
  });
}
