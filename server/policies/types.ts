/**
 * The policy contract: a policy only answers "which waiting response goes
 * next on this idle stream". The scheduler core (`../scheduler.ts`) owns
 * bookkeeping, idle senders, holding and the event log — the shape of
 * Linux's `sctp_sched_ops`.
 *
 * @module
 */

/** A response waiting to be sent, as policies see it. */
export interface Job {
  /** Request id, unique within the association. */
  readonly id: number;
  /** Body bytes to send (the scheduling key of size-based policies). */
  readonly size: number;
  /** Arrival order within the association. */
  readonly seq: number;
  /** Lower is more urgent; 0 unless the client sent PRIORITY. */
  priority: number;
}

/** One scheduling policy instance, for one association with `streams` senders. */
export interface Policy<J extends Job = Job> {
  /** The policy's registry name, e.g. `"scf"`. */
  readonly name: string;
  /** A new response is waiting. */
  add(job: J): void;
  /** The sender of `stream` is idle: the job it should send next, if any. */
  next(stream: number): J | undefined;
  /** Takes a waiting job out (cancellation); `false` if it was not waiting. */
  remove(job: J): boolean;
  /** Number of waiting jobs. */
  readonly waiting: number;
}

/** Creates a policy for an association with `streams` outgoing senders. */
export type PolicyFactory = <J extends Job>(streams: number) => Policy<J>;
