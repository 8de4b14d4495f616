/**
 * One association being served: a receiver reading requests, a scheduler
 * ordering responses by the chosen policy, and one sender Worker per
 * outgoing stream.
 *
 * @module
 */

import type { Association } from "../transport/types.ts";
import { decodeClientMessage, MessageType, ProtocolError } from "../protocol/wire.ts";
import { HttpError, parseRequestHead } from "../protocol/http1.ts";
import { errorPlan, planHead, planResponse, type ResponsePlan } from "./respond.ts";
import type { Mapping, MappingCache } from "./mapping_cache.ts";
import { POLICIES, type PolicyName } from "./policies/mod.ts";
import { Scheduler, type SchedulerEvent } from "./scheduler.ts";
import type { SenderCommand, SenderReport } from "./sender_protocol.ts";
import type { Logger } from "./log.ts";

const SENDER_WORKER = new URL("./sender_worker.ts", import.meta.url);

/** What a session needs from its server. */
export interface SessionOptions {
  root: string;
  policy: PolicyName;
  chunkSize: number;
  runBytes: number;
  mappings: MappingCache;
  log: Logger;
  /** Keep the scheduler's event log. */
  eventLog?: boolean;
  /** Start with the scheduler held (tests). */
  held?: boolean;
}

interface ResponseJob {
  readonly id: number;
  readonly size: number;
  readonly seq: number;
  priority: number;
  readonly plan: ResponsePlan;
  mapping?: Mapping;
}

/** Serves one association until it ends; `done` settles then. */
export class Session {
  /** Settles when the association has ended and every resource is released. */
  readonly done: Promise<void>;
  readonly scheduler: Scheduler<ResponseJob>;
  readonly #association: Association;
  readonly #options: SessionOptions;
  readonly #senders: Worker[] = [];
  readonly #cancelFlags: Int32Array[] = [];
  readonly #jobs = new Map<number, ResponseJob>();
  readonly #running = new Map<number, ResponseJob>();
  #seq = 0;
  /** Wakes `#shutdown` when a sender reports. */
  #idleWaiter?: () => void;

  constructor(association: Association, options: SessionOptions) {
    this.#association = association;
    this.#options = options;
    const streams = association.outboundStreams;
    const handle = association.handle();
    this.scheduler = new Scheduler<ResponseJob>(
      POLICIES[options.policy]<ResponseJob>(streams),
      streams,
      (stream, job) => this.#dispatch(stream, job),
      { eventLog: options.eventLog, held: options.held },
    );
    for (let stream = 0; stream < streams; stream++) {
      const cancelled = new SharedArrayBuffer(4);
      this.#cancelFlags.push(new Int32Array(cancelled));
      const worker = new Worker(SENDER_WORKER, { type: "module", name: `sender-${stream}` });
      worker.onmessage = (e: MessageEvent<SenderReport>) => this.#onReport(stream, e.data);
      worker.postMessage(
        {
          type: "init",
          handle,
          stream,
          chunkSize: options.chunkSize,
          runBytes: options.runBytes,
          cancelled,
        } satisfies SenderCommand,
      );
      this.#senders.push(worker);
    }
    this.done = this.#serve();
  }

  /** The scheduler's event log (when enabled). */
  get events(): readonly SchedulerEvent[] {
    return this.scheduler.events;
  }

  async #serve(): Promise<void> {
    try {
      for (;;) {
        const message = await this.#association.receive();
        if (message === null) break;
        await this.#onMessage(message.data);
      }
    } catch (error) {
      this.#options.log.info("association ended", { reason: String(error) });
    }
    await this.#shutdown();
  }

  async #onMessage(data: Uint8Array) {
    const message = decodeClientMessage(data);
    switch (message.type) {
      case MessageType.REQUEST: {
        if (this.#jobs.has(message.id)) {
          throw new ProtocolError(`request id ${message.id} reused while in flight`);
        }
        let plan: ResponsePlan;
        let headOnly = false;
        try {
          const request = parseRequestHead(message.head);
          headOnly = request.method === "HEAD";
          plan = await planResponse(this.#options.root, request);
        } catch (error) {
          if (!(error instanceof HttpError)) {
            this.#options.log.error("request failed", { error: String(error) });
          }
          plan = errorPlan(error, headOnly);
        }
        const job: ResponseJob = {
          id: message.id,
          size: plan.bodyLength,
          seq: this.#seq++,
          priority: 0,
          plan,
        };
        if (plan.file) {
          try {
            job.mapping = this.#options.mappings.acquire(plan.file);
            if (job.mapping.file.size !== plan.file.size) {
              // Replaced between stat and open: Content-Length would be wrong.
              this.#options.mappings.release(job.mapping);
              job.mapping = undefined;
              throw new HttpError(503, "the file changed while it was being opened; try again");
            }
          } catch (error) {
            this.#options.log.error("mmap failed", { path: plan.file.path, error: String(error) });
            const failed = errorPlan(error);
            Object.assign(job, { plan: failed, size: failed.bodyLength });
          }
        }
        this.#jobs.set(job.id, job);
        this.scheduler.enqueue(job);
        return;
      }
      case MessageType.CANCEL: {
        const job = this.#jobs.get(message.id);
        if (!job) return;
        if (this.scheduler.cancel(job)) {
          this.#release(job);
        } else if (this.#running.has(job.id)) {
          const stream = [...this.#running.entries()].find(([, j]) => j === job)?.[0];
          if (stream !== undefined) Atomics.store(this.#cancelFlags[stream], 0, (job.id + 1) | 0);
        }
        return;
      }
      case MessageType.PRIORITY: {
        const job = this.#jobs.get(message.id);
        if (job) job.priority = message.priority;
        return;
      }
    }
  }

  #dispatch(stream: number, job: ResponseJob) {
    this.#running.set(stream, job);
    const pointer = job.mapping
      ? BigInt(Deno.UnsafePointer.value(job.mapping.file.pointerAt(0)))
      : undefined;
    this.#senders[stream].postMessage(
      {
        type: "send",
        id: job.id,
        head: planHead(job.plan),
        length: job.size,
        pointer,
        text: job.plan.text,
      } satisfies SenderCommand,
    );
  }

  #onReport(stream: number, report: SenderReport) {
    const job = this.#running.get(stream);
    this.#running.delete(stream);
    Atomics.store(this.#cancelFlags[stream], 0, 0);
    if (job) this.#release(job);
    if (report.error) {
      this.#options.log.info("send failed", {
        id: report.id,
        sent: report.sent,
        error: report.error.message,
      });
      // The stream may be mid-run: the client would read whatever came next
      // on it as the rest of this body. No later message can be trusted, so
      // the association ends here (it is usually dead already).
      this.#idleWaiter?.();
      void this.#association.abort();
      return;
    }
    this.scheduler.finished(stream);
    this.#idleWaiter?.();
  }

  #release(job: ResponseJob) {
    this.#jobs.delete(job.id);
    if (job.mapping) this.#options.mappings.release(job.mapping);
    job.mapping = undefined;
  }

  async #shutdown() {
    for (const job of this.scheduler.drain()) this.#release(job);
    // In-flight sends end by themselves: sent, or failed on the dead association.
    while (this.#running.size > 0) {
      await new Promise<void>((resolve) => (this.#idleWaiter = resolve));
    }
    for (const worker of this.#senders) worker.terminate();
    this.#association.releaseHandle();
    await this.#association.close();
  }

  /** Ends the session at once: the association is aborted, queued responses dropped. */
  async abort(): Promise<void> {
    for (const job of this.scheduler.drain()) this.#release(job);
    // Running senders stop at their next run boundary.
    for (const [stream, job] of this.#running) {
      Atomics.store(this.#cancelFlags[stream], 0, (job.id + 1) | 0);
    }
    await this.#association.abort();
    await this.done;
  }
}
