import assert from "node:assert/strict";
import { anchorSpreadNotes } from "../../scripts/bench/perf.ts";

Deno.test("bench perf notes a C anchor whose rounds are 1.5× apart or more, per message size, and no other", () => {
  const rows = (seconds64: number[], seconds1: number[]) => ({
    transport: {
      "usrsctp 65536": { mbPerSecond: 250, seconds: [0.8, 0.8, 0.8] },
      "c-usrsctp 65536": { mbPerSecond: 270, seconds: seconds64 },
      "usrsctp 1024": { mbPerSecond: 107, seconds: [0.95, 0.96, 0.94] },
      "c-usrsctp 1024": { mbPerSecond: 165, seconds: seconds1 },
    },
    files: 90,
  });
  assert.deepEqual(anchorSpreadNotes(rows([0.7, 0.75, 0.8], [0.6, 0.7, 0.85])), []);
  const notes = anchorSpreadNotes(rows([0.7, 0.75, 0.8], [0.5, 0.98, 0.54]));
  assert.equal(notes.length, 1);
  assert.match(notes[0], /^note: the C anchor's 1 KiB rounds took 0\.5–0\.98 s \(2× apart\)/);
  assert.match(notes[0], /Dec 3, night/);
  assert.equal(anchorSpreadNotes(rows([0.4, 0.8], [0.5, 1.0])).length, 2);
  // One round (a --quick run) says nothing about a spread.
  assert.deepEqual(anchorSpreadNotes(rows([0.4], [0.1])), []);
});
