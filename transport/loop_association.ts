/**
 * An association whose socket is driven on the event loop: nonblocking sends
 * and receives through its driver's `Channel`, and a wait on the channel's
 * readiness source only when one would block (`reactor.ts` for file
 * descriptors, the stack's upcall for usrsctp). While data flows, a message
 * costs one nonblocking call and no thread hop; a socket buffer that is full
 * (or empty) costs one hop to the waiting thread and back.
 *
 * Bodies may come straight from `mmap`ed files: a send copies them (into the
 * kernel, or through `copyFromAddress` for usrsctp), where a file truncated
 * under it gives EFAULT, never a signal.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import {
  type AssociationSetup,
  BaseAssociation,
  type Batch,
  READ_CREDIT_BYTES,
} from "./base_association.ts";
import type { Channel } from "./driver.ts";
import { SHARED_SENT, TransportError } from "./types.ts";
import type { OutgoingMessage } from "./types.ts";
import { creditOf } from "./worker_protocol.ts";
import { KEPT_PER_CLASS } from "./bytes.ts";
import { SendHold } from "./send_hold.ts";

/**
 * Messages read in a row before the reader lets other work run. At most as
 * many as the channel keeps recycled buffers of one size: the application
 * then gets its turn, and gives back what it read, before the next burst
 * copies messages into fresh memory (in the lab, half the 64 KiB messages of
 * 64-message bursts did, which made the receiver ~1.5× slower).
 */
const MAX_BURST = KEPT_PER_CLASS;
/** Sent entries at the head of the send queue that trigger dropping them. */
const COMPACT_AT = 4096;

/** See the module comment. */
export class LoopAssociation extends BaseAssociation {
  readonly #channel: Channel;
  readonly #sent: Int32Array;
  /** Messages in the order they go out; those before #next are sent. */
  #queue: OutgoingMessage[] = [];
  #next = 0;
  /** Handed batches not yet settled, each ending before queue index `end`. */
  readonly #batches: { id: number; end: number }[] = [];
  #writing = false;
  /** The first send that failed: the stream may be mid-message, so nothing after it goes out. */
  #writeFailure: Error | undefined;
  /** Received bytes (as `creditOf` counts them) the application has not taken. */
  #unconsumed = 0;
  #creditFreed: PromiseWithResolvers<void> | undefined;
  #stopped = false;
  /** For a channel whose socket reports room at its first free byte (see send_hold.ts). */
  readonly #hold: SendHold | undefined;
  /** Ends the writer's hold early (see `wake`). */
  #endHold: (() => void) | undefined;

  constructor(setup: AssociationSetup) {
    super(setup);
    this.#channel = setup.driver.channel!(this.socketHandle, setup.options.maxMessageSize);
    this.#sent = new Int32Array(setup.shared);
    const buffer = this.#channel.holdOffSendBuffer;
    if (buffer !== undefined) this.#hold = new SendHold(buffer);
    void this.#readLoop();
  }

  override recycle(data: Uint8Array): void {
    this.#channel.recycle(data);
  }

  protected hand(batches: Batch[]) {
    for (const { id, messages } of batches) {
      if (this.#writeFailure) {
        this.settle(id, this.#writeFailure);
        continue;
      }
      for (const message of messages) this.#queue.push(message);
      this.#batches.push({ id, end: this.#queue.length });
    }
    if (!this.#writing) void this.#writeLoop();
  }

  protected consumed(bytes: number) {
    this.#unconsumed -= creditOf(bytes);
    if (this.#creditFreed && this.#unconsumed <= READ_CREDIT_BYTES) this.#creditFreed.resolve();
  }

  protected wake() {
    this.#creditFreed?.resolve();
    this.#endHold?.();
    this.#channel.readiness.wake();
  }

  protected stop(): void | Promise<void> {
    this.#stopped = true;
    return this.#channel.readiness.forget();
  }

  async #writeLoop() {
    this.#writing = true;
    // Bytes the socket took since the writer last waited.
    let taken = 0;
    try {
      for (;;) {
        this.#settleSent();
        if (this.#next === this.#queue.length || this.#stopped) {
          this.#hold?.idle();
          break;
        }
        if (this.closing) throw new TransportError("association closed");
        const n = this.#channel.send(this.#queue, this.#next);
        if (this.#hold) taken += bytesOf(this.#queue, this.#next, n);
        this.#next += n;
        Atomics.add(this.#sent, SHARED_SENT, n);
        if (this.#next < this.#queue.length) {
          this.#settleSent();
          const holdMs = this.#hold?.next(taken) ?? 0;
          taken = 0;
          if (holdMs > 0) await this.#sleep(holdMs);
          else await this.#channel.readiness.ready("writable");
        }
      }
    } catch (error) {
      this.#writeFailure ??= error as Error;
      for (const { id } of this.#batches.splice(0)) this.settle(id, this.#writeFailure);
      this.#queue = [];
      this.#next = 0;
    } finally {
      this.#writing = false;
    }
  }

  /** Resolves after `ms` milliseconds, or at `wake`. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#endHold!(), ms);
      this.#endHold = () => {
        clearTimeout(timer);
        this.#endHold = undefined;
        resolve();
      };
    });
  }

  /** Settles the batches sent whole, and drops sent messages from the queue now and then. */
  #settleSent() {
    while (this.#batches.length > 0 && this.#batches[0].end <= this.#next) {
      this.settle(this.#batches.shift()!.id);
    }
    if (this.#next === this.#queue.length) {
      // Every batch is settled: start the queue afresh.
      this.#queue = [];
      this.#next = 0;
    } else if (this.#next >= COMPACT_AT) {
      this.#queue.splice(0, this.#next);
      for (const batch of this.#batches) batch.end -= this.#next;
      this.#next = 0;
    }
  }

  async #readLoop() {
    let burst = 0;
    try {
      for (;;) {
        if (this.#stopped) return;
        if (this.#unconsumed > READ_CREDIT_BYTES && !this.closing) {
          // Backpressure: stop reading (so the peer's window closes) until the
          // application catches up; once closing, read on to see the end.
          this.#creditFreed = Promise.withResolvers<void>();
          await this.#creditFreed.promise;
          this.#creditFreed = undefined;
          continue;
        }
        const message = this.#channel.receive();
        if (message === undefined) {
          burst = 0;
          await this.#channel.readiness.ready("readable");
          continue;
        }
        if (message === null) return this.finish(undefined);
        this.#unconsumed += creditOf(message.data.byteLength);
        this.deliver(message);
        if (++burst === MAX_BURST) {
          // After a long burst other work gets its turn. Not through the
          // readiness source: the channel may hold whole messages the socket no longer shows.
          burst = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    } catch (error) {
      this.finish(error as Error);
    }
  }
}

/** The payload bytes of `messages[from]` and the `count - 1` after it. */
function bytesOf(messages: readonly OutgoingMessage[], from: number, count: number): number {
  let bytes = 0;
  for (let i = from; i < from + count; i++) {
    const message = messages[i];
    bytes += message.address === undefined ? message.data.byteLength : message.length;
  }
  return bytes;
}
