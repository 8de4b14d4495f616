/**
 * An association whose blocking socket calls run in two I/O Workers
 * (`io_worker.ts`): a writer that sends the batches it is handed, in order,
 * and a reader that posts whole messages back. The data path of transports
 * without file descriptors (usrsctp), and of any transport asked for it.
 *
 * @module
 */

import {
  type AssociationSetup,
  BaseAssociation,
  type Batch,
  READ_CREDIT_BYTES,
} from "./base_association.ts";
import type { Message } from "./types.ts";
import { creditOf, deserializeError } from "./worker_protocol.ts";
import type { WorkerCommand, WorkerEvent, WriteRequest } from "./worker_protocol.ts";

const IO_WORKER = new URL("./io_worker.ts", import.meta.url);

/** Starts an I/O Worker in the role `command` gives it. */
export function spawnIoWorker(name: string, command: WorkerCommand): Worker {
  const worker = new Worker(IO_WORKER, { type: "module", name });
  worker.postMessage(command);
  return worker;
}

/** See the module comment. */
export class WorkerAssociation extends BaseAssociation {
  readonly #writer: Worker;
  readonly #reader: Worker;
  /** Received bytes the application has not taken, shared with the reader. */
  readonly #unconsumed: Int32Array;

  /** `writer`: the Worker that connected, which goes on as the writer. */
  constructor(setup: AssociationSetup, writer?: Worker) {
    super(setup);
    const { transport, options, established } = setup;
    this.#writer = writer ?? spawnIoWorker(`${transport}-writer`, {
      role: "write",
      transport,
      handle: this.socketHandle,
    });
    this.#writer.onmessage = (e: MessageEvent<WorkerEvent>) => {
      const event = e.data;
      if (event.type === "sent") {
        this.settle(event.id, event.error && deserializeError(event.error));
      }
    };
    const credit = { buffer: new SharedArrayBuffer(4), limit: READ_CREDIT_BYTES };
    this.#unconsumed = new Int32Array(credit.buffer);
    this.#reader = spawnIoWorker(`${transport}-reader`, {
      role: "read",
      transport,
      socket: established.socket,
      credit,
      maxMessageSize: options.maxMessageSize,
    });
    this.#reader.onmessage = (e: MessageEvent<WorkerEvent>) => this.#onReaderEvent(e.data);
  }

  /** One thread hop for every batch of the turn. */
  protected hand(batches: Batch[]) {
    this.#writer.postMessage({ batches } satisfies WriteRequest);
  }

  protected consumed(bytes: number) {
    Atomics.sub(this.#unconsumed, 0, creditOf(bytes));
    Atomics.notify(this.#unconsumed, 0);
  }

  /** A reader paused on backpressure goes on, and sees the end. */
  protected wake() {
    Atomics.store(this.#unconsumed, 0, 0);
    Atomics.notify(this.#unconsumed, 0);
  }

  protected stop() {
    this.#writer.terminate();
    this.#reader.terminate();
  }

  #onReaderEvent(event: WorkerEvent) {
    switch (event.type) {
      case "message": {
        const { stream, data, truncated } = event;
        const message: Message = truncated ? { stream, data, truncated } : { stream, data };
        return this.deliver(message);
      }
      case "end":
        return this.finish(undefined);
      case "error":
        return this.finish(deserializeError(event.error));
    }
  }
}
