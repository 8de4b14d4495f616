/**
 * PS — Processor Sharing, approximated by round robin over runs: every active
 * response gets one run in turn, so each of n responses gets about 1/n of the
 * link. The reference every size-based policy is compared with (stretch).
 *
 * @module
 */

import type { Flow, Policy } from "./types.ts";

/** Creates a PS policy. */
export function ps(): Policy {
  // A flow's turn: the tick of its arrival or of its last run.
  const turns = new Map<Flow, number>();
  let tick = 0;
  return {
    name: "ps",
    preemptive: true,
    rank: (flow) => turns.get(flow) ?? Infinity,
    added: (flow) => void turns.set(flow, tick++),
    served: (flow) => void turns.set(flow, tick++),
    removed: (flow) => void turns.delete(flow),
  };
}
