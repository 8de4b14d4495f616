/**
 * SCF — Shortest Connection First (the reference thesis, ch. 3): one
 * association-wide min-heap keyed by response size; an idle sender takes the
 * smallest waiting response. Ties go to the earlier arrival.
 *
 * @module
 */

import type { Job, Policy } from "./types.ts";

/** Creates an SCF policy. The stream count does not matter: any idle sender takes the global minimum. */
export function scf<J extends Job>(_streams: number): Policy<J> {
  const heap: J[] = [];
  const before = (a: J, b: J) => a.size < b.size || (a.size === b.size && a.seq < b.seq);

  function up(i: number) {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i], heap[parent])) return;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  function down(i: number) {
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let best = i;
      if (left < heap.length && before(heap[left], heap[best])) best = left;
      if (right < heap.length && before(heap[right], heap[best])) best = right;
      if (best === i) return;
      [heap[i], heap[best]] = [heap[best], heap[i]];
      i = best;
    }
  }

  function removeAt(i: number): J {
    const item = heap[i];
    const last = heap.pop()!;
    if (i < heap.length) {
      heap[i] = last;
      up(i);
      down(i);
    }
    return item;
  }

  return {
    name: "scf",
    add(job) {
      heap.push(job);
      up(heap.length - 1);
    },
    next() {
      return heap.length > 0 ? removeAt(0) : undefined;
    },
    remove(job) {
      const at = heap.indexOf(job);
      if (at < 0) return false;
      removeAt(at);
      return true;
    },
    get waiting() {
      return heap.length;
    },
  };
}
