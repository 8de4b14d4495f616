/**
 * FIFO: responses in arrival order, each to completion (seed 003's FIFO
 * under admission control; with `maxRunning` 1, Apache's serial order).
 *
 * @module
 */

import type { Policy } from "./types.ts";

/** Creates a FIFO policy. */
export function fifo(): Policy {
  return { name: "fifo", preemptive: false, rank: (flow) => flow.seq };
}
