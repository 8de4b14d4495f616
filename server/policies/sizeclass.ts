/**
 * SIZECLASS — SRPT by size classes, carried out by the stack (the mechanism
 * of Harchol-Balter et al., TOCS 2003: send buffers drained in priority
 * order). Each response goes on the stream of its size class, stream 0 for
 * the smallest (up to 1 KiB, then × 4 per class), and is handed to the stack
 * in arrival order. With the kernel's `prio` stream scheduler
 * (`--stream-scheduler prio`: stream i has priority i) and room in the send
 * buffer, what waits there goes out smallest class first, at the stack's
 * chunk boundaries rather than at our run boundaries. Without it, this is
 * FIFO.
 *
 * @module
 */

import type { Policy } from "./types.ts";

/** Creates a SIZECLASS policy. */
export function sizeclass(): Policy {
  return {
    name: "sizeclass",
    preemptive: false,
    rank: (flow) => flow.seq,
    streamFor(size, streams) {
      const kib = Math.max(size / 1024, 1);
      return Math.min(Math.ceil(Math.log(kib) / Math.log(4)), streams - 1);
    },
  };
}
