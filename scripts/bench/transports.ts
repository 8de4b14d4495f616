/**
 * `deno task bench transports [--quick]`: one-way message throughput of the
 * transports, as ratios measured in one run.
 *
 * Definition: the client sends N messages of S bytes on stream 0 (at most
 * `--window` sends in flight), then a 1-byte end marker; the server counts
 * the messages and answers the marker with a 16-byte acknowledgement
 * (messages, bytes). Time runs from the first send until the
 * acknowledgement arrives, so it covers delivery of every byte. An untimed
 * warm-up batch of N/10 + 1 messages goes first on the same connection, as
 * in the C anchors. Plain TCP ("tcp") is `Deno.connect`/`Deno.listen` with
 * the same messages framed as a 4-byte big-endian length plus the bytes; the
 * server parses the frames (without copying them). Client and server are
 * two processes.
 *
 * On the host: usrsctp vs tcpmux vs tcp, each Deno transport on both data
 * paths, and a C program on libusrsctp's blocking API with the transport's
 * socket options (`anchor/oneway_usrsctp.c`) in the same rounds, for
 * usrsctp's Deno / C; and usrsctp in the other direction (`usrsctp-down`:
 * the client asks, the server sends from the association it accepted, which
 * the transport caps at `ACCEPTED_MAX_PATH_MTU` and usrsctp cuts messages on
 * at 1,444 bytes), the baseline of file serving. In the lab (one boot; the script
 * re-runs itself there with --inside-lab), client in namespace `client`,
 * server in namespace `server` (two veth hops through `proxy`, MTU 1500):
 * kernel SCTP vs tcpmux (kernel TCP through the same FFI/Worker path) vs tcp.
 * Every configuration runs `--repeat` times, rounds interleaved across
 * transports; the table shows medians and ratios of medians.
 *
 * @module
 */

import { join } from "node:path";
import { connect, listen, localUdpPort, LOOPBACK_PATH_MTU } from "../../mod.ts";
import type { Association, DataPath, Listener, TransportName } from "../../mod.ts";
import { ConfigError, helpText, parseOptions } from "../../cli/options.ts";
import { compileC, runInLab } from "../lab/lab.ts";
import {
  Child,
  denoArgv,
  labOutFile,
  loadAverage,
  median,
  progress,
  REPO,
  round,
  runMain,
  table,
  writeResults,
} from "./common.ts";

/**
 * What runs through Deno: a transport (its default data path: the event
 * loop), the same with `-workers` (blocking calls in I/O Workers, the earlier
 * data path), or plain Deno TCP.
 */
type Bench = TransportName | `${TransportName}-workers` | "tcp";

/** The transport and association options of a Deno bench. */
function transportOf(bench: Exclude<Bench, "tcp">): {
  transport: TransportName;
  dataPath: DataPath;
} {
  const [transport, workers] = bench.split("-") as [TransportName, string | undefined];
  return { transport, dataPath: workers ? "workers" : "event-loop" };
}
/**
 * What is measured: a Deno bench; `usrsctp-down`, the same one-way
 * measurement with the accepting side sending (as a server's responses go);
 * or a C anchor: `anchor/oneway.c` over kernel SCTP or TCP (lab),
 * `anchor/oneway_usrsctp.c` over usrsctp (host).
 */
type Measured = Bench | "usrsctp-down" | "c-sctp" | "c-tcp" | "c-usrsctp";

/**
 * A client's message of this many bytes asks the server to send: two
 * float64, how many messages and of how many bytes; the server sends them,
 * then a 1-byte end marker. Nothing else a client sends has this size (its
 * messages are 1 KiB or 64 KiB, and the 1-byte end marker).
 */
const DOWNLOAD_REQUEST_BYTES = 16;

const OPTIONS = {
  quick: { kind: "boolean", default: false, help: "small message counts (a smoke run)" },
  where: {
    kind: "string",
    default: "both",
    choices: ["both", "host", "lab"],
    help: "run natively on the host, in the lab (kernel SCTP), or both",
  },
  bigCount: { kind: "integer", default: 3000, min: 1, help: "messages of 64 KiB per measurement" },
  smallCount: {
    kind: "integer",
    default: 20000,
    min: 1,
    help: "messages of 1 KiB per measurement",
  },
  repeat: { kind: "integer", default: 3, min: 1, help: "measurements per configuration (median)" },
  usrsctpPathMtu: {
    kind: "string",
    default: "auto",
    help:
      "usrsctp's pathMtu: auto (LOOPBACK_PATH_MTU on loopback), 0 (discovery from 1,500 bytes) or bytes; the C anchor gets the same",
  },
  usrsctpSackFrequency: {
    kind: "integer",
    default: 0,
    min: 0,
    max: 65535,
    help:
      "usrsctp's sackFrequency on both ends: packets before an acknowledgement (0: the stack's own, 2); the C anchor gets the same",
  },
  usrsctpSackDelay: {
    kind: "integer",
    default: 0,
    min: 0,
    max: 500,
    help:
      "usrsctp's sackDelay on both ends, at most 500 ms (0: the stack's own, 200); the C anchor gets the same",
  },
  window: { kind: "integer", default: 64, min: 1, help: "sends in flight per association" },
  labTimeout: { kind: "integer", default: 1200, min: 60, help: "seconds before the lab is killed" },
  // Internal: how the script re-invokes itself.
  insideLab: { kind: "boolean", default: false, help: "(internal) run the lab part here" },
  role: {
    kind: "string",
    default: "",
    choices: ["", "server", "client"],
    help: "(internal) run one side only",
  },
  host: { kind: "string", default: "127.0.0.1", help: "(internal) server address" },
  transports: { kind: "string", default: "", help: "(internal) comma-separated transports" },
  ports: { kind: "string", default: "", help: "(internal) JSON of the server's ports" },
  labOut: { kind: "string", default: "", help: "(internal) file for the lab's samples" },
  anchor: { kind: "string", default: "", help: "(internal) the C anchor's binary" },
  usrsctpAnchor: { kind: "string", default: "", help: "(internal) the usrsctp C anchor's binary" },
} as const;

const USAGE = `Usage: deno task bench transports [options]

One-way message throughput (N messages then an acknowledged end marker; client and server
in two processes), 64 KiB and 1 KiB messages. Host: usrsctp vs tcpmux vs plain Deno TCP, and
usrsctp against a C program on libusrsctp (scripts/bench/anchor/oneway_usrsctp.c); the row
usrsctp-down has the server send instead, from the association it accepted, as responses go:
the client asks with one message and the time runs until the server's end marker arrives.
Lab (User-Mode Linux, one CPU, client and server namespaces): kernel SCTP vs tcpmux (kernel
TCP through the same FFI path) vs plain Deno TCP. Prints MB/s (10^6 bytes), messages/s and
ratios measured in the same run; writes results/bench/transports-<timestamp>.json.`;

const KIB = 1024;
type Values = NonNullable<Awaited<ReturnType<typeof parseOptions<typeof OPTIONS>>>>["values"];

/** One measurement as the client reports it. */
interface Sample {
  transport: Measured;
  size: number;
  count: number;
  round: number;
  seconds: number;
}

// ---------------------------------------------------------------- server

function ack(messages: number, bytes: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(new Float64Array([messages, bytes]).buffer);
}

async function serveAssociation(association: Association, window: number) {
  let messages = 0;
  let bytes = 0;
  try {
    for (let m = await association.receive(); m; m = await association.receive()) {
      if (m.data.byteLength === DOWNLOAD_REQUEST_BYTES) {
        const [count, size] = new Float64Array(m.data.slice().buffer);
        association.recycle(m.data);
        const payload = new Uint8Array(size).map((_, i) => i * 13);
        await sendBatch(association, payload, count, window);
      } else if (m.data.byteLength === 1) {
        await association.send(0, ack(messages, bytes));
        messages = bytes = 0;
      } else {
        messages++;
        bytes += m.data.byteLength;
        // Done with it: its memory may take a later message (see Association.recycle).
        association.recycle(m.data);
      }
    }
  } catch (error) {
    console.error(`transports server: ${(error as Error).message}`);
  } finally {
    await association.close().catch(() => {});
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array) {
  for (let at = 0; at < data.byteLength;) at += await conn.write(data.subarray(at));
}

async function serveTcp(conn: Deno.Conn) {
  const buffer = new Uint8Array(256 * KIB);
  const header = new Uint8Array(4);
  const headerView = new DataView(header.buffer);
  let headerFill = 0;
  let inBody = false;
  let length = 0;
  let left = 0;
  let messages = 0;
  let bytes = 0;
  const frameAck = new Uint8Array(20);
  new DataView(frameAck.buffer).setUint32(0, 16);
  try {
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      for (let i = 0; i < n;) {
        if (!inBody) {
          const take = Math.min(4 - headerFill, n - i);
          header.set(buffer.subarray(i, i + take), headerFill);
          headerFill += take;
          i += take;
          if (headerFill === 4) {
            headerFill = 0;
            length = left = headerView.getUint32(0);
            inBody = true;
          }
          continue;
        }
        const take = Math.min(left, n - i);
        i += take;
        left -= take;
        if (left > 0) continue;
        inBody = false;
        if (length === 1) {
          frameAck.set(ack(messages, bytes), 4);
          await writeAll(conn, frameAck);
          messages = bytes = 0;
        } else {
          messages++;
          bytes += length;
        }
      }
    }
  } catch (error) {
    console.error(`transports server (tcp): ${(error as Error).message}`);
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

function runServer(values: Values): void {
  const transports = values.transports.split(",") as Bench[];
  const ports: Record<string, number> = {};
  const listeners: Listener[] = [];
  for (const t of transports) {
    if (t === "tcp") {
      const listener = Deno.listen({ hostname: values.host, port: 0 });
      ports.tcp = (listener.addr as Deno.NetAddr).port;
      (async () => {
        for await (const conn of listener) serveTcp(conn);
      })();
    } else {
      const { transport, dataPath } = transportOf(t);
      const udpPort = transport === "usrsctp" ? (ports.udpPort ??= localUdpPort()) : undefined;
      const listener = listen(transport, values.host, 0, {
        udpPort,
        dataPath,
        ...(transport === "usrsctp" ? sackOf(values) : {}),
      });
      listeners.push(listener);
      ports[t] = listener.port;
      (async () => {
        for await (const association of listener) serveAssociation(association, values.window);
      })();
    }
  }
  console.log(JSON.stringify(ports));
  // Runs until the parent ends it.
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
}

// ---------------------------------------------------------------- client

/** Sends `count` × `payload` on stream 0, at most `window` in flight, then the end marker. */
async function sendBatch(
  association: Association,
  payload: Uint8Array,
  count: number,
  window: number,
) {
  const inFlight: Promise<void>[] = new Array(window);
  for (let i = 0; i < count; i++) {
    if (i >= window) await inFlight[i % window];
    inFlight[i % window] = association.send(0, payload);
  }
  await association.send(0, new Uint8Array(1));
}

async function batchAssociation(
  association: Association,
  payload: Uint8Array,
  count: number,
  window: number,
) {
  await sendBatch(association, payload, count, window);
  const reply = await association.receive();
  if (!reply || reply.data.byteLength !== 16) throw new Error("no acknowledgement");
  return new Float64Array(reply.data.buffer, reply.data.byteOffset, 2);
}

/** Asks the server for `count` messages of `size` bytes; returns [messages, bytes] received. */
async function batchDownload(association: Association, size: number, count: number) {
  await association.send(0, new Uint8Array(new Float64Array([count, size]).buffer));
  let messages = 0;
  let bytes = 0;
  for (let m = await association.receive(); m; m = await association.receive()) {
    const length = m.data.byteLength;
    association.recycle(m.data);
    if (length === 1) return new Float64Array([messages, bytes]);
    messages++;
    bytes += length;
  }
  throw new Error("the association ended before the end marker");
}

async function batchTcp(conn: Deno.Conn, frame: Uint8Array, count: number) {
  for (let i = 0; i < count; i++) await writeAll(conn, frame);
  await writeAll(conn, new Uint8Array([0, 0, 0, 1, 0]));
  const reply = new Uint8Array(20);
  for (let at = 0; at < 20;) {
    const n = await conn.read(reply.subarray(at));
    if (n === null) throw new Error("no acknowledgement");
    at += n;
  }
  return new Float64Array(reply.buffer.slice(4));
}

/** `--usrsctp-path-mtu` as the transport's `pathMtu` option. */
function pathMtuOf(values: Values): number | "auto" {
  const value = values.usrsctpPathMtu;
  if (value === "auto") return value;
  if (!/^\d+$/.test(value)) {
    throw new ConfigError(
      `--usrsctp-path-mtu must be auto, 0 or a number of bytes, got "${value}"`,
    );
  }
  return Number(value);
}

/** `--usrsctp-sack-frequency` and `--usrsctp-sack-delay` as the transport's options. */
function sackOf(values: Values): { sackFrequency: number; sackDelay: number } {
  return { sackFrequency: values.usrsctpSackFrequency, sackDelay: values.usrsctpSackDelay };
}

/** The path MTU the transport resolves `--usrsctp-path-mtu` to: the host bench runs on loopback. */
function anchorPathMtu(values: Values): number {
  const value = pathMtuOf(values);
  return value === "auto" ? LOOPBACK_PATH_MTU : value;
}

/** One run of the usrsctp C anchor's client against its server (started by `runPair`). */
async function measureAnchor(
  size: number,
  count: number,
  values: Values,
  ports: Record<string, number>,
): Promise<number> {
  const args = [
    "client",
    values.host,
    ports["c-usrsctp"],
    ports["c-usrsctp-udp"],
    size,
    count,
    anchorPathMtu(values),
    values.usrsctpSackFrequency,
    values.usrsctpSackDelay,
  ];
  const client = await new Deno.Command(values.usrsctpAnchor, {
    args: args.map(String),
    stderr: "inherit",
  }).output();
  // It checks the acknowledgement's counts itself and fails on a mismatch.
  if (!client.success) throw new Error(`the usrsctp C anchor failed (${size} B)`);
  return Number(new TextDecoder().decode(client.stdout));
}

/** One measurement: connect, warm up, time `count` messages of `size` bytes, close. */
async function measure(
  transport: Bench | "usrsctp-down",
  size: number,
  count: number,
  values: Values,
  ports: Record<string, number>,
): Promise<number> {
  const payload = new Uint8Array(size).map((_, i) => i * 13);
  // The C anchors' warm-up, so that both sides time the same part of a run
  // (this was 200 messages; over usrsctp the sender was still speeding up
  // well past 2,000).
  const warmup = Math.floor(count / 10) + 1;
  const check = (got: Float64Array, n: number) => {
    if (got[0] !== n || got[1] !== n * size) {
      throw new Error(`${transport}: server saw ${got[0]} messages / ${got[1]} bytes, sent ${n}`);
    }
  };
  if (transport === "tcp") {
    const conn = await Deno.connect({ hostname: values.host, port: ports.tcp });
    try {
      const frame = new Uint8Array(4 + size);
      new DataView(frame.buffer).setUint32(0, size);
      frame.set(payload, 4);
      check(await batchTcp(conn, frame, warmup), warmup);
      const t0 = performance.now();
      check(await batchTcp(conn, frame, count), count);
      return (performance.now() - t0) / 1000;
    } finally {
      conn.close();
    }
  }
  const bench = transport === "usrsctp-down" ? "usrsctp" : transport;
  const association = await connect(
    transportOf(bench).transport,
    values.host,
    ports[bench],
    {
      udpPort: ports.udpPort,
      dataPath: transportOf(bench).dataPath,
      pathMtu: pathMtuOf(values),
      ...(transportOf(bench).transport === "usrsctp" ? sackOf(values) : {}),
    },
  );
  const batch = (n: number) =>
    transport === "usrsctp-down"
      ? batchDownload(association, size, n)
      : batchAssociation(association, payload, n, values.window);
  try {
    check(await batch(warmup), warmup);
    const t0 = performance.now();
    check(await batch(count), count);
    return (performance.now() - t0) / 1000;
  } finally {
    await association.close();
  }
}

async function runClient(values: Values) {
  const transports = values.transports.split(",") as Exclude<Measured, "c-sctp" | "c-tcp">[];
  const ports = JSON.parse(values.ports);
  const sizes: [number, number][] = [[64 * KIB, values.bigCount], [KIB, values.smallCount]];
  for (let r = 0; r < values.repeat; r++) {
    for (const [size, count] of sizes) {
      for (const transport of transports) {
        progress(
          "transports",
          `round ${r + 1}/${values.repeat}: ${transport}, ${count} × ${size / KIB} KiB`,
        );
        const seconds = transport === "c-usrsctp"
          ? await measureAnchor(size, count, values, ports)
          : await measure(transport, size, count, values, ports);
        const sample: Sample = { transport, size, count, round: r, seconds };
        progress("transports", `  ${round((size * count) / seconds / 1e6)} MB/s`);
        console.log(JSON.stringify(sample));
      }
    }
  }
  console.log("done");
}

// ---------------------------------------------------------------- orchestration

/** The usrsctp C anchor's SCTP port: any will do, it is its own stack's. */
const USRSCTP_ANCHOR_PORT = 9733;

/**
 * Starts the usrsctp C anchor's server with its stack on a free UDP port;
 * returns the process and the ports its client needs.
 */
async function startUsrsctpAnchor(values: Values, host: string) {
  const udpPort = localUdpPort();
  const { sackFrequency, sackDelay } = sackOf(values);
  const server = new Child(
    [values.usrsctpAnchor, "server", host, USRSCTP_ANCHOR_PORT, udpPort, sackFrequency, sackDelay]
      .map(String),
  );
  await server.line();
  return { server, ports: { "c-usrsctp": USRSCTP_ANCHOR_PORT, "c-usrsctp-udp": udpPort } };
}

/**
 * Runs server and client processes (in lab namespaces if `lab`); returns the
 * samples. With "c-usrsctp" (host only) the usrsctp C anchor's server runs
 * beside the Deno server, and the client runs the anchor's client in its rounds.
 */
async function runPair(
  values: Values,
  transports: Exclude<Measured, "c-sctp" | "c-tcp">[],
  lab: boolean,
): Promise<Sample[]> {
  const host = lab ? Deno.env.get("LAB_SERVER_IP")! : "127.0.0.1";
  const ns = (name: string) => (lab ? ["ip", "netns", "exec", name] : []);
  const common = [
    `--host=${host}`,
    `--big-count=${values.bigCount}`,
    `--small-count=${values.smallCount}`,
    `--repeat=${values.repeat}`,
    `--window=${values.window}`,
    `--usrsctp-path-mtu=${values.usrsctpPathMtu}`,
    `--usrsctp-sack-frequency=${values.usrsctpSackFrequency}`,
    `--usrsctp-sack-delay=${values.usrsctpSackDelay}`,
  ];
  // usrsctp-down and the C anchor need no listener of their own.
  const benches = transports.filter((t): t is Bench => t !== "c-usrsctp" && t !== "usrsctp-down");
  const server = new Child([
    ...ns("server"),
    ...denoArgv("transports.ts", ["--role=server", `--transports=${benches.join(",")}`, ...common]),
  ]);
  let anchor: Awaited<ReturnType<typeof startUsrsctpAnchor>> | undefined;
  try {
    const ports = JSON.parse(await server.line());
    // After the Deno server's stack took its UDP port, so the two cannot pick the same.
    if (transports.includes("c-usrsctp")) {
      anchor = await startUsrsctpAnchor(values, host);
      Object.assign(ports, anchor.ports);
    }
    const client = new Child([
      ...ns("client"),
      ...denoArgv("transports.ts", [
        "--role=client",
        `--transports=${transports.join(",")}`,
        `--ports=${JSON.stringify(ports)}`,
        `--usrsctp-anchor=${values.usrsctpAnchor}`,
        ...common,
      ]),
    ]);
    const samples: Sample[] = [];
    for (let line = await client.line(); line !== "done"; line = await client.line()) {
      samples.push(JSON.parse(line));
    }
    await client.process.status;
    return samples;
  } finally {
    await server.stop();
    await anchor?.server.stop();
  }
}

/**
 * Builds the C anchor `scripts/bench/anchor/<name>.c` with gcc into
 * `.lab/anchor/` (on the host, where the lab can run it too); returns the
 * binary's path.
 */
async function buildAnchor(name: string, libraries: string[]): Promise<string> {
  const binary = join(REPO, ".lab", "anchor", name);
  return await compileC(join(REPO, "scripts", "bench", "anchor", `${name}.c`), binary, libraries);
}

/** Inside the lab: the C anchor over kernel SCTP and TCP, client ns → server ns, every round. */
async function runAnchor(values: Values): Promise<Sample[]> {
  const host = Deno.env.get("LAB_SERVER_IP")!;
  const samples: Sample[] = [];
  for (const [protocol, port] of [["sctp", "9731"], ["tcp", "9732"]] as const) {
    const server = new Child([
      "ip",
      "netns",
      "exec",
      "server",
      values.anchor,
      "server",
      protocol,
      host,
      port,
    ]);
    try {
      await server.line();
      for (let n = 0; n < values.repeat; n++) {
        for (const [size, count] of [[64 * KIB, values.bigCount], [KIB, values.smallCount]]) {
          const client = await new Deno.Command("ip", {
            args: ["netns", "exec", "client", values.anchor, "client", protocol, host, port]
              .concat([String(size), String(count)]),
            stderr: "inherit",
          }).output();
          if (!client.success) throw new Error(`the C anchor failed (${protocol}, ${size} B)`);
          const seconds = Number(new TextDecoder().decode(client.stdout));
          samples.push({ transport: `c-${protocol}`, size, count, round: n, seconds });
          progress(
            "transports",
            `C ${protocol} ${size} B: ${round(size * count / seconds / 1e6, 1)} MB/s`,
          );
        }
      }
    } finally {
      await server.stop();
    }
  }
  return samples;
}

/**
 * Which Deno row is compared with which C anchor: on the host usrsctp against
 * C on libusrsctp; in the lab kernel SCTP against C on kernel SCTP, tcpmux and
 * Deno TCP against C on TCP.
 */
const ANCHOR_PAIRS: Record<Row["where"], [Bench, Measured][]> = {
  host: [["usrsctp", "c-usrsctp"]],
  lab: [
    ["kernel", "c-sctp"],
    ["kernel-workers", "c-sctp"],
    ["tcpmux", "c-tcp"],
    ["tcpmux-workers", "c-tcp"],
    ["tcp", "c-tcp"],
  ],
};

/** Deno over C, measured in the same run (host) or boot (lab). */
function printAnchorRatios(rows: Row[]) {
  for (const where of ["host", "lab"] as const) {
    const here = rows.filter((r) => r.where === where);
    const of = (t: Measured, size: number) =>
      here.find((r) => r.transport === t && r.size === size);
    const lines: string[] = [];
    for (const size of [64 * KIB, KIB]) {
      for (const [deno, c] of ANCHOR_PAIRS[where]) {
        const d = of(deno, size);
        const base = of(c, size);
        if (d && base) {
          lines.push(
            `  ${deno} / C ${c.slice(2)}, ${size / KIB} KiB: ${
              round(d.mbPerSecond / base.mbPerSecond, 2)
            }` +
              ` (${round(d.mbPerSecond, 1)} vs ${round(base.mbPerSecond, 1)} MB/s)`,
          );
        }
      }
    }
    const same = where === "lab" ? "boot" : "run";
    if (lines.length > 0) {
      console.log(`\n${where}, Deno / C in the same ${same}:\n${lines.join("\n")}`);
    }
  }
}

interface Row {
  where: "host" | "lab";
  transport: Measured;
  size: number;
  count: number;
  seconds: number[];
  mbPerSecond: number;
  messagesPerSecond: number;
  ratioToTcp: number;
  ratioToTcpmux: number;
  /** Ratio to tcp within each round (same round, adjacent in time). */
  ratioToTcpPerRound: number[];
}

function summarize(where: "host" | "lab", samples: Sample[]): Row[] {
  const rows: Row[] = [];
  const key = (s: { transport: string; size: number }) => `${s.transport}/${s.size}`;
  const groups = Map.groupBy(samples, key);
  for (const group of groups.values()) {
    const { transport, size, count } = group[0];
    const seconds = median(group.map((s) => s.seconds));
    rows.push({
      where,
      transport,
      size,
      count,
      seconds: group.map((s) => round(s.seconds, 3)),
      mbPerSecond: (size * count) / seconds / 1e6,
      messagesPerSecond: count / seconds,
      ratioToTcp: NaN,
      ratioToTcpmux: NaN,
      ratioToTcpPerRound: [],
    });
  }
  for (const row of rows) {
    const of = (t: Bench) => rows.find((r) => r.transport === t && r.size === row.size);
    row.ratioToTcp = row.mbPerSecond / (of("tcp")?.mbPerSecond ?? NaN);
    row.ratioToTcpmux = row.mbPerSecond / (of("tcpmux")?.mbPerSecond ?? NaN);
    const tcp = groups.get(`tcp/${row.size}`) ?? [];
    row.ratioToTcpPerRound = groups.get(key(row))!.map((s) => {
      const base = tcp.find((t) => t.round === s.round);
      return round(base ? base.seconds / s.seconds : NaN, 3);
    });
  }
  return rows.sort((a, b) => b.size - a.size);
}

function printTable(rows: Row[]) {
  console.log(table(
    [
      "where",
      "transport",
      "message",
      "count",
      "MB/s",
      "messages/s",
      "× tcp",
      "× tcpmux",
      "× tcp per round (min–max)",
    ],
    rows.map((r) => [
      r.where,
      r.transport,
      r.size >= KIB ? `${r.size / KIB} KiB` : `${r.size} B`,
      r.count,
      round(r.mbPerSecond, 1),
      Math.round(r.messagesPerSecond),
      round(r.ratioToTcp, 2),
      round(r.ratioToTcpmux, 2),
      `${round(Math.min(...r.ratioToTcpPerRound), 2)}–${
        round(Math.max(...r.ratioToTcpPerRound), 2)
      }`,
    ]),
  ));
}

async function main(args: string[]) {
  const parsed = await parseOptions(args, OPTIONS);
  if (!parsed) {
    console.log(helpText(USAGE, OPTIONS));
    return;
  }
  const values = parsed.values;
  if (values.quick) {
    if (!args.some((a) => a.startsWith("--big-count"))) values.bigCount = 300;
    if (!args.some((a) => a.startsWith("--small-count"))) values.smallCount = 2000;
    if (!args.some((a) => a.startsWith("--repeat"))) values.repeat = 1;
  }
  if (values.role === "server") return runServer(values);
  if (values.role === "client") return await runClient(values);
  if (values.insideLab) {
    // Inside the lab: leave the samples in a host-visible file for the host to pick up.
    const samples = await runPair(
      values,
      ["kernel", "kernel-workers", "tcpmux", "tcpmux-workers", "tcp"],
      true,
    );
    if (values.anchor) samples.push(...await runAnchor(values));
    await Deno.writeTextFile(values.labOut, JSON.stringify(samples));
    return;
  }

  const rows: Row[] = [];
  const load: Record<string, number[] | null> = { start: loadAverage() };
  if (values.where !== "lab") {
    progress(
      "transports",
      `host: usrsctp and its C anchor, tcpmux, tcp (client and server processes)`,
    );
    values.usrsctpAnchor = await buildAnchor("oneway_usrsctp", ["-lusrsctp", "-lpthread"]);
    rows.push(
      ...summarize(
        "host",
        await runPair(
          values,
          [
            "usrsctp",
            "usrsctp-down",
            "usrsctp-workers",
            "c-usrsctp",
            "tcpmux",
            "tcpmux-workers",
            "tcp",
          ],
          false,
        ),
      ),
    );
  }
  if (values.where !== "host") {
    progress("transports", "lab: booting (kernel SCTP, tcpmux, tcp; client ns → server ns)");
    const labOut = await labOutFile("transports");
    const forward = args.filter((a) => !a.startsWith("--where"));
    const anchor = await buildAnchor("oneway", ["-lsctp"]);
    const result = await runInLab({
      command: denoArgv("transports.ts", [
        "--inside-lab",
        `--lab-out=${labOut}`,
        `--anchor=${anchor}`,
        ...forward,
      ]),
      cwd: REPO,
      output: "inherit",
      timeoutSeconds: values.labTimeout,
    });
    if (result.code !== 0) throw new Error(`lab run failed (exit code ${result.code})`);
    rows.push(...summarize("lab", JSON.parse(await Deno.readTextFile(labOut))));
    await Deno.remove(labOut);
  }
  load.end = loadAverage();
  const path = await writeResults("transports", {
    definition: "one-way: N messages on stream 0 then a 1-byte end marker answered by a " +
      "16-byte acknowledgement; time from first send to acknowledgement (usrsctp-down: the " +
      "server sends N messages and the end marker on request; time from the request to the " +
      "end marker); medians of repeats",
    options: values,
    loadAverage: load,
    rows,
  });
  console.log(
    `\nOne-way throughput, median of ${values.repeat} (MB = 10^6 bytes; × = ratio in the same run)`,
  );
  printTable(rows);
  printAnchorRatios(rows);
  console.log(`\nload average at start ${load.start?.join(" ")}, at end ${load.end?.join(" ")}`);
  console.log(`results: ${path}`);
}

export { buildAnchor, main };

if (import.meta.main) await runMain("transports", main);
