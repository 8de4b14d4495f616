/**
 * SRPT — Shortest Remaining Processing Time (Harchol-Balter et al., "Size-
 * based scheduling to improve web performance", ACM TOCS 2003): every run
 * goes to the response with the fewest body bytes left to send, so a small
 * response preempts a large one at the next run boundary.
 *
 * @module
 */

import type { Policy } from "./types.ts";

/** Creates an SRPT policy. */
export function srpt(): Policy {
  return { name: "srpt", preemptive: true, rank: (flow) => flow.unsent };
}
