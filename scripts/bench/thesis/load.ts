/**
 * The load side of `bench thesis`: a closed-loop client run as its own
 * process in a lab namespace. It fetches a fixed request sequence (or loads
 * pages as a browser would) for a number of seconds and records every
 * request; each body's length is checked, and a sample's sha256. The CPU of
 * the server processes and of the lab is read from /proc at the start and
 * the end of the timed phase.
 *
 * @module
 */

import { cpus } from "node:os";
import { FlowClient } from "../../../mod.ts";
import { cssUrls, htmlResourceSink } from "../../../proxy/prefetch.ts";
import { retry, sha256Hex } from "../common.ts";
import { HttpConnection, type HttpTransport, openPipe } from "./http_client.ts";
import type { Fetch } from "./results.ts";

/** A file the client may ask for, with what it must receive. */
export interface Expected {
  size: number;
  /** Checked on a sample of responses. */
  sha256: string;
}

/** One load phase, as the lab side hands it to the load process. */
export interface LoadJob {
  /**
   * `flow`: requests over one association (flowsched's protocol); `http`:
   * HTTP/1.1 on `workers` connections; `pages`: page loads, `workers`
   * requests at a time, as a browser does.
   */
  mode: "flow" | "http" | "pages";
  /** flow: `kernel://host:port` or `tcpmux://host:port`; http, pages: `host:port`. */
  target: string;
  /** http, pages: what carries HTTP. */
  transport: HttpTransport;
  /** http, pages: keep connections open across requests (else one request per connection). */
  persistent: boolean;
  /** Requests in flight (flow), connections (http), parallel requests per page (pages). */
  workers: number;
  /** flow: streams of each association. */
  streams: number;
  /**
   * flow: associations, each a new one (so a balancer in front places each);
   * requests take them in turn. @default 1
   */
  associations?: number;
  /** Seconds of the timed phase; requests in flight at its end complete. */
  seconds: number;
  /** Paths to request in order (pages: the pages), cycled. */
  sequence: string[];
  /** Every file that may be fetched. */
  files: Record<string, Expected>;
  /** Hash every n-th response body. */
  hashEvery: number;
  /** Processes whose CPU time counts as the server's. */
  serverPids: number[];
  /** The proxy's process, if the client goes through one. */
  proxyPids: number[];
}

/** What the load process writes back. */
export interface LoadOutcome {
  seconds: number;
  fetches: Fetch[];
  connections: number;
  labCpu: number;
  serverCpuMs: number;
  proxyCpuMs: number;
}

/** Fetches one path and checks it: body length, and the body itself if `keep`. */
type Getter = (
  path: string,
  keep: boolean,
) => Promise<{ ok: boolean; length: number; body?: Uint8Array }>;

/** Runs `job`; connects with retries (servers may still be starting). */
export async function runLoad(job: LoadJob): Promise<LoadOutcome> {
  const client = await retry(() => openClient(job), 20);
  try {
    const cursor = { next: 0 };
    // Warm-up: the server maps its files, the JITs warm. Not for pages: the first load of a
    // page is the one measured (the proxy's cache starts cold).
    if (job.mode !== "pages") await runPhase(job, client.get, cursor, performance.now() + 300);
    const cpuAtStart = await cpuSnapshot(job);
    client.opened = 0;
    const t0 = performance.now();
    const fetches = await runPhase(job, client.get, cursor, t0 + job.seconds * 1000, t0);
    const seconds = (performance.now() - t0) / 1000;
    const cpuAtEnd = await cpuSnapshot(job);
    return {
      seconds,
      fetches,
      connections: client.opened,
      labCpu: (cpuAtEnd.busy - cpuAtStart.busy) / Math.max(1, cpuAtEnd.total - cpuAtStart.total),
      serverCpuMs: cpuAtEnd.server - cpuAtStart.server,
      proxyCpuMs: cpuAtEnd.proxy - cpuAtStart.proxy,
    };
  } finally {
    await client.close();
  }
}

interface Client {
  get: Getter;
  opened: number;
  close(): Promise<void>;
}

/** Failures told on stderr, so that a run's failures say what they were. */
const TOLD_FAILURES = 5;
let told = 0;

function tell(path: string, what: string) {
  if (told++ < TOLD_FAILURES) console.error(`load: ${path}: ${what}`);
}

function check(job: LoadJob, path: string, status: number, length: number, body?: Uint8Array) {
  const expected = job.files[path];
  let wrong = "";
  if (!expected) wrong = "not a file of the run";
  else if (status !== 200) wrong = `status ${status}`;
  else if (length !== expected.size) wrong = `${length} bytes of ${expected.size}`;
  else if (body && sha256Hex(body) !== expected.sha256) wrong = "a different sha256";
  if (wrong) tell(path, wrong);
  return wrong === "";
}

async function openClient(job: LoadJob): Promise<Client> {
  let served = 0;
  const sample = () => ++served % job.hashEvery === 0;
  if (job.mode === "flow") {
    const flows = await Promise.all(
      Array.from(
        { length: job.associations ?? 1 },
        () => FlowClient.connect(job.target, { streams: job.streams }),
      ),
    );
    let turn = 0;
    const client: Client = {
      opened: flows.length,
      get: async (path, keep) => {
        const response = await flows[turn++ % flows.length].request(path);
        const body = await response.bytes();
        const hashed = keep || sample();
        return {
          ok: check(job, path, response.status, body.byteLength, hashed ? body : undefined),
          length: body.byteLength,
          body,
        };
      },
      close: async () => {
        await Promise.all(flows.map((flow) => flow.close()));
      },
    };
    return client;
  }
  const [host, port] = splitHostPort(job.target);
  const idle: HttpConnection[] = [];
  const open = async () => {
    client.opened++;
    return new HttpConnection(await openPipe(job.transport, host, port), host);
  };
  const client: Client = {
    opened: 0,
    get: async (path, keep) => {
      const http = idle.pop() ?? await open();
      const hashed = keep || sample();
      try {
        const answer = await http.get(path, { keepBody: hashed, close: !job.persistent });
        return {
          ok: check(job, path, answer.status, answer.length, answer.body),
          length: answer.length,
          body: answer.body,
        };
      } finally {
        if (http.usable) idle.push(http);
        else http.close();
      }
    },
    close: () => {
      for (const http of idle.splice(0)) http.close();
      return Promise.resolve();
    },
  };
  // The first connection shows the server is up. Persistent: all open before the timed
  // phase, as a browser's stay open across pages.
  const first = await open();
  if (job.persistent) {
    idle.push(first, ...await Promise.all(Array.from({ length: job.workers - 1 }, open)));
  } else first.close();
  return client;
}

/**
 * Runs workers until `deadline`, taking paths from the sequence at `cursor`;
 * records their requests (if `t0` is given).
 */
async function runPhase(
  job: LoadJob,
  get: Getter,
  cursor: { next: number },
  deadline: number,
  t0?: number,
): Promise<Fetch[]> {
  const fetches: Fetch[] = [];
  const one = job.mode === "pages"
    ? (page: string) => loadPage(page, get, job.workers)
    : async (path: string) => {
      const started = performance.now();
      const { ok, length } = await get(path, false).catch((error) => {
        tell(path, (error as Error).message);
        return { ok: false, length: 0 };
      });
      return { ms: performance.now() - started, bytes: length, ok };
    };
  const worker = async () => {
    while (performance.now() < deadline) {
      const path = job.sequence[cursor.next++ % job.sequence.length];
      const done = await one(path);
      if (t0 !== undefined) {
        fetches.push({
          t: performance.now() - t0,
          ms: done.ms,
          bytes: done.ok ? done.bytes : 0,
          ok: done.ok,
        });
      }
    }
  };
  // Pages load one after another (each with its own parallelism), requests `workers` at a time.
  await Promise.all(Array.from({ length: job.mode === "pages" ? 1 : job.workers }, worker));
  return fetches;
}

/**
 * Loads a page as a browser does: the HTML, then what it embeds, then what
 * its CSS references, at most `parallel` requests at a time. The time is from
 * the first request to the last byte of the last resource.
 */
async function loadPage(page: string, get: Getter, parallel: number) {
  const started = performance.now();
  const seen = new Set([page]);
  const queue = [page];
  let bytes = 0;
  let ok = true;
  const base = new URL(page, "http://site");
  const enqueue = (urls: URL[]) => {
    for (const url of urls) {
      if (url.origin !== base.origin || seen.has(url.pathname)) continue;
      seen.add(url.pathname);
      queue.push(url.pathname);
    }
  };
  const fetchOne = async (path: string) => {
    const markup = path.endsWith(".html") || path.endsWith(".css");
    const answer = await get(path, markup).catch(() => ({ ok: false, length: 0, body: undefined }));
    ok &&= answer.ok;
    if (!answer.ok) return;
    bytes += answer.length;
    if (!answer.body || !markup) return;
    const url = new URL(path, base);
    if (path.endsWith(".html")) {
      const sink = htmlResourceSink(url, enqueue);
      sink.write(answer.body);
      sink.end();
    } else {
      enqueue(cssUrls(new TextDecoder().decode(answer.body)).map((u) => new URL(u, url)));
    }
  };
  const running = new Set<Promise<void>>();
  while (queue.length > 0 || running.size > 0) {
    while (queue.length > 0 && running.size < parallel) {
      const task: Promise<void> = fetchOne(queue.shift()!).finally(() => running.delete(task));
      running.add(task);
    }
    await Promise.race(running);
  }
  return { ms: performance.now() - started, bytes, ok };
}

function splitHostPort(target: string): [string, number] {
  const at = target.lastIndexOf(":");
  return [target.slice(0, at), Number(target.slice(at + 1))];
}

/** CPU time so far: the machine's busy and total ms, the server processes' and the proxy's ms. */
async function cpuSnapshot(
  job: LoadJob,
): Promise<{ busy: number; total: number; server: number; proxy: number }> {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus()) {
    busy += times.user + times.nice + times.sys + times.irq;
    total += times.user + times.nice + times.sys + times.irq + times.idle;
  }
  const perProcess = await processCpuMs();
  return {
    busy,
    total,
    server: treeCpuMs(perProcess, job.serverPids),
    proxy: treeCpuMs(perProcess, job.proxyPids),
  };
}

/** Clock ticks per second of /proc's CPU times (USER_HZ; 100 on Linux). */
const USER_HZ = 100;

/** User + system CPU ms and parent of every process. */
async function processCpuMs(): Promise<Map<number, { parent: number; ms: number }>> {
  // Deno lets only --allow-all read /proc, so cat reads every process's stat at once.
  const { stdout } = await new Deno.Command("sh", {
    args: ["-c", "cat /proc/[0-9]*/stat 2>/dev/null"],
    stdout: "piped",
  }).output();
  const stats = new Map<number, { parent: number; ms: number }>();
  for (const line of new TextDecoder().decode(stdout).split("\n")) {
    if (!line) continue;
    // After the command name (which may hold spaces): state, ppid, ..., utime (14), stime (15).
    const fields = line.slice(line.lastIndexOf(")") + 2).split(" ");
    stats.set(Number(line.slice(0, line.indexOf(" "))), {
      parent: Number(fields[1]),
      ms: (Number(fields[11]) + Number(fields[12])) * 1000 / USER_HZ,
    });
  }
  return stats;
}

/** User + system CPU ms of `pids` and all their descendants (nginx's workers). */
function treeCpuMs(stats: Map<number, { parent: number; ms: number }>, pids: number[]): number {
  const inTree = (pid: number): boolean => {
    for (let at = pid, hops = 0; at > 1 && hops < 64; hops++) {
      if (pids.includes(at)) return true;
      at = stats.get(at)?.parent ?? 0;
    }
    return false;
  };
  let ms = 0;
  for (const [pid, { ms: used }] of stats) if (inTree(pid)) ms += used;
  return ms;
}

if (import.meta.main) {
  const [jobFile, outFile] = Deno.args;
  const job: LoadJob = JSON.parse(await Deno.readTextFile(jobFile));
  await Deno.writeTextFile(outFile, JSON.stringify(await runLoad(job)));
}
