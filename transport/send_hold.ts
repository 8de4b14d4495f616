/**
 * How long a writer on the event loop holds off a full socket buffer, for
 * sockets that report room as soon as any byte of it is free.
 *
 * Linux wakes an SCTP writer whenever its send buffer has any room at all
 * (TCP waits until a third of it is free, and needs none of this). A
 * nonblocking writer waiting through epoll then pays a turn of the event
 * loop, a thread hop and a dozen system calls for each acknowledgement that
 * frees a little room, to send one message; a C sender blocked in
 * `sctp_sendmsg` sleeps in the kernel until its whole message fits. On the
 * lab's one CPU those turns took the time the receiver needed: kernel SCTP
 * with 64 KiB messages ran at about 0.6× a blocking C sender in the same
 * boot. Holding until half the buffer was free made that 0.94×, three
 * quarters 1.45× (medians of 5 rounds): the receiver then runs longer
 * between two turns of the sender than it does with a C sender, which the
 * kernel wakes each time one message fits.
 *
 * So once the buffer is full the writer sleeps before it tries again, for
 * the time the link takes to free three quarters of the buffer (at most
 * `MAX_HOLD_MS`): many messages go out per turn, and a quarter of the buffer
 * is still queued when the writer comes back. The link's
 * rate is what the socket took over the time it has been full, a long
 * average: what frees room comes in bursts, whenever the receiver gets to
 * run. The first wait of a busy spell, and any hold shorter than
 * `MIN_HOLD_MS`, is a wait for readiness as before, and so is the wait after
 * a try that sent nothing (the peer's window is closed).
 *
 * @module
 */

/** The shortest hold: the resolution of the event loop's timers. */
export const MIN_HOLD_MS = 1;
/**
 * The longest hold, for slow links: a full buffer holds much more than that,
 * and the writer comes back at least this often.
 */
export const MAX_HOLD_MS = 8;
/** The part of the buffer the link frees during a hold. */
const HOLD_FRACTION = 3 / 4;
/** The span of time the rate is averaged over, in milliseconds. */
const RATE_SPAN_MS = 1000;

/** See the module comment; one per association's writer. */
export class SendHold {
  readonly #heldBytes: number;
  readonly #now: () => number;
  /** When the socket was first full in this busy spell (-1: not yet). */
  #since = -1;
  /** Bytes the socket took since `#since`. */
  #bytes = 0;

  /**
   * For a socket whose send buffer is `bufferBytes` large (as SO_SNDBUF
   * reports it); `now` gives the time in milliseconds.
   */
  constructor(bufferBytes: number, now: () => number = () => performance.now()) {
    this.#heldBytes = bufferBytes * HOLD_FRACTION;
    this.#now = now;
  }

  /**
   * The socket took `bytes` since the writer last waited and is full now:
   * how many milliseconds to sleep before the next try (0: wait for readiness).
   */
  next(bytes: number): number {
    const now = this.#now();
    if (this.#since < 0) {
      this.#since = now;
      this.#bytes = 0;
      return 0;
    }
    this.#bytes += bytes;
    const elapsed = now - this.#since;
    if (elapsed > RATE_SPAN_MS) {
      // Keep the rate, at half its weight, so that it follows a link that changes.
      this.#since = now - elapsed / 2;
      this.#bytes /= 2;
    }
    if (bytes === 0 || this.#bytes === 0) return 0;
    const holdMs = Math.min(MAX_HOLD_MS, this.#heldBytes * elapsed / this.#bytes);
    return holdMs < MIN_HOLD_MS ? 0 : holdMs;
  }

  /** The writer has sent all it had: the next full buffer starts a new busy spell. */
  idle(): void {
    this.#since = -1;
  }
}
