/**
 * `deno task harden overload`: more clients than the server and the proxy
 * should take, all at once, then a check that service comes back.
 *
 * - The server (tcpmux) gets `--associations` associations opened together,
 *   each asking for one file once all are open. The clients speak tcpmux and
 *   the wire protocol directly over `Deno.connect` (docs/PROTOCOL.md), so the
 *   harness holds hundreds of associations without a Worker each.
 * - The proxy gets `--connections` TCP connections at once, each one GET.
 *
 * Every answer must be the whole file (sha256), or a clean refusal: an error
 * status (RESET 503, HTTP 503), or the connection closed before the hello.
 * Nothing may hang past the deadline. Both processes' RSS is sampled during
 * the load; afterwards a fresh client must be served.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { helpText, type OptionValues, parseOptions } from "../../cli/options.ts";
import { decodeServerControl, encodeRequest, MessageType } from "../../protocol/wire.ts";
import { encodeHello } from "../../transport/tcpmux.ts";
import { progress, round, sha256Hex, table } from "../bench/common.ts";
import {
  fetchChecked,
  freeTcpPort,
  makeFiles,
  type Service,
  type SiteFile,
  startProxy,
  startServer,
} from "./stack.ts";

const OPTIONS = {
  associations: { kind: "integer", default: 200, min: 1, help: "associations to the server" },
  connections: { kind: "integer", default: 2000, min: 1, help: "TCP clients to the proxy" },
  deadline: { kind: "integer", default: 60, min: 1, help: "seconds any one client may take" },
  serverArgs: { kind: "string", default: "", help: "more server flags, space-separated" },
  proxyArgs: { kind: "string", default: "", help: "more proxy flags, space-separated" },
  quick: { kind: "boolean", default: false, help: "50 associations, 300 connections" },
} as const;

type Values = OptionValues<typeof OPTIONS>;

const USAGE = `Usage: deno task harden overload [options]

Opens many associations to the server and many TCP clients to the proxy at once; every answer must
be the right file or a clean refusal, nothing may hang, memory is sampled, and service must come
back once the load ends.`;

/** How each client of one side ended, and the peak RSS of the process under load. */
export interface SideResult {
  readonly clients: number;
  readonly outcomes: Record<string, number>;
  readonly peakRssMb: number;
  readonly seconds: number;
  /** Whether a fresh client was served correctly after the load. */
  readonly recovered: boolean;
}

/** What an overload run saw. */
export interface OverloadReport {
  readonly server: SideResult;
  readonly proxy: SideResult;
  readonly passed: boolean;
}

/** Outcomes that are acceptable: served, or refused cleanly. */
const CLEAN = /^(ok|refused|status 503|reset 503|closed before hello)$/;

/** Runs the overload; see the module doc. */
export async function runOverload(values: Values): Promise<OverloadReport> {
  const associations = values.quick ? 50 : values.associations;
  const connections = values.quick ? 300 : values.connections;
  const root = await Deno.makeTempDir({ prefix: "flowsched-overload-site-" });
  const cache = await Deno.makeTempDir({ prefix: "flowsched-overload-cache-" });
  const files = await makeFiles(root, 32, { minBytes: 256, maxBytes: 256 * 1024 });
  const port = freeTcpPort();
  const server = await startServer({
    root,
    transport: "tcpmux",
    host: "127.0.0.1",
    port,
    args: split(values.serverArgs),
  });
  try {
    const proxy = await startProxy({
      listen: `127.0.0.1:${freeTcpPort()}`,
      upstream: `tcpmux://127.0.0.1:${port}`,
      cache,
      args: ["--no-prefetch", ...split(values.proxyArgs)],
    });
    try {
      const deadlineMs = values.deadline * 1000;
      const serverSide = await underLoad(server, associations, async () => {
        const sessions = await Promise.all(
          Array.from({ length: associations }, () => RawSession.open(port, deadlineMs)),
        );
        progress("overload", `${associations} associations opened; each asks for one file`);
        return await Promise.all(
          sessions.map((session, i) => session.fetch(files[i % files.length])),
        );
      }, async () => {
        const session = await RawSession.open(port, deadlineMs);
        return (await session.fetch(files[0])) === "ok";
      });
      const proxySide = await underLoad(proxy.service, connections, async () => {
        const proxyPort = Number(new URL(proxy.base).port);
        return await Promise.all(
          Array.from(
            { length: connections },
            (_, i) => rawGet(proxyPort, files[i % files.length], deadlineMs),
          ),
        );
      }, async () => (await fetchChecked(proxy.base, files[1])).kind === "ok");
      const clean = (side: SideResult) =>
        side.recovered && Object.keys(side.outcomes).every((o) => CLEAN.test(o));
      return {
        server: serverSide,
        proxy: proxySide,
        passed: clean(serverSide) && clean(proxySide),
      };
    } finally {
      await proxy.service.stop("SIGTERM");
    }
  } finally {
    await server.stop("SIGTERM");
    await Deno.remove(root, { recursive: true });
    await Deno.remove(cache, { recursive: true });
  }
}

/** Runs `load` while sampling `service`'s RSS, then `recover` once the load is over. */
async function underLoad(
  service: Service,
  clients: number,
  load: () => Promise<string[]>,
  recover: () => Promise<boolean>,
): Promise<SideResult> {
  let peakRssMb = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peakRssMb = Math.max(peakRssMb, (await service.sample()).rssMb);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();
  const started = performance.now();
  const results = await load();
  const seconds = round((performance.now() - started) / 1000);
  sampling = false;
  await sampler;
  const outcomes: Record<string, number> = {};
  for (const result of results) outcomes[result] = (outcomes[result] ?? 0) + 1;
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const recovered = await recover().catch(() => false);
  progress(
    "overload",
    `${service.name}: ${JSON.stringify(outcomes)} in ${seconds} s, peak ${
      round(peakRssMb)
    } MB RSS, recovered ${recovered}`,
  );
  return { clients, outcomes, peakRssMb: round(peakRssMb), seconds, recovered };
}

/** A tcpmux association spoken by hand: hello, then frames of wire messages. */
class RawSession {
  readonly #conn: Deno.TcpConn;
  readonly #deadline: number;
  #buffered = new Uint8Array(0);

  private constructor(conn: Deno.TcpConn, deadline: number) {
    this.#conn = conn;
    this.#deadline = deadline;
  }

  /** Connects and exchanges hellos; a server that refuses closes before its hello. */
  static async open(port: number, deadlineMs: number): Promise<RawSession> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const session = new RawSession(conn, performance.now() + deadlineMs);
    await conn.write(encodeHello(2, 2));
    return session;
  }

  /** Requests `file`, reads the answer, closes; returns how it ended. */
  async fetch(file: SiteFile): Promise<string> {
    try {
      if (!(await this.#read(8))) return "closed before hello";
      this.#take(8);
      const request = encodeRequest(1, `GET ${file.path} HTTP/1.1\r\nHost: overload\r\n\r\n`);
      const frame = new Uint8Array(8 + request.byteLength);
      new DataView(frame.buffer).setUint32(4, request.byteLength);
      frame.set(request, 8);
      await this.#conn.write(frame);
      const body: Uint8Array[] = [];
      let length = -1, received = 0, runLeft = 0;
      while (length < 0 || received < length) {
        const message = await this.#message();
        if (!message) return "closed mid-response";
        if (runLeft > 0) {
          body.push(message);
          received += message.byteLength;
          runLeft -= message.byteLength;
          continue;
        }
        const control = decodeServerControl(message);
        if (control.type === MessageType.RESET) return `reset ${control.status}`;
        if (control.type === MessageType.HEAD) {
          const head = new TextDecoder().decode(control.head);
          const status = Number(head.split(" ", 2)[1]);
          if (status !== 200) return `status ${status}`;
          length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        }
        runLeft = control.run;
      }
      return sha256Hex(Buffer.concat(body)) === file.sha256 ? "ok" : "wrong bytes";
    } catch (error) {
      return error instanceof Deadline ? "hang" : `error ${(error as Error).name}`;
    } finally {
      this.#conn.close();
    }
  }

  async #message(): Promise<Uint8Array | null> {
    if (!(await this.#read(8))) return null;
    const length = new DataView(this.#buffered.buffer, this.#buffered.byteOffset).getUint32(4);
    if (!(await this.#read(8 + length))) return null;
    return this.#take(8 + length).subarray(8);
  }

  async #read(bytes: number): Promise<boolean> {
    while (this.#buffered.byteLength < bytes) {
      const chunk = new Uint8Array(64 * 1024);
      const timeout = this.#deadline - performance.now();
      if (timeout <= 0) throw new Deadline();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        this.#conn.read(chunk),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Deadline()), timeout);
        }),
      ]).finally(() => clearTimeout(timer));
      if (n === null) return false;
      this.#buffered = Buffer.concat([this.#buffered, chunk.subarray(0, n)]);
    }
    return true;
  }

  #take(bytes: number): Uint8Array {
    const taken = this.#buffered.subarray(0, bytes);
    this.#buffered = this.#buffered.subarray(bytes);
    return taken;
  }
}

class Deadline extends Error {}

/** One GET over a fresh TCP connection (Connection: close), read to the end. */
async function rawGet(port: number, file: SiteFile, deadlineMs: number): Promise<string> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return "refused";
  }
  const timer = setTimeout(() => conn.close(), deadlineMs);
  try {
    await conn.write(
      new TextEncoder().encode(`GET ${file.path} HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n`),
    );
    const response = new Uint8Array(await new Response(conn.readable).arrayBuffer());
    const headEnd = findHeadEnd(response);
    const head = new TextDecoder().decode(response.subarray(0, headEnd));
    const status = Number(head.split(" ", 2)[1]);
    if (!status) return "no status";
    if (status !== 200) return `status ${status}`;
    return sha256Hex(response.subarray(headEnd)) === file.sha256 ? "ok" : "wrong bytes";
  } catch {
    return "hang";
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the deadline */ }
  }
}

function findHeadEnd(response: Uint8Array): number {
  for (let i = 3; i < response.byteLength; i++) {
    if (
      response[i - 3] === 13 && response[i - 2] === 10 && response[i - 1] === 13 &&
      response[i] === 10
    ) return i + 1;
  }
  return response.byteLength;
}

const split = (args: string) => args.split(" ").filter(Boolean);

/** `deno task harden overload`. */
export async function main(args: string[]): Promise<void> {
  const parsed = await parseOptions(args, OPTIONS);
  if (!parsed) return console.log(helpText(USAGE, OPTIONS));
  const report = await runOverload(parsed.values);
  console.log(table(
    ["target", "clients", "outcomes", "seconds", "peak RSS MB", "recovered"],
    (["server", "proxy"] as const).map((side) => [
      side,
      report[side].clients,
      Object.entries(report[side].outcomes).map(([o, n]) => `${n} ${o}`).join(", "),
      report[side].seconds,
      report[side].peakRssMb,
      String(report[side].recovered),
    ]),
  ));
  console.log(report.passed ? "PASS" : "FAIL");
  if (!report.passed) Deno.exitCode = 1;
}
