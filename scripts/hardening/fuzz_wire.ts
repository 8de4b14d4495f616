/**
 * The wire side of the live fuzzer: mutated protocol messages (docs/PROTOCOL.md)
 * sent to the server over an association, and, for tcpmux, mutated frames
 * sent over raw TCP. Every message the server sends back is checked: a valid
 * control message, runs whose body bytes add up, a valid HTTP status, and an
 * answer for every request that must get one.
 *
 * @module
 */

import fc from "fast-check";
import { connect } from "../../transport/association.ts";
import type { Association } from "../../transport/types.ts";
import { concat } from "../../transport/bytes.ts";
import { encodeHello, TCPMUX_MAGIC } from "../../transport/tcpmux.ts";
import {
  decodeServerControl,
  encodeCancel,
  encodePriority,
  encodeRequest,
  MessageType,
} from "../../protocol/wire.ts";
import { parseRequestHead } from "../../protocol/http1.ts";
import { type ExactRequest, type HttpCase, latin1 } from "./fuzz_http.ts";
import type { Expected } from "./fuzz_site.ts";
import type { Outcome } from "./fuzz_tally.ts";

/** Ids the protocol allows run from 1 to this (docs/PROTOCOL.md). */
const MAX_ID = 0x7ffffffe;
const STREAMS = 4;

/** An id of a case: a fresh valid one (the n-th of the case), or a raw value. */
type IdSpec = { readonly fresh: number } | { readonly raw: number };

/**
 * What a request must get: `exact` its known answer; `answer` any valid
 * answer (a response or a RESET); `reset400` RESET with status 400;
 * `maybe` anything or nothing (it was cancelled); `answer-or-end` an answer,
 * or the association ends (an oversized request refused).
 */
type Expect = "exact" | "answer" | "reset400" | "maybe" | "answer-or-end";

/** One step of a wire case. */
type Step =
  | {
    readonly do: "request";
    readonly id: IdSpec;
    readonly head: Uint8Array;
    readonly expect: Expect;
    readonly exact?: ExactRequest;
  }
  | { readonly do: "cancel"; readonly id: IdSpec }
  | { readonly do: "priority"; readonly id: IdSpec; readonly priority: number }
  /** A message that breaks the protocol: the server must end the association. */
  | { readonly do: "kill"; readonly stream: number; readonly data: Uint8Array };

/** A case for the wire port. */
export type WireCase =
  | { readonly kind: string; readonly steps: readonly Step[] }
  /** tcpmux only: bytes sent over a raw TCP connection (hello and frames, mutated). */
  | { readonly kind: string; readonly raw: Uint8Array };

const encoder = new TextEncoder();

function frame(stream: number, data: Uint8Array, length = data.length, flags = 0): Uint8Array {
  const bytes = new Uint8Array(8 + data.length);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, stream);
  view.setUint16(2, flags);
  view.setUint32(4, length);
  bytes.set(data, 8);
  return bytes;
}

/** The arbitraries of the wire cases; `http` gives the (mutated) heads. */
export function wireCases(
  transport: "tcpmux" | "usrsctp",
  known: ReadonlyMap<string, Expected>,
  http: fc.Arbitrary<HttpCase>,
): fc.Arbitrary<WireCase> {
  const targets = [...known.keys()];
  const exact = fc.record({
    method: fc.constantFrom("GET" as const, "GET" as const, "HEAD" as const),
    target: fc.constantFrom(...targets),
  }).map(({ method, target }): Step & { do: "request" } => ({
    do: "request",
    id: { fresh: 0 },
    head: encoder.encode(`${method} ${target} HTTP/1.1\r\nHost: s\r\n\r\n`),
    expect: "exact",
    exact: { method, target, expected: known.get(target)! },
  }));
  const fresh = (n: number) => ({ fresh: n });
  const renumber = (step: Step & { do: "request" }, n: number) => ({ ...step, id: fresh(n) });
  const mutatedHead = http.map((c) => concat(c.parts));
  const badId = fc.oneof(
    fc.constantFrom(0, MAX_ID + 1, 0x80000000, 0xffffffff),
    fc.integer({ min: MAX_ID + 1, max: 0xffffffff }),
  );
  const killer = fc.oneof(
    // Message types no client may send, with and without a valid-looking tail.
    fc.tuple(
      fc.oneof(fc.constantFrom(0, 4, 15, 16, 17, 18, 19, 255), fc.integer({ min: 4, max: 255 })),
      fc.uint8Array({ minLength: 4, maxLength: 64 }),
    ).map(([type, tail]) => concat([Uint8Array.of(type), tail])),
    // Too short for their type.
    fc.tuple(fc.constantFrom(1, 2, 3), fc.integer({ min: 0, max: 3 })).map(([type, n]) =>
      concat([Uint8Array.of(type), new Uint8Array(n)])
    ),
    fc.integer({ min: 5, max: 8 }).map((n) => {
      const bytes = new Uint8Array(n);
      bytes[0] = MessageType.PRIORITY;
      bytes[4] = 1;
      return bytes;
    }),
    ...(transport === "tcpmux" ? [fc.constant(new Uint8Array(0))] : []),
  );
  const steps: fc.Arbitrary<WireCase> = fc.oneof(
    { weight: 10, arbitrary: exact.map((step) => ({ kind: "valid", steps: [step] })) },
    {
      weight: 5,
      arbitrary: fc.array(exact, { minLength: 2, maxLength: 24 }).map((list) => ({
        kind: "burst",
        steps: list.map(renumber),
      })),
    },
    {
      weight: 35,
      arbitrary: mutatedHead.map((head) => ({
        kind: "mutated-head",
        steps: [{ do: "request" as const, id: fresh(0), head, expect: "answer" as const }],
      })),
    },
    {
      weight: 5,
      arbitrary: fc.tuple(badId, exact).map(([id, step]) => ({
        kind: "bad-id",
        steps: [{ ...step, id: { raw: id }, expect: "reset400" as const }],
      })),
    },
    {
      weight: 4,
      arbitrary: exact.map((step) => ({
        kind: "duplicate-id",
        steps: [step, { ...step, expect: "answer" as const }],
      })),
    },
    {
      weight: 5,
      arbitrary: fc.tuple(exact, fc.boolean()).map(([step, early]) => ({
        kind: "cancel",
        steps: early
          ? [{ do: "cancel" as const, id: fresh(0) }, { ...step, expect: "answer" as const }]
          : [{ ...step, expect: "maybe" as const }, { do: "cancel" as const, id: fresh(0) }],
      })),
    },
    {
      weight: 3,
      arbitrary: fc.tuple(fc.oneof(badId, fc.nat({ max: MAX_ID })), exact).map((
        [id, step],
      ) => ({
        kind: "cancel-unknown",
        steps: [{ do: "cancel" as const, id: { raw: id } }, step],
      })),
    },
    {
      weight: 4,
      arbitrary: fc.tuple(exact, fc.integer({ min: -0x80000000, max: 0x7fffffff }), fc.boolean())
        .map(([step, priority, known]) => ({
          kind: "priority",
          steps: known
            ? [step, { do: "priority" as const, id: fresh(0), priority }]
            : [{ do: "priority" as const, id: fresh(1), priority }, step],
        })),
    },
    {
      weight: 3,
      arbitrary: fc.integer({ min: 16 * 1024 + 1, max: 4 * 1024 * 1024 }).map((size) => ({
        kind: "oversized",
        steps: [{
          do: "request" as const,
          id: fresh(0),
          head: encoder.encode(
            `GET /index.html HTTP/1.1\r\nHost: s\r\nX: ${"x".repeat(size)}\r\n\r\n`,
          ),
          expect: "answer-or-end" as const,
        }],
      })),
    },
    {
      weight: 3,
      arbitrary: fc.uint8Array({ maxLength: 512 }).map((head) => ({
        kind: "garbage-head",
        steps: [{ do: "request" as const, id: fresh(0), head, expect: "answer" as const }],
      })),
    },
    {
      weight: 4,
      arbitrary: fc.tuple(killer, fc.nat({ max: STREAMS - 1 })).map(([data, stream]) => ({
        kind: "protocol-violation",
        steps: [{ do: "kill" as const, stream, data }],
      })),
    },
  );
  if (transport !== "tcpmux") return steps;
  return fc.oneof({ weight: 95, arbitrary: steps }, { weight: 5, arbitrary: rawTcpmux() });
}

/** Raw tcpmux byte streams: hellos and frames, well-formed or not, then mutated bytes. */
function rawTcpmux(): fc.Arbitrary<WireCase> {
  const request = encodeRequest(1, "GET /index.html HTTP/1.1\r\nHost: s\r\n\r\n");
  const greeting = fc.oneof(
    { weight: 6, arbitrary: fc.constant(encodeHello(STREAMS, STREAMS)) },
    {
      weight: 4,
      arbitrary: fc.tuple(fc.constantFrom(0, 1, 65535), fc.constantFrom(0, 1, 65535)).map((
        [out, incoming],
      ) => encodeHello(out, incoming)),
    },
    { weight: 1, arbitrary: fc.constant(encoder.encode("GET / HTTP/1.1\r\n\r\n")) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 }) },
  );
  const frames = fc.array(
    fc.oneof(
      fc.nat({ max: STREAMS - 1 }).map((stream) => frame(stream, request)),
      fc.constant(frame(0, request, 0xffffffff)),
      fc.constant(frame(0, request, 64 * 1024 * 1024 + 1)),
      fc.constant(frame(0, request, request.length + 100)),
      fc.constant(frame(65535, request)),
      fc.constant(frame(1, request, request.length, 0xffff)),
      fc.constant(frame(0, new Uint8Array(0))),
      fc.uint8Array({ maxLength: 64 }),
    ),
    { maxLength: 6 },
  );
  const flips = fc.array(fc.tuple(fc.nat(), fc.nat({ max: 7 })), { maxLength: 3 });
  return fc.tuple(greeting, frames, flips).map(([first, rest, bitFlips]) => {
    const raw = concat([first, ...rest]);
    for (const [at, bit] of bitFlips) if (raw.length > 0) raw[at % raw.length] ^= 1 << bit;
    return { kind: "tcpmux-raw", raw };
  });
}

/** The bytes a wire case sends, for saving and replay. */
export function wireCaseBytes(c: WireCase): Uint8Array {
  if ("raw" in c) return c.raw;
  return concat(c.steps.map((step) => {
    switch (step.do) {
      case "request":
        return encodeRequest(idOf(step.id, 1), step.head);
      case "cancel":
        return encodeCancel(idOf(step.id, 1));
      case "priority":
        return encodePriority(idOf(step.id, 1), step.priority);
      case "kill":
        return step.data;
    }
  }));
}

function idOf(spec: IdSpec, base: number): number {
  return "raw" in spec ? spec.raw : ((base - 1 + spec.fresh) % MAX_ID) + 1;
}

/** What an id is owed: an answer per request sent with it, and the response being read. */
interface Awaited {
  /** One expectation per request sent with this id (two for a duplicate), oldest first. */
  readonly expects: Expect[];
  readonly exact?: ExactRequest;
  /** The server sees a HEAD request: the answer has no body. */
  readonly headOnly: boolean;
  /** The body read so far, when a response has started. */
  body?: Uint8Array[];
  status?: number;
  left?: number;
}

const STATUS_LINE = /^HTTP\/1\.1 ([1-5]\d\d) [\t\x20-\x7e\x80-\xff]*$/;
const FIELD_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*$/;

/** An answer that breaks the protocol. */
class WireViolation extends Error {
  override name = "WireViolation";
}

function seesHead(head: Uint8Array): boolean {
  try {
    return parseRequestHead(head).method === "HEAD";
  } catch {
    return false;
  }
}

/**
 * One association to the server, used by one lane for one case at a time:
 * every message is checked against what the case's requests are owed.
 */
export class WireLane {
  readonly #transport: "tcpmux" | "usrsctp";
  readonly #port: number;
  readonly #udpPort: number;
  #association: Association | undefined;
  #ended: Promise<string> | undefined;
  /** Why the association ended, once it has. */
  #endReason: string | undefined;
  #nextId = 1;
  /** Ids of this association and what they are owed. */
  #awaited = new Map<number, Awaited>();
  /** Per stream: the id whose run is in progress, and its bytes left. */
  #runs: ({ id: number; left: number } | undefined)[] = [];
  #violation: string | undefined;
  #labels: string[] = [];
  #wake = () => {};

  constructor(transport: "tcpmux" | "usrsctp", port: number, udpPort: number) {
    this.#transport = transport;
    this.#port = port;
    this.#udpPort = udpPort;
  }

  /** Closes the association. */
  async close(): Promise<void> {
    const association = this.#association;
    this.#association = undefined;
    this.#endReason = undefined;
    await association?.abort().catch(() => {});
  }

  async #open(): Promise<Association> {
    if (this.#association) return this.#association;
    const association = await connect(this.#transport, "127.0.0.1", this.#port, {
      streams: STREAMS,
      udpPort: this.#udpPort,
    });
    this.#association = association;
    this.#awaited = new Map();
    this.#runs = [];
    this.#violation = undefined;
    this.#endReason = undefined;
    this.#ended = this.#read(association);
    this.#ended.then((reason) => {
      if (this.#association === association) this.#endReason = reason;
    });
    return association;
  }

  async #read(association: Association): Promise<string> {
    try {
      for (;;) {
        const message = await association.receive();
        if (message === null) return "the server closed the association";
        try {
          this.#onMessage(message.stream, message.data);
        } catch (error) {
          this.#violation ??= (error as Error).message;
        }
        this.#wake();
      }
    } catch (error) {
      return `the association failed: ${(error as Error).message}`;
    } finally {
      this.#wake();
    }
  }

  #onMessage(stream: number, data: Uint8Array) {
    if (stream >= STREAMS) throw new WireViolation(`a message on stream ${stream}`);
    const run = this.#runs[stream];
    if (run && run.left > 0) {
      run.left -= data.byteLength;
      if (run.left < 0) throw new WireViolation(`a body message overruns its run on ${stream}`);
      const awaited = this.#awaited.get(run.id);
      awaited?.body?.push(data);
      if (awaited && awaited.left !== undefined) {
        awaited.left -= data.byteLength;
        if (awaited.left === 0) this.#answered(run.id, awaited, String(awaited.status));
      }
      return;
    }
    let control;
    try {
      control = decodeServerControl(data);
    } catch (error) {
      throw new WireViolation(
        `not a control message (${(error as Error).message}): ${
          JSON.stringify(latin1(data.subarray(0, 40)))
        }`,
      );
    }
    const awaited = this.#awaited.get(control.id);
    if (!awaited) {
      throw new WireViolation(`a ${control.type} for id ${control.id}, never asked for`);
    }
    switch (control.type) {
      case MessageType.HEAD: {
        if (awaited.left !== undefined) {
          throw new WireViolation(`a second HEAD for id ${control.id} while its body is read`);
        }
        const text = latin1(control.head);
        if (!text.endsWith("\r\n\r\n")) {
          throw new WireViolation("a response head without CRLF CRLF");
        }
        const [statusLine, ...fields] = text.slice(0, -4).split("\r\n");
        const status = STATUS_LINE.exec(statusLine);
        if (!status) throw new WireViolation(`bad status line ${JSON.stringify(statusLine)}`);
        const bad = fields.find((line) => !FIELD_LINE.test(line));
        if (bad !== undefined) throw new WireViolation(`bad header field ${JSON.stringify(bad)}`);
        const code = Number(status[1]);
        const length = /^content-length:[ \t]*(\d+)[ \t]*$/im.exec(fields.join("\n"))?.[1];
        const bodiless = awaited.headOnly || code === 304 || code === 204 || code < 200;
        if (!bodiless && length === undefined) {
          throw new WireViolation(`a ${code} response without Content-Length`);
        }
        const body = bodiless ? 0 : Number(length);
        if (control.run > body) {
          throw new WireViolation(`a run of ${control.run} bytes for a body of ${body}`);
        }
        this.#runs[stream] = { id: control.id, left: control.run };
        awaited.status = code;
        awaited.body = [];
        awaited.left = body;
        if (body === 0) this.#answered(control.id, awaited, String(code));
        return;
      }
      case MessageType.CONTINUE: {
        if (awaited.left === undefined || control.run > awaited.left) {
          throw new WireViolation(
            `a CONTINUE of ${control.run} bytes for id ${control.id}, ${awaited.left} bytes left`,
          );
        }
        this.#runs[stream] = { id: control.id, left: control.run };
        return;
      }
      case MessageType.RESET: {
        const { status } = control;
        if (status !== 0 && (status < 100 || status > 599)) {
          throw new WireViolation(`RESET with status ${status}`);
        }
        if (awaited.expects[0] === "reset400" && status !== 400) {
          throw new WireViolation(`RESET ${status} for id ${control.id}, expected RESET 400`);
        }
        this.#answered(control.id, awaited, `RESET ${status}`);
        return;
      }
    }
  }

  #answered(id: number, awaited: Awaited, label: string) {
    this.#labels.push(label);
    if (label === "RESET 400" && awaited.expects.length > 1) {
      // The duplicate's refusal; the first request's response goes on.
      awaited.expects.pop();
      return;
    }
    const expect = awaited.expects.shift() ?? "maybe";
    const reset = label.startsWith("RESET");
    if (expect === "exact") {
      const wrong = reset ? `${label} for ${awaited.exact?.target}` : judge(awaited);
      if (wrong) this.#violation ??= `wrong: ${wrong}`;
    }
    if (expect === "reset400" && !reset) {
      this.#violation ??= `wrong: ${label} for a request with an id outside 1..${MAX_ID}`;
    }
    awaited.left = undefined;
    awaited.body = undefined;
    if (awaited.expects.length === 0 && expect !== "maybe") this.#awaited.delete(id);
  }

  /** Runs one case; `deadlineMs` bounds the wait for its answers (or for the association's end). */
  async run(c: WireCase, deadlineMs: number): Promise<Outcome> {
    if ("raw" in c) return await runRawTcpmux(this.#port, c.raw, deadlineMs);
    const kill = c.steps.find((step) => step.do === "kill");
    if (kill?.do === "kill" && this.#transport === "tcpmux") {
      // Over a connection of its own, left open: the violation alone must end it. And
      // there is no association to set up again after.
      const raw = concat([encodeHello(STREAMS, STREAMS), frame(kill.stream, kill.data)]);
      return await runRawTcpmux(this.#port, raw, deadlineMs, false);
    }
    if (this.#endReason !== undefined) {
      // Nothing of this case was sent yet: the previous cases ended it, after their answers.
      const reason = this.#endReason;
      await this.close();
      return { verdict: "dropped", labels: [], detail: `between cases: ${reason}` };
    }
    let association: Association;
    try {
      association = await this.#open();
    } catch (error) {
      return { verdict: "refused", labels: [], detail: (error as Error).message };
    }
    this.#labels = [];
    const base = this.#nextId;
    const fresh = 1 +
      Math.max(0, ...c.steps.map((s) => "id" in s && "fresh" in s.id ? s.id.fresh : 0));
    this.#nextId = ((base - 1 + fresh) % MAX_ID) + 1;
    const owedBefore = new Set(this.#awaited.keys());
    const kills = c.steps.some((step) => step.do === "kill");
    const sends: Promise<void>[] = [];
    for (const step of c.steps) {
      const id = step.do === "kill" ? 0 : idOf(step.id, base);
      const stream = step.do === "kill" ? step.stream : id % association.outboundStreams;
      let data: Uint8Array;
      switch (step.do) {
        case "request": {
          const awaited = this.#awaited.get(id);
          if (awaited) awaited.expects.push(step.expect);
          else {
            this.#awaited.set(id, {
              expects: [step.expect],
              exact: step.exact,
              headOnly: seesHead(step.head),
            });
          }
          data = encodeRequest(id, step.head);
          break;
        }
        case "cancel":
          data = encodeCancel(id);
          break;
        case "priority":
          data = encodePriority(id, step.priority);
          break;
        case "kill":
          data = step.data;
          break;
      }
      sends.push(association.send(stream, data as Uint8Array<ArrayBuffer>));
    }
    const sent = Promise.allSettled(sends);
    const owed = () =>
      [...this.#awaited].filter(([id, a]) =>
        !owedBefore.has(id) && a.expects.some((expect) => expect !== "maybe")
      );
    const ended = this.#ended!.then((reason) => ({ reason }));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((
      resolve,
    ) => (timer = setTimeout(resolve, deadlineMs, "late")));
    let end: { reason: string } | undefined;
    try {
      for (;;) {
        if (this.#violation) break;
        if (!kills && owed().length === 0) break;
        const next = await Promise.race([
          new Promise<"wake">((resolve) => (this.#wake = () => resolve("wake"))),
          ended,
          late,
        ]);
        if (next === "late") break;
        if (next !== "wake") {
          end = next;
          break;
        }
      }
    } finally {
      clearTimeout(timer);
    }
    await sent;
    const labels = this.#labels.length > 0 ? this.#labels : [];
    const violation = this.#violation;
    if (violation) {
      await this.close();
      return violation.startsWith("wrong: ")
        ? { verdict: "wrong", labels, detail: violation.slice(7) }
        : { verdict: "invalid", labels: [...labels, "invalid"], detail: violation };
    }
    if (end) {
      await this.close();
      const allowed = kills ||
        owed().every(([, a]) => a.expects.every((expect) => expect === "answer-or-end"));
      return allowed
        ? { verdict: "ok", labels: [...labels, "association ended"] }
        : { verdict: "dropped", labels, detail: end.reason };
    }
    if (kills) {
      await this.close();
      return {
        verdict: "hang",
        labels: [...labels, "hang"],
        detail: `the association was not ended within ${deadlineMs} ms of a protocol violation`,
      };
    }
    const missing = owed();
    if (missing.length > 0) {
      await this.close();
      return {
        verdict: "hang",
        labels: [...labels, "hang"],
        detail: `no complete answer within ${deadlineMs} ms for id ${
          missing.map(([id]) => id).join(", ")
        }`,
      };
    }
    return { verdict: "ok", labels };
  }
}

function judge(awaited: Awaited): string | undefined {
  const request = awaited.exact!;
  const what = `${request.method} ${request.target}`;
  if (awaited.status !== request.expected.status) {
    const body = latin1(concat(awaited.body ?? []).subarray(0, 200));
    return `${what}: status ${awaited.status}, expected ${request.expected.status}: ${body}`;
  }
  const expected = request.method === "HEAD" ? undefined : request.expected.body;
  if (!expected) return;
  const body = concat(awaited.body ?? []);
  if (body.length !== expected.length || body.some((byte, i) => byte !== expected[i])) {
    return `${what}: a body of ${body.length} bytes that differs from the file's ${expected.length}`;
  }
}

/**
 * Sends raw bytes to a tcpmux port, ends the client's side (unless `end` is
 * false), and reads what comes back: the server's hello and well-formed
 * frames, then the end of the connection, within the deadline.
 */
async function runRawTcpmux(
  port: number,
  raw: Uint8Array,
  deadlineMs: number,
  end = true,
): Promise<Outcome> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch (error) {
    return { verdict: "refused", labels: [], detail: String(error) };
  }
  const chunks: Uint8Array[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const write = (async () => {
      for (let at = 0; at < raw.length;) at += await conn.write(raw.subarray(at));
      if (end) await conn.closeWrite();
    })().catch(() => {});
    const read = (async () => {
      const buffer = new Uint8Array(65536);
      try {
        for (;;) {
          const n = await conn.read(buffer);
          if (n === null) return "closed";
          chunks.push(buffer.slice(0, n));
        }
      } catch {
        return "reset";
      }
    })();
    const late = new Promise<"late">((
      resolve,
    ) => (timer = setTimeout(resolve, deadlineMs, "late")));
    const how = await Promise.race([read, late]);
    await Promise.race([write, late]);
    if (how === "late") {
      return {
        verdict: "hang",
        labels: ["hang"],
        detail: `the connection was not closed within ${deadlineMs} ms of ${
          end ? "the client's end" : "a protocol violation"
        }`,
      };
    }
    const problem = checkFrames(concat(chunks), how === "reset");
    if (problem) return { verdict: "invalid", labels: ["invalid"], detail: problem };
    return { verdict: "ok", labels: [how === "closed" ? "closed" : "reset"] };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed already */ }
  }
}

/**
 * What is wrong with bytes from a tcpmux server, if anything: they must be a
 * hello, then whole frames on valid streams (the last one may be cut off by
 * an abort, `reset`).
 */
function checkFrames(bytes: Uint8Array, reset: boolean): string | undefined {
  if (bytes.length === 0) return;
  if (bytes.length < 8) return reset ? undefined : `a hello cut off after ${bytes.length} bytes`;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) !== TCPMUX_MAGIC) return "the server's hello lacks FSM1";
  const streams = view.getUint16(4);
  let at = 8;
  while (at < bytes.length) {
    if (bytes.length - at < 8) return reset ? undefined : "a frame header cut off";
    const stream = view.getUint16(at);
    const length = view.getUint32(at + 4);
    if (stream >= streams) return `a frame on stream ${stream} of ${streams}`;
    if (bytes.length - at - 8 < length) return reset ? undefined : "a frame cut off";
    at += 8 + length;
  }
}
