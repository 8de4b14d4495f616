/**
 * The main-thread side of every transport: an `Association` whose blocking
 * socket calls run in I/O Workers (`io_worker.ts`), and a `Listener` whose
 * accept loop runs in one. Transports differ only in their `SocketDriver`.
 *
 * @module
 */

import { driverFor } from "./drivers.ts";
import type { Established, SocketDriver } from "./driver.ts";
import { SHARED_CLOSING, SHARED_SENT, TransportError } from "./types.ts";
import type {
  Association,
  AssociationOptions,
  Listener,
  ListenOptions,
  Message,
  OutgoingMessage,
  PathInfo,
  SharedAssociation,
  SocketHandle,
  TransportName,
} from "./types.ts";
import { creditOf, deserializeError } from "./worker_protocol.ts";
import type { WorkerCommand, WorkerEvent, WriteRequest } from "./worker_protocol.ts";

const IO_WORKER = new URL("./io_worker.ts", import.meta.url);
/** Received bytes the application may leave unread before reading pauses. */
const READ_CREDIT_BYTES = 16 * 1024 * 1024;
/** How long a graceful close waits for the peer before aborting. */
const CLOSE_GRACE_MS = 3000;
/** How long a refused association stays open for its refusal to be read. */
const REFUSED_CLOSE_DELAY_MS = 1000;

/** Whether `promise` is still pending after `ms` milliseconds. */
async function timedOut(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), ms)));
  const result = await Promise.race([promise.then(() => false), late]);
  clearTimeout(timer);
  return result;
}

/** Fills in the documented defaults of `AssociationOptions`. */
export function withDefaults(options: AssociationOptions = {}): Required<AssociationOptions> {
  const streams = options.streams ?? 8;
  if (!Number.isInteger(streams) || streams < 1 || streams > 65535) {
    throw new RangeError(`streams must be an integer from 1 to 65535, got ${streams}`);
  }
  return {
    streams,
    sendBufferSize: options.sendBufferSize ?? 4 * 1024 * 1024,
    receiveBufferSize: options.receiveBufferSize ?? 4 * 1024 * 1024,
    udpPort: options.udpPort ?? 9899,
    udpEncapsulation: options.udpEncapsulation ?? false,
    streamScheduler: options.streamScheduler ?? "fcfs",
    maxMessageSize: checked("maxMessageSize", options.maxMessageSize ?? 64 * 1024 * 1024, 1024),
    handshakeTimeout: checked("handshakeTimeout", options.handshakeTimeout ?? 5, 1),
    sendTimeout: checked("sendTimeout", options.sendTimeout ?? 0, 0),
  };
}

/** `value`, after checking it is an integer from `min` to 2^30. */
function checked(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min || value > 2 ** 30) {
    throw new RangeError(`${name} must be an integer from ${min} to ${2 ** 30}, got ${value}`);
  }
  return value;
}

/** The driver of `transport`, after checking it can do what `options` ask. */
function driverWith(transport: TransportName, options: Required<AssociationOptions>): SocketDriver {
  const driver = driverFor(transport);
  if (!driver.streamSchedulers.includes(options.streamScheduler)) {
    throw new TransportError(
      `the ${transport} transport cannot select the stream scheduler ` +
        `"${options.streamScheduler}" (it has: ${driver.streamSchedulers.join(", ")})`,
    );
  }
  return driver;
}

function spawn(name: string, command: WorkerCommand): Worker {
  const worker = new Worker(IO_WORKER, { type: "module", name });
  worker.postMessage(command);
  return worker;
}

/** Connects to a listener of `transport` at `host:port`. */
export function connect(
  transport: TransportName,
  host: string,
  port: number,
  options?: AssociationOptions,
): Promise<Association> {
  const resolved = withDefaults(options);
  const driver = driverWith(transport, resolved);
  driver.prepare(resolved);
  const writer = spawn(`${transport}-writer`, {
    role: "connect",
    transport,
    host,
    port,
    options: resolved,
  });
  return new Promise((resolve, reject) => {
    writer.onmessage = (e: MessageEvent<WorkerEvent>) => {
      const event = e.data;
      if (event.type === "established") {
        resolve(
          new WorkerAssociation(
            transport,
            driver,
            resolved,
            event.established,
            event.shared,
            writer,
          ),
        );
      } else if (event.type === "error") {
        writer.terminate();
        reject(deserializeError(event.error));
      }
    };
  });
}

/** Listens for associations of `transport` on `host:port` (port 0: any free port). */
export function listen(
  transport: TransportName,
  host: string,
  port: number,
  options?: ListenOptions,
): Listener {
  const resolved = withDefaults(options);
  const driver = driverWith(transport, resolved);
  driver.prepare(resolved, port);
  const bound = driver.listen(host, port, resolved);
  return new WorkerListener(transport, driver, bound.socket, bound.port, resolved, {
    onAcceptError: options?.onAcceptError,
    maxAssociations: checked("maxAssociations", options?.maxAssociations ?? 0, 0),
    refusal: options?.refusal,
  });
}

class WorkerAssociation implements SharedAssociation {
  readonly transport: TransportName;
  readonly outboundStreams: number;
  readonly inboundStreams: number;
  readonly #driver: SocketDriver;
  readonly #handle: SocketHandle;
  readonly #writer: Worker;
  readonly #reader: Worker;
  readonly #unconsumed: Int32Array;
  readonly #closingFlag: Int32Array;
  readonly #received: Message[] = [];
  readonly #receivers: PromiseWithResolvers<Message | null>[] = [];
  readonly #pendingSends = new Map<number, PromiseWithResolvers<void>>();
  readonly #readerDone = Promise.withResolvers<void>();
  #nextSendId = 0;
  /** The batches gathered in this turn of the event loop, for one postMessage. */
  #gathered: { id: number; messages: readonly OutgoingMessage[] }[] = [];
  /** Handles given out and not yet released. */
  #leases = 0;
  #leasesReleased: (() => void) | undefined;
  #ended = false;
  #failure: Error | undefined;
  #closing: Promise<void> | undefined;
  /** Why this side aborted on its own (a stalled peer), reported instead of a plain close. */
  #abortReason: Error | undefined;
  #sendWatch: ReturnType<typeof setInterval> | undefined;
  /** Called once the socket is released. */
  readonly #onClosed: (() => void) | undefined;

  constructor(
    transport: TransportName,
    driver: SocketDriver,
    options: Required<AssociationOptions>,
    established: Established,
    shared: SharedArrayBuffer,
    writer?: Worker,
    onClosed?: () => void,
  ) {
    this.transport = transport;
    this.outboundStreams = established.outboundStreams;
    this.inboundStreams = established.inboundStreams;
    this.#driver = driver;
    this.#handle = { transport, socket: established.socket, shared };
    this.#closingFlag = new Int32Array(shared);
    this.#onClosed = onClosed;
    if (options.sendTimeout > 0) this.#watchSends(options.sendTimeout);
    this.#writer = writer ?? spawn(`${transport}-writer`, {
      role: "write",
      transport,
      handle: this.#handle,
    });
    this.#writer.onmessage = (e: MessageEvent<WorkerEvent>) => this.#onWriterEvent(e.data);
    const credit = { buffer: new SharedArrayBuffer(4), limit: READ_CREDIT_BYTES };
    this.#unconsumed = new Int32Array(credit.buffer);
    this.#reader = spawn(`${transport}-reader`, {
      role: "read",
      transport,
      socket: established.socket,
      credit,
      maxMessageSize: options.maxMessageSize,
    });
    this.#reader.onmessage = (e: MessageEvent<WorkerEvent>) => this.#onReaderEvent(e.data);
  }

  send(stream: number, data: Uint8Array): Promise<void> {
    return this.sendBatch([{ stream, data }]);
  }

  sendFrom(stream: number, pointer: Deno.PointerValue, length: number): Promise<void> {
    return this.sendBatch([{ stream, address: BigInt(Deno.UnsafePointer.value(pointer)), length }]);
  }

  sendBatch(messages: readonly OutgoingMessage[]): Promise<void> {
    if (this.#closing) {
      return Promise.reject(this.#abortReason ?? new TransportError("association is closed"));
    }
    for (const { stream } of messages) {
      if (!Number.isInteger(stream) || stream < 0 || stream >= this.outboundStreams) {
        return Promise.reject(
          new RangeError(`stream ${stream} is outside 0..${this.outboundStreams - 1}`),
        );
      }
    }
    if (this.#gathered.length === 0) queueMicrotask(() => this.#flush());
    const id = this.#nextSendId++;
    const sent = Promise.withResolvers<void>();
    this.#pendingSends.set(id, sent);
    this.#gathered.push({ id, messages });
    return sent.promise;
  }

  receive(): Promise<Message | null> {
    const message = this.#received.shift();
    if (message) {
      this.#consumed(message.data.byteLength);
      return Promise.resolve(message);
    }
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#ended) return Promise.resolve(null);
    const waiter = Promise.withResolvers<Message | null>();
    this.#receivers.push(waiter);
    return waiter.promise;
  }

  pathInfo(): PathInfo {
    return this.#driver.pathInfo(this.#handle.socket);
  }

  handle(): SocketHandle {
    this.#leases++;
    return this.#handle;
  }

  releaseHandle(): void {
    if (--this.#leases === 0) this.#leasesReleased?.();
  }

  close(): Promise<void> {
    this.#closing ??= this.#close(false);
    return this.#closing;
  }

  abort(): Promise<void> {
    this.#closing ??= this.#close(true);
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * Aborts the association when sends are waiting and not one message went
   * out for `seconds`: the peer stopped reading (or half-closed and went
   * quiet), and would otherwise hold the association and its responses forever.
   */
  #watchSends(seconds: number) {
    const sent = new Int32Array(this.#handle.shared);
    let count = Atomics.load(sent, SHARED_SENT);
    let progressAt = performance.now();
    this.#sendWatch = setInterval(() => {
      const now = performance.now();
      const latest = Atomics.load(sent, SHARED_SENT);
      if (this.#pendingSends.size === 0 || latest !== count) {
        count = latest;
        progressAt = now;
      } else if (now - progressAt >= seconds * 1000) {
        this.#abortReason = new TransportError(
          `${this.transport}: the peer took no message for ${seconds} s (sendTimeout); ` +
            "association aborted",
        );
        void this.abort();
      }
    }, Math.min(1000, seconds * 250));
  }

  async #close(abort: boolean): Promise<void> {
    clearInterval(this.#sendWatch);
    try {
      await this.#teardown(abort);
    } finally {
      this.#writer.terminate();
      this.#reader.terminate();
      const closed = this.#abortReason ?? new TransportError("association closed");
      for (const pending of this.#pendingSends.values()) pending.reject(closed);
      this.#pendingSends.clear();
      this.#finish(undefined);
      this.#driver.close(this.#handle.socket);
      this.#onClosed?.();
    }
  }

  /** Ends the association and waits until no thread uses the socket. */
  async #teardown(abort: boolean): Promise<void> {
    this.#flush();
    if (!abort) {
      // Queued sends go out first, unless the peer stops taking them.
      const sent = Promise.allSettled([...this.#pendingSends.values()].map((p) => p.promise));
      if (await timedOut(sent, CLOSE_GRACE_MS)) abort = true;
    }
    // From here the writer sends nothing more, and a send blocked on a full buffer gives up.
    Atomics.store(this.#closingFlag, SHARED_CLOSING, 1);
    try {
      if (abort) {
        this.#driver.abort(this.#handle.socket);
      } else {
        this.#driver.shutdown(this.#handle.socket);
      }
    } catch {
      // The socket is already dead: the reader has ended or is about to.
      this.#driver.abort(this.#handle.socket);
    }
    // Unblock a reader paused on backpressure so it sees the end.
    Atomics.store(this.#unconsumed, 0, 0);
    Atomics.notify(this.#unconsumed, 0);
    if (await timedOut(this.#readerDone.promise, CLOSE_GRACE_MS)) {
      this.#driver.abort(this.#handle.socket);
      await this.#readerDone.promise;
    }
    // Whoever sent from memory frees it when its send settles: wait for the writer to
    // report (a blocked send wakes within a second and sees the closing flag) rather
    // than settle sends it may still be reading from.
    const settled = Promise.allSettled([...this.#pendingSends.values()].map((p) => p.promise));
    await timedOut(settled, CLOSE_GRACE_MS);
    if (this.#leases > 0) await new Promise<void>((resolve) => (this.#leasesReleased = resolve));
  }

  /** Hands the gathered batches to the writer: one thread hop for all of them. */
  #flush() {
    if (this.#gathered.length === 0) return;
    this.#writer.postMessage({ batches: this.#gathered } satisfies WriteRequest);
    this.#gathered = [];
  }

  #onWriterEvent(event: WorkerEvent) {
    if (event.type !== "sent") return;
    const pending = this.#pendingSends.get(event.id);
    this.#pendingSends.delete(event.id);
    if (event.error) pending?.reject(this.#abortReason ?? deserializeError(event.error));
    else pending?.resolve();
  }

  #onReaderEvent(event: WorkerEvent) {
    switch (event.type) {
      case "message": {
        const { stream, data, truncated } = event;
        const message: Message = truncated ? { stream, data, truncated } : { stream, data };
        const waiter = this.#receivers.shift();
        if (waiter) {
          this.#consumed(message.data.byteLength);
          waiter.resolve(message);
        } else {
          this.#received.push(message);
        }
        return;
      }
      case "end":
        return this.#finish(undefined);
      case "error":
        return this.#finish(deserializeError(event.error));
    }
  }

  #consumed(bytes: number) {
    Atomics.sub(this.#unconsumed, 0, creditOf(bytes));
    Atomics.notify(this.#unconsumed, 0);
  }

  #finish(failure: Error | undefined) {
    if (this.#ended) return;
    this.#ended = true;
    // An error after our own close request is the close itself, not a failure.
    this.#failure = this.#abortReason ?? (this.#closing ? undefined : failure);
    this.#readerDone.resolve();
    for (const waiter of this.#receivers.splice(0)) {
      if (this.#failure) waiter.reject(this.#failure);
      else waiter.resolve(null);
    }
  }
}

class WorkerListener implements Listener {
  readonly transport: TransportName;
  readonly port: number;
  readonly #driver: SocketDriver;
  readonly #socket: bigint;
  readonly #acceptor: Worker;
  readonly #ready: Association[] = [];
  readonly #waiters: PromiseWithResolvers<Association>[] = [];
  readonly #stopped = Promise.withResolvers<void>();
  /** Refused associations waiting to be closed. */
  readonly #refused = new Map<
    bigint,
    { timer: ReturnType<typeof setTimeout>; close: () => void }
  >();
  #closed = false;

  constructor(
    transport: TransportName,
    driver: SocketDriver,
    socket: bigint,
    port: number,
    options: Required<AssociationOptions>,
    { onAcceptError, maxAssociations, refusal }: ListenOptions,
  ) {
    this.transport = transport;
    this.port = port;
    this.#driver = driver;
    this.#socket = socket;
    const open = new SharedArrayBuffer(4);
    const opened = new Int32Array(open);
    this.#acceptor = spawn(`${transport}-acceptor`, {
      role: "accept",
      transport,
      socket,
      options,
      admission: { open, limit: maxAssociations ?? 0, refusal },
    });
    this.#acceptor.onmessage = (e: MessageEvent<WorkerEvent>) => {
      const event = e.data;
      if (event.type === "established") {
        const association = new WorkerAssociation(
          transport,
          driver,
          options,
          event.established,
          event.shared,
          undefined,
          () => Atomics.sub(opened, 0, 1),
        );
        const waiter = this.#waiters.shift();
        if (waiter) waiter.resolve(association);
        else this.#ready.push(association);
      } else if (event.type === "accept-failed") {
        onAcceptError?.(deserializeError(event.error));
      } else if (event.type === "refused") {
        this.#closeRefused(event.socket);
        onAcceptError?.(deserializeError(event.error));
      } else if (event.type === "end") {
        this.#stopped.resolve();
      }
    };
  }

  /**
   * Closes a refused association after a while: at once, an SCTP peer could
   * find its association gone before it has read its stream counts, and see
   * a failed connect instead of the refusal.
   */
  #closeRefused(socket: bigint) {
    const close = () => {
      this.#refused.delete(socket);
      try {
        this.#driver.shutdown(socket);
      } catch {
        // The peer went first.
      }
      this.#driver.close(socket);
    };
    this.#refused.set(socket, { timer: setTimeout(close, REFUSED_CLOSE_DELAY_MS), close });
  }

  accept(): Promise<Association> {
    const ready = this.#ready.shift();
    if (ready) return Promise.resolve(ready);
    if (this.#closed) return Promise.reject(new TransportError("listener is closed"));
    const waiter = Promise.withResolvers<Association>();
    this.#waiters.push(waiter);
    return waiter.promise;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Association> {
    while (!this.#closed || this.#ready.length > 0) {
      try {
        yield await this.accept();
      } catch (error) {
        if (this.#closed) return;
        throw error;
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#driver.shutdown(this.#socket);
    await this.#stopped.promise;
    this.#acceptor.terminate();
    for (const { timer, close } of this.#refused.values()) {
      clearTimeout(timer);
      close();
    }
    this.#driver.close(this.#socket);
    const closed = new TransportError("listener is closed");
    for (const waiter of this.#waiters.splice(0)) waiter.reject(closed);
    await Promise.all(this.#ready.splice(0).map((a) => a.abort()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
