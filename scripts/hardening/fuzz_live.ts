/**
 * `deno task fuzz` (`deno run -P=fuzz scripts/hardening/fuzz_live.ts`): the live fuzzer of issue
 * #12. Starts a server (tcpmux or usrsctp, on a small temporary site) and a
 * proxy in front of it, each in its own process, then sends mutated requests
 * to the proxy's TCP port (mutated HTTP/1.1 heads: bit flips, truncation,
 * huge headers, bad methods and targets, `..`, NUL, pipelining, slow and
 * partial sends, abrupt closes) and mutated protocol messages to the server's
 * wire port. It counts crashes (a process exited), hangs (no answer or close
 * within the deadline), invalid answers, and wrong answers to well-formed
 * requests; prints progress and a summary; and exits 1 after a crash, a hang or
 * an invalid answer (with `--strict`, after a wrong answer too).
 *
 * Cases come from fast-check arbitraries: `--seed S --first I --requests 1`
 * replays case I of a run. Failing cases are saved as files of the bytes sent.
 *
 * @module
 */

import fc from "fast-check";
import { join } from "node:path";
import { concat } from "../../transport/bytes.ts";
import { ConfigError, helpText, type OptionValues, parseOptions } from "../../cli/options.ts";
import { type HttpCase, httpCases, runHttpCase } from "./fuzz_http.ts";
import { knownTargets, siteFiles, writeSite } from "./fuzz_site.ts";
import { type CaseRecord, type Outcome, Tally } from "./fuzz_tally.ts";
import { type WireCase, wireCaseBytes, wireCases, WireLane } from "./fuzz_wire.ts";
import { type Child, type Exit, Stack } from "./fuzz_stack.ts";

/** The fuzzer's options: flags, `--help`, and `runLiveFuzz`'s argument. */
export const FUZZ_OPTIONS = {
  transport: {
    kind: "string",
    default: "tcpmux",
    choices: ["tcpmux", "usrsctp"],
    help: "the server's transport (the proxy's upstream)",
    short: "t",
  },
  requests: {
    kind: "integer",
    default: 100_000,
    min: 1,
    help: "mutated requests per target: the proxy's TCP port, and the server's wire port",
    short: "n",
  },
  quick: {
    kind: "boolean",
    default: false,
    help: "the bounded CI form: 1000 requests per target",
  },
  strict: {
    kind: "boolean",
    default: false,
    help:
      "also fail on wrong answers (a valid status, but not the right answer to a well-formed request)",
  },
  target: {
    kind: "string",
    default: "both",
    choices: ["both", "proxy", "wire"],
    help: "which port to fuzz",
  },
  seed: {
    kind: "integer",
    default: 0,
    min: 0,
    max: 0x7fffffff,
    help: "fast-check seed of the cases (0: a random one, printed)",
  },
  first: {
    kind: "integer",
    default: 0,
    min: 0,
    help: "index of the first case (with --seed and --requests 1: replays one case)",
  },
  concurrency: {
    kind: "integer",
    default: 16,
    min: 1,
    max: 256,
    help: "connections to the proxy at once, each with one case",
  },
  associations: {
    kind: "integer",
    default: 4,
    min: 1,
    max: 64,
    help:
      "associations to the server at once, each with one case (each costs Workers on both ends)",
  },
  deadline: {
    kind: "integer",
    default: 10_000,
    min: 100,
    help: "ms an answer may take before the case counts as a hang (above the proxy's 5 s timeout)",
  },
  out: {
    kind: "string",
    default: "",
    help: "directory for failing cases and summary.json (empty: a new temporary directory)",
  },
} as const;

/** The fuzzer's option values. */
export type FuzzOptions = OptionValues<typeof FUZZ_OPTIONS>;

/** A process that exited during the run. */
export interface Crash {
  readonly process: string;
  readonly exit: Exit;
  /** Cases sent last before it was noticed, saved to this directory. */
  readonly casesDir: string;
  /** Its last log lines. */
  readonly log: readonly string[];
}

/** What a run found. */
export interface FuzzSummary {
  readonly transport: string;
  readonly seed: number;
  readonly seconds: number;
  readonly crashes: readonly Crash[];
  readonly proxy?: Tally;
  readonly wire?: Tally;
  /** Log lines of the processes above info level: counted by level and message, with examples. */
  readonly logs: Record<string, { counts: Record<string, number>; lines: string[] }>;
  /** Where failing cases and summary.json are. */
  readonly out: string;
  /** Crashes plus failing cases (wrong answers too under `--strict`): 0 for a clean run. */
  readonly problems: number;
}

/** Cases drawn per fast-check sample: index i is case i % BATCH of batch i / BATCH. */
const BATCH = 200;
/** Cases kept per target to save when a process crashes. */
const RECENT = 32;
const PROGRESS_MS = 5000;

/** Case `index` of the stream of `arbitrary` under `seed` (batches are drawn lazily). */
class CaseStream<T> {
  readonly #arbitrary: fc.Arbitrary<T>;
  readonly #seed: number;
  #batch = -1;
  #cases: T[] = [];

  constructor(arbitrary: fc.Arbitrary<T>, seed: number) {
    this.#arbitrary = arbitrary;
    this.#seed = seed;
  }

  at(index: number): T {
    const batch = Math.floor(index / BATCH);
    if (batch !== this.#batch) {
      this.#cases = fc.sample(this.#arbitrary, {
        seed: (this.#seed + batch * 7919) | 0,
        numRuns: BATCH,
      });
      this.#batch = batch;
    }
    return this.#cases[index % BATCH];
  }
}

/** Starts the stack, runs the cases, stops the stack; never throws for what the cases find. */
export async function runLiveFuzz(
  options: FuzzOptions,
  report: (line: string) => void = (line) => console.error(line),
): Promise<FuzzSummary> {
  const requests = options.quick ? 1000 : options.requests;
  const seed = options.seed || (Math.random() * 0x7fffffff) >>> 0 || 1;
  const transport = options.transport as "tcpmux" | "usrsctp";
  const base = await Deno.makeTempDir({ prefix: "flowsched-fuzz-" });
  const out = options.out || join(base, "out");
  await Deno.mkdir(out, { recursive: true });
  const root = join(base, "site");
  // On disk, not /dev/shm: Deno asks for every permission to touch /dev.
  const cache = join(base, "cache");
  const files = siteFiles();
  await writeSite(root, files);
  const known = knownTargets(files);
  const http = httpCases(known);
  const started = performance.now();
  report(
    `flowsched live fuzz: ${transport}, seed ${seed}, ${requests} cases per target from ` +
      `${options.first}, ${options.concurrency} connections and ${options.associations} ` +
      `associations at once, deadline ${options.deadline} ms`,
  );
  const stack = await Stack.start({ transport, root, cache, streams: 4 });
  report(
    `  server pid ${stack.server.pid} on ${transport} port ${stack.serverPort}` +
      (transport === "usrsctp" ? ` (UDP ${stack.udpPort})` : "") +
      `; proxy pid ${stack.proxy.pid} on TCP port ${stack.proxyPort}; cases saved to ${out}`,
  );

  const crashes: Crash[] = [];
  const logs: FuzzSummary["logs"] = {
    server: { counts: {}, lines: [] },
    proxy: { counts: {}, lines: [] },
  };
  /** Keeps what a process logged (before it is replaced, or at the end). */
  const collect = (child: Child) => {
    const log = logs[child.name];
    for (const [key, n] of child.counts) {
      if (!key.startsWith("info") && !key.startsWith("debug")) {
        log.counts[key] = (log.counts[key] ?? 0) + n;
      }
    }
    for (const lines of child.examples.values()) {
      log.lines.push(...lines.filter((line) => !log.lines.includes(line)));
    }
  };
  const recent: Record<string, CaseRecord[]> = { proxy: [], wire: [] };
  const wireLanes: WireLane[] = [];
  let restarting: Promise<void> | undefined;
  /** Restarts whichever process exited, once, however many lanes noticed. */
  const recover = (): Promise<void> => {
    restarting ??= (async () => {
      for (
        const [child, restart] of [[stack.server, () => stack.restartServer()], [
          stack.proxy,
          () => stack.restartProxy(),
        ]] as const
      ) {
        const exit = child.exit;
        if (!exit) continue;
        const casesDir = join(out, `crash-${crashes.length + 1}-${child.name}`);
        await Deno.mkdir(casesDir, { recursive: true });
        for (const [target, records] of Object.entries(recent)) {
          for (const record of records) {
            await Deno.writeFile(join(casesDir, `${target}-${record.index}.bin`), record.bytes);
          }
        }
        crashes.push({ process: child.name, exit, casesDir, log: [...child.tail] });
        collect(child);
        report(
          `  CRASH: the ${child.name} exited (code ${exit.code}${
            exit.signal ? `, ${exit.signal}` : ""
          }); the last cases are in ${casesDir}; restarting it`,
        );
        await restart();
      }
      // Associations to a dead server are gone: each lane connects anew.
      await Promise.all(wireLanes.map((lane) => lane.close()));
      await waitForProxy(stack.proxyPort, 20_000);
    })().finally(() => (restarting = undefined));
    return restarting;
  };
  const down = () => stack.server.exit !== undefined || stack.proxy.exit !== undefined;
  const watchdog = setInterval(() => {
    if (down()) void recover();
  }, 250);

  const tallies: { proxy?: Tally; wire?: Tally } = {};
  const lanes: Promise<void>[] = [];
  const next = { proxy: options.first, wire: options.first };
  const end = options.first + requests;
  const runLanes = <T>(
    target: "proxy" | "wire",
    stream: CaseStream<T>,
    record: (c: T, index: number) => CaseRecord,
    run: (lane: number, c: T) => Promise<Outcome>,
  ) => {
    const tally = new Tally(target, out);
    tallies[target] = tally;
    for (
      let lane = 0;
      lane < (target === "proxy" ? options.concurrency : options.associations);
      lane++
    ) {
      lanes.push((async () => {
        for (;;) {
          if (restarting) await restarting;
          const index = next[target]++;
          if (index >= end) return;
          const c = stream.at(index);
          const caseRecord = record(c, index);
          recent[target].push(caseRecord);
          if (recent[target].length > RECENT) recent[target].shift();
          const began = performance.now();
          const outcome = await run(lane, c);
          const ms = performance.now() - began;
          let verdict = outcome;
          if (outcome.verdict !== "ok") {
            // Did a process just die? Then this case is a suspect, not a failure of its own.
            // (A refused or dropped connection is the usual first sign: wait longer for it.)
            const wait = outcome.verdict === "wrong" ? 200 : 1000;
            await Promise.race([
              stack.server.exited,
              stack.proxy.exited,
              new Promise((resolve) => setTimeout(resolve, wait)),
            ]);
            if (down()) {
              verdict = {
                ...outcome,
                verdict: "crashed",
                detail: `during a crash: ${outcome.detail}`,
              };
              await recover();
            }
          }
          await tally.add(caseRecord, verdict, ms);
        }
      })());
    }
  };
  const replay = (target: string) =>
    `deno run -P=fuzz scripts/hardening/fuzz_live.ts -t ${transport} --seed ${seed} ` +
    `--target ${target} --requests 1 --first`;
  if (options.target !== "wire") {
    runLanes(
      "proxy",
      new CaseStream<HttpCase>(http, seed),
      (c, index) => ({
        index,
        kind: c.kind,
        bytes: concat(c.parts),
        how: `${replay("proxy")} ${index}  (or: nc 127.0.0.1 <proxy port> < {})`,
      }),
      (_, c) => runHttpCase(stack.proxyPort, c, options.deadline),
    );
  }
  if (options.target !== "proxy") {
    for (let i = 0; i < options.associations; i++) {
      wireLanes.push(new WireLane(transport, stack.serverPort, stack.udpPort));
    }
    runLanes(
      "wire",
      new CaseStream<WireCase>(wireCases(transport, known, http), seed ^ 0x5bd1e995),
      (c, index) => ({
        index,
        kind: c.kind,
        bytes: wireCaseBytes(c),
        how: `${replay("wire")} ${index}`,
      }),
      (lane, c) => wireLanes[lane].run(c, options.deadline),
    );
  }
  const progress = setInterval(
    () => report(`  ${progressLine(tallies, crashes, started)}`),
    PROGRESS_MS,
  );
  try {
    await Promise.all(lanes);
  } finally {
    clearInterval(progress);
    clearInterval(watchdog);
    await Promise.all(wireLanes.map((lane) => lane.close()));
  }
  if (down()) await recover();
  await stack.stop();
  collect(stack.server);
  collect(stack.proxy);
  await Deno.remove(root, { recursive: true });
  await Deno.remove(cache, { recursive: true });
  const problems = crashes.length + (tallies.proxy?.failed(options.strict) ?? 0) +
    (tallies.wire?.failed(options.strict) ?? 0);
  const summary: FuzzSummary = {
    transport,
    seed,
    seconds: Math.round((performance.now() - started) / 100) / 10,
    crashes,
    ...tallies,
    logs,
    out,
    problems,
  };
  await Deno.writeTextFile(join(out, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  const saved = Object.values(tallies).some((tally) => tally.failures.length > 0);
  // The saved cases live in `base` unless --out put them elsewhere.
  if (options.out || (!saved && crashes.length === 0)) await Deno.remove(base, { recursive: true });
  return summary;
}

/** Waits until the proxy answers a GET of the front page with 200 (its upstream is up). */
async function waitForProxy(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/index.html`);
      await response.body?.cancel();
      if (response.status === 200) return;
    } catch { /* not up yet */ }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function progressLine(
  tallies: { proxy?: Tally; wire?: Tally },
  crashes: readonly Crash[],
  started: number,
): string {
  const seconds = (performance.now() - started) / 1000;
  const parts = Object.values(tallies).map((tally) =>
    `${tally.name} ${tally.cases} (${
      Math.round(tally.cases / seconds)
    }/s, ${tally.failed()} failed, ${tally.verdicts.get("wrong") ?? 0} wrong)`
  );
  return `${Math.round(seconds)} s: ${parts.join(", ")}, ${crashes.length} crashes`;
}

/** The summary as text. */
export function summaryText(summary: FuzzSummary): string {
  const lines = [
    `flowsched live fuzz over ${summary.transport}, seed ${summary.seed}: ${summary.seconds} s`,
    `  crashes: ${summary.crashes.length}`,
  ];
  for (const crash of summary.crashes) {
    lines.push(
      `    ${crash.process}: exit code ${crash.exit.code}${
        crash.exit.signal ? ` (${crash.exit.signal})` : ""
      }, last cases in ${crash.casesDir}`,
      ...crash.log.slice(-5).map((line) => `      ${line.slice(0, 300)}`),
    );
  }
  for (const tally of [summary.proxy, summary.wire]) {
    if (!tally) continue;
    const count = (verdict: string) => tally.verdicts.get(verdict as never) ?? 0;
    lines.push(
      `  ${
        tally.name === "proxy" ? "proxy TCP port" : "server wire port"
      }: ${tally.cases} cases, ` +
        `${count("hang")} hangs, ${count("invalid")} invalid, ${count("wrong")} wrong, ` +
        `${count("refused")} refused, ${count("dropped")} dropped, ${
          count("crashed")
        } during crashes`,
      `    answers: ${
        [...tally.labels].sort((a, b) => b[1] - a[1]).map(([label, n]) => `${label} ${n}`)
          .join(", ")
      }`,
    );
    for (const failure of tally.failures.slice(0, 10)) {
      lines.push(
        `    ${failure.verdict} #${failure.index} (${failure.kind}): ${
          failure.detail.slice(0, 300)
        }${failure.file ? `\n      saved: ${failure.file}` : ""}`,
      );
    }
  }
  for (const [process, { counts }] of Object.entries(summary.logs)) {
    const notable = Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, 15);
    if (notable.length > 0) {
      lines.push(
        `  ${process} log: ${notable.map(([key, n]) => `${key.slice(0, 120)} ×${n}`).join("; ")}`,
      );
    }
  }
  const wrong = (summary.proxy?.verdicts.get("wrong") ?? 0) +
    (summary.wire?.verdicts.get("wrong") ?? 0);
  lines.push(
    summary.problems > 0
      ? `  result: ${summary.problems} problems; failing cases and summary.json in ${summary.out}`
      : wrong > 0
      ? `  result: 0 crashes, 0 hangs, every answer valid; but ${wrong} wrong answers to ` +
        `well-formed requests (--strict fails on them), saved in ${summary.out}`
      : "  result: 0 crashes, 0 hangs, every answer valid and right",
  );
  return lines.join("\n");
}

const USAGE = `Usage: deno task fuzz [options]
   (or: deno run -P=fuzz scripts/hardening/fuzz_live.ts [options])

Starts a flowsched server and a proxy, sends mutated requests to the proxy's TCP port
and mutated protocol messages to the server's wire port, and counts crashes, hangs,
and invalid or wrong answers. Exits 1 if there was any.`;

if (import.meta.main) {
  try {
    const parsed = await parseOptions(Deno.args, FUZZ_OPTIONS);
    if (!parsed) {
      console.log(helpText(USAGE, FUZZ_OPTIONS));
      Deno.exit(0);
    }
    const summary = await runLiveFuzz(parsed.values);
    console.log(summaryText(summary));
    Deno.exit(summary.problems === 0 ? 0 : 1);
  } catch (error) {
    console.error(`fuzz_live: ${(error as Error).message}`);
    Deno.exit(error instanceof ConfigError ? 2 : 1);
  }
}
