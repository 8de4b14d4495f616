/**
 * One association being served: a receiver turns requests into responses
 * for the server's scheduler, and the association's writer carries out the
 * runs the scheduler decides, each as one batch of messages (a control
 * message, then body messages straight from the file's mapping).
 *
 * @module
 */

import type { Association, OutgoingMessage } from "../transport/types.ts";
import {
  decodeClientMessage,
  encodeContinue,
  encodeHead,
  encodeReset,
  MessageType,
  ProtocolError,
} from "../protocol/wire.ts";
import { HttpError, parseRequestHead } from "../protocol/http1.ts";
import type { Responder, Response } from "./responder.ts";
import type { Lane, Outcome, Run, ScheduledFlow, Scheduler } from "./scheduler.ts";
import type { Logger } from "../cli/log.ts";

/** Request ids the protocol allows (docs/PROTOCOL.md). */
const MAX_REQUEST_ID = 0x7ffffffe;

/** What a session needs from its server. */
export interface SessionOptions {
  /** Plans responses and holds their mappings. */
  responder: Responder;
  /** Largest body message in bytes. */
  chunkSize: number;
  scheduler: Scheduler<Response>;
  log: Logger;
  /** Requests in flight at once; one more is answered RESET 503. */
  maxInFlight: number;
  /** The association's `maxMessageSize`: a REQUEST cut to it is answered 431. */
  maxRequestSize: number;
  /** Seconds without traffic and with nothing in flight before the session closes (0: never). */
  idleTimeout: number;
}

/**
 * Tells the peer why its association ends (RESET with id 0, which no request
 * has) and closes it.
 */
export async function closeWithReason(association: Association, status: number, reason: string) {
  await association.send(0, encodeReset(0, status, reason)).catch(() => {});
  await association.close();
}

/** What a server shows of one session. */
export interface SessionView {
  /** Settles when the association has ended and every resource is released. */
  readonly done: Promise<void>;
  /** Responses of this association not yet settled. */
  readonly responses: number;
}

/** Serves one association until it ends; `done` settles then. */
export class Session implements SessionView {
  /** Settles when the association has ended and every resource is released. */
  readonly done: Promise<void>;
  /** This association's lane in the server's scheduler. */
  readonly lane: Lane;
  readonly #association: Association;
  readonly #options: SessionOptions;
  readonly #flows = new Map<number, ScheduledFlow<Response>>();
  /** A run failed: the association is being aborted. */
  #failed = false;
  /** Why the first send failed. */
  #sendError: unknown;
  /** Wakes `#shutdown` when a response settles. */
  #settledWaiter?: () => void;
  /** When a message last came in or a response settled. */
  #lastActivity = performance.now();
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** The in-flight limit was reached (logged once per session). */
  #saturated = false;

  constructor(association: Association, options: SessionOptions) {
    this.#association = association;
    this.#options = options;
    this.lane = options.scheduler.addLane({
      streams: association.outboundStreams,
      path: () => association.pathInfo(),
      send: (run) => this.#send(run),
      settled: (flow, outcome) => this.#settled(flow, outcome),
    });
    this.done = this.#serve();
    this.#watchIdle();
  }

  /** Responses of this association not yet settled. */
  get responses(): number {
    return this.#flows.size;
  }

  async #serve(): Promise<void> {
    let reason: unknown;
    try {
      for (;;) {
        const message = await this.#association.receive();
        // Once a send failed, what is still queued is not answered.
        if (message === null || this.#failed) break;
        this.#lastActivity = performance.now();
        await this.#onMessage(message.data, message.truncated ?? false);
      }
    } catch (error) {
      reason = error;
    }
    reason ??= this.#sendError;
    if (reason !== undefined) {
      this.#options.log.info("association ended", { reason: String(reason) });
    }
    await this.#shutdown();
  }

  #onMessage(data: Uint8Array, truncated: boolean): Promise<void> | void {
    const message = decodeClientMessage(data);
    if (truncated && message.type !== MessageType.REQUEST) {
      throw new ProtocolError(`a message longer than ${this.#options.maxRequestSize} bytes`);
    }
    switch (message.type) {
      case MessageType.REQUEST: {
        const { id } = message;
        if (id < 1 || id > MAX_REQUEST_ID) {
          return this.#reset(id, 400, `request id ${id} is outside 1..${MAX_REQUEST_ID}`);
        }
        if (this.#flows.has(id)) {
          return this.#reset(id, 400, `request id ${id} is already in flight`);
        }
        const { maxInFlight } = this.#options;
        if (this.#flows.size >= maxInFlight) {
          if (!this.#saturated) {
            this.#saturated = true;
            this.#options.log.warn("requests in flight at the limit; more are answered 503", {
              maxInFlight,
            });
          }
          // Awaited like every RESET: a client that sends on without reading
          // its answers stops being read once they fill the socket buffers.
          return this.#reset(id, 503, `too many requests in flight (limit ${maxInFlight})`);
        }
        const response = truncated
          ? this.#options.responder.refuse(
            new HttpError(
              431,
              `request message larger than ${this.#options.maxRequestSize} bytes`,
            ),
          )
          : this.#respond(message.head);
        try {
          const size = response.plan.bodyLength;
          this.#flows.set(id, this.#options.scheduler.enqueue(this.lane, id, size, response));
        } catch (error) {
          // The lane was closed meanwhile: the session is ending.
          this.#options.responder.release(response);
          throw error;
        }
        return;
      }
      case MessageType.CANCEL: {
        const flow = this.#flows.get(message.id);
        if (flow && this.#options.scheduler.cancel(flow)) {
          // The client has the head; RESET follows the runs already queued on its stream.
          this.#association.send(flow.stream, encodeReset(flow.id, 0, "cancelled"))
            .catch(() => {});
        }
        return;
      }
      case MessageType.PRIORITY: {
        const flow = this.#flows.get(message.id);
        if (flow) this.#options.scheduler.setPriority(flow, message.priority);
        return;
      }
    }
  }

  /** Parses a request head and plans its answer. */
  #respond(headBytes: Uint8Array): Response {
    let request;
    try {
      request = parseRequestHead(headBytes);
    } catch (error) {
      return this.#options.responder.refuse(error);
    }
    return this.#options.responder.respond(request);
  }

  /** One run: a HEAD or CONTINUE control message, then its body in chunks. */
  #send(run: Run<Response>): Promise<void> {
    const { flow, offset, bytes } = run;
    const { stream, id } = flow;
    const { plan, head, mapping } = flow.payload;
    const messages: OutgoingMessage[] = [{
      stream,
      data: offset === 0 ? encodeHead(id, bytes, head) : encodeContinue(id, bytes),
    }];
    const chunk = this.#options.chunkSize;
    const base = mapping ? BigInt(Deno.UnsafePointer.value(mapping.file.pointerAt(0))) : 0n;
    for (let at = offset, end = offset + bytes; at < end; at += chunk) {
      const length = Math.min(chunk, end - at);
      messages.push(
        mapping
          ? { stream, address: base + BigInt(at), length }
          : { stream, data: plan.text!.subarray(at, at + length) },
      );
    }
    return this.#association.sendBatch(messages).catch((error) => {
      this.#sendError ??= error;
      throw error;
    });
  }

  #settled(flow: ScheduledFlow<Response>, outcome: Outcome) {
    if (this.#flows.get(flow.id) === flow) this.#flows.delete(flow.id);
    this.#lastActivity = performance.now();
    this.#options.responder.release(flow.payload);
    if (outcome === "failed" && !this.#failed) {
      this.#failed = true;
      this.#options.scheduler.closeLane(this.lane);
      // A run broke off midway: the client would read whatever came next on
      // that stream as the rest of this body. No later message can be
      // trusted, so the association ends here (it is usually dead already).
      this.#options.log.info("send failed", { id: flow.id, reason: String(this.#sendError) });
      void this.#association.abort();
    }
    this.#settledWaiter?.();
  }

  #reset(id: number, status: number, reason: string): Promise<void> {
    const stream = id % this.#association.outboundStreams;
    return this.#association.send(stream, encodeReset(id, status, reason)).catch(() => {});
  }

  /**
   * Closes the association once it has had nothing in flight and no traffic
   * for `idleTimeout` seconds, telling the peer why (RESET 0, 408).
   */
  #watchIdle() {
    const idleMs = this.#options.idleTimeout * 1000;
    if (idleMs === 0) return;
    const check = () => {
      const now = performance.now();
      // A response in flight is not idleness; a stalled one is the send timeout's.
      if (this.#flows.size > 0) this.#lastActivity = now;
      const quiet = now - this.#lastActivity;
      if (quiet < idleMs) {
        this.#idleTimer = setTimeout(check, idleMs - quiet);
        return;
      }
      this.#idleTimer = undefined;
      this.#options.log.info("association idle; closing", { idleSeconds: idleMs / 1000 });
      void closeWithReason(this.#association, 408, `idle for ${idleMs / 1000} s`);
    };
    this.#idleTimer = setTimeout(check, idleMs);
  }

  async #shutdown() {
    clearTimeout(this.#idleTimer);
    this.#options.scheduler.closeLane(this.lane);
    // Runs in flight go out (close waits a bounded time for them), then settle.
    await this.#association.close();
    while (this.#flows.size > 0) {
      await new Promise<void>((resolve) => (this.#settledWaiter = resolve));
    }
  }

  /** Ends the session at once: the association is aborted, its responses dropped. */
  async abort(): Promise<void> {
    clearTimeout(this.#idleTimer);
    this.#options.scheduler.closeLane(this.lane);
    await this.#association.abort();
    await this.done;
  }
}
