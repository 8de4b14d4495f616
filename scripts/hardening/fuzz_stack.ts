/**
 * A flowsched server and a proxy in front of it, each in its own child
 * process (`server/main.ts`, `proxy/main.ts`), for the live fuzzer: a
 * crash of either shows as an exit of its process instead of taking the
 * script down, and either can be started again.
 *
 * @module
 */

import { freeUdpPort } from "./stack.ts";

const DENO = Deno.execPath();
const ROOT = new URL("../../", import.meta.url).pathname;
/** Log lines kept per child: enough context for a report, bounded over a long run. */
const TAIL_LINES = 200;

/** How a child process ended. */
export interface Exit {
  readonly code: number;
  readonly signal: Deno.Signal | null;
}

/** A child process whose JSON log lines on stderr are tallied, the last ones kept. */
export class Child {
  /** What the child is, for reports ("server", "proxy"). */
  readonly name: string;
  /** The last log lines (at most 200). */
  readonly tail: string[] = [];
  /** Examples of the log lines above info level: the first 2 of each kind (at most 200 kinds). */
  readonly examples = new Map<string, string[]>();
  /** Log lines counted by `level message`, e.g. `error request failed`. */
  readonly counts = new Map<string, number>();
  /** Settles when the process has exited. */
  readonly exited: Promise<Exit>;
  readonly #process: Deno.ChildProcess;
  readonly #drained: Promise<void>;
  #exit: Exit | undefined;
  #waiters: { text: string; resolve: (line: string) => void }[] = [];

  constructor(name: string, args: string[]) {
    this.name = name;
    this.#process = new Deno.Command(DENO, {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.exited = this.#process.status.then(({ code, signal }) => (this.#exit = { code, signal }));
    this.#drained = this.#drain();
  }

  /** The process id. */
  get pid(): number {
    return this.#process.pid;
  }

  /** How the process ended, once it has. */
  get exit(): Exit | undefined {
    return this.#exit;
  }

  async #drain() {
    let rest = "";
    for await (const chunk of this.#process.stderr.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const lines = rest.split("\n");
      rest = lines.pop()!;
      for (const line of lines) this.#line(line);
    }
    if (rest) this.#line(rest);
  }

  #line(line: string) {
    // Deno's own notice about deno.json permission sets, on every start.
    if (line.includes("Permissions in the config file is an experimental feature")) return;
    this.tail.push(line);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    let key = "other";
    try {
      const entry = JSON.parse(line);
      key = `${entry.level} ${entry.message}`;
    } catch { /* not a log entry: a panic or an uncaught error */ }
    if (!key.startsWith("info") && !key.startsWith("debug")) {
      const seen = this.examples.get(key) ?? [];
      if (seen.length < 2 && (seen.length > 0 || this.examples.size < 200)) {
        this.examples.set(key, [...seen, line]);
      }
    }
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    const ready = this.#waiters.filter((waiter) => line.includes(waiter.text));
    this.#waiters = this.#waiters.filter((waiter) => !ready.includes(waiter));
    for (const waiter of ready) waiter.resolve(line);
  }

  /** The next log line containing `text`; rejects if the process exits or `timeoutMs` passes. */
  waitForLine(text: string, timeoutMs = 20000): Promise<string> {
    return new Promise((resolve, reject) => {
      const fail = (why: string) =>
        reject(new Error(`${this.name}: ${why} before logging ${text}:\n${this.tail.join("\n")}`));
      const timer = setTimeout(() => fail(`no line in ${timeoutMs} ms`), timeoutMs);
      this.#waiters.push({
        text,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
      this.exited.then((exit) => {
        clearTimeout(timer);
        fail(`exited with code ${exit.code}${exit.signal ? ` (${exit.signal})` : ""}`);
      });
    });
  }

  /** Stops the process (SIGTERM, then SIGKILL after 3 s) and waits for it. */
  async stop(): Promise<void> {
    const signal = (name: Deno.Signal) => {
      try {
        this.#process.kill(name);
      } catch { /* already gone */ }
    };
    if (!this.#exit) {
      signal("SIGTERM");
      const timer = setTimeout(() => signal("SIGKILL"), 3000);
      await this.exited;
      clearTimeout(timer);
    }
    await this.#drained;
  }
}

/** Options of a stack. */
export interface StackOptions {
  /** The server's transport (`tcpmux` or `usrsctp` on the host). */
  transport: "tcpmux" | "usrsctp";
  /** Document root of the server. */
  root: string;
  /** The proxy's cache directory. */
  cache: string;
  /** Streams of every association. @default 4 */
  streams?: number;
  /** The proxy's `--request-timeout` in ms. @default 5000 */
  requestTimeout?: number;
  /** Extra flags for the server. */
  serverArgs?: string[];
  /** Extra flags for the proxy. */
  proxyArgs?: string[];
}

/** A running server and the proxy in front of it. */
export class Stack {
  readonly options: StackOptions;
  /** The server's SCTP (or tcpmux) port. */
  readonly serverPort: number;
  /** usrsctp: the server's UDP encapsulation port. */
  readonly udpPort: number;
  /** The proxy's TCP port. */
  readonly proxyPort: number;
  #server: Child;
  #proxy: Child;

  private constructor(
    options: StackOptions,
    ports: { server: number; udp: number; proxy: number },
    children: { server: Child; proxy: Child },
  ) {
    this.options = options;
    this.serverPort = ports.server;
    this.udpPort = ports.udp;
    this.proxyPort = ports.proxy;
    this.#server = children.server;
    this.#proxy = children.proxy;
  }

  /** Starts the server, then the proxy; resolves once both listen. */
  static async start(options: StackOptions): Promise<Stack> {
    const udp = await freeUdpPort();
    const server = Stack.#spawnServer(options, 0, udp);
    let proxy: Child | undefined;
    try {
      const port = Number(/"port":(\d+)/.exec(await server.waitForLine(`"listening"`))?.[1]);
      proxy = Stack.#spawnProxy(options, port, udp, 0);
      const line = await proxy.waitForLine(`"listening"`);
      const proxyPort = Number(/"listen":"[^"]*:(\d+)"/.exec(line)?.[1]);
      return new Stack(options, { server: port, udp, proxy: proxyPort }, { server, proxy });
    } catch (error) {
      await Promise.all([server.stop(), proxy?.stop()]);
      throw error;
    }
  }

  static #spawnServer(options: StackOptions, port: number, udp: number): Child {
    return new Child("server", [
      "run",
      "-P=server",
      "--no-code-cache",
      "--no-check",
      "server/main.ts",
      ...["--transport", options.transport, "--host", "127.0.0.1", "--port", String(port)],
      ...["--udp-port", String(udp), "--root", options.root],
      ...["--streams", String(options.streams ?? 4), "--log-level", "info"],
      ...(options.serverArgs ?? []),
    ]);
  }

  static #spawnProxy(options: StackOptions, serverPort: number, udp: number, port: number): Child {
    return new Child("proxy", [
      "run",
      "-P=proxy",
      "--no-code-cache",
      "--no-check",
      "proxy/main.ts",
      ...["--listen", `127.0.0.1:${port}`, "--log-level", "info"],
      ...["--upstream", `${options.transport}://127.0.0.1:${serverPort}`],
      ...["--udp-port", String(udp), "--cache", options.cache],
      ...["--streams", String(options.streams ?? 4)],
      ...["--request-timeout", String(options.requestTimeout ?? 5000)],
      ...(options.proxyArgs ?? []),
    ]);
  }

  /** The server process (a new one after `restartServer`). */
  get server(): Child {
    return this.#server;
  }

  /** The proxy process (a new one after `restartProxy`). */
  get proxy(): Child {
    return this.#proxy;
  }

  /** Starts the server again on the same ports, after it exited. */
  async restartServer(): Promise<void> {
    await this.#server.stop();
    this.#server = Stack.#spawnServer(this.options, this.serverPort, this.udpPort);
    await this.#server.waitForLine(`"listening"`);
  }

  /** Starts the proxy again on the same port, after it exited. */
  async restartProxy(): Promise<void> {
    await this.#proxy.stop();
    this.#proxy = Stack.#spawnProxy(this.options, this.serverPort, this.udpPort, this.proxyPort);
    await this.#proxy.waitForLine(`"listening"`);
  }

  /** Stops both processes. */
  async stop(): Promise<void> {
    await this.#proxy.stop();
    await this.#server.stop();
  }
}
