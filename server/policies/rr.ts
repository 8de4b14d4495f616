/**
 * RR — Round Robin (the reference thesis, ch. 3): responses are dealt to the
 * association's streams in turn as they arrive, each stream sends its own
 * responses one after another in arrival order, and the streams take turns
 * run by run (the thesis's one sender per stream, working in parallel).
 *
 * @module
 */

import type { Flow, LaneView, Policy } from "./types.ts";

/** Creates an RR policy. */
export function rr(): Policy {
  // Per association: each stream's responses in arrival order, and its turn.
  const lanes = new WeakMap<LaneView, { queue: Flow[]; turn: number }[]>();
  let tick = 0;
  const streamOf = (flow: Flow) => {
    let streams = lanes.get(flow.lane);
    if (!streams) {
      streams = Array.from({ length: flow.lane.streams }, () => ({ queue: [], turn: 0 }));
      lanes.set(flow.lane, streams);
    }
    return streams[flow.stream];
  };
  return {
    name: "rr",
    preemptive: true,
    // Only the first response of each stream is being sent.
    rank(flow) {
      const stream = streamOf(flow);
      return stream.queue[0] === flow ? stream.turn : Infinity;
    },
    added(flow) {
      const stream = streamOf(flow);
      if (stream.queue.push(flow) === 1) stream.turn = tick++;
    },
    served: (flow) => void (streamOf(flow).turn = tick++),
    removed(flow) {
      const { queue } = streamOf(flow);
      queue.splice(queue.indexOf(flow), 1);
    },
  };
}
