/**
 * RR — Round Robin (the reference thesis, ch. 3): requests are dealt to the
 * stream senders in turn as they arrive, and each sender works through its
 * own queue in arrival order.
 *
 * @module
 */

import { Fifo } from "./fifo.ts";
import type { Job, Policy } from "./types.ts";

/** Creates an RR policy over `streams` senders. */
export function rr<J extends Job>(streams: number): Policy<J> {
  const queues = Array.from({ length: streams }, () => new Fifo<J>());
  const assigned = new Map<J, number>();
  let turn = 0;
  let waiting = 0;

  return {
    name: "rr",
    add(job) {
      queues[turn].push(job);
      assigned.set(job, turn);
      turn = (turn + 1) % streams;
      waiting++;
    },
    next(stream) {
      const job = queues[stream].shift();
      if (job) {
        assigned.delete(job);
        waiting--;
      }
      return job;
    },
    remove(job) {
      const stream = assigned.get(job);
      if (stream === undefined || !queues[stream].remove(job)) return false;
      assigned.delete(job);
      waiting--;
      return true;
    },
    get waiting() {
      return waiting;
    },
  };
}
