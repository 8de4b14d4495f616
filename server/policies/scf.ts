/**
 * SCF — Shortest Connection First (the reference thesis, ch. 3): the
 * smallest waiting response starts next, and a started response is never
 * preempted (non-preemptive shortest-job-first by body size).
 *
 * @module
 */

import type { Policy } from "./types.ts";

/** Creates an SCF policy. */
export function scf(): Policy {
  return { name: "scf", preemptive: false, rank: (flow) => flow.size };
}
