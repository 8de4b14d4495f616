/**
 * SRRT — Shortest Remaining Response Time (seed 002): like SRPT, but the
 * remaining bytes are weighed by the path they still have to cross. With the
 * association's smoothed RTT and congestion window,
 *
 *     RRT ≈ RTT × (1 + remaining bytes / cwnd bytes)
 *
 * (one RTT for the last window to be acknowledged, plus one per window still
 * to send). Across clients with different RTTs it prefers the response that
 * will be done soonest, not merely the one with fewest bytes. Without path
 * information (a transport that reports none) it falls back to SRPT.
 *
 * @module
 */

import type { Policy } from "./types.ts";

/** Creates an SRRT policy. */
export function srrt(): Policy {
  return {
    name: "srrt",
    preemptive: true,
    rank(flow) {
      const path = flow.lane.path();
      if (!path || path.cwndBytes <= 0) return flow.unsent;
      // A fresh association reports no RTT sample yet; 1 ms keeps the order by bytes.
      const rtt = Math.max(path.rttMs, 1);
      return rtt * (1 + flow.unsent / path.cwndBytes);
    },
  };
}
