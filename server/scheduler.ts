/**
 * The scheduler core of one association: waiting responses, idle senders,
 * and the event log. The policy decides only which waiting job an idle sender
 * takes; the core guarantees a sender works on one job at a time, so a policy
 * can never interleave the chunks of two responses on one stream.
 *
 * @module
 */

import type { Job, Policy } from "./policies/mod.ts";

/** One entry of the scheduler's own log (for tests and analysis, not timing). */
export interface SchedulerEvent {
  readonly type: "queued" | "dispatched" | "finished" | "cancelled";
  readonly id: number;
  readonly size: number;
  /** The sender's stream, for `dispatched` and `finished`. */
  readonly stream?: number;
}

/** Options of a scheduler. */
export interface SchedulerOptions {
  /** Keep an event log in `events`. @default false */
  eventLog?: boolean;
  /** Start held: nothing is dispatched until `release()`. @default false */
  held?: boolean;
}

/** Dispatches waiting jobs to idle senders in the order the policy decides. */
export class Scheduler<J extends Job> {
  /** The event log, when enabled. */
  readonly events: SchedulerEvent[] = [];
  readonly #policy: Policy<J>;
  readonly #dispatch: (stream: number, job: J) => void;
  readonly #idle: boolean[];
  readonly #running: (J | undefined)[];
  readonly #log: boolean;
  #held: boolean;

  /**
   * @param policy decides the order
   * @param streams number of senders (one per outgoing stream)
   * @param dispatch starts `job` on the sender of `stream`; that sender must
   *   call `finished(stream)` when done
   */
  constructor(
    policy: Policy<J>,
    streams: number,
    dispatch: (stream: number, job: J) => void,
    options: SchedulerOptions = {},
  ) {
    this.#policy = policy;
    this.#dispatch = dispatch;
    this.#idle = new Array(streams).fill(true);
    this.#running = new Array(streams).fill(undefined);
    this.#log = options.eventLog ?? false;
    this.#held = options.held ?? false;
  }

  /** The policy's name. */
  get policy(): string {
    return this.#policy.name;
  }

  /** Jobs waiting for a sender. */
  get waiting(): number {
    return this.#policy.waiting;
  }

  /** Jobs being sent. */
  get running(): number {
    return this.#running.filter((job) => job !== undefined).length;
  }

  /** Queues a job and dispatches whatever can go now. */
  enqueue(job: J): void {
    this.#policy.add(job);
    this.#record("queued", job);
    this.#pump();
  }

  /** The sender of `stream` finished its job (sent, failed or cancelled). */
  finished(stream: number): void {
    const job = this.#running[stream];
    if (job) this.#record("finished", job, stream);
    this.#running[stream] = undefined;
    this.#idle[stream] = true;
    this.#pump();
  }

  /** Removes a waiting job; `false` if it is not waiting (already running or done). */
  cancel(job: J): boolean {
    if (!this.#policy.remove(job)) return false;
    this.#record("cancelled", job);
    return true;
  }

  /** Removes and returns every waiting job (the association is going away). */
  drain(): J[] {
    const jobs: J[] = [];
    for (let job = this.#policy.next(0); job; job = this.#policy.next(0)) jobs.push(job);
    for (let s = 1; s < this.#idle.length; s++) {
      for (let job = this.#policy.next(s); job; job = this.#policy.next(s)) jobs.push(job);
    }
    return jobs;
  }

  /** Stops dispatching (jobs keep queueing) until `release()`. */
  hold(): void {
    this.#held = true;
  }

  /** Resumes dispatching. */
  release(): void {
    this.#held = false;
    this.#pump();
  }

  #pump() {
    if (this.#held) return;
    for (let stream = 0; stream < this.#idle.length && this.#policy.waiting > 0; stream++) {
      if (!this.#idle[stream]) continue;
      const job = this.#policy.next(stream);
      if (!job) continue;
      this.#idle[stream] = false;
      this.#running[stream] = job;
      this.#record("dispatched", job, stream);
      this.#dispatch(stream, job);
    }
  }

  #record(type: SchedulerEvent["type"], job: J, stream?: number) {
    if (this.#log) this.events.push({ type, id: job.id, size: job.size, stream });
  }
}
