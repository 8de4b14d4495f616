/**
 * One plain HTTP/1.1 connection over TCP being served, through the same
 * scheduler core as the associations: the connection is a lane with one
 * stream. HTTP/1.1 answers in order, so the connection hands the scheduler
 * one response at a time: pipelined requests wait here, parsed, and the next
 * is planned and queued only once the previous one is fully written. Each
 * run the scheduler decides is written with `conn.write`: the head first,
 * then the body straight from the file's mapping (a view over the mapped
 * memory; nothing is copied in JS, and nothing here reads it: the kernel's
 * write fails with EFAULT where a shrunk file's pages are gone).
 *
 * The connection stays open between requests unless the server runs without
 * keep-alive, the client asks to close (`Connection: close`, or HTTP/1.0
 * without `keep-alive`), the request announces a body (bodies are not read,
 * so no further request could be found), or the head was refused (400, 414,
 * 431, 408). Such a last response carries `Connection: close`; the write
 * side is then shut and what the client still sends is read and dropped for
 * a moment, so that the response is not lost to a reset.
 *
 * @module
 */

import { HttpError, isPersistent, parseRequestHead, type RequestHead } from "../protocol/http1.ts";
import { writeAll } from "../transport/bytes.ts";
import { errorPlan, planHead } from "./respond.ts";
import { RequestHeadReader } from "./request_reader.ts";
import type { Responder, Response } from "./responder.ts";
import type { Lane, Outcome, Run, ScheduledFlow, Scheduler } from "./scheduler.ts";
import type { SessionView } from "./session.ts";
import type { Logger } from "../cli/log.ts";

/** What a connection needs from its server. */
export interface HttpConnectionOptions {
  /** Plans responses and holds their mappings. */
  readonly responder: Responder;
  readonly scheduler: Scheduler<Response>;
  readonly log: Logger;
  /** Largest request head in bytes; a longer one is answered 431 and the connection closed. */
  readonly maxRequestSize: number;
  /** Requests read ahead of their answers (pipelining); reading pauses at this many. */
  readonly maxPipelined: number;
  /** Seconds without traffic and with nothing in flight before the connection closes (0: never). */
  readonly idleTimeout: number;
  /** Seconds a write may wait on a client that takes no data before the connection closes (0: never). */
  readonly sendTimeout: number;
  /** Keep the connection open between requests (false: one request per connection). */
  readonly keepAlive: boolean;
}

/**
 * How long a closing connection goes on reading (and dropping) what the
 * client sends after its last response: closing with unread input would
 * reset the connection, and the client could lose the response with it.
 */
const LINGER_MS = 2000;

const CLOSE: Readonly<Record<string, string>> = { Connection: "close" };
const KEEP_ALIVE: Readonly<Record<string, string>> = { Connection: "keep-alive" };
const encoder = new TextEncoder();

/** A request read and parsed (or refused), waiting for the answers before it. */
interface Pending {
  readonly request?: RequestHead;
  /** Why the head was refused, when there is no `request`. */
  readonly error?: unknown;
  /** The connection closes after this answer. */
  readonly close: boolean;
  /** Headers added to the answer's head. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** The response in the scheduler: at most one per connection. */
interface Current {
  readonly close: boolean;
  readonly head: Uint8Array;
  /** The whole body: a view over the file's mapping, or the error text. */
  readonly body: Uint8Array | undefined;
}

/** Serves one TCP connection until it ends; `done` settles then. */
export class HttpConnection implements SessionView {
  /** Settles when the connection has ended and every resource is released. */
  readonly done: Promise<void>;
  /** This connection's lane in the server's scheduler. */
  readonly lane: Lane;
  readonly #conn: Deno.Conn;
  readonly #options: HttpConnectionOptions;
  readonly #reader: RequestHeadReader;
  readonly #pending: Pending[] = [];
  #current: Current | undefined;
  /** Requests answered or in service, for their ids in the scheduler. */
  #requests = 0;
  /** Requests are still read and parsed. */
  #accepting = true;
  /** The client's input has ended (or can no longer be read). */
  #inputEnded = false;
  /** The last response has been written: the write side is shut. */
  #finishing = false;
  #closed = false;
  readonly #closedSignal = Promise.withResolvers<void>();
  /** Runs are written one after the other, in the order the scheduler hands them out. */
  #writing: Promise<void> = Promise.resolve();
  /** Runs being written. */
  #writes = 0;
  /** Why a write failed: later runs are not written. */
  #sendError: unknown;
  /** When a write last made progress. */
  #lastProgress = performance.now();
  /** When a response last settled. */
  #lastActivity = performance.now();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /** Wakes the reader when a pipelined request leaves the queue. */
  #roomWaiter?: () => void;
  /** Wakes `#serve` when a response settles. */
  #settledWaiter?: () => void;
  readonly #progress = () => void (this.#lastProgress = performance.now());

  constructor(conn: Deno.Conn, options: HttpConnectionOptions) {
    this.#conn = conn;
    this.#options = options;
    this.#reader = new RequestHeadReader(conn, options.maxRequestSize);
    this.lane = options.scheduler.addLane({
      streams: 1,
      send: (run) => this.#send(run),
      settled: (flow, outcome) => this.#settled(flow, outcome),
    });
    this.done = this.#serve();
    this.#arm(this.#period());
  }

  /** Responses of this connection not yet settled (pipelined ones included). */
  get responses(): number {
    return this.#pending.length + (this.#current ? 1 : 0);
  }

  /** Ends the connection at once; a response being written is cut off. */
  async abort(): Promise<void> {
    this.#close();
    await this.done;
  }

  async #serve(): Promise<void> {
    await this.#read();
    await this.#closedSignal.promise;
    while (this.#current) await new Promise<void>((resolve) => (this.#settledWaiter = resolve));
  }

  /** Reads requests until the input ends or one is the last, then drops the rest of the input. */
  async #read() {
    try {
      while (this.#accepting) {
        if (this.#pending.length >= this.#options.maxPipelined) {
          await new Promise<void>((resolve) => (this.#roomWaiter = resolve));
          continue;
        }
        let head: Uint8Array | null;
        try {
          head = await this.#reader.next();
        } catch (error) {
          if (!(error instanceof HttpError)) throw error;
          this.#queue({ error, close: true, headers: CLOSE });
          break;
        }
        if (head === null) {
          this.#inputEnded = true;
          break;
        }
        if (this.#accepting) this.#queue(this.#parse(head));
      }
      this.#accepting = false;
      if (!this.#inputEnded) {
        await this.#reader.discard();
        this.#inputEnded = true;
      }
    } catch (error) {
      this.#options.log.debug("connection read failed", { reason: String(error) });
      this.#inputEnded = true;
      this.#close();
    }
    if (this.#finishing) this.#close();
    else this.#next();
  }

  /** What a request head asks for, and whether the connection may go on after it. */
  #parse(bytes: Uint8Array): Pending {
    let request: RequestHead;
    try {
      request = parseRequestHead(bytes);
    } catch (error) {
      return { error, close: true, headers: CLOSE };
    }
    const persistent = this.#options.keepAlive && isPersistent(request);
    return {
      request,
      close: !persistent,
      headers: !persistent ? CLOSE : request.version === "HTTP/1.0" ? KEEP_ALIVE : undefined,
    };
  }

  #queue(pending: Pending) {
    this.#pending.push(pending);
    if (pending.close) this.#accepting = false;
    this.#next();
  }

  /** Plans the next waiting request and hands it to the scheduler, if none is in service. */
  #next() {
    if (this.#current || this.#closed) return;
    const pending = this.#pending.shift();
    if (!pending) {
      if (this.#inputEnded || !this.#accepting) this.#finish();
      return;
    }
    this.#roomWaiter?.();
    this.#roomWaiter = undefined;
    const { responder } = this.#options;
    const response = pending.request
      ? responder.respond(pending.request, pending.headers)
      : responder.refuse(pending.error, pending.headers);
    const { plan } = response;
    this.#current = {
      close: pending.close,
      head: encoder.encode(response.head),
      body: response.mapping
        ? new Uint8Array(
          Deno.UnsafePointerView.getArrayBuffer(
            response.mapping.file.pointerAt(0)!,
            plan.bodyLength,
          ),
        )
        : plan.text,
    };
    try {
      this.#options.scheduler.enqueue(this.lane, ++this.#requests, plan.bodyLength, response);
    } catch (error) {
      // The lane closed meanwhile: the connection is going away.
      this.#current = undefined;
      responder.release(response);
      this.#options.log.debug("response dropped", { reason: String(error) });
    }
  }

  /** One run: the head (first run only), then its body bytes. */
  #send(run: Run<Response>): Promise<void> {
    const current = this.#current!;
    const written = this.#writing.then(() => this.#write(run, current));
    this.#writing = written.catch(() => {});
    return written;
  }

  async #write(run: Run<Response>, current: Current) {
    // A run broke off before: whatever came next would be read as the rest of its body.
    if (this.#sendError !== undefined) throw this.#sendError;
    this.#writes++;
    this.#lastProgress = performance.now();
    try {
      if (run.offset === 0) await writeAll(this.#conn, current.head, this.#progress);
      if (run.bytes > 0) {
        const body = current.body!.subarray(run.offset, run.offset + run.bytes);
        await writeAll(this.#conn, body, this.#progress);
      }
    } catch (error) {
      this.#sendError ??= error;
      throw error;
    } finally {
      this.#writes--;
    }
  }

  #settled(flow: ScheduledFlow<Response>, outcome: Outcome) {
    this.#options.responder.release(flow.payload);
    const current = this.#current;
    this.#current = undefined;
    this.#lastActivity = performance.now();
    if (outcome === "failed") {
      this.#options.log.info("send failed", { id: flow.id, reason: String(this.#sendError) });
      this.#close();
    } else if (outcome === "cancelled") {
      this.#close();
    } else if (current?.close) {
      this.#finish();
    } else {
      this.#next();
    }
    this.#settledWaiter?.();
  }

  /** Nothing more will be sent: shut the write side, and close once the input ends. */
  #finish() {
    if (this.#finishing || this.#closed) return;
    this.#finishing = true;
    if (this.#inputEnded) return this.#close();
    this.#conn.closeWrite().catch(() => this.#close());
    this.#lingerTimer = setTimeout(() => this.#close(), LINGER_MS);
  }

  #close() {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#lingerTimer);
    this.#pending.length = 0;
    this.#roomWaiter?.();
    this.#options.scheduler.closeLane(this.lane);
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    this.#closedSignal.resolve();
  }

  /** The watchdog's period: the shorter of the timeouts in use, in ms (0: none). */
  #period(): number {
    const idleMs = this.#options.idleTimeout * 1000;
    const sendMs = this.#options.sendTimeout * 1000;
    return idleMs === 0 || sendMs === 0 ? idleMs + sendMs : Math.min(idleMs, sendMs);
  }

  #arm(delay: number) {
    if (delay > 0 && !this.#closed) this.#timer = setTimeout(() => this.#watch(), delay);
  }

  /**
   * Closes the connection once a write has made no progress for
   * `sendTimeout` seconds (a client that stopped reading), or once it has
   * had nothing in flight and no traffic for `idleTimeout` seconds. A client
   * idle halfway through a head is answered 408 first.
   */
  #watch() {
    const now = performance.now();
    const idleMs = this.#options.idleTimeout * 1000;
    const sendMs = this.#options.sendTimeout * 1000;
    if (this.#writes > 0) {
      if (sendMs > 0 && now - this.#lastProgress >= sendMs) {
        this.#options.log.info("client took no data; closing", { sendTimeout: sendMs / 1000 });
        return this.#close();
      }
      return this.#arm(sendMs > 0 ? this.#lastProgress + sendMs - now : idleMs);
    }
    // Waiting on the scheduler or lingering is neither idleness nor a stall.
    if (this.#current || this.#pending.length > 0 || this.#finishing || idleMs === 0) {
      this.#lastActivity = now;
      return this.#arm(this.#period());
    }
    const quiet = now - Math.max(this.#lastActivity, this.#reader.lastRead);
    if (quiet < idleMs) return this.#arm(idleMs - quiet);
    this.#options.log.info("connection idle; closing", { idleSeconds: idleMs / 1000 });
    if (!this.#reader.partial) return this.#close();
    this.#queue({
      error: new HttpError(408, `request head not complete after ${idleMs / 1000} s`),
      close: true,
      headers: CLOSE,
    });
    this.#arm(this.#period());
  }
}

/**
 * Answers a connection the server will not serve (`status`, `reason`, and
 * `Connection: close`) before reading anything from it, then closes it once
 * the client has sent what it had or after a moment.
 */
export async function refuseConnection(
  conn: Deno.Conn,
  status: number,
  reason: string,
): Promise<void> {
  const plan = errorPlan(new HttpError(status, reason));
  plan.headers.set("Connection", "close");
  const linger = setTimeout(() => conn.close(), LINGER_MS);
  try {
    await writeAll(conn, encoder.encode(planHead(plan)));
    await writeAll(conn, plan.text!);
    await conn.closeWrite();
    await new RequestHeadReader(conn, 4096).discard();
  } catch {
    // The client went away first.
  } finally {
    clearTimeout(linger);
    try {
      conn.close();
    } catch {
      // The linger timer closed it.
    }
  }
}
