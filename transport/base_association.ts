/**
 * What every association does the same whichever way its I/O runs: checks
 * and gathers sends into batches, queues received messages for `receive`,
 * lends handles, watches for a stalled peer, and closes in order (queued
 * sends first, then the socket, then whoever still holds it). Subclasses
 * move the bytes: `WorkerAssociation` in I/O Workers, `LoopAssociation` on
 * the event loop.
 *
 * @module
 */

import type { Established, SocketDriver } from "./driver.ts";
import { SHARED_CLOSING, SHARED_SENT, TransportError } from "./types.ts";
import type {
  AssociationOptions,
  Message,
  OutgoingMessage,
  PathInfo,
  SharedAssociation,
  SocketHandle,
  TransportName,
} from "./types.ts";

/** Received bytes the application may leave unread before reading pauses. */
export const READ_CREDIT_BYTES = 16 * 1024 * 1024;
/** How long a graceful close waits for the peer before aborting. */
const CLOSE_GRACE_MS = 3000;

/** Sends made in one turn of the event loop, each with the id its promise waits on. */
export interface Batch {
  readonly id: number;
  readonly messages: readonly OutgoingMessage[];
}

/** What an association is made of, once its handshake is done. */
export interface AssociationSetup {
  readonly transport: TransportName;
  readonly driver: SocketDriver;
  readonly options: Required<AssociationOptions>;
  readonly established: Established;
  /** The association's `SocketHandle.shared`. */
  readonly shared: SharedArrayBuffer;
  /** Called once the socket is released. */
  readonly onClosed?: () => void;
}

/** Whether `promise` is still pending after `ms` milliseconds. */
async function timedOut(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), ms)));
  const result = await Promise.race([promise.then(() => false), late]);
  clearTimeout(timer);
  return result;
}

/** The transport-independent half of an association; see the module comment. */
export abstract class BaseAssociation implements SharedAssociation {
  readonly transport: TransportName;
  readonly outboundStreams: number;
  readonly inboundStreams: number;
  protected readonly driver: SocketDriver;
  protected readonly socketHandle: SocketHandle;
  readonly #closingFlag: Int32Array;
  readonly #received: Message[] = [];
  readonly #receivers: PromiseWithResolvers<Message | null>[] = [];
  readonly #pendingSends = new Map<number, PromiseWithResolvers<void>>();
  readonly #readerDone = Promise.withResolvers<void>();
  #nextSendId = 0;
  /** The batches gathered in this turn of the event loop, handed over together. */
  #gathered: Batch[] = [];
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

  constructor({ transport, driver, options, established, shared, onClosed }: AssociationSetup) {
    this.transport = transport;
    this.outboundStreams = established.outboundStreams;
    this.inboundStreams = established.inboundStreams;
    this.driver = driver;
    this.socketHandle = { transport, socket: established.socket, shared };
    this.#closingFlag = new Int32Array(shared);
    this.#onClosed = onClosed;
    if (options.sendTimeout > 0) this.#watchSends(options.sendTimeout);
  }

  /** Takes the batches gathered in one turn, to send them in order. */
  protected abstract hand(batches: Batch[]): void;
  /** The application took a received message of `bytes` bytes. */
  protected abstract consumed(bytes: number): void;
  /** Close or abort has begun (the closing flag is set): wake whoever waits to send or read. */
  protected abstract wake(): void;
  /** Stops the I/O machinery; nothing touches the socket once it has settled. */
  protected abstract stop(): void | Promise<void>;

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
      this.consumed(message.data.byteLength);
      return Promise.resolve(message);
    }
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#ended) return Promise.resolve(null);
    const waiter = Promise.withResolvers<Message | null>();
    this.#receivers.push(waiter);
    return waiter.promise;
  }

  pathInfo(): PathInfo {
    return this.driver.pathInfo(this.socketHandle.socket);
  }

  recycle(_data: Uint8Array): void {}

  handle(): SocketHandle {
    this.#leases++;
    return this.socketHandle;
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

  /** Whether close or abort has begun. */
  protected get closing(): boolean {
    return Atomics.load(this.#closingFlag, SHARED_CLOSING) === 1;
  }

  /** Settles the send `id` (its batch went out, or failed with `error`). */
  protected settle(id: number, error?: Error) {
    const pending = this.#pendingSends.get(id);
    this.#pendingSends.delete(id);
    if (error) pending?.reject(this.#abortReason ?? error);
    else pending?.resolve();
  }

  /** Hands a received message to a waiting `receive`, or queues it. */
  protected deliver(message: Message) {
    const waiter = this.#receivers.shift();
    if (waiter) {
      this.consumed(message.data.byteLength);
      waiter.resolve(message);
    } else {
      this.#received.push(message);
    }
  }

  /** The reading side ended: at an orderly end (`undefined`) or with `failure`. */
  protected finish(failure: Error | undefined) {
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

  /**
   * Aborts the association when sends are waiting and not one message went
   * out for `seconds`: the peer stopped reading (or half-closed and went
   * quiet), and would otherwise hold the association and its responses forever.
   */
  #watchSends(seconds: number) {
    const sent = new Int32Array(this.socketHandle.shared);
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
      await this.stop();
      const closed = this.#abortReason ?? new TransportError("association closed");
      for (const pending of this.#pendingSends.values()) pending.reject(closed);
      this.#pendingSends.clear();
      this.finish(undefined);
      this.driver.close(this.socketHandle.socket);
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
    // From here nothing more is sent, and a send waiting for buffer space gives up.
    Atomics.store(this.#closingFlag, SHARED_CLOSING, 1);
    const socket = this.socketHandle.socket;
    try {
      if (abort) {
        this.driver.abort(socket);
      } else {
        this.driver.shutdown(socket);
      }
    } catch {
      // The socket is already dead: the reader has ended or is about to.
      this.driver.abort(socket);
    }
    this.wake();
    if (await timedOut(this.#readerDone.promise, CLOSE_GRACE_MS)) {
      this.driver.abort(socket);
      await this.#readerDone.promise;
    }
    // Whoever sent from memory frees it when its send settles: wait for the writer to
    // report rather than settle sends it may still be reading from.
    const settled = Promise.allSettled([...this.#pendingSends.values()].map((p) => p.promise));
    await timedOut(settled, CLOSE_GRACE_MS);
    if (this.#leases > 0) await new Promise<void>((resolve) => (this.#leasesReleased = resolve));
  }

  #flush() {
    if (this.#gathered.length === 0) return;
    const batches = this.#gathered;
    this.#gathered = [];
    this.hand(batches);
  }
}
