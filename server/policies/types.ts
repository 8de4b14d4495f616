/**
 * The policy contract: a policy only ranks responses ("which goes next").
 * The scheduler core (`../scheduler.ts`) owns everything else: each
 * response's life from waiting to finished, runs and their sizes, per-lane
 * and server-wide limits, admission, priorities and the event log — the
 * split of Linux's `sctp_sched_ops` and its core.
 *
 * @module
 */

import type { PathInfo } from "../../transport/types.ts";

/** A response as policies see it. Only the core changes these fields. */
export interface Flow {
  /** Request id, unique within its lane. */
  readonly id: number;
  /** Body bytes of the whole response. */
  readonly size: number;
  /** Arrival order, server-wide. */
  readonly seq: number;
  /** The outgoing stream its runs go on (fixed for its whole life). */
  readonly stream: number;
  /** The association it is sent on. */
  readonly lane: LaneView;
  /** Body bytes not yet given to a run. */
  readonly unsent: number;
  /** Whether it has had a run (its head went out). */
  readonly started: boolean;
  /** Lower is more urgent; 0 unless the client sent PRIORITY. */
  readonly priority: number;
}

/** What a policy may know of a flow's association. */
export interface LaneView {
  /** Outgoing streams of the association. */
  readonly streams: number;
  /** The association's current path (RTT, cwnd, MTU), if the transport reports one. */
  path(): PathInfo | undefined;
}

/** One scheduling policy instance, shared by every association of a server. */
export interface Policy {
  /** The policy's registry name, e.g. `"srpt"`. */
  readonly name: string;
  /**
   * Whether a waiting response may overtake one that has started. When
   * `false`, started responses run to completion first (in start order).
   */
  readonly preemptive: boolean;
  /**
   * The flow's rank now: among eligible flows of equal priority the lowest
   * rank gets the next run (ties: earlier arrival). `Infinity`: not now.
   */
  rank(flow: Flow): number;
  /**
   * The stream for a new response of `size` body bytes on an association
   * with `streams` streams. Without it, responses are dealt to the streams
   * in turn.
   */
  streamFor?(size: number, streams: number): number;
  /** A flow arrived. */
  added?(flow: Flow): void;
  /** A flow was given a run of `bytes` body bytes. */
  served?(flow: Flow, bytes: number): void;
  /** A flow left (finished, cancelled or failed). */
  removed?(flow: Flow): void;
}

/** Creates a policy instance (one per server). */
export type PolicyFactory = () => Policy;
