/**
 * The pieces every hardening run uses: a site of files with known hashes,
 * server and proxy processes started from their command lines (in a lab
 * namespace if asked), their resource use read from /proc, and a client that
 * fetches through the proxy and checks every body.
 *
 * @module
 */

import { dirname, join } from "node:path";
import dgram from "node:dgram";
import { prng, REPO, sha256Hex } from "../bench/common.ts";

/** A file of a generated site: its URL path, size and sha256. */
export interface SiteFile {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

/**
 * Writes `count` files of pseudo-random bytes below `root`, sizes
 * log-uniform between `minBytes` and `maxBytes`, in 16 directories.
 */
export async function makeFiles(
  root: string,
  count: number,
  options: { minBytes: number; maxBytes: number; seed?: number },
): Promise<SiteFile[]> {
  const random = prng(options.seed ?? 12);
  const span = Math.log(options.maxBytes / options.minBytes);
  const files: SiteFile[] = [];
  for (let i = 0; i < count; i++) {
    const size = Math.round(options.minBytes * Math.exp(random() * span));
    const words = new Uint32Array(Math.ceil(size / 4));
    for (let i = 0; i < words.length; i++) words[i] = (random() * 2 ** 32) >>> 0;
    const data = new Uint8Array(words.buffer, 0, size);
    const path = `/d${i % 16}/f${i}.bin`;
    await Deno.mkdir(dirname(join(root, path)), { recursive: true });
    await Deno.writeFile(join(root, path), data);
    files.push({ path, size, sha256: sha256Hex(data) });
  }
  return files;
}

/** What /proc says of a process right now. */
export interface ProcessSample {
  /** Resident set size, MB. */
  readonly rssMb: number;
  /** Open file descriptors. */
  readonly fds: number;
  /** Threads (the main one, Deno's own, and one per Worker). */
  readonly threads: number;
}

/** A server or proxy process whose JSON log lines (stderr) are kept. */
export class Service {
  readonly name: string;
  readonly process: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly #drained: Promise<void>;
  #waiters: { text: string; resolve: (line: string) => void }[] = [];

  /** Runs `deno <args>` from the repository, in network namespace `netns` if given. */
  constructor(name: string, args: string[], netns?: string) {
    this.name = name;
    const deno = Deno.execPath();
    this.process = new Deno.Command(netns ? "ip" : deno, {
      args: netns ? ["netns", "exec", netns, deno, ...args] : args,
      cwd: REPO,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#drained = this.#drain();
  }

  async #drain() {
    let rest = "";
    for await (const chunk of this.process.stderr.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        this.lines.push(line);
        // Long runs log a lot: keep the recent lines only.
        if (this.lines.length > 2000) this.lines.splice(0, 1000);
        this.#waiters = this.#waiters.filter((waiter) => {
          if (!line.includes(waiter.text)) return true;
          waiter.resolve(line);
          return false;
        });
      }
    }
  }

  /** The first log line containing `text`; rejects if the process exits or `timeoutMs` passes. */
  waitForLine(text: string, timeoutMs = 60_000): Promise<string> {
    const seen = this.lines.find((line) => line.includes(text));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const fail = (why: string) =>
        reject(new Error(`${this.name}: ${why} before logging "${text}":\n${this.tail()}`));
      const timer = setTimeout(() => fail(`no line in ${timeoutMs} ms`), timeoutMs);
      this.process.status.then((status) => fail(`exited with ${status.code}`));
      this.#waiters.push({
        text,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  }

  /** The last log lines, for error messages. */
  tail(count = 15): string {
    return this.lines.slice(-count).join("\n");
  }

  /** RSS, descriptors and threads, from `ps` and /proc/<pid>/fd (Deno may not read /proc itself). */
  async sample(): Promise<ProcessSample> {
    const pid = String(this.process.pid);
    const run = async (command: string, args: string[]) => {
      const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "null" })
        .output();
      return new TextDecoder().decode(output.stdout);
    };
    const ps = (await run("ps", ["-o", "rss=,nlwp=", "-p", pid])).trim();
    if (!ps) throw new Error(`${this.name} is not running; its last log lines:\n${this.tail()}`);
    const [rssKb, threads] = ps.split(/\s+/).map(Number);
    const fds = (await run("ls", [`/proc/${pid}/fd`])).split("\n").filter(Boolean).length;
    return { rssMb: rssKb / 1024, fds, threads };
  }

  /** Sends `signal` (SIGKILL by default) and waits for the exit. */
  async stop(signal: Deno.Signal = "SIGKILL"): Promise<Deno.CommandStatus> {
    try {
      this.process.kill(signal);
    } catch { /* already gone */ }
    const status = await this.process.status;
    await this.#drained;
    return status;
  }
}

/** How to start a server. */
export interface ServerSpec {
  readonly root: string;
  readonly transport: string;
  readonly host: string;
  readonly port: number;
  readonly udpPort?: number;
  readonly netns?: string;
  /** More `server/main.ts` flags. */
  readonly args?: readonly string[];
}

/** Starts `server/main.ts`; resolves once it listens. */
export async function startServer(spec: ServerSpec): Promise<Service> {
  const service = new Service("server", [
    "run",
    "-P=server",
    "--no-code-cache",
    "--no-check",
    "server/main.ts",
    `--transport=${spec.transport}`,
    `--host=${spec.host}`,
    `--port=${spec.port}`,
    `--udp-port=${spec.udpPort ?? 9899}`,
    `--root=${spec.root}`,
    "--log-level=info",
    ...(spec.args ?? []),
  ], spec.netns);
  await service.waitForLine(`"listening"`).catch(async (error) => {
    await service.stop();
    throw error;
  });
  return service;
}

/** How to start a proxy. */
export interface ProxySpec {
  readonly listen: string;
  /** One server, or several (one `--upstream` each). */
  readonly upstream: string | readonly string[];
  readonly cache: string;
  readonly netns?: string;
  /** More `proxy/main.ts` flags. */
  readonly args?: readonly string[];
}

/** A running proxy and the base URL it answers on. */
export interface RunningProxy {
  readonly service: Service;
  readonly base: string;
}

/** Starts `proxy/main.ts`; resolves once it listens. */
export async function startProxy(spec: ProxySpec): Promise<RunningProxy> {
  const service = new Service("proxy", [
    "run",
    "-P=proxy",
    "--no-code-cache",
    "--no-check",
    "proxy/main.ts",
    `--listen=${spec.listen}`,
    ...[spec.upstream].flat().map((url) => `--upstream=${url}`),
    `--cache=${spec.cache}`,
    "--log-level=info",
    ...(spec.args ?? []),
  ], spec.netns);
  const line = await service.waitForLine(`"listening"`).catch(async (error) => {
    await service.stop();
    throw error;
  });
  const listen = /"listen":"([^"]*)"/.exec(line)?.[1] ?? spec.listen;
  return { service, base: `http://${listen}` };
}

/** How one fetch through the proxy ended. */
export type Outcome =
  | { readonly kind: "ok"; readonly ms: number }
  | { readonly kind: "status"; readonly status: number; readonly ms: number }
  | { readonly kind: "cut"; readonly got: number; readonly ms: number }
  | { readonly kind: "wrong"; readonly ms: number; readonly why: string };

/**
 * Fetches `file` from `base` and checks it: `ok` is every byte right,
 * `status` an error status, `cut` a body that ended early (the connection
 * dropped: the client can tell, since Content-Length says more), `wrong` a
 * body that claims to be complete but is not the file.
 */
export async function fetchChecked(
  base: string,
  file: SiteFile,
  client?: Deno.HttpClient,
): Promise<Outcome> {
  const start = performance.now();
  const ms = () => performance.now() - start;
  let response: Response;
  try {
    response = await fetch(base + file.path, { client });
  } catch {
    return { kind: "cut", got: 0, ms: ms() };
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    return { kind: "status", status: response.status, ms: ms() };
  }
  let body: Uint8Array;
  try {
    body = new Uint8Array(await response.arrayBuffer());
  } catch {
    return { kind: "cut", got: -1, ms: ms() };
  }
  if (body.byteLength !== file.size) {
    const declared = Number(response.headers.get("content-length"));
    if (declared === file.size && body.byteLength < file.size) {
      return { kind: "cut", got: body.byteLength, ms: ms() };
    }
    return { kind: "wrong", ms: ms(), why: `${body.byteLength} bytes, want ${file.size}` };
  }
  if (sha256Hex(body) !== file.sha256) return { kind: "wrong", ms: ms(), why: "sha256 differs" };
  return { kind: "ok", ms: ms() };
}

/**
 * The `.tmp` files below `dir` (downloads in progress or abandoned), as path
 * → inode and mtime: a file made later under the same name, even one that
 * reuses the freed inode, has a later mtime.
 */
export async function tmpFiles(dir: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const walk = async (at: string) => {
    for await (const entry of Deno.readDir(at)) {
      const path = join(at, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".tmp")) {
        const info = await Deno.stat(path).catch(() => null);
        if (info) found.set(path, `${info.ino} ${info.mtime?.getTime()}`);
      }
    }
  };
  await walk(dir);
  return found;
}

/** Least-squares slope of `y` over `x`. */
export function slope(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let num = 0, den = 0;
  for (let i = 0; i < n; i++) {
    num += (x[i] - mx) * (y[i] - my);
    den += (x[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** A TCP port free right now on 127.0.0.1. */
export function freeTcpPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A UDP port free right now on 127.0.0.1. */
export async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}
