/**
 * The scheduler core, one per server: it owns every response's life, across
 * all associations, from waiting to finished, cancelled or failed. A response
 * goes out in runs of at most `runBytes` body bytes; before every run the
 * policy ranks the eligible responses and the best one gets the run. So any
 * policy can preempt at a run boundary, a priority change applies at the
 * next run, and a cancelled response stops within one run.
 *
 * Each association is a *lane* with one writer that carries out its runs in
 * order. The core keeps at most `laneDepth` runs queued per lane (enough to
 * keep the writer busy, few enough that the order stays in the policy's
 * hands) and, optionally, at most `wireRuns` in flight server-wide. A
 * response keeps one stream for its whole life and a lane sends one run at a
 * time, so runs never overlap on a stream.
 *
 * @module
 */

import type { PathInfo } from "../transport/types.ts";
import type { Flow, LaneView, Policy } from "./policies/mod.ts";

/** How a response's life ended. */
export type Outcome = "finished" | "cancelled" | "failed";

/** One entry of the scheduler's log (for tests and analysis, not timing). */
export type SchedulerEvent =
  | { readonly type: "queued"; readonly lane: number; readonly id: number; readonly size: number }
  | {
    readonly type: "run";
    readonly lane: number;
    readonly id: number;
    readonly size: number;
    readonly stream: number;
    readonly offset: number;
    readonly bytes: number;
  }
  | { readonly type: Outcome; readonly lane: number; readonly id: number; readonly size: number }
  | {
    readonly type: "priority";
    readonly lane: number;
    readonly id: number;
    readonly priority: number;
  }
  | { readonly type: "cancel"; readonly lane: number; readonly id: number };

/** A run the scheduler decided: `bytes` body bytes of `flow` from `offset`. */
export interface Run<P> {
  /** The response the run belongs to. */
  readonly flow: ScheduledFlow<P>;
  /** Where in the body the run starts. */
  readonly offset: number;
  /** Body bytes in the run (0 for a response that is a head alone). */
  readonly bytes: number;
}

/** A response in the scheduler, with the owner's payload (e.g. its file mapping). */
export interface ScheduledFlow<P> extends Flow {
  /** What the owner passed to `enqueue`, handed back with every run. */
  readonly payload: P;
}

/** What a lane (one association) gives the scheduler. */
export interface LaneOptions<P> {
  /** Outgoing streams of the association. */
  readonly streams: number;
  /** Reads the path (RTT, cwnd, MTU); the core caches it for `pathCacheMs`. */
  path?(): PathInfo | undefined;
  /** Carries out a run; settles once the transport has taken its messages, or failed. */
  send(run: Run<P>): Promise<void>;
  /**
   * A response's life ended: no run of it is in flight any more, so its
   * resources can go. `failed`: a run could not be sent.
   */
  settled(flow: ScheduledFlow<P>, outcome: Outcome): void;
}

/** A registered lane. */
export interface Lane {
  /** Index in the event log. */
  readonly index: number;
}

/** Options of a scheduler. */
export interface SchedulerOptions {
  /** Largest number of body bytes in one run. @default 131072 */
  runBytes?: number;
  /** Runs queued per lane beyond the policy's reach. @default 2 */
  laneDepth?: number;
  /** Runs in flight over all lanes (0: no limit beyond `laneDepth`). @default 0 */
  wireRuns?: number;
  /** Responses in service at once, server-wide (seed 003's MRP; 0: no limit). @default 0 */
  maxRunning?: number;
  /**
   * Emulated bottleneck in body bytes per second (0: none): a run is handed
   * out only once the previous runs would have crossed a link of this rate,
   * so the queue forms in the scheduler even on a fast local path.
   * @default 0
   */
  paceBytesPerSecond?: number;
  /** How long a lane's path reading is reused. @default 100 */
  pathCacheMs?: number;
  /** Keep an event log in `events`. @default false */
  eventLog?: boolean;
  /** Start held: nothing is sent until `release()`. @default false */
  held?: boolean;
}

/**
 * What a server shows of its scheduler: counts, the event log, and holding
 * the queue (to fill it, then let the policy order all of it at once).
 */
export interface SchedulerView {
  /** The policy's name. */
  readonly policy: string;
  /** Responses that have not started. */
  readonly waiting: number;
  /** Responses started and not yet settled. */
  readonly running: number;
  /** The event log, when enabled (`eventLog`). */
  readonly events: readonly SchedulerEvent[];
  /** Stops handing out runs (responses keep queueing) until `release()`. */
  hold(): void;
  /** Resumes handing out runs. */
  release(): void;
}

class LaneState<P> implements Lane, LaneView {
  readonly index: number;
  readonly streams: number;
  readonly options: LaneOptions<P>;
  readonly flows = new Set<FlowState<P>>();
  inFlight = 0;
  nextStream = 0;
  closed = false;
  readonly #cacheMs: number;
  #path: PathInfo | undefined;
  #pathAt = -Infinity;

  constructor(index: number, options: LaneOptions<P>, cacheMs: number) {
    this.index = index;
    this.streams = options.streams;
    this.options = options;
    this.#cacheMs = cacheMs;
  }

  path(): PathInfo | undefined {
    const now = performance.now();
    if (now - this.#pathAt >= this.#cacheMs && this.options.path) {
      this.#pathAt = now;
      try {
        this.#path = this.options.path();
      } catch {
        // Path information is advice: a lane that cannot report keeps its last reading.
      }
    }
    return this.#path;
  }
}

class FlowState<P> implements ScheduledFlow<P> {
  readonly id: number;
  readonly size: number;
  readonly seq: number;
  readonly stream: number;
  readonly lane: LaneState<P>;
  readonly payload: P;
  unsent: number;
  started = false;
  /** Start order, for non-preemptive policies. */
  startSeq = 0;
  priority = 0;
  inFlight = 0;
  /** Cancelled or failed: no more runs; settles once `inFlight` is 0. */
  ending: Outcome | undefined;

  constructor(
    id: number,
    size: number,
    seq: number,
    lane: LaneState<P>,
    stream: number,
    payload: P,
  ) {
    this.id = id;
    this.size = size;
    this.seq = seq;
    this.lane = lane;
    this.stream = stream;
    this.payload = payload;
    this.unsent = size;
  }
}

/** Decides, run by run, whose bytes go out next on every association of a server. */
export class Scheduler<P = unknown> implements SchedulerView {
  /** The event log, when enabled. */
  readonly events: SchedulerEvent[] = [];
  readonly #policy: Policy;
  readonly #runBytes: number;
  readonly #laneDepth: number;
  readonly #wireRuns: number;
  readonly #maxRunning: number;
  readonly #paceBytesPerMs: number;
  readonly #pathCacheMs: number;
  readonly #log: boolean;
  /** Flows that may still get runs. */
  readonly #active = new Set<FlowState<P>>();
  #lanes = 0;
  #seq = 0;
  #starts = 0;
  /** Started flows not yet settled (admission control). */
  #running = 0;
  /** Runs in flight over all lanes. */
  #wire = 0;
  #held: boolean;
  /** When the emulated link is free again (performance.now() ms). */
  #linkFreeAt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** A scheduler ranking with `policy`; throws if `runBytes` or `laneDepth` is below 1. */
  constructor(policy: Policy, options: SchedulerOptions = {}) {
    this.#policy = policy;
    this.#runBytes = options.runBytes ?? 128 * 1024;
    this.#laneDepth = options.laneDepth ?? 2;
    this.#wireRuns = options.wireRuns || Infinity;
    this.#maxRunning = options.maxRunning || Infinity;
    this.#paceBytesPerMs = (options.paceBytesPerSecond ?? 0) / 1000;
    this.#pathCacheMs = options.pathCacheMs ?? 100;
    this.#log = options.eventLog ?? false;
    this.#held = options.held ?? false;
    if (!(this.#runBytes >= 1) || !(this.#laneDepth >= 1)) {
      throw new RangeError("runBytes and laneDepth must be at least 1");
    }
  }

  /** The policy's name. */
  get policy(): string {
    return this.#policy.name;
  }

  /** Responses that have not started. */
  get waiting(): number {
    let waiting = 0;
    for (const flow of this.#active) if (!flow.started) waiting++;
    return waiting;
  }

  /** Responses started and not yet settled. */
  get running(): number {
    return this.#running;
  }

  /** Registers an association. */
  addLane(options: LaneOptions<P>): Lane {
    return new LaneState(this.#lanes++, options, this.#pathCacheMs);
  }

  /** Queues a response of `size` body bytes (0 for a head alone) on `lane`. */
  enqueue(lane: Lane, id: number, size: number, payload: P): ScheduledFlow<P> {
    const state = lane as LaneState<P>;
    if (state.closed) throw new Error("enqueue on a closed lane");
    const stream = this.#policy.streamFor?.(size, state.streams) ??
      state.nextStream++ % state.streams;
    if (!(Number.isInteger(stream) && stream >= 0 && stream < state.streams)) {
      throw new RangeError(
        `policy ${this.#policy.name} chose stream ${stream} of ${state.streams}`,
      );
    }
    const flow = new FlowState(id, size, this.#seq++, state, stream, payload);
    state.flows.add(flow);
    this.#active.add(flow);
    this.#policy.added?.(flow);
    this.#record({ type: "queued", lane: state.index, id, size });
    this.#pump();
    return flow;
  }

  /** Changes a response's priority (lower is more urgent); it applies at the next run. */
  setPriority(flow: ScheduledFlow<P>, priority: number): void {
    const state = flow as FlowState<P>;
    state.priority = priority;
    this.#record({ type: "priority", lane: state.lane.index, id: flow.id, priority });
  }

  /**
   * Cancels a response: it gets no more runs, and settles as `cancelled` once
   * its runs in flight (at most `laneDepth`) are sent. Returns whether it had
   * started (the client has its head and must be told it ends), or
   * `undefined` if it had already ended.
   */
  cancel(flow: ScheduledFlow<P>): boolean | undefined {
    const state = flow as FlowState<P>;
    // Every byte already handed out: it completes, and a RESET would only discard it.
    if (state.ending || !state.lane.flows.has(state) || (state.started && state.unsent === 0)) {
      return undefined;
    }
    this.#record({ type: "cancel", lane: state.lane.index, id: flow.id });
    this.#end(state, "cancelled");
    return state.started;
  }

  /**
   * Closes a lane (its association ended): every response on it ends as
   * `cancelled` once its runs in flight have settled.
   */
  closeLane(lane: Lane): void {
    const state = lane as LaneState<P>;
    state.closed = true;
    for (const flow of [...state.flows]) if (!flow.ending) this.#end(flow, "cancelled");
  }

  /** Stops the pacing timer (the server is closing); runs in flight still settle. */
  dispose(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#held = true;
  }

  /** Stops handing out runs (responses keep queueing) until `release()`. */
  hold(): void {
    this.#held = true;
  }

  /** Resumes handing out runs. */
  release(): void {
    this.#held = false;
    this.#pump();
  }

  #end(flow: FlowState<P>, outcome: Outcome) {
    flow.ending = outcome;
    if (this.#active.delete(flow)) this.#policy.removed?.(flow);
    if (flow.inFlight === 0) this.#settle(flow);
  }

  #settle(flow: FlowState<P>) {
    const outcome = flow.ending ?? "finished";
    flow.lane.flows.delete(flow);
    if (flow.started) this.#running--;
    this.#record({ type: outcome, lane: flow.lane.index, id: flow.id, size: flow.size });
    flow.lane.options.settled(flow, outcome);
    this.#pump();
  }

  #pump() {
    if (this.#held || this.#timer !== undefined) return;
    while (this.#wire < this.#wireRuns) {
      if (this.#paceBytesPerMs > 0) {
        const wait = this.#linkFreeAt - performance.now();
        if (wait > 0) {
          this.#timer = setTimeout(() => {
            this.#timer = undefined;
            this.#pump();
          }, wait);
          return;
        }
      }
      const flow = this.#pick();
      if (!flow) return;
      this.#dispatch(flow);
    }
  }

  /** The eligible flow the policy ranks first. */
  #pick(): FlowState<P> | undefined {
    const preemptive = this.#policy.preemptive;
    let best: FlowState<P> | undefined;
    let bestRank = Infinity;
    for (const flow of this.#active) {
      if (flow.started && flow.unsent === 0) continue; // only runs in flight left
      if (flow.lane.inFlight >= this.#laneDepth) continue;
      if (!flow.started && this.#running >= this.#maxRunning) continue;
      const rank = this.#policy.rank(flow);
      if (rank === Infinity) continue;
      if (best === undefined || this.#before(flow, rank, best, bestRank, preemptive)) {
        best = flow;
        bestRank = rank;
      }
    }
    return best;
  }

  #before(a: FlowState<P>, rankA: number, b: FlowState<P>, rankB: number, preemptive: boolean) {
    if (a.priority !== b.priority) return a.priority < b.priority;
    if (!preemptive && (a.started || b.started)) {
      if (a.started !== b.started) return a.started;
      return a.startSeq < b.startSeq;
    }
    if (rankA !== rankB) return rankA < rankB;
    return a.seq < b.seq;
  }

  #dispatch(flow: FlowState<P>) {
    const bytes = Math.min(this.#runBytes, flow.unsent);
    const run: Run<P> = { flow, offset: flow.size - flow.unsent, bytes };
    if (!flow.started) {
      flow.started = true;
      flow.startSeq = this.#starts++;
      this.#running++;
    }
    flow.unsent -= bytes;
    flow.inFlight++;
    flow.lane.inFlight++;
    this.#wire++;
    if (this.#paceBytesPerMs > 0) {
      this.#linkFreeAt = Math.max(this.#linkFreeAt, performance.now()) +
        bytes / this.#paceBytesPerMs;
    }
    this.#policy.served?.(flow, bytes);
    this.#record({
      type: "run",
      lane: flow.lane.index,
      id: flow.id,
      size: flow.size,
      stream: flow.stream,
      offset: run.offset,
      bytes,
    });
    let sent: Promise<void>;
    try {
      sent = flow.lane.options.send(run);
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(() => this.#runDone(flow, false), () => this.#runDone(flow, true));
  }

  #runDone(flow: FlowState<P>, failed: boolean) {
    flow.inFlight--;
    flow.lane.inFlight--;
    this.#wire--;
    if (failed) flow.ending ??= "failed";
    if (flow.ending || flow.unsent === 0) {
      if (this.#active.delete(flow)) this.#policy.removed?.(flow);
      if (flow.inFlight === 0) return this.#settle(flow);
    }
    this.#pump();
  }

  #record(event: SchedulerEvent) {
    if (this.#log) this.events.push(event);
  }
}
