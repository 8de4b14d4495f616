/**
 * What the live fuzzer counts per target: verdicts, the answers seen (status
 * distribution), and the failing cases, saved as files that replay them.
 *
 * @module
 */

import { join } from "node:path";

/**
 * How one case ended:
 * - `ok`: every answer valid (for well-formed requests: the exact answer);
 * - `hang`: a complete request got no answer, or the peer neither answered
 *   nor closed, within the deadline;
 * - `invalid`: an answer that is not valid HTTP/1.1 or not a valid wire message;
 * - `wrong`: a valid answer, but not the one a well-formed request must get;
 * - `refused`: the port did not accept a connection;
 * - `dropped`: the association ended although nothing asked for that;
 * - `crashed`: a process died during the case (the crash is counted too).
 */
export type Verdict = "ok" | "hang" | "invalid" | "wrong" | "refused" | "dropped" | "crashed";

/**
 * The verdicts that make a run fail. `wrong` (a valid answer, but the wrong
 * one) fails it only in strict mode: the issue asks for valid answers.
 */
export const FAILURES: readonly Verdict[] = ["hang", "invalid", "refused", "dropped", "crashed"];

/** The result of one case. */
export interface Outcome {
  readonly verdict: Verdict;
  /** What came back, one label per answer (`200`, `RESET 400`) or how it ended (`closed`). */
  readonly labels: readonly string[];
  /** Why the verdict is not `ok`. */
  readonly detail?: string;
}

/** A case as the tally sees it. */
export interface CaseRecord {
  readonly index: number;
  readonly kind: string;
  /** The bytes sent, written to a file when the case fails. */
  readonly bytes: Uint8Array;
  /** How to replay the bytes (shown beside the saved file). */
  readonly how: string;
}

/** A failing case, as reported. */
export interface Failure {
  readonly index: number;
  readonly kind: string;
  readonly verdict: Verdict;
  readonly detail: string;
  /** The file holding the bytes sent, if saved. */
  readonly file?: string;
}

/** Failing cases saved per verdict: enough to reproduce, bounded over a long run. */
const SAVED_PER_VERDICT = 20;

/** Counters of one target (the proxy's TCP port, or the server's wire port). */
export class Tally {
  /** The target's name, for the summary and the saved files. */
  readonly name: string;
  cases = 0;
  readonly verdicts = new Map<Verdict, number>();
  /** Answers seen, by label. */
  readonly labels = new Map<string, number>();
  /** Cases by kind and verdict. */
  readonly kinds = new Map<string, Map<Verdict, number>>();
  readonly failures: Failure[] = [];
  /** Time taken per case, in ms. */
  readonly durations: number[] = [];
  /** Time taken by the cases of each kind, in ms. */
  readonly kindMs = new Map<string, number>();
  /** The slowest cases, slowest first. */
  readonly slowest: { index: number; kind: string; ms: number; labels: readonly string[] }[] = [];
  readonly #out: string | undefined;

  /** `out`: the directory failing cases are saved to (none: not saved). */
  constructor(name: string, out?: string) {
    this.name = name;
    this.#out = out;
  }

  /** Failing cases so far (`wrong` ones too if `strict`). */
  failed(strict = false): number {
    const verdicts: readonly Verdict[] = strict ? [...FAILURES, "wrong"] : FAILURES;
    return verdicts.reduce((n, verdict) => n + (this.verdicts.get(verdict) ?? 0), 0);
  }

  /** Counts one case that took `ms`; saves it if it failed. */
  async add(record: CaseRecord, outcome: Outcome, ms: number): Promise<void> {
    this.cases++;
    this.durations.push(ms);
    this.kindMs.set(record.kind, (this.kindMs.get(record.kind) ?? 0) + ms);
    if (this.slowest.length < 5 || ms > this.slowest[4].ms) {
      this.slowest.push({
        index: record.index,
        kind: record.kind,
        ms: Math.round(ms),
        labels: outcome.labels,
      });
      this.slowest.sort((a, b) => b.ms - a.ms);
      this.slowest.length = Math.min(this.slowest.length, 5);
    }
    bump(this.verdicts, outcome.verdict);
    for (const label of outcome.labels) bump(this.labels, label);
    const kind = this.kinds.get(record.kind) ?? new Map<Verdict, number>();
    this.kinds.set(record.kind, kind);
    bump(kind, outcome.verdict);
    if (outcome.verdict === "ok") return;
    const saved = this.failures.filter((f) => f.verdict === outcome.verdict).length;
    if (saved >= SAVED_PER_VERDICT) return;
    let file: string | undefined;
    if (this.#out) {
      file = join(this.#out, `${this.name}-${record.index}-${outcome.verdict}.bin`);
      await Deno.writeFile(file, record.bytes);
      await Deno.writeTextFile(
        file.replace(/\.bin$/, ".txt"),
        `${record.kind}: ${outcome.verdict}: ${outcome.detail ?? ""}\n` +
          `answers: ${outcome.labels.join(", ")}\nreplay: ${record.how.replace("{}", file)}\n`,
      );
    }
    this.failures.push({
      index: record.index,
      kind: record.kind,
      verdict: outcome.verdict,
      detail: outcome.detail ?? "",
      file,
    });
  }

  /** The counters as plain JSON. */
  toJSON(): Record<string, unknown> {
    const sorted = (map: Map<string, number>) =>
      Object.fromEntries([...map].sort((a, b) => b[1] - a[1]));
    return {
      cases: this.cases,
      verdicts: Object.fromEntries(this.verdicts),
      answers: sorted(this.labels),
      kinds: Object.fromEntries(
        [...this.kinds].map(([kind, verdicts]) => [kind, Object.fromEntries(verdicts)]),
      ),
      failures: this.failures,
      ms: percentiles(this.durations),
      meanMsByKind: Object.fromEntries(
        [...this.kindMs].map(([kind, ms]) => {
          const n = [...this.kinds.get(kind)!.values()].reduce((a, b) => a + b, 0);
          return [kind, Math.round(ms / n)];
        }),
      ),
      slowest: this.slowest,
    };
  }
}

/** p50, p99 and the maximum of `values`, rounded to whole ms. */
export function percentiles(values: readonly number[]): { p50: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
  return { p50: at(0.5), p99: at(0.99), max: Math.round(sorted[sorted.length - 1] ?? 0) };
}

function bump<K>(map: Map<K, number>, key: K) {
  map.set(key, (map.get(key) ?? 0) + 1);
}
